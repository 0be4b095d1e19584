// The one place where error codes become HTTP statuses. Every error response is
// {"code":"CHORUS_...","message":"..."}.
import { MmError } from '../core/mm/errors.ts';
import { PolicyError } from '../core/policy/replication-policy.ts';
import { KvError } from '../kv/errors.ts';
import { ChorusError } from '../shared/errors.ts';
import type { ChorusErrorCode } from '../shared/errors.ts';

const STATUS_BY_CODE: Readonly<Record<ChorusErrorCode, number>> = {
  // The write certainly did not happen and will not: retrying is safe.
  CHORUS_BUSY: 503,
  CHORUS_NO_LEADER: 503,
  CHORUS_NOT_LEADER: 503,
  CHORUS_LEADER_CHANGED: 503,
  CHORUS_STOPPING: 503,
  CHORUS_FATAL: 503,
  // A read this member cannot serve fresh enough: nothing was read, another member may serve it.
  CHORUS_TOO_STALE: 503,
  // Outcome unknown.
  CHORUS_TIMEOUT: 504,
  // Committed, but the synchronous standbys did not confirm it in time: the guarantee asked for
  // is unknown (the standbys may still confirm it).
  CHORUS_SYNC_STANDBY_TIMEOUT: 504,
  // Bad input: the member keeps serving.
  CHORUS_BAD_KEY: 400,
  CHORUS_BAD_REQUEST: 400,
  CHORUS_BAD_JSON: 400,
  CHORUS_BAD_COMMAND: 400,
  CHORUS_BAD_CONFIG: 400,
  CHORUS_KEY_TOO_LARGE: 413,
  CHORUS_VALUE_TOO_LARGE: 413,
  CHORUS_REQUEST_TOO_LARGE: 413,
  CHORUS_KEY_NOT_FOUND: 404,
  CHORUS_NOT_FOUND: 404,
  CHORUS_MEMBER_NOT_FOUND: 404,
  // The cluster's membership forbids the change; nothing was done.
  CHORUS_MEMBER_EXISTS: 409,
  CHORUS_MEMBER_CHANGE_INVALID: 409,
  // Keyspaces.
  CHORUS_KEYSPACE_EXISTS: 409,
  CHORUS_KEYSPACE_NOT_FOUND: 404,
  CHORUS_NOT_KEYSPACE_MEMBER: 409,
  CHORUS_BAD_KEYSPACE: 400,
  CHORUS_WRONG_MODE: 400,
  CHORUS_BAD_TOKEN: 400,
  CHORUS_BAD_CRDT_OP: 400,
  CHORUS_CRDT_TYPE_MISMATCH: 409,
  CHORUS_TOO_MANY_SIBLINGS: 409,
  CHORUS_KEYSPACE_FULL: 507,
  // Replication between members only (never a client's request), listed for completeness.
  CHORUS_CLOCK_DRIFT: 503,
  CHORUS_BAD_REPLICATION_MESSAGE: 400,
  CHORUS_BAD_DURABLE_STATE: 500,
  CHORUS_FORBIDDEN: 403,
  // Server-side faults.
  CHORUS_CONFIG_INVALID: 500,
  CHORUS_DATA_DIR_MISMATCH: 500,
  CHORUS_RECOVERY_FAILED: 500,
  CHORUS_INTERNAL: 500,
  CHORUS_BAD_SNAPSHOT: 500,
  CHORUS_KV_SCHEMA: 500,
  CHORUS_APPLY_OUT_OF_ORDER: 500,
};

export function httpStatusOf(code: ChorusErrorCode): number {
  return STATUS_BY_CODE[code];
}

export interface ErrorResponse {
  readonly status: number;
  readonly body: { readonly code: string; readonly message: string };
}

/** Fastify's own errors, by their code, for requests that never reached a handler. */
function fromFramework(code: string, message: string, method: string, statusCode: number | undefined): ErrorResponse | null {
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE': {
      // PUT carries a raw value; every other body is a request document.
      const chorusCode: ChorusErrorCode = method === 'PUT' ? 'CHORUS_VALUE_TOO_LARGE' : 'CHORUS_REQUEST_TOO_LARGE';
      return { status: 413, body: { code: chorusCode, message: method === 'PUT' ? 'the value is too large' : 'the request body is too large' } };
    }
    case 'FST_ERR_BAD_URL':
      return { status: 400, body: { code: 'CHORUS_BAD_REQUEST', message } };
    default:
      if (statusCode !== undefined && statusCode >= 400 && statusCode < 500) {
        return { status: 400, body: { code: 'CHORUS_BAD_REQUEST', message } };
      }
      return null;
  }
}

/** Maps anything thrown while serving a request to a status and a JSON body. `internal` is
 * true when the error is a bug or server fault worth logging. */
export function errorResponse(error: unknown, method: string): ErrorResponse & { readonly internal: boolean } {
  if (error instanceof ChorusError || error instanceof KvError || error instanceof PolicyError || error instanceof MmError) {
    const status = httpStatusOf(error.code);
    return { status, body: { code: error.code, message: error.message }, internal: status === 500 };
  }
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const statusCode = (error as { statusCode?: unknown }).statusCode;
    if (typeof code === 'string' && code.startsWith('FST_')) {
      const mapped = fromFramework(code, error.message, method, typeof statusCode === 'number' ? statusCode : undefined);
      if (mapped !== null) return { ...mapped, internal: false };
    }
  }
  return { status: 500, body: { code: 'CHORUS_INTERNAL', message: 'internal error' }, internal: true };
}
