/**
 * Admission's calls to the scheduler (`@nestjs/microservices` over TCP). The leader is asked
 * first — its key in etcd names its instance, whose member record has the address — then any
 * other replica (standbys keep their caches warm too). Each call has a deadline; when no
 * replica answers, the caller works the answer out itself.
 */
import { type JobRecord, SCHEDULER_WHY, type SchedulerWhyRequest, type SchedulerWhyResponse } from '@batchapi/api';
import type { MemberRecord } from '@batchapi/runtime';
import type { EtcdStore } from '@batchapi/store';
import { type ClientProxy, ClientProxyFactory, Transport } from '@nestjs/microservices';
import { firstValueFrom, timeout } from 'rxjs';

export class SchedulerCalls {
  private readonly clients = new Map<string, ClientProxy>();

  /** @param timeoutMs deadline of one call to one replica, in milliseconds. @default 1000 */
  constructor(private readonly store: EtcdStore, private readonly timeoutMs = 1000) {}

  /** "Why pending" from a scheduler replica's live cache; undefined when none answered in time. */
  async why(job: JobRecord): Promise<SchedulerWhyResponse | undefined> {
    for (const address of await this.addresses().catch(() => [])) {
      try {
        return await firstValueFrom(this.client(address).send<SchedulerWhyResponse, SchedulerWhyRequest>(SCHEDULER_WHY, { job }).pipe(timeout(this.timeoutMs)));
      } catch {
        this.drop(address); // a replica that is gone or slow: a fresh connection next time
      }
    }
    return undefined;
  }

  async close(): Promise<void> {
    await Promise.all([...this.clients.values()].map((c) => c.close()));
    this.clients.clear();
  }

  /** Scheduler replicas that serve calls, the leader first. */
  private async addresses(): Promise<string[]> {
    const { keys } = this.store;
    const [leader, members] = await Promise.all([this.store.get<{ identity: string }>(keys.leader('scheduler')), this.store.list<MemberRecord>(keys.membersOf('scheduler'))]);
    const first = leader?.value.identity;
    return members.items.map((m) => m.value).filter((m) => m.rpc).sort((a, b) => Number(b.id === first) - Number(a.id === first)).map((m) => m.rpc!);
  }

  private client(address: string): ClientProxy {
    let c = this.clients.get(address);
    if (!c) {
      const at = address.lastIndexOf(':');
      c = ClientProxyFactory.create({ transport: Transport.TCP, options: { host: address.slice(0, at), port: Number(address.slice(at + 1)) } });
      this.clients.set(address, c);
    }
    return c;
  }

  private drop(address: string): void {
    const c = this.clients.get(address);
    this.clients.delete(address);
    void c?.close();
  }
}
