/**
 * Service-to-service calls (`@nestjs/microservices` over TCP): their message patterns and
 * payloads, one place for both sides. State still moves through etcd; a call asks a
 * service for something only it can work out cheaply.
 */
import type { JobRecord } from './model';
import type { WhyView } from './views';

/** `scheduler.why`: a scheduler replica explains why a job waits, from its live cache. */
export const SCHEDULER_WHY = 'scheduler.why';

/** The payload of `scheduler.why`: the job as the caller read it (the caller checked who may see it). */
export interface SchedulerWhyRequest {
  job: JobRecord;
}

/** The answer of `scheduler.why`. */
export type SchedulerWhyResponse = WhyView;
