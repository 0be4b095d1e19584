// Errors of the member runtime and its client API. Every code is stable: clients match on it,
// and src/api/errors.ts maps each one to an HTTP status (the only place that does).
import type { MmErrorCode } from '../core/mm/errors.ts';
import type { KvErrorCode } from '../kv/errors.ts';

export type NodeErrorCode =
  /** The request's deadline passed. For a write: the outcome is unknown (it may still commit). */
  | 'CHORUS_TIMEOUT'
  /** Too much pending work (proposals, reads, forwards); nothing was done. Retry later. */
  | 'CHORUS_BUSY'
  /** No leader is known or reachable; nothing was done. Retry later. */
  | 'CHORUS_NO_LEADER'
  /** Internal: this member is not the leader (the API forwards the request). */
  | 'CHORUS_NOT_LEADER'
  /** Another entry committed where the write was placed: it was not and will not be applied. */
  | 'CHORUS_LEADER_CHANGED'
  /** The member is shutting down; nothing was done (reads) or the outcome is unknown (writes
   * get CHORUS_TIMEOUT instead). */
  | 'CHORUS_STOPPING'
  /** GET of an absent key. */
  | 'CHORUS_KEY_NOT_FOUND'
  /** No such route. */
  | 'CHORUS_NOT_FOUND'
  /** The body is not valid JSON. */
  | 'CHORUS_BAD_JSON'
  /** The request body (or the command it encodes) exceeds a limit. */
  | 'CHORUS_REQUEST_TOO_LARGE'
  /** A configuration value is missing or invalid. */
  | 'CHORUS_CONFIG_INVALID'
  /** The data directory belongs to another member or cluster. */
  | 'CHORUS_DATA_DIR_MISMATCH'
  /** The durable state is inconsistent in a way recovery cannot repair. */
  | 'CHORUS_RECOVERY_FAILED'
  /** Persisting or applying failed; the member stopped (restart it: recovery runs at boot). */
  | 'CHORUS_FATAL'
  /** Test-only routes are disabled. */
  | 'CHORUS_FORBIDDEN'
  /** A write at `on` or `remote_apply` committed (it is durable on a majority and will not be
   * undone) but the synchronous standby set did not confirm it within syncStandbyTimeoutMs:
   * the guarantee asked for is not established. Not retried by clients. */
  | 'CHORUS_SYNC_STANDBY_TIMEOUT'
  /** A bounded-staleness read (max_staleness_ms) on a member that cannot show its state is that
   * fresh; nothing was read. Safe to retry elsewhere (another member, or the leader). */
  | 'CHORUS_TOO_STALE'
  /** No member with this id is in the cluster configuration. */
  | 'CHORUS_MEMBER_NOT_FOUND'
  /** A member with this id is already in the cluster configuration. */
  | 'CHORUS_MEMBER_EXISTS'
  /** The membership change or switchover is not valid now (promote a voter, remove the last
   * voter, switch over to a learner, remove a member the standby set needs); nothing was done. */
  | 'CHORUS_MEMBER_CHANGE_INVALID'
  /** No keyspace of this name is in the catalog (HTTP 404). */
  | 'CHORUS_KEYSPACE_NOT_FOUND'
  /** The multi-master keyspace is not replicated on this member (it joined after the keyspace
   * was created): nothing was done; use a member that replicates it (HTTP 409). */
  | 'CHORUS_NOT_KEYSPACE_MEMBER'
  /** A bug: anything not covered above. */
  | 'CHORUS_INTERNAL';

export type ChorusErrorCode = NodeErrorCode | KvErrorCode | MmErrorCode;

export class ChorusError extends Error {
  readonly code: ChorusErrorCode;

  constructor(code: ChorusErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ChorusError';
    this.code = code;
  }
}

/** Thrown by ChorusNode.propose on a member that is not the leader; the API forwards the
 * request to `leaderId` (or answers CHORUS_NO_LEADER when it is null). Nothing was proposed. */
export class NotLeaderError extends ChorusError {
  readonly leaderId: string | null;

  constructor(leaderId: string | null) {
    super('CHORUS_NOT_LEADER', leaderId === null ? 'no leader is known' : `the leader is ${leaderId}`);
    this.name = 'NotLeaderError';
    this.leaderId = leaderId;
  }
}
