/**
 * The cache key of a memoized step (`cache: true`), decided purely: a SHA-256 over the canonical
 * JSON of what makes a step's results what they are, and nothing else. Two steps of one tenant
 * with one key are taken to return the same results, so the second reuses the first's job.
 */
import { createHash } from 'node:crypto';
import { canonicalJson, type JobSpec, type StepPhase, type TaskResult } from '@batchapi/api';

/**
 * Variables of a step's environment that are not inputs of its computation: the API's address, a
 * token older Python SDKs passed to a step that reads its inputs, and the inputs token the
 * controller mints (a new token must not make every cached step run again).
 */
export const CACHE_KEY_IGNORED_ENV: readonly string[] = ['BATCH_API', 'BATCH_TOKEN', 'BATCH_INPUTS_TOKEN'];

/**
 * The variable listing a step's inputs (`resolveInputs`): the key takes their step names and kinds,
 * not their job ids, which differ from run to run (the inputs' results are in the key already).
 */
export const CACHE_KEY_INPUTS_ENV = 'BATCH_INPUTS';

/**
 * Variables whose value is JSON: the Python SDK's call of the step's function (`{"args", "kwargs"}`).
 * The key takes their parsed value, so arguments that differ only in the order of an object's keys
 * (keyword arguments given in another order) are the same arguments.
 */
export const CACHE_KEY_JSON_ENV: readonly string[] = ['BATCH_PY_ARGS'];

/** What a step's cache key is taken over. */
export interface StepCacheInput {
  /**
   * The step's job as the controller submits it. Of it, the key takes what decides its results:
   * `command`, `env` (less `CACHE_KEY_IGNORED_ENV`, `CACHE_KEY_JSON_ENV` as parsed JSON; for a
   * Python step it holds the function's identity and arguments), `image`, `workingDir` (its digest), `python` (its requirements'
   * digest), `tasks` and `items` (a fan-out's resolved items). Not: its name, resources, queue,
   * priority, labels, placement, retries, timeout or `maxRunning`.
   */
  spec: Pick<JobSpec, 'command' | 'env' | 'tasks'> & Partial<Pick<JobSpec, 'image' | 'workingDir' | 'python' | 'items'>>;
  /** Each dependency, by step name: how it ended and the digest of its results (`resultsDigest`). */
  inputs: Readonly<Record<string, { phase: StepPhase; results: string }>>;
  /** The step's `cacheVersion`. @default "" */
  cacheVersion?: string;
}

/** Version of the key's layout: raised when what the key covers changes, so old entries stop matching. */
const KEY_LAYOUT = 1;

/** The cache key of a step: hex SHA-256 of the canonical JSON of its inputs (object key order never matters). */
export function stepCacheKey(input: StepCacheInput): string {
  const { spec } = input;
  const env = Object.fromEntries(
    Object.entries(spec.env)
      .filter(([k]) => !CACHE_KEY_IGNORED_ENV.includes(k))
      .map(([k, v]) => [k, k === CACHE_KEY_INPUTS_ENV ? inputNames(v) : CACHE_KEY_JSON_ENV.includes(k) ? jsonOrText(v) : v]),
  );
  return sha256(
    canonicalJson({
      layout: KEY_LAYOUT,
      command: spec.command,
      env,
      image: spec.image,
      workingDir: spec.workingDir?.digest,
      python: spec.python?.digest,
      tasks: spec.tasks,
      items: spec.items,
      inputs: input.inputs,
      cacheVersion: input.cacheVersion ?? '',
    }),
  );
}

/**
 * Digest of a step's results: its tasks' values by index (a result kept in the blob store by its
 * SHA-256), whatever order they are given in; the attempt that produced each does not count.
 */
export function resultsDigest(results: ReadonlyArray<Pick<TaskResult, 'index' | 'value' | 'ref'>>): string {
  const byIndex = [...results]
    .sort((a, b) => a.index - b.index)
    .map((r) => (r.ref ? { index: r.index, sha256: r.ref.sha256 } : { index: r.index, value: r.value ?? null }));
  return sha256(canonicalJson(byIndex));
}

/** The steps and kinds of a `BATCH_INPUTS` value, without job ids or phases (`text` itself when it is not such a list). */
function inputNames(text: string): unknown {
  try {
    const list = JSON.parse(text) as unknown;
    if (Array.isArray(list)) return { inputs: list.map((x: { step?: unknown; map?: unknown }) => ({ step: x?.step, map: x?.map })) };
  } catch {
    // not JSON: taken as it is
  }
  return text;
}

/** The parsed JSON of `text` (as `{json: …}`, so that it never equals a plain string), or `text` itself when it is not JSON. */
function jsonOrText(text: string): unknown {
  try {
    return { json: JSON.parse(text) as unknown };
  } catch {
    return text;
  }
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
