/**
 * The fast subset of the fault suite (`npm run -s test:faults` runs every scenario): scheduler
 * leader kill, etcd follower kill, admission kill mid-request, the archiver killed mid-batch, a
 * rolling restart of every service (SIGTERM, one replica at a time; each elected role resigned, not expired), an
 * executor killed while its task holds a lock (the lock frees after TTL + grace, never held twice) and
 * PostgreSQL (the history store) killed for 10 s (30 s in the full suite), and every lease
 * revoked at once (as a resumed etcd raft leader can) — under load, against a
 * 3-member etcd and two replicas of each service; nothing accepted is lost, no task runs twice,
 * every job is archived once and the archive backlog drains.
 */
import { faultSuite } from '../faults/run-scenarios';
import { postgresKilled, SCENARIOS } from '../faults/scenarios';

// No retries: a fault scenario that fails now and then has found a defect (issue 13).
faultSuite([...SCENARIOS.filter((s) => s.fast), postgresKilled(10_000)]);
