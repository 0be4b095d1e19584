// Errors of the durable stores. Every error a user may see carries a stable `code`, so that
// operators and callers can match on it without parsing messages.

export type StorageErrorCode =
  /** A write-ahead log record is damaged somewhere other than a torn tail, or the log has a gap. */
  | 'CHORUS_WAL_CORRUPT'
  /** The hard state file (term, vote, commit) fails its checksum or cannot be decoded. */
  | 'CHORUS_STABLE_CORRUPT'
  /** The snapshot file fails its checksum or cannot be decoded. */
  | 'CHORUS_SNAPSHOT_CORRUPT'
  /** An append would leave a gap in the log, or rewrite entries that were compacted away. */
  | 'CHORUS_LOG_NOT_CONTIGUOUS'
  /** An entry, hard state or snapshot does not have the shape the stores can persist. */
  | 'CHORUS_STORAGE_INVALID'
  /** The store was closed. */
  | 'CHORUS_STORE_CLOSED'
  /** An earlier I/O error left the store in an unknown state; it refuses further work and must
   * be reopened (which runs recovery). Retrying an fsync after a failure is unsafe: the kernel
   * may have dropped the dirty pages and report success the second time. */
  | 'CHORUS_STORAGE_FAILED';

export class StorageError extends Error {
  readonly code: StorageErrorCode;

  constructor(code: StorageErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A damaged write-ahead log. `file` and `offset` locate the first bad byte range. */
export class WalCorruptError extends StorageError {
  readonly file: string;
  readonly offset: number;

  constructor(file: string, offset: number, reason: string, options?: { cause?: unknown }) {
    super('CHORUS_WAL_CORRUPT', `write-ahead log corrupt: ${file} at byte offset ${offset}: ${reason}`, options);
    this.file = file;
    this.offset = offset;
  }
}

export class StableCorruptError extends StorageError {
  readonly file: string;

  constructor(file: string, reason: string, options?: { cause?: unknown }) {
    super('CHORUS_STABLE_CORRUPT', `hard state corrupt: ${file}: ${reason}`, options);
    this.file = file;
  }
}

export class SnapshotCorruptError extends StorageError {
  readonly file: string;

  constructor(file: string, reason: string, options?: { cause?: unknown }) {
    super('CHORUS_SNAPSHOT_CORRUPT', `snapshot corrupt: ${file}: ${reason}`, options);
    this.file = file;
  }
}

export class LogNotContiguousError extends StorageError {
  constructor(message: string) {
    super('CHORUS_LOG_NOT_CONTIGUOUS', message);
  }
}

export class InvalidRecordError extends StorageError {
  constructor(message: string) {
    super('CHORUS_STORAGE_INVALID', message);
  }
}

export class StoreClosedError extends StorageError {
  constructor(store: string) {
    super('CHORUS_STORE_CLOSED', `${store} is closed`);
  }
}

export class StoreFailedError extends StorageError {
  constructor(store: string, cause: unknown) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    super('CHORUS_STORAGE_FAILED', `${store} failed after an I/O error and must be reopened: ${detail}`, { cause });
  }
}
