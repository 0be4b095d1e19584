// Errors of the multi-master core. Every code is stable: the HTTP layer maps codes to statuses
// and clients may match on them, so a code is never renamed or reused for another meaning.

export type MmErrorCode =
  /** A remote stamp is further ahead of the local clock than maxClockDriftMs (the message is refused). */
  | 'CHORUS_CLOCK_DRIFT'
  /** A causal context token is malformed or names a member outside the keyspace (HTTP 400). */
  | 'CHORUS_BAD_TOKEN'
  /** A CRDT operation is malformed: unknown type or op, bad amount, bad field (HTTP 400). */
  | 'CHORUS_BAD_CRDT_OP'
  /** A CRDT operation's type differs from the type the key (or map field) already holds (HTTP 409). */
  | 'CHORUS_CRDT_TYPE_MISMATCH'
  /** The operation does not exist in this keyspace's conflict mode, e.g. a CRDT op on lww (HTTP 400). */
  | 'CHORUS_WRONG_MODE'
  /** A new key was refused: the replica already holds keysMax keys, tombstones included (HTTP 507). */
  | 'CHORUS_KEYSPACE_FULL'
  /** A blind write would give the key more than siblingsMax siblings: write with a token (HTTP 409). */
  | 'CHORUS_TOO_MANY_SIBLINGS'
  /** The key is empty or longer than keyBytesMax (HTTP 400 / 413). */
  | 'CHORUS_BAD_KEY'
  /** A value, or the record a write would produce, is larger than its limit (HTTP 413). */
  | 'CHORUS_VALUE_TOO_LARGE'
  /** A keyspace definition is invalid (HTTP 400). */
  | 'CHORUS_BAD_KEYSPACE'
  /** A batch, record or ack from a peer is malformed, or for another keyspace or member. */
  | 'CHORUS_BAD_REPLICATION_MESSAGE'
  /** Durable state belongs to another member, keyspace or mode, or is internally inconsistent. */
  | 'CHORUS_BAD_DURABLE_STATE';

export class MmError extends Error {
  readonly code: MmErrorCode;

  constructor(code: MmErrorCode, message: string) {
    super(message);
    this.name = 'MmError';
    this.code = code;
  }
}

/** A broken invariant of the multi-master core: a bug, never an operating condition. */
export class MmInvariantError extends Error {
  readonly code = 'CHORUS_INVARIANT';
  constructor(message: string) {
    super(message);
    this.name = 'MmInvariantError';
  }
}

export function invariant(condition: boolean, message: string): asserts condition {
  if (!condition) throw new MmInvariantError(message);
}
