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
import { SERVICE, type ServiceContext } from '@batchapi/runtime';
import { allocationsByNode } from '@batchapi/store';
import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { TokenAuthenticator } from './auth';
import { AUTH } from './jobs.controller';

@Controller('v1/nodes')
export class NodesController {
  constructor(
    @Inject(AUTH) private readonly auth: TokenAuthenticator,
    @Inject(SERVICE) private readonly ctx: ServiceContext,
  ) {}

  @Get()
  async list(@Req() req: FastifyRequest): Promise<{ nodes: NodeView[] }> {
    this.operator(req);
    const { store } = this.ctx;
    const [nodes, allocs, cordons] = await Promise.all([
      store.listAll<NodeRecord>(store.keys.nodes()),
      store.listAll<NodeAllocation>(store.keys.allocs()),
      store.listAll<Cordon>(store.keys.cordons()),
    ]);
    const alloc = allocationsByNode(store.keys, allocs.items);
    const cordon = new Map(cordons.items.map((c) => [c.value.node, c.value]));
    return { nodes: nodes.items.map(({ value: n }) => view(n, alloc.get(n.name), cordon.get(n.name))) };
  }

  @Post(':name/cordon')
  @HttpCode(200)
  async cordon(@Req() req: FastifyRequest, @Param('name') name: string, @Body() body: unknown) {
    const p = this.operator(req);
    const { reason } = parseWith(CordonSchema, body);
    return this.mark(name, { node: name, reason, by: p.tenant, at: Date.now() });
  }

  @Post(':name/drain')
  @HttpCode(200)
  async drain(@Req() req: FastifyRequest, @Param('name') name: string, @Body() body: unknown) {
    const p = this.operator(req);
    const { reason, deadlineSeconds } = parseWith(DrainSchema, body);
    const now = Date.now();
    return this.mark(name, { node: name, reason, by: p.tenant, at: now, drainDeadline: now + (deadlineSeconds ?? 300) * 1000 });
  }

  @Delete(':name/cordon')
  async uncordon(@Req() req: FastifyRequest, @Param('name') name: string) {
    this.operator(req);
    const { store } = this.ctx;
    const node = await this.known(name);
    await store.txn([], [{ delete: store.keys.cordon(name) }]);
    const alloc = await store.get<NodeAllocation>(store.keys.alloc(name));
    return view(node, alloc?.value, undefined);
  }

  private async mark(name: string, c: Cordon): Promise<NodeView> {
    const { store } = this.ctx;
    const node = await this.known(name);
    // Last writer wins by design: a newer cordon or drain replaces the older one.
    await store.txn([], [{ put: store.keys.cordon(name), value: c }]);
    const alloc = await store.get<NodeAllocation>(store.keys.alloc(name));
    return view(node, alloc?.value, c);
  }

  private async known(name: string): Promise<NodeRecord> {
    parseWith(NameSchema, name, 'name');
    const node = await this.ctx.store.get<NodeRecord>(this.ctx.store.keys.node(name));
    if (!node) throw new ApiError(ErrorCode.NotFound, `node ${name} is not registered`, { id: name });
    return node.value;
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
