/**
 * `npm run demo`'s sample workflow, and how its progress reads in a terminal. Pure.
 *
 *   prepare ──▶ count (a map: one task a shard) ──▶ reduce
 *
 * `prepare` writes four shards of numbers (shard i holds 1 … 250 × (i + 1)); its first attempt
 * fails on purpose and the step is retried. `count` fans out over the shards, each task summing
 * one and returning `{shard, lines, sum}`; `reduce` adds the sums. The steps share a directory of
 * this machine: a local cluster's nodes are this machine (on a fleet, steps share data through
 * results or object storage instead).
 */
import type { SubmitWorkflowRequest, WorkflowView } from '@batchapi/api';

/** Shards `prepare` writes. */
export const DEMO_SHARDS = 4;

/** The total `reduce` must print: Σ over shards of 1 + … + 250(i + 1). */
export function demoTotal(): number {
  let total = 0;
  for (let i = 0; i < DEMO_SHARDS; i++) {
    const n = 250 * (i + 1);
    total += (n * (n + 1)) / 2;
  }
  return total;
}

/** The workflow, its steps working in `dir` (an existing directory of this machine). */
export function demoWorkflow(dir: string): SubmitWorkflowRequest {
  const job = (script: string) => ({ resources: { cpu: '250m', memory: '64Mi' }, env: { DEMO_DIR: dir }, command: ['sh', '-c', script] });
  const shards = Array.from({ length: DEMO_SHARDS }, (_, i) => i);
  return {
    name: 'demo-shards',
    steps: [
      {
        name: 'prepare',
        job: {
          ...job(
            'if [ "$BATCH_ATTEMPT" = 1 ]; then echo "prepare: attempt 1 fails on purpose; the step retries" >&2; exit 3; fi; ' +
              `for i in ${shards.join(' ')}; do seq 1 $(( (i + 1) * 250 )) > "$DEMO_DIR/shard-$i"; done; ` +
              `echo "prepare: wrote ${DEMO_SHARDS} shards (attempt $BATCH_ATTEMPT)"`,
          ),
          retry: { maxAttempts: 2, backoffSeconds: 0 },
        },
      },
      {
        name: 'count',
        dependsOn: ['prepare'],
        map: { items: shards },
        job: job(
          'f="$DEMO_DIR/shard-$BATCH_MAP_ITEM"; n=0; s=0; while read x; do n=$((n + 1)); s=$((s + x)); done < "$f"; ' +
            'echo "$s" > "$DEMO_DIR/sum-$BATCH_MAP_ITEM"; ' +
            'echo "{\\"shard\\": $BATCH_MAP_ITEM, \\"lines\\": $n, \\"sum\\": $s}" > "$BATCH_RESULT_PATH"; ' +
            'echo "shard $BATCH_MAP_ITEM: $n lines, sum $s"',
        ),
      },
      {
        name: 'reduce',
        dependsOn: ['count'],
        job: job('t=0; for f in "$DEMO_DIR"/sum-*; do t=$((t + $(cat "$f"))); done; echo "$t" > "$BATCH_RESULT_PATH"; echo "total: $t"'),
      },
    ],
  };
}

const MARK: Record<string, string> = { Pending: '·', Running: '▶', Succeeded: '✓', Failed: '✗', Skipped: '–', Cancelled: '✗' };

/**
 * The workflow's DAG on one line, each step marked by its phase — `✓ prepare → ▶ count [2/4] → · reduce`
 * (a fan-out with its tasks ended of all, when `ended` has its job) — then the workflow's phase.
 */
export function dagLine(w: WorkflowView, ended: ReadonlyMap<string, { done: number; of: number }> = new Map()): string {
  const steps = w.steps.map((s) => {
    const fan = s.map && s.jobId && ended.get(s.jobId);
    return `${MARK[s.phase] ?? '?'} ${s.name}${fan ? ` [${fan.done}/${fan.of}]` : ''}`;
  });
  return `${steps.join(' → ')}   (${w.phase})`;
}
