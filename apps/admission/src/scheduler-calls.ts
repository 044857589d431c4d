/**
 * Admission's calls to the scheduler (`@nestjs/microservices` over TCP). Standby replicas are
 * asked first (their informer caches are as fresh as the leader's, and the leader's event loop
 * is kept for scheduling), the leader last — its key in etcd names its instance, whose member
 * record has the address. Each call has a deadline and carries the service credential and only
 * the job's placement fields (never its env); when no replica answers, the caller works the
 * answer out itself.
 */
import {
  type JobRecord,
  SCHEDULER_QUEUES,
  SCHEDULER_WHY,
  type SchedulerQueuesRequest,
  type SchedulerQueuesResponse,
  type SchedulerWhyRequest,
  type SchedulerWhyResponse,
  whyJobOf,
} from '@batchapi/api';
import { authorizeCalls, type MemberRecord, RPC_FRAMING, type ServiceCredential } from '@batchapi/runtime';
import { type EtcdStore, getLeader, listMembers } from '@batchapi/store';
import { type ClientProxy, ClientProxyFactory, Transport } from '@nestjs/microservices';
import { firstValueFrom, timeout } from 'rxjs';

export class SchedulerCalls {
  private readonly clients = new Map<string, ClientProxy>();

  /**
   * @param credential the cluster's service credential, sent with every call.
   * @param timeoutMs deadline of one call to one replica, in milliseconds. @default 1000
   */
  constructor(
    private readonly store: EtcdStore,
    private readonly credential: ServiceCredential,
    private readonly timeoutMs = 1000,
  ) {}

  /** "Why pending" from a scheduler replica's live cache; undefined when none answered in time. */
  why(job: JobRecord): Promise<SchedulerWhyResponse | undefined> {
    return this.call<SchedulerWhyRequest, SchedulerWhyResponse>(SCHEDULER_WHY, { job: whyJobOf(job) });
  }

  /** The queue views (and one queue's positions) from a scheduler replica's live cache; undefined when none answered in time. */
  queues(req: SchedulerQueuesRequest): Promise<SchedulerQueuesResponse | undefined> {
    return this.call<SchedulerQueuesRequest, SchedulerQueuesResponse>(SCHEDULER_QUEUES, req);
  }

  /** Asks the replicas in turn (standbys first), each within the deadline; undefined when none answered. */
  private async call<Req, Res>(pattern: string, payload: Req): Promise<Res | undefined> {
    const addresses = await this.addresses().catch(() => undefined);
    if (addresses) this.prune(addresses);
    for (const address of addresses ?? []) {
      const client = this.client(address);
      try {
        return await firstValueFrom(client.send<Res, Req>(pattern, payload).pipe(timeout(this.timeoutMs)));
      } catch {
        this.drop(address, client); // a replica that is gone, slow or failing: a fresh connection next time
      }
    }
    return undefined;
  }

  async close(): Promise<void> {
    await Promise.all([...this.clients.values()].map((c) => c.close()));
    this.clients.clear();
  }

  /** Scheduler replicas that serve calls, standbys first, the leader last. */
  private async addresses(): Promise<string[]> {
    const [first, members] = await Promise.all([getLeader(this.store, 'scheduler'), listMembers<MemberRecord>(this.store, 'scheduler')]);
    return members
      .filter((m) => m.rpc)
      .sort((a, b) => Number(a.id === first) - Number(b.id === first))
      .map((m) => m.rpc!);
  }

  private client(address: string): ClientProxy {
    let c = this.clients.get(address);
    if (!c) {
      const at = address.lastIndexOf(':');
      c = ClientProxyFactory.create({ transport: Transport.TCP, options: { host: address.slice(0, at), port: Number(address.slice(at + 1)), ...RPC_FRAMING } });
      authorizeCalls(c, this.credential);
      this.clients.set(address, c);
    }
    return c;
  }

  /** Closes the connection a failed call used, unless another call has replaced it already. */
  private drop(address: string, client: ClientProxy): void {
    if (this.clients.get(address) === client) this.clients.delete(address);
    void client.close();
  }

  /** Closes connections to replicas that are no longer members (a rescheduled pod's old address). */
  private prune(live: string[]): void {
    for (const [address, client] of this.clients) {
      if (!live.includes(address)) this.drop(address, client);
    }
  }
}
