/**
 * `/v1/nodes`: the fleet for operators — inventory and allocation, cordon (no new work) and
 * drain (running tasks stop at a deadline and are requeued elsewhere). Tenants get 403.
 */
import {
  ApiError,
  type Cordon,
  CordonSchema,
  DrainSchema,
  ErrorCode,
  formatResources,
  NameSchema,
  type NodeAllocation,
  type NodeRecord,
  type NodeView,
  parseWith,
  type Principal,
} from '@batchapi/api';
import { clearCordon, getAllocation, getNode, readFleet, setCordon } from '@batchapi/store';
import { Body, Controller, Delete, Get, HttpCode, Param, Post, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { ClusterStateController } from './queues.controller';

@Controller('v1/nodes')
export class NodesController extends ClusterStateController {
  @Get()
  async list(@Req() req: FastifyRequest): Promise<{ nodes: NodeView[] }> {
    this.operator(req);
    const fleet = await readFleet(this.ctx.store);
    const cordon = new Map(fleet.cordons.map((c) => [c.node, c]));
    return { nodes: fleet.nodes.map((n) => view(n, fleet.allocs.get(n.name), cordon.get(n.name))) };
  }

  @Post(':name/cordon')
  @HttpCode(200)
  async cordon(@Req() req: FastifyRequest, @Param('name') name: string, @Body() body: unknown) {
    const p = this.operator(req);
    const { reason } = parseWith(CordonSchema, body);
    return this.mark(name, { node: name, reason, by: p.tenant, at: this.clock.now() });
  }

  @Post(':name/drain')
  @HttpCode(200)
  async drain(@Req() req: FastifyRequest, @Param('name') name: string, @Body() body: unknown) {
    const p = this.operator(req);
    const { reason, deadlineSeconds } = parseWith(DrainSchema, body);
    const now = this.clock.now();
    return this.mark(name, { node: name, reason, by: p.tenant, at: now, drainDeadline: now + (deadlineSeconds ?? 300) * 1000 });
  }

  @Delete(':name/cordon')
  async uncordon(@Req() req: FastifyRequest, @Param('name') name: string) {
    this.operator(req);
    const node = await this.known(name);
    await clearCordon(this.ctx.store, name);
    return view(node, await getAllocation(this.ctx.store, name), undefined);
  }

  private async mark(name: string, c: Cordon): Promise<NodeView> {
    const node = await this.known(name);
    // Last writer wins by design: a newer cordon or drain replaces the older one.
    await setCordon(this.ctx.store, c);
    return view(node, await getAllocation(this.ctx.store, name), c);
  }

  private async known(name: string): Promise<NodeRecord> {
    parseWith(NameSchema, name, 'name');
    const node = await getNode(this.ctx.store, name);
    if (!node) throw new ApiError(ErrorCode.NotFound, `node ${name} is not registered`, { id: name });
    return node;
  }

  private operator(req: FastifyRequest): Principal {
    return this.auth.authenticateOperator(req.headers.authorization, 'nodes');
  }
}

function view(n: NodeRecord, alloc: NodeAllocation | undefined, c: Cordon | undefined): NodeView {
  const iso = (t: number) => new Date(t).toISOString();
  return {
    name: n.name,
    capacity: formatResources(n.capacity),
    allocated: formatResources(alloc?.used ?? {}),
    labels: n.labels,
    taints: n.taints,
    gpus: n.gpus.length,
    ...(c
      ? {
          cordon: {
            reason: c.reason,
            by: c.by,
            at: iso(c.at),
            ...(c.drainDeadline ? { drainDeadline: iso(c.drainDeadline) } : {}),
            ...(c.quarantine ? { quarantine: c.quarantine } : {}),
          },
        }
      : {}),
  };
}
