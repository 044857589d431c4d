/**
 * Attempts that only pretend to run, for simulated fleets (`batch dev --simulated-nodes`, the
 * end-to-end benchmarks): each "runs" for a while on a timer and exits 0 — no process, no files,
 * no resources — so one process can hold thousands of nodes' attempts.
 */
import type { Binding } from '@batchapi/api';
import type { AttemptBackend, AttemptExit, Reclaimed, StartedAttempt } from './attempt-backend';

/** How simulated attempts run. */
export interface SimulatedBackendOptions {
  /** How long an attempt runs unless its environment sets `BATCH_SIM_SECONDS`, milliseconds. @default 1000 */
  taskMs?: number;
}

/**
 * Attempts as timers. Each runs for its environment's `BATCH_SIM_SECONDS` (the job's env; else
 * `taskMs`) and exits 0; a stop ends it at once as if its SIGTERM killed it (there is no grace to
 * wait out), a kill as SIGKILL. `close` drops every running attempt without an end, as a process
 * goes on running when its executor leaves.
 */
export class SimulatedBackend implements AttemptBackend {
  readonly workingDirs = false;
  readonly pythonEnvs = false;
  /** Nothing is limited: nothing runs. */
  readonly isolation = 'none' as const;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly o: SimulatedBackendOptions = {}) {}

  /** A simulated node leaves nothing running on the machine. */
  async reclaim(): Promise<Reclaimed> {
    return { previousRan: false, leftovers: 0 };
  }

  /** The node is what the fleet's options say. */
  async inventory(): Promise<undefined> {
    return undefined;
  }

  /** Starts one simulated attempt; `env` defaults to the job's (the attempt's files are never made, so none are asked for). */
  start(b: Binding, _index: number, env: Record<string, string> = b.env): StartedAttempt {
    const ms = env.BATCH_SIM_SECONDS ? Number(env.BATCH_SIM_SECONDS) * 1000 : (this.o.taskMs ?? 1000);
    let resolve!: (exit: AttemptExit) => void;
    const exited = new Promise<AttemptExit>((r) => (resolve = r));
    const end = (exit: AttemptExit) => {
      if (!this.timers.delete(timer)) return;
      clearTimeout(timer);
      resolve(exit);
    };
    const timer = setTimeout(() => end({ exitCode: 0 }), ms);
    this.timers.add(timer);
    return {
      exited,
      stop: () => end({ signal: 'SIGTERM' }),
      kill: () => end({ signal: 'SIGKILL' }),
      oomKilled: () => false,
      release: () => undefined,
    };
  }

  /** Drops every running attempt: none of them ends. */
  close(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}
