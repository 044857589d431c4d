/**
 * Who may read a job or a workflow: a user's token (`TokenAuthenticator`), or a step's inputs
 * token (`@batchapi/workflows`, "inputs"), which reads only its own workflow and the jobs its steps
 * ran or reuse — live or archived — and nothing once the workflow ended over an hour ago. Every
 * other route refuses an inputs token (`TokenAuthenticator.authenticate`).
 */
import { ApiError, ErrorCode, type Principal } from '@batchapi/api';
import type { HistoryStore } from '@batchapi/history';
import { HISTORY, SERVICE, type ServiceContext } from '@batchapi/runtime';
import { getWorkflow } from '@batchapi/store';
import { INPUTS_TOKEN_KEY_PURPOSE, INPUTS_TOKEN_PREFIX, inputsTokenAllows, readInputsToken } from '@batchapi/workflows';
import { Inject, Injectable, Optional } from '@nestjs/common';
import { AUTH, type TokenAuthenticator } from './auth';
import { fromHistory } from './history-reads';

@Injectable()
export class Readers {
  private readonly key: Buffer;

  constructor(
    @Inject(SERVICE) private readonly ctx: ServiceContext,
    @Inject(AUTH) private readonly auth: TokenAuthenticator,
    @Optional() @Inject(HISTORY) private readonly history?: HistoryStore,
  ) {
    this.key = ctx.credential.derive(INPUTS_TOKEN_KEY_PURPOSE);
  }

  /**
   * The principal reading `target` (a workflow by id, or a job by id) with `header`: a user's, or —
   * for an inputs token — the token's tenant, once its workflow is the one read or names the job.
   * @throws ApiError `unauthenticated` (a forged or expired inputs token), `not_found` (outside its workflow), as `authenticate` otherwise
   */
  async principal(header: string | undefined, target: { workflowId: string } | { jobId: string }, now: number): Promise<Principal> {
    const token = inputsTokenOf(header);
    if (token === undefined) return this.auth.authenticate(header);
    const claims = readInputsToken(this.key, token, now);
    if (claims === 'invalid') throw new ApiError(ErrorCode.Unauthenticated, 'the bearer token is not valid', { field: 'Authorization' });
    if (claims === 'expired') throw new ApiError(ErrorCode.Unauthenticated, "the step's inputs token has expired", { field: 'Authorization' });
    const id = claims.workflowId;
    const wf = (await getWorkflow(this.ctx.store, id))?.value ?? (await fromHistory(this.history, (h) => h.getWorkflow(id)));
    const jobId = 'jobId' in target ? target.jobId : undefined;
    const allowed = 'workflowId' in target && target.workflowId !== id ? 'not_found' : inputsTokenAllows(claims, wf, jobId, now);
    if (allowed === 'expired')
      throw new ApiError(ErrorCode.Unauthenticated, "the step's inputs token has expired (its workflow ended)", { field: 'Authorization' });
    if (allowed === 'not_found') {
      const what = jobId !== undefined ? `job ${jobId}` : `workflow ${'workflowId' in target ? target.workflowId : id}`;
      throw new ApiError(ErrorCode.NotFound, `${what} not found`, { id: jobId ?? ('workflowId' in target ? target.workflowId : id) });
    }
    return { tenant: claims.tenant, role: 'tenant' };
  }

  /**
   * The tenant an inputs token in `header` speaks for, when it is one, signed and unexpired
   * (what it may read is not checked here): the read limit charges a step's reads to its tenant.
   */
  inputsTenant(header: string | undefined, now: number): Principal | undefined {
    const token = inputsTokenOf(header);
    const claims = token === undefined ? undefined : readInputsToken(this.key, token, now);
    return claims === undefined || typeof claims === 'string' ? undefined : { tenant: claims.tenant, role: 'tenant' };
  }
}

/** The bearer token of `header` when it is an inputs token. */
function inputsTokenOf(header: string | undefined): string | undefined {
  const m = /^Bearer ([\x21-\x7e]{1,512})$/.exec(header ?? '');
  return m && m[1].startsWith(INPUTS_TOKEN_PREFIX) ? m[1] : undefined;
}
