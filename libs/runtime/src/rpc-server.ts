/**
 * The service-to-service call server (`@nestjs/microservices` over TCP) and what every call
 * to it goes through: a bound on frames and connections (Nest's default frame limit is
 * 512 MB), the service credential in each packet's metadata (one guard for every
 * `@MessagePattern`, so a handler added later is covered too), and error replies that carry
 * the API's stable codes instead of Nest's bare "Internal server error".
 */
import { ApiError, ErrorCode, type ErrorBody } from '@batchapi/api';
import { type ArgumentsHost, type CanActivate, Catch, type ExecutionContext, type RpcExceptionFilter } from '@nestjs/common';
import { type ReadPacket, RpcException, TcpContext, type TcpOptions } from '@nestjs/microservices';
import { type Observable, throwError } from 'rxjs';
import { toApiError } from './errors.filter';
import type { CredentialRefusal, ServiceCredential } from './service-credential';

/** Key of the service credential (`Bearer <token>`) in a packet's metadata. */
export const RPC_AUTHORIZATION = 'authorization';

/**
 * Largest frame a call server or client buffers, in characters of JSON. A `scheduler.why`
 * request is the job's placement fields, a few KiB; a job record is at most 1 MiB in etcd.
 */
export const RPC_MAX_FRAME_CHARS = 1024 * 1024;
/** A peer that stops sending in the middle of a frame is cut off after this long, in milliseconds. */
export const RPC_INCOMPLETE_FRAME_MS = 5000;
/** Most replies held for one connection that does not read them, in bytes. */
export const RPC_MAX_SEND_BUFFER_BYTES = 8 * 1024 * 1024;
/** Most connections a call server holds at once. */
export const RPC_MAX_CONNECTIONS = 256;

/** The TCP transport's framing bounds, for servers and clients alike. */
export const RPC_FRAMING: Pick<NonNullable<TcpOptions['options']>, 'maxBufferSize' | 'incompleteMessageTimeout' | 'maxSendBufferSize'> = {
  maxBufferSize: RPC_MAX_FRAME_CHARS,
  incompleteMessageTimeout: RPC_INCOMPLETE_FRAME_MS,
  maxSendBufferSize: RPC_MAX_SEND_BUFFER_BYTES,
};

/** What a failed call's caller receives: the API error body, with the transport's `status`. */
export type RpcErrorReply = ErrorBody & { status: 'error' };

/** Reads a call's error reply back into an `ApiError` (`internal` when it is not one of ours). */
export function rpcError(err: unknown): ApiError {
  const e = err as Partial<RpcErrorReply> | undefined;
  if (e && typeof e.code === 'string' && typeof e.message === 'string' && (Object.values(ErrorCode) as string[]).includes(e.code)) {
    return new ApiError(e.code, e.message, {
      ...(e.field ? { field: e.field } : {}),
      ...(e.id ? { id: e.id } : {}),
      ...(e.retryAfterSeconds !== undefined ? { retryAfterSeconds: e.retryAfterSeconds } : {}),
    });
  }
  return new ApiError(ErrorCode.Internal, `the call failed: ${err instanceof Error ? err.message : JSON.stringify(err)}`);
}

/** Attaches the service credential to every packet a client sends. */
export function authorizeCalls(client: { setOnDispatchHook(hook: (packet: ReadPacket) => void): void }, credential: ServiceCredential): void {
  client.setOnDispatchHook((packet) => {
    packet.metadata = { ...packet.metadata, [RPC_AUTHORIZATION]: credential.authorization() };
  });
}

/** Refuses every call whose packet does not carry the service credential. */
export class ServiceCredentialGuard implements CanActivate {
  constructor(
    private readonly credential: ServiceCredential,
    private readonly refused: (reason: CredentialRefusal) => void,
  ) {}

  canActivate(ctx: ExecutionContext): boolean {
    const rpc = ctx.switchToRpc().getContext<unknown>();
    const refusal = this.credential.refusal(rpc instanceof TcpContext ? rpc.getMetadata()?.[RPC_AUTHORIZATION] : undefined);
    if (!refusal) return true;
    this.refused(refusal);
    throw new ApiError(ErrorCode.Unauthenticated, "internal calls need the cluster's service credential (BATCH_SERVICE_TOKEN_FILE) in the packet metadata", {
      field: `metadata.${RPC_AUTHORIZATION}`,
    });
  }
}

/** Every error of a call becomes a reply with its stable code, sent at once (the caller does not wait out its deadline). */
@Catch()
export class RpcApiErrorFilter implements RpcExceptionFilter {
  constructor(private readonly log: { error(obj: object, msg: string): void }) {}

  catch(err: unknown, _host: ArgumentsHost): Observable<never> {
    // A handler's own RpcException says the replica cannot answer now (e.g. its cache is not synced).
    const said = err instanceof RpcException ? err.getError() : undefined;
    const e = err instanceof RpcException ? new ApiError(ErrorCode.Unavailable, typeof said === 'string' ? said : JSON.stringify(said)) : toApiError(err);
    if (e.code === ErrorCode.Internal) this.log.error({ err }, 'call failed');
    const reply: RpcErrorReply = { status: 'error', ...e.toBody().error };
    return throwError(() => reply);
  }
}
