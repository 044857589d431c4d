/**
 * Passing data between steps: which jobs hold the results a step reads (`inputs`), and the scoped
 * credential a step's task reads them with. Pure: the controller mints and resolves when it creates
 * a step's job; admission checks what a presented credential may read.
 *
 * Why a credential of its own: a step's task runs on a node (a process of the executor's machine,
 * or a pod of the Kubernetes backend) and reads its inputs from the API, which serves results
 * whether they are live in etcd, archived in history or kept in the blob store. It must not carry
 * its submitter's token (which could submit and cancel, and would sit in clear in etcd and the pod
 * spec), nor an operator's. An inputs token names one workflow of one tenant, is signed with a key
 * derived from the cluster's service credential, and only reads that workflow and its steps' jobs
 * and results, until the workflow ended plus `INPUTS_TOKEN_MARGIN_MS`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { ApiError, ErrorCode, type StepPhase } from '@batchapi/api';

/** One input of a step as its job's `BATCH_INPUTS` lists it. */
export interface StepInput {
  /** The step whose results these are. */
  step: string;
  /** The job holding them (a reused step's: an earlier run's job); null when the step has none (a fan-out over nothing, a skipped step). */
  jobId: string | null;
  /** The step is a fan-out: its value is the list of its tasks' results in item order. */
  map: boolean;
  /** How the step ended (a `when: always` step may read a step that failed). */
  phase: StepPhase;
}

/** The steps of a workflow as `resolveInputs` reads them. */
export interface InputSource {
  name: string;
  inputs?: readonly string[];
  map?: unknown;
  jobId?: string;
}

/**
 * The inputs of step `i`, in the order its `inputs` names them: each step's job (set once it was
 * submitted, or reused) and phase as `phases` holds it.
 */
export function resolveInputs(steps: readonly InputSource[], i: number, phases: Readonly<Record<string, StepPhase>>): StepInput[] {
  return (steps[i].inputs ?? []).map((name) => {
    const s = steps.find((x) => x.name === name);
    if (!s) throw new Error(`step ${steps[i].name} names input ${name}, which the workflow does not have`); // admission refused this
    return { step: name, jobId: s.jobId ?? null, map: s.map !== undefined, phase: phases[name] };
  });
}

/**
 * Checks each step's `inputs` (names of steps of the same workflow, not itself, each once) and
 * returns each step's dependencies with its inputs added (an input is always a dependency: its
 * results must exist first). Throws `unknown_input_step` (422) or `invalid_argument` naming
 * `steps[i].inputs[j]`.
 */
export function dependenciesWithInputs(steps: ReadonlyArray<{ name: string; dependsOn?: readonly string[]; inputs?: readonly string[] }>): string[][] {
  const names = new Set(steps.map((s) => s.name));
  return steps.map((s, i) => {
    const deps = [...(s.dependsOn ?? [])];
    (s.inputs ?? []).forEach((name, j) => {
      const field = `steps[${i}].inputs[${j}]`;
      if (name === s.name) throw new ApiError(ErrorCode.UnknownInputStep, `${field}: a step cannot read its own results; name another step`, { field });
      if (!names.has(name)) throw new ApiError(ErrorCode.UnknownInputStep, `${field}: no step is named "${name}"; name a step of this workflow`, { field });
      if (s.inputs!.indexOf(name) !== j) throw new ApiError(ErrorCode.InvalidArgument, `${field}: "${name}" is named twice; name each input once`, { field });
      if (!deps.includes(name)) deps.push(name);
    });
    return deps;
  });
}

/** What every inputs token starts with (admission tells it from a user's token by it). */
export const INPUTS_TOKEN_PREFIX = 'bsi1.';
/** How long after its workflow ended an inputs token still reads, in milliseconds (a last attempt finishing). */
export const INPUTS_TOKEN_MARGIN_MS = 3_600_000;
/** Longest an inputs token lives when its workflow has no deadline, in milliseconds from its minting (30 days). */
export const INPUTS_TOKEN_MAX_TTL_MS = 30 * 86_400_000;
/** What the key inputs tokens are signed with is derived for, from the service credential. */
export const INPUTS_TOKEN_KEY_PURPOSE = 'batchapi step inputs token v1';

/** What an inputs token says. */
export interface InputsTokenClaims {
  tenant: string;
  workflowId: string;
  /** Epoch ms after which it reads nothing. */
  expiresAt: number;
}

/** The expiry of a token minted at `now` for a workflow: its deadline, else `INPUTS_TOKEN_MAX_TTL_MS` from now, plus the margin. */
export function inputsTokenExpiry(wf: { deadlineAt?: number }, now: number): number {
  return (wf.deadlineAt ?? now + INPUTS_TOKEN_MAX_TTL_MS) + INPUTS_TOKEN_MARGIN_MS;
}

/** A signed inputs token: `bsi1.<claims, base64url JSON>.<HMAC-SHA256 of them, base64url>` (printable, under 512 characters). */
export function mintInputsToken(key: Buffer, claims: InputsTokenClaims): string {
  const body = Buffer.from(JSON.stringify({ t: claims.tenant, w: claims.workflowId, x: claims.expiresAt })).toString('base64url');
  return `${INPUTS_TOKEN_PREFIX}${body}.${sign(key, body)}`;
}

/** The claims of a token signed with `key` and unexpired at `now`; `invalid` (forged, malformed) or `expired` otherwise. */
export function readInputsToken(key: Buffer, token: string, now: number): InputsTokenClaims | 'invalid' | 'expired' {
  if (!token.startsWith(INPUTS_TOKEN_PREFIX)) return 'invalid';
  const [body, mac, ...rest] = token.slice(INPUTS_TOKEN_PREFIX.length).split('.');
  if (!body || !mac || rest.length) return 'invalid';
  const want = Buffer.from(sign(key, body));
  const got = Buffer.from(mac);
  if (want.length !== got.length || !timingSafeEqual(want, got)) return 'invalid';
  let c: { t?: unknown; w?: unknown; x?: unknown };
  try {
    c = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as typeof c;
  } catch {
    return 'invalid';
  }
  if (typeof c.t !== 'string' || typeof c.w !== 'string' || typeof c.x !== 'number') return 'invalid';
  if (now >= c.x) return 'expired';
  return { tenant: c.t, workflowId: c.w, expiresAt: c.x };
}

/**
 * What a valid inputs token may read of `wf` (its workflow, live or archived; undefined when
 * neither has it): `ok` for the workflow itself (`jobId` undefined) or a job one of its steps ran or
 * reuses; `expired` once the workflow ended over `INPUTS_TOKEN_MARGIN_MS` ago; `not_found` for
 * anything else (another workflow's, another tenant's, a job none of its steps names).
 */
export function inputsTokenAllows(
  claims: InputsTokenClaims,
  wf: { id: string; tenant: string; finishedAt?: number; steps: ReadonlyArray<{ jobId?: string }> } | undefined,
  jobId: string | undefined,
  now: number,
): 'ok' | 'expired' | 'not_found' {
  if (!wf || wf.id !== claims.workflowId || wf.tenant !== claims.tenant) return 'not_found';
  if (wf.finishedAt !== undefined && now >= wf.finishedAt + INPUTS_TOKEN_MARGIN_MS) return 'expired';
  if (jobId === undefined) return 'ok';
  return wf.steps.some((s) => s.jobId === jobId) ? 'ok' : 'not_found';
}

function sign(key: Buffer, body: string): string {
  return createHmac('sha256', key).update(body).digest('base64url');
}
