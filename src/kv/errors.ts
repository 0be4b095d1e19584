// Errors of the key-value layer. Every code is stable: the HTTP layer maps codes to statuses
// and clients may match on them, so a code is never renamed or reused for another meaning.

export type KvErrorCode =
  /** The key's UTF-8 form is longer than keyBytesMax (HTTP 413). */
  | 'CHORUS_KEY_TOO_LARGE'
  /** A value (of a put, or of a value comparison) is longer than valueBytesMax (HTTP 413). */
  | 'CHORUS_VALUE_TOO_LARGE'
  /** The key is empty, not a string, or not valid UTF-8. */
  | 'CHORUS_BAD_KEY'
  /** The request is malformed: unknown kind, wrong field types, too many txn ops, ... */
  | 'CHORUS_BAD_REQUEST'
  /** A replication setting is invalid: an unknown synchronous_commit level, unparsable
   * synchronous_standby_names, a bad member id or peer address (HTTP 400). */
  | 'CHORUS_BAD_CONFIG'
  /** A log payload could not be decoded into a command (corrupt or foreign bytes). */
  | 'CHORUS_BAD_COMMAND'
  /** A snapshot image is not a valid state-machine database. */
  | 'CHORUS_BAD_SNAPSHOT'
  /** A database file exists but was not written by this state machine (or by a newer one). */
  | 'CHORUS_KV_SCHEMA'
  /** A keyspace of this name exists with another definition; nothing was changed (HTTP 409). */
  | 'CHORUS_KEYSPACE_EXISTS'
  /** applyBatch was given an entry past the next expected index: the driver skipped entries. */
  | 'CHORUS_APPLY_OUT_OF_ORDER';

export class KvError extends Error {
  readonly code: KvErrorCode;

  constructor(code: KvErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KvError';
    this.code = code;
  }
}
