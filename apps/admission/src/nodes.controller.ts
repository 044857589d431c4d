/**
 * `/v1/nodes`: the fleet for operators — inventory and allocation, cordon (no new work) and
 * drain (running tasks stop at a deadline and are requeued elsewhere), and the same listing as
 * server-sent events (the console's nodes page). Tenants get 403.
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
import { CLOCK, type Clock, SERVICE, type ServiceContext, systemClock } from '@batchapi/runtime';
import { allocationsByNode, clearCordon, type Fleet, getAllocation, getNode, type Keys, readFleet, setCordon } from '@batchapi/store';
import { Body, Controller, Delete, Get, HttpCode, Inject, Optional, Param, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { TokenAuthenticator } from './auth';
import { EventStreams, type MirroredValue, type StreamSnapshot } from './event-stream';
import { AUTH } from './jobs.controller';
import { ClusterStateController } from './queues.controller';

@Controller('v1/nodes')
export class NodesController extends ClusterStateController {
  constructor(
    @Inject(AUTH) auth: TokenAuthenticator,
    @Inject(SERVICE) ctx: ServiceContext,
    // Named: a subclass's parameter at an index its parent injects by token would get the parent's.
    @Inject(EventStreams) private readonly streams: EventStreams,
    @Optional() @Inject(CLOCK) clock: Clock = systemClock,
  ) {
    super(auth, ctx, clock);
  }

  @Get()
  async list(@Req() req: FastifyRequest): Promise<{ nodes: NodeView[] }> {
    this.operator(req);
    return fleetView(await readFleet(this.ctx.store));
  }

  /** Server-sent events: the listing of `GET /v1/nodes` now and at every change of a node, its allocation or its cordon. */
  @Get('events')
  async events(@Req() req: FastifyRequest, @Res() reply: FastifyReply) {
    const principal = this.operator(req);
    const { store } = this.ctx;
    const prefixes = [store.keys.nodes(), store.keys.allocs(), store.keys.cordons()];
    await this.streams.serve(req, reply, {
      principal,
      event: 'nodes',
      prefixes,
      read: async () => {
        const [nodes, allocs, cordons] = await Promise.all(prefixes.map((p) => store.listAll<unknown>(p)));
        const mirror = new Map([...nodes.items, ...allocs.items, ...cordons.items].map((kv): [string, MirroredValue] => [kv.key, kv]));
        return mirroredFleet(store.keys, mirror);
      },
      view: (mirror) => mirroredFleet(store.keys, mirror),
    });
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

function fleetView(fleet: Fleet): { nodes: NodeView[] } {
  const cordon = new Map(fleet.cordons.map((c) => [c.node, c]));
  return { nodes: fleet.nodes.map((n) => view(n, fleet.allocs.get(n.name), cordon.get(n.name))) };
}

/**
 * The nodes listing of a stream's mirrored `nodes/`, `alloc/` and `cordons/` keys; its revision is
 * the newest of theirs (an uncordon deletes its key: EventStreams sends that change with a newer id).
 */
function mirroredFleet(keys: Keys, mirror: ReadonlyMap<string, MirroredValue>): StreamSnapshot {
  const nodes: NodeRecord[] = [];
  const allocs: Array<{ key: string; value: NodeAllocation }> = [];
  const cordons: Cordon[] = [];
  let revision = 0n;
  for (const [key, { value, modRevision }] of mirror) {
    if (BigInt(modRevision) > revision) revision = BigInt(modRevision);
    if (key.startsWith(keys.nodes())) nodes.push(value as NodeRecord);
    else if (key.startsWith(keys.allocs())) allocs.push({ key, value: value as NodeAllocation });
    else if (key.startsWith(keys.cordons())) cordons.push(value as Cordon);
  }
  nodes.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { view: fleetView({ nodes, allocs: allocationsByNode(keys, allocs), cordons }), revision, terminal: false };
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
    gpuDevices: n.gpus.map((g) => ({ index: g.index, model: g.model, milliUsed: Math.round(alloc?.devices[String(g.index)] ?? 0) })),
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
    ...(n.isolation ? { isolation: n.isolation } : {}),
    ...(n.draining ? { draining: { since: iso(n.draining.since), deadline: iso(n.draining.deadline) } } : {}),
  };
}
