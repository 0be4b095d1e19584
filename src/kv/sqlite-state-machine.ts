// The key-value state machine of Chorus, stored in SQLite.
//
// Durability model: the Raft log is the source of truth. The state machine persists, in the
// same SQLite transaction as the data, the index of the last entry it applied; after a crash
// the driver re-applies the log from there, and entries at or below that index are skipped.
// So a lost commit (synchronous=NORMAL may lose the last ones on power failure, never corrupt)
// only costs re-applying a few entries.
//
// The revision of a write is the log index of its entry, as etcd's revisions: every write of
// one entry (all ops of a txn) shares it.
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { SynchronousCommit } from '../core/policy/replication-policy.ts';
import type { ConflictMode } from '../core/mm/types.ts';
import type { EntryType } from '../core/raft/types.ts';
import {
  decodeCommand,
  evaluateCompare,
  resolveLimits,
  validateCommand,
  validateKey,
} from './commands.ts';
import type { Command, CompareSubject, KvLimits, TxnCommand } from './commands.ts';
import { KvError } from './errors.ts';
import type { KvErrorCode } from './errors.ts';

// ---------------------------------------------------------------------------------------------
// Public types

/** What applyBatch needs of a log entry; the Raft core's Entry fits. */
export interface ApplyEntry {
  readonly index: number;
  readonly type: EntryType;
  /** The encoded command of a 'normal' entry. */
  readonly data?: Uint8Array;
}

export interface KvRecord {
  readonly key: string;
  readonly value: Uint8Array;
  /** Revision (log index) of the put that created the key; reset by a delete. */
  readonly createRevision: number;
  /** Revision of the latest put. */
  readonly modRevision: number;
  /** Number of puts since creation: 1 after the creating put. */
  readonly version: number;
}

export type TxnOpResult =
  | { readonly op: 'put'; readonly key: string }
  | { readonly op: 'delete'; readonly key: string; readonly deleted: 0 | 1 }
  | ({ readonly op: 'get' } & KvRecord)
  | { readonly op: 'get'; readonly key: string; readonly absent: true };

/** The outcome of one entry. `revision` is always the entry's index. */
export type ApplyResult =
  | { readonly kind: 'put'; readonly revision: number }
  | { readonly kind: 'delete'; readonly revision: number; readonly deleted: 0 | 1 }
  | {
      readonly kind: 'txn';
      readonly revision: number;
      readonly succeeded: boolean;
      /** One result per op of the branch that ran, in order. */
      readonly results: readonly TxnOpResult[];
    }
  /** A 'noop' or 'config' entry: only the applied index moved. */
  | { readonly kind: 'none'; readonly revision: number }
  /** The replicated replication settings changed (they are stored with the data). */
  | { readonly kind: 'replication-config'; readonly revision: number; readonly settings: ReplicationSettings }
  /** A member's peer address was recorded (or forgotten: null). */
  | { readonly kind: 'member-address'; readonly revision: number; readonly id: string; readonly peerAddress: string | null }
  /** A keyspace was added to the catalog (created) or was already there with this definition. */
  | { readonly kind: 'keyspace'; readonly revision: number; readonly created: boolean; readonly keyspace: KeyspaceDef }
  /** Already applied before (replay after a crash or a restore): nothing was done now. */
  | { readonly kind: 'skipped'; readonly revision: number }
  /** The payload did not decode or validate. Deterministic: every replica gets the same one.
   * The applied index still moves past the entry. */
  | { readonly kind: 'error'; readonly revision: number; readonly code: KvErrorCode; readonly message: string };

/** A keyspace of the catalog, as replicated through the log (stored in `settings` under
 * `keyspace/<name>`, so snapshots carry the catalog). */
export interface KeyspaceDef {
  readonly name: string;
  readonly mode: 'consensus' | 'multi-master';
  readonly conflicts: '' | ConflictMode;
  readonly members: readonly string[];
  /** The log index that created it. */
  readonly revision: number;
}

const KEYSPACE_SETTING_PREFIX = 'keyspace/';

/** Keys of consensus keyspaces other than the default one are stored as U+0000 name U+0000 key:
 * they sort before every key of /v1/kv, which may not start with U+0000. */
export const RESERVED_KEY_MARK = '\u0000';
const RESERVED_KEYS_END = '\u0001';

export function keyspaceKeyPrefix(keyspace: string): string {
  return `${RESERVED_KEY_MARK}${keyspace}${RESERVED_KEY_MARK}`;
}

/** The replication settings as last replicated through the log. */
export interface ReplicationSettings {
  readonly synchronousCommit: SynchronousCommit;
  readonly synchronousStandbyNames: string;
  /** The revision (log index) of the command that set them. */
  readonly revision: number;
}

export interface RangeOptions {
  /** Only keys starting with this string; '' (the default) for every key. */
  readonly prefix?: string;
  /** At most this many records (a positive integer); unlimited when omitted. */
  readonly limit?: number;
  /** Skip keys starting with U+0000 (they hold the consensus keyspaces of the catalog); only
   * matters with an empty prefix. */
  readonly skipReserved?: boolean;
}

export interface RangeResult {
  /** In UTF-8 byte order of the keys (SQLite BINARY collation), which is code point order;
   * note it differs from JS string order for characters above U+FFFF. */
  readonly records: KvRecord[];
  /** True when the limit cut the result short. */
  readonly more: boolean;
}

export interface StateMachineSnapshot {
  /** The applied index the image covers. */
  readonly index: number;
  /** A complete SQLite database image. */
  readonly data: Uint8Array;
}

export interface SqliteStateMachineOptions {
  /** Must be identical on every replica (see KvLimits). */
  readonly limits?: Partial<KvLimits>;
}

// ---------------------------------------------------------------------------------------------
// Schema

const SCHEMA_VERSION = 2;

// Invariants: version >= 1 and create_revision <= mod_revision <= applied_index for every row
// (an absent key has no row: a delete removes it, so version and create_revision restart at
// the next put). Keys compare with the BINARY collation, i.e. by UTF-8 bytes.
// `applied` holds exactly one row; applied_index only grows, except through restore.
// checkSchema compares the SQL text SQLite recorded, so any edit here, even of whitespace, makes
// existing files look foreign: bump SCHEMA_VERSION and migrate them instead.
const SCHEMA_V1_TABLES_SQL = `
CREATE TABLE kv (
  key TEXT NOT NULL PRIMARY KEY,
  value BLOB NOT NULL,
  create_revision INTEGER NOT NULL,
  mod_revision INTEGER NOT NULL,
  version INTEGER NOT NULL
) STRICT;
CREATE TABLE applied (
  id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
  applied_index INTEGER NOT NULL
) STRICT;
INSERT INTO applied (id, applied_index) VALUES (1, 0);
`;

// Version 2: replicated cluster settings live with the data, so snapshots carry them.
// `settings` holds name -> value (synchronous_commit, synchronous_standby_names, and the
// revision that set them); `member_addresses` the peer address of every member added at runtime
// (NULL: forgotten after a removal, which overrides an --initial-cluster address).
const SCHEMA_V2_TABLES_SQL = `
CREATE TABLE settings (
  name TEXT NOT NULL PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;
CREATE TABLE member_addresses (
  id TEXT NOT NULL PRIMARY KEY,
  peer_address TEXT
) STRICT;
`;

const SCHEMA_SQL = `${SCHEMA_V1_TABLES_SQL}${SCHEMA_V2_TABLES_SQL}PRAGMA user_version = ${SCHEMA_VERSION};\n`;

const SCHEMA_OBJECTS_SQL = 'SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name';

const expectedSchemaCache = new Map<number, string>();

/** The schema objects of `version` as SQLite records them, taken from a scratch database so
 * that the comparison does not depend on how SQLite normalises the SQL text. */
function expectedSchema(version: number): string {
  let cached = expectedSchemaCache.get(version);
  if (cached === undefined) {
    const scratch = new Database(':memory:');
    try {
      scratch.exec(version === 1 ? SCHEMA_V1_TABLES_SQL : `${SCHEMA_V1_TABLES_SQL}${SCHEMA_V2_TABLES_SQL}`);
      cached = JSON.stringify(scratch.prepare(SCHEMA_OBJECTS_SQL).all());
      expectedSchemaCache.set(version, cached);
    } finally {
      scratch.close();
    }
  }
  return cached;
}

/** Throws `code` unless `db` holds exactly our schema (no extra tables, triggers or views: a
 * snapshot image comes from another process and must not smuggle in SQL). Version 1 (before
 * replicated settings) is accepted only when `allowV1`, for migration. */
function checkSchema(db: Database.Database, code: KvErrorCode, allowV1 = false): void {
  const version = db.pragma('user_version', { simple: true });
  if (version !== SCHEMA_VERSION && !(allowV1 && version === 1)) {
    throw new KvError(code, `database schema version is ${String(version)}, expected ${SCHEMA_VERSION}`);
  }
  if (JSON.stringify(db.prepare(SCHEMA_OBJECTS_SQL).all()) !== expectedSchema(version as number)) {
    throw new KvError(code, 'database does not hold the Chorus key-value schema');
  }
}

/** Upgrades a checked version-1 database (or image) to version 2 in one transaction. */
function migrateToCurrent(db: Database.Database): void {
  if (db.pragma('user_version', { simple: true }) !== 1) return;
  db.transaction(() => {
    db.exec(SCHEMA_V2_TABLES_SQL);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  })();
}

function readAppliedIndex(db: Database.Database, code: KvErrorCode): number {
  const applied = db.prepare('SELECT applied_index FROM applied WHERE id = 1').pluck().get();
  if (typeof applied !== 'number' || !Number.isSafeInteger(applied) || applied < 0) {
    throw new KvError(code, 'database has no valid applied index');
  }
  return applied;
}

/** Creates the schema in an empty database, or checks it in an existing one. */
function ensureSchema(db: Database.Database): void {
  const objects = db.prepare('SELECT count(*) FROM sqlite_schema').pluck().get();
  if (objects === 0 && db.pragma('user_version', { simple: true }) === 0) {
    db.transaction(() => db.exec(SCHEMA_SQL))();
    return;
  }
  checkSchema(db, 'CHORUS_KV_SCHEMA', true);
  migrateToCurrent(db);
}

function configure(db: Database.Database, file: string | null): void {
  // Our schema has no triggers or views, and a restored image is checked to have none; this
  // is defence in depth against SQL running from a foreign schema.
  db.pragma('trusted_schema = OFF');
  if (file !== null) {
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') throw new Error(`SQLite refused WAL mode for ${file} (got ${String(mode)})`);
    // NORMAL in WAL mode never corrupts; it may lose the last commits on power failure, which
    // replay from the Raft log restores (see the header comment).
    db.pragma('synchronous = NORMAL');
  }
}

// ---------------------------------------------------------------------------------------------
// Statements

interface StoredSubject extends CompareSubject {
  readonly value: Uint8Array;
}

function prepareStatements(db: Database.Database) {
  const record = 'key, value, create_revision AS createRevision, mod_revision AS modRevision, version';
  return {
    getRecord: db.prepare<[string], KvRecord>(`SELECT ${record} FROM kv WHERE key = ?`),
    // Without the value: comparisons on revisions or version need not read a large blob.
    getCounters: db.prepare<[string], CompareSubject>(
      'SELECT create_revision AS createRevision, mod_revision AS modRevision, version FROM kv WHERE key = ?',
    ),
    getSubject: db.prepare<[string], StoredSubject>(
      'SELECT value, create_revision AS createRevision, mod_revision AS modRevision, version FROM kv WHERE key = ?',
    ),
    // One statement, no read-before-write: a new key starts at version 1 with both revisions
    // at the index; an existing key keeps create_revision and counts one more version.
    upsert: db.prepare<[string, Uint8Array, number, number]>(
      `INSERT INTO kv (key, value, create_revision, mod_revision, version) VALUES (?, ?, ?, ?, 1)
       ON CONFLICT (key) DO UPDATE SET
         value = excluded.value, mod_revision = excluded.mod_revision, version = version + 1`,
    ),
    remove: db.prepare<[string]>('DELETE FROM kv WHERE key = ?'),
    setApplied: db.prepare<[number]>('UPDATE applied SET applied_index = ? WHERE id = 1'),
    count: db.prepare<[], number>('SELECT count(*) FROM kv').pluck(),
    // Prefix scans are key ranges so that they walk the primary-key index (LIKE would not,
    // and would treat '%' and '_' in keys as wildcards).
    rangeAll: db.prepare<[number], KvRecord>(`SELECT ${record} FROM kv ORDER BY key LIMIT ?`),
    rangeFrom: db.prepare<[string, number], KvRecord>(
      `SELECT ${record} FROM kv WHERE key >= ? ORDER BY key LIMIT ?`,
    ),
    rangeBetween: db.prepare<[string, string, number], KvRecord>(
      `SELECT ${record} FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT ?`,
    ),
    allRows: db
      .prepare<[], [string, Uint8Array, number, number, number]>(
        'SELECT key, value, create_revision, mod_revision, version FROM kv ORDER BY key',
      )
      .raw(),
    setSetting: db.prepare<[string, string]>(
      'INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value',
    ),
    allSettings: db.prepare<[], [string, string]>('SELECT name, value FROM settings').raw(),
    getSetting: db.prepare<[string], string>('SELECT value FROM settings WHERE name = ?').pluck(),
    setMemberAddress: db.prepare<[string, string | null]>(
      'INSERT INTO member_addresses (id, peer_address) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET peer_address = excluded.peer_address',
    ),
    allMemberAddresses: db.prepare<[], [string, string | null]>('SELECT id, peer_address FROM member_addresses ORDER BY id').raw(),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

// ---------------------------------------------------------------------------------------------
// Helpers

/**
 * The smallest string above every string that starts with `prefix`, or undefined when there
 * is none (the prefix is all U+10FFFF). Works on code points, whose order is the UTF-8 byte
 * order SQLite compares by: bump the last code point that can grow and drop what follows.
 * The surrogate range is skipped: it has no UTF-8 form, so no key holds it.
 */
export function prefixEnd(prefix: string): string | undefined {
  const codePoints = Array.from(prefix, (ch) => ch.codePointAt(0) ?? 0);
  while (codePoints.length > 0) {
    const last = codePoints.pop() ?? 0;
    if (last < 0x10ffff) {
      codePoints.push(last + 1 === 0xd800 ? 0xe000 : last + 1);
      return String.fromCodePoint(...codePoints);
    }
  }
  return undefined;
}

const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');
/** Offsets of the file format write/read versions in the database header: 1 = rollback
 * journal, 2 = WAL. An in-memory database cannot open a WAL image, so images travel as 1;
 * opening a file then switches it back to WAL. */
const HEADER_WRITE_VERSION = 18;
const HEADER_READ_VERSION = 19;

/** Checks that the bytes look like a database image; returns them as a Buffer view, and whether
 * its header must be switched to rollback mode (a WAL image cannot open in memory). */
function imageHeader(data: Uint8Array): { image: Buffer; walHeader: boolean } {
  if (!(data instanceof Uint8Array) || data.byteLength < 100) {
    throw new KvError('CHORUS_BAD_SNAPSHOT', 'snapshot is not a database image');
  }
  const image = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (!image.subarray(0, SQLITE_HEADER.length).equals(SQLITE_HEADER)) {
    throw new KvError('CHORUS_BAD_SNAPSHOT', 'snapshot is not a SQLite database image');
  }
  return { image, walHeader: image[HEADER_WRITE_VERSION] !== 1 || image[HEADER_READ_VERSION] !== 1 };
}

/** Checks an opened image thoroughly, so that restore never replaces a good state with a bad
 * one, and upgrades an image of the previous schema. Returns its applied index. */
function checkOpenedImage(db: Database.Database): number {
  db.pragma('trusted_schema = OFF');
  const check = db.pragma('quick_check', { simple: true });
  if (check !== 'ok') throw new KvError('CHORUS_BAD_SNAPSHOT', `snapshot image is corrupt: ${String(check)}`);
  checkSchema(db, 'CHORUS_BAD_SNAPSHOT', true);
  migrateToCurrent(db);
  return readAppliedIndex(db, 'CHORUS_BAD_SNAPSHOT');
}

/** Opens a snapshot image as an in-memory database (the in-memory instance's restore) and
 * checks it. The image is copied only when its header needed a change. */
function openImageInMemory(data: Uint8Array): { db: Database.Database; applied: number } {
  const header = imageHeader(data);
  let image = header.image;
  if (header.walHeader) {
    image = Buffer.from(image); // the caller's bytes stay untouched
    image[HEADER_WRITE_VERSION] = 1;
    image[HEADER_READ_VERSION] = 1;
  }
  let db: Database.Database;
  try {
    db = new Database(image); // copies the image into SQLite's own memory
  } catch (cause) {
    throw new KvError('CHORUS_BAD_SNAPSHOT', 'snapshot image does not open', { cause });
  }
  try {
    return { db, applied: checkOpenedImage(db) };
  } catch (error) {
    db.close();
    if (error instanceof KvError) throw error;
    throw new KvError('CHORUS_BAD_SNAPSHOT', 'snapshot image is not readable', { cause: error });
  }
}

/**
 * Checks an image written to `file` where it lies: SQLite reads the file it will keep, so the
 * image is neither copied into memory nor written twice (for a 500 MB state the in-memory check
 * cost a second and half a gigabyte). A WAL-mode header is switched to rollback mode in the
 * file. The file is fsynced after the check (which may upgrade its schema). Throws
 * CHORUS_BAD_SNAPSHOT, with `file` removed, for an image that does not open or check.
 */
function checkImageFile(file: string): number {
  let db: Database.Database | undefined;
  try {
    const fd = fs.openSync(file, 'r+');
    try {
      const header = Buffer.alloc(100);
      const got = fs.readSync(fd, header, 0, header.length, 0);
      const { walHeader } = imageHeader(header.subarray(0, got)); // throws CHORUS_BAD_SNAPSHOT
      if (walHeader) writeFully(fd, ROLLBACK_VERSIONS, HEADER_WRITE_VERSION);
    } finally {
      fs.closeSync(fd);
    }
    db = new Database(file, { fileMustExist: true });
    const applied = checkOpenedImage(db);
    db.close();
    const synced = fs.openSync(file, 'r+');
    try {
      fs.fsyncSync(synced);
    } finally {
      fs.closeSync(synced);
    }
    return applied;
  } catch (error) {
    db?.close();
    fs.rmSync(file, { force: true });
    fs.rmSync(`${file}-journal`, { force: true });
    if (error instanceof KvError) throw error;
    throw new KvError('CHORUS_BAD_SNAPSHOT', 'snapshot image does not open', { cause: error });
  }
}

function concatChunks(chunks: readonly Uint8Array[], totalBytes: number): Uint8Array {
  const data = new Uint8Array(totalBytes);
  let at = 0;
  for (const chunk of chunks) {
    data.set(chunk, at);
    at += chunk.byteLength;
  }
  return data;
}

/** Header bytes 18 and 19 of a database in rollback-journal mode. */
const ROLLBACK_VERSIONS = Buffer.from([1, 1]);

function writeFully(fd: number, bytes: Uint8Array, position: number): void {
  let offset = 0;
  while (offset < bytes.byteLength) offset += fs.writeSync(fd, bytes, offset, bytes.byteLength - offset, position + offset);
}

/** Takes the image of snapshotAsync() off the main thread. Plain JavaScript, see the file. */
const SNAPSHOT_WORKER_URL = new URL('./snapshot-worker.mjs', import.meta.url);

function snapshotFailed(why: string, cause?: unknown): Error {
  return new Error(`state machine snapshot failed: ${why}`, cause === undefined ? undefined : { cause });
}

/** Checks the worker's answer and patches the image as snapshot() does; throws on a bad one. */
function imageFileFromWorker(message: unknown): { index: number; byteLength: number } {
  const { index, byteLength, error } = (typeof message === 'object' && message !== null ? message : {}) as Record<string, unknown>;
  if (typeof error === 'string') throw snapshotFailed(error);
  if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0) throw snapshotFailed('the image has no valid applied index');
  if (typeof byteLength !== 'number' || !Number.isSafeInteger(byteLength) || byteLength < 100) throw snapshotFailed('the worker did not write a database image');
  return { index, byteLength };
}

function imageFromWorker(message: unknown): StateMachineSnapshot {
  const { index, data, error } = (typeof message === 'object' && message !== null ? message : {}) as Record<string, unknown>;
  if (typeof error === 'string') throw snapshotFailed(error);
  if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0) {
    throw snapshotFailed('the image has no valid applied index');
  }
  if (!(data instanceof Uint8Array) || data.byteLength < 100 || !Buffer.from(data.buffer, data.byteOffset, SQLITE_HEADER.length).equals(SQLITE_HEADER)) {
    throw snapshotFailed('the worker did not return a database image');
  }
  data[HEADER_WRITE_VERSION] = 1;
  data[HEADER_READ_VERSION] = 1;
  return { index, data };
}

function fsyncDirectory(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function restoreTempPath(file: string): string {
  return `${file}.restore-tmp`;
}

/** Removes the restore file and the rollback journal SQLite may have left beside it (a crash
 * while the check upgraded its schema). */
function removeRestoreFiles(file: string): void {
  fs.rmSync(restoreTempPath(file), { force: true });
  fs.rmSync(`${restoreTempPath(file)}-journal`, { force: true });
}

function imageIndexMismatch(applied: number, expected: number): KvError {
  return new KvError('CHORUS_BAD_SNAPSHOT', `the snapshot image holds applied index ${applied}, not the snapshot's ${expected}`);
}

function isMemoryPath(file: string): boolean {
  return file === ':memory:' || file === '';
}

const DIGEST_DOMAIN = 'chorus-kv-digest-v1\n';

function writeUint64(view: DataView, offset: number, n: number): void {
  view.setUint32(offset, Math.floor(n / 0x1_0000_0000));
  view.setUint32(offset + 4, n >>> 0);
}

// ---------------------------------------------------------------------------------------------
// The state machine

export class SqliteStateMachine {
  #db: Database.Database;
  /** The database file, or null for an in-memory instance. */
  readonly #file: string | null;
  readonly #limits: KvLimits;
  #st: Statements;
  #applyTransaction: (entries: readonly ApplyEntry[]) => { results: ApplyResult[]; applied: number };
  /** Mirrors applied.applied_index; updated only after the transaction that wrote it commits. */
  #applied: number;
  #closed = false;
  /** Stops the snapshotAsync() in flight (its promise rejects with the error), or null. */
  #abortSnapshot: ((error: Error) => void) | null = null;
  /** The image being received (stageImage). Invariant: `bytes` were written to the restore file
   * (file-backed: `fd` open on it) or are held in `chunks` (in-memory instance). */
  #staged: { fd: number | null; chunks: Uint8Array[]; bytes: number } | null = null;

  private constructor(db: Database.Database, file: string | null, limits: KvLimits, applied: number) {
    this.#db = db;
    this.#file = file;
    this.#limits = limits;
    this.#applied = applied;
    this.#st = prepareStatements(db);
    this.#applyTransaction = db.transaction((entries: readonly ApplyEntry[]) => this.#applyAll(entries));
  }

  /**
   * Opens (creating if needed) the state machine at `file`, or an in-memory one for
   * ':memory:'. A file must be used by one instance at a time. After opening, the driver
   * re-applies the log from appliedIndex() + 1; if the snapshot store holds a snapshot past
   * appliedIndex() (a crash during restore), it restores that snapshot first.
   */
  static open(file: string, options: SqliteStateMachineOptions = {}): SqliteStateMachine {
    const limits = resolveLimits(options.limits);
    const memory = isMemoryPath(file);
    // A leftover from a restore that crashed before its rename: the old file is still whole.
    if (!memory) removeRestoreFiles(file);
    const db = new Database(memory ? ':memory:' : file);
    try {
      configure(db, memory ? null : file);
      ensureSchema(db);
      return new SqliteStateMachine(db, memory ? null : file, limits, readAppliedIndex(db, 'CHORUS_KV_SCHEMA'));
    } catch (error) {
      db.close();
      throw error;
    }
  }

  get limits(): KvLimits {
    return this.#limits;
  }

  /**
   * Applies committed entries in one SQLite transaction and returns one result per entry.
   * Entries at or below appliedIndex() are skipped (idempotent replay); the others must follow
   * on without a gap, else CHORUS_APPLY_OUT_OF_ORDER is thrown and nothing is applied. A bad
   * payload yields an 'error' result, never an exception. An exception (SQLite I/O failure)
   * rolls the whole batch back: the state and appliedIndex() are as before the call.
   */
  applyBatch(entries: readonly ApplyEntry[]): ApplyResult[] {
    if (entries.length === 0) return [];
    const { results, applied } = this.#applyTransaction(entries);
    this.#applied = applied;
    return results;
  }

  #applyAll(entries: readonly ApplyEntry[]): { results: ApplyResult[]; applied: number } {
    const results = new Array<ApplyResult>(entries.length);
    let applied = this.#applied;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      const index = entry.index;
      if (!Number.isSafeInteger(index) || index < 1) {
        throw new KvError('CHORUS_APPLY_OUT_OF_ORDER', `entry index ${String(index)} is not a positive integer`);
      }
      if (index <= applied) {
        results[i] = { kind: 'skipped', revision: index };
        continue;
      }
      if (index !== applied + 1) {
        throw new KvError('CHORUS_APPLY_OUT_OF_ORDER', `entry ${index} follows ${applied}: entries are missing`);
      }
      results[i] = entry.type === 'normal' ? this.#applyNormal(index, entry.data) : { kind: 'none', revision: index };
      applied = index;
    }
    if (applied !== this.#applied) this.#st.setApplied.run(applied);
    return { results, applied };
  }

  #applyNormal(index: number, data: Uint8Array | undefined): ApplyResult {
    let cmd: Command;
    try {
      if (data === undefined) throw new KvError('CHORUS_BAD_COMMAND', 'normal entry carries no payload');
      const decoded = decodeCommand(data);
      validateCommand(decoded, this.#limits);
      cmd = decoded;
    } catch (error) {
      // Any failure here is a property of the bytes, the same on every replica, so it becomes
      // this entry's result; throwing would stall the state machine on the entry forever.
      if (error instanceof KvError) return { kind: 'error', revision: index, code: error.code, message: error.message };
      return { kind: 'error', revision: index, code: 'CHORUS_BAD_COMMAND', message: 'command payload could not be decoded' };
    }
    switch (cmd.kind) {
      case 'put':
        this.#st.upsert.run(cmd.key, cmd.value, index, index);
        return { kind: 'put', revision: index };
      case 'delete':
        return { kind: 'delete', revision: index, deleted: this.#st.remove.run(cmd.key).changes > 0 ? 1 : 0 };
      case 'txn':
        return this.#applyTxn(index, cmd);
      case 'replication-config':
        this.#st.setSetting.run('synchronous_commit', cmd.synchronousCommit);
        this.#st.setSetting.run('synchronous_standby_names', cmd.synchronousStandbyNames);
        this.#st.setSetting.run('replication_revision', String(index));
        return {
          kind: 'replication-config',
          revision: index,
          settings: { synchronousCommit: cmd.synchronousCommit, synchronousStandbyNames: cmd.synchronousStandbyNames, revision: index },
        };
      case 'member-address':
        this.#st.setMemberAddress.run(cmd.id, cmd.peerAddress);
        return { kind: 'member-address', revision: index, id: cmd.id, peerAddress: cmd.peerAddress };
      case 'keyspace-create': {
        const existing = this.keyspace(cmd.name);
        if (existing !== undefined) {
          if (existing.mode === cmd.mode && existing.conflicts === cmd.conflicts) return { kind: 'keyspace', revision: index, created: false, keyspace: existing };
          return {
            kind: 'error', revision: index, code: 'CHORUS_KEYSPACE_EXISTS',
            message: `keyspace ${cmd.name} exists as ${existing.mode}${existing.conflicts === '' ? '' : ` (${existing.conflicts})`}`,
          };
        }
        const keyspace: KeyspaceDef = { name: cmd.name, mode: cmd.mode, conflicts: cmd.conflicts, members: [...cmd.members], revision: index };
        this.#st.setSetting.run(`${KEYSPACE_SETTING_PREFIX}${cmd.name}`, JSON.stringify(keyspace));
        return { kind: 'keyspace', revision: index, created: true, keyspace };
      }
    }
  }

  #applyTxn(index: number, cmd: TxnCommand): ApplyResult {
    let succeeded = true;
    for (const c of cmd.compare) {
      const current = c.target === 'value' ? this.#st.getSubject.get(c.key) : this.#st.getCounters.get(c.key);
      if (!evaluateCompare(c, current)) {
        succeeded = false;
        break;
      }
    }
    const ops = succeeded ? cmd.success : cmd.failure;
    const results = new Array<TxnOpResult>(ops.length);
    for (let i = 0; i < ops.length; i++) {
      const o = ops[i]!;
      switch (o.op) {
        case 'put':
          this.#st.upsert.run(o.key, o.value, index, index);
          results[i] = { op: 'put', key: o.key };
          break;
        case 'delete':
          results[i] = { op: 'delete', key: o.key, deleted: this.#st.remove.run(o.key).changes > 0 ? 1 : 0 };
          break;
        case 'get': {
          const record = this.#st.getRecord.get(o.key);
          results[i] = record === undefined ? { op: 'get', key: o.key, absent: true } : { op: 'get', ...record };
          break;
        }
      }
    }
    return { kind: 'txn', revision: index, succeeded, results };
  }

  // -------------------------------------------------------------------------------------------
  // Reads. They see the applied state; linearizability is the caller's (ReadIndex) business.

  get(key: string): KvRecord | undefined {
    return this.#st.getRecord.get(validateKey(key, this.#limits));
  }

  range(options: RangeOptions = {}): RangeResult {
    const prefix = options.prefix ?? '';
    if (prefix !== '') validateKey(prefix, this.#limits);
    const limit = options.limit;
    if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1)) {
      throw new KvError('CHORUS_BAD_REQUEST', 'range limit must be a positive integer');
    }
    // One extra row tells whether the limit cut the result; -1 is SQLite's "no limit".
    const sqlLimit = limit === undefined ? -1 : limit + 1;
    let records: KvRecord[];
    if (prefix === '') records = options.skipReserved === true ? this.#st.rangeFrom.all(RESERVED_KEYS_END, sqlLimit) : this.#st.rangeAll.all(sqlLimit);
    else {
      const end = prefixEnd(prefix);
      records = end === undefined ? this.#st.rangeFrom.all(prefix, sqlLimit) : this.#st.rangeBetween.all(prefix, end, sqlLimit);
    }
    const more = limit !== undefined && records.length > limit;
    if (more) records.pop();
    return { records, more };
  }

  appliedIndex(): number {
    return this.#applied;
  }

  /** The replication settings last replicated through the log, or null when none ever was. */
  replicationSettings(): ReplicationSettings | null {
    const settings = new Map(this.#st.allSettings.all());
    const level = settings.get('synchronous_commit');
    const names = settings.get('synchronous_standby_names');
    const revision = Number(settings.get('replication_revision') ?? '0');
    if (level === undefined || names === undefined) return null;
    return { synchronousCommit: level as SynchronousCommit, synchronousStandbyNames: names, revision };
  }

  /** The keyspace catalog, by name (the built-in default keyspace is not in it). */
  keyspaces(): KeyspaceDef[] {
    const out: KeyspaceDef[] = [];
    for (const [name, value] of this.#st.allSettings.all()) {
      if (name.startsWith(KEYSPACE_SETTING_PREFIX)) out.push(JSON.parse(value) as KeyspaceDef);
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  keyspace(name: string): KeyspaceDef | undefined {
    const value = this.#st.getSetting.get(`${KEYSPACE_SETTING_PREFIX}${name}`);
    return value === undefined ? undefined : (JSON.parse(value) as KeyspaceDef);
  }

  /** Peer addresses recorded through the log, by member id (null: forgotten after a removal). */
  memberAddresses(): Map<string, string | null> {
    return new Map(this.#st.allMemberAddresses.all());
  }

  count(): number {
    return this.#st.count.get() ?? 0;
  }

  /**
   * A SHA-256 (hex) of the logical state: every key with its value, revisions and version, in
   * key order. Not the applied index, and not the file layout, so replicas with the same data
   * agree whatever their page layout or history of snapshots.
   */
  digest(): string {
    const hash = createHash('sha256');
    hash.update(DIGEST_DOMAIN);
    // keyBytes u32, valueBytes u32, createRevision u64, modRevision u64, version u64
    const header = new DataView(new ArrayBuffer(32));
    for (const [key, value, createRevision, modRevision, version] of this.#st.allRows.iterate()) {
      const keyBytes = Buffer.from(key, 'utf8');
      header.setUint32(0, keyBytes.byteLength);
      header.setUint32(4, value.byteLength);
      writeUint64(header, 8, createRevision);
      writeUint64(header, 16, modRevision);
      writeUint64(header, 24, version);
      hash.update(header);
      hash.update(keyBytes);
      hash.update(value);
    }
    return hash.digest('hex');
  }

  // -------------------------------------------------------------------------------------------
  // Snapshots

  /** The whole state at appliedIndex(), as a database image (its applied index is inside). */
  snapshot(): StateMachineSnapshot {
    const image = this.#db.serialize(); // a fresh buffer: we may patch it
    image[HEADER_WRITE_VERSION] = 1;
    image[HEADER_READ_VERSION] = 1;
    return { index: this.#applied, data: image };
  }

  /**
   * Makes every entry applied so far durable, and resolves with the applied index this covers
   * (appliedIndex() at the call). With synchronous=NORMAL a commit is only written to the WAL
   * file; this fsyncs the WAL file, then the database file, on libuv's threads, while applying
   * goes on, then their directory. Both files suffice: an applied transaction is either still in the WAL, or SQLite
   * checkpointed it into the database file, and SQLite rewrites the WAL from its start only
   * after a complete checkpoint, which it fsyncs itself (synchronous=NORMAL). The driver may then
   * drop the log up to that index: replay never needs it again.
   */
  async syncDurable(): Promise<number> {
    this.#assertOpen();
    const applied = this.#applied;
    if (this.#file === null) return applied;
    for (const file of [`${this.#file}-wal`, this.#file]) {
      let handle: fs.promises.FileHandle;
      try {
        handle = await fs.promises.open(file, 'r');
      } catch (error) {
        // No WAL file: nothing was written since the last connection closed (and checkpointed).
        if (file !== this.#file && (error as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw error;
      }
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
    // The WAL file's name too: restore() replaces both files, and a new WAL's directory entry
    // is otherwise durable only at SQLite's first checkpoint.
    const dir = await fs.promises.open(path.dirname(this.#file), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    return applied;
  }

  /**
   * The whole state as a database image, like snapshot(), without blocking the event loop: a
   * worker thread opens its own read-only connection and serializes one consistent read
   * transaction (WAL mode lets applyBatch() go on meanwhile). The image covers the index it
   * reports, which may be above appliedIndex() at the call: take the index from the result.
   * No file is written. One at a time (a second call rejects); close() rejects the one in
   * flight. A failure of the worker rejects with an Error, never throws elsewhere. An
   * in-memory instance has no file to share: it answers with snapshot(), synchronously.
   */
  snapshotAsync(): Promise<StateMachineSnapshot> {
    if (this.#closed) return Promise.reject(new Error('the state machine is closed'));
    if (this.#file === null) {
      try {
        return Promise.resolve(this.snapshot());
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return this.#runWorker({ file: this.#file }, imageFromWorker);
  }

  /**
   * An image of the state written to the new file `out`, like snapshotAsync() but without the
   * image in memory: the worker runs VACUUM INTO, one consistent read written page by page.
   * Resolves with the applied index the file holds and its size. File-backed instances only;
   * one worker at a time, as snapshotAsync(). The caller owns `out` (it may exist after a
   * failure) and deletes it.
   */
  imageFileAsync(out: string): Promise<{ index: number; byteLength: number }> {
    if (this.#closed) return Promise.reject(new Error('the state machine is closed'));
    if (this.#file === null) return Promise.reject(snapshotFailed('an in-memory state machine has no file to image'));
    return this.#runWorker({ file: this.#file, out }, imageFileFromWorker);
  }

  /** Runs the snapshot worker once; `parse` turns its one message into the result. */
  #runWorker<T>(workerData: { readonly file: string; readonly out?: string }, parse: (message: unknown) => T): Promise<T> {
    if (this.#abortSnapshot !== null) return Promise.reject(snapshotFailed('another snapshot is in progress'));
    // One short-lived worker per snapshot: snapshots are thousands of entries apart, and its
    // exit frees SQLite's copy of the image at once. execArgv: [] keeps the parent's flags (tsx's
    // loader under tests) out of a plain JavaScript worker.
    let worker: Worker;
    try {
      worker = new Worker(SNAPSHOT_WORKER_URL, { workerData, execArgv: [] });
    } catch (error) {
      return Promise.reject(snapshotFailed('the worker did not start', error));
    }
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const settle = (outcome: { value: T } | { error: Error }): void => {
        if (settled) return;
        settled = true;
        this.#abortSnapshot = null;
        if ('value' in outcome) resolve(outcome.value);
        else reject(outcome.error);
      };
      this.#abortSnapshot = (error) => {
        settle({ error });
        worker.terminate().catch(() => undefined); // it is gone either way
      };
      // The answer waits for the worker's exit, which follows it at once: its connection is closed
      // by then, so a close() or restore() right after finds the database as without it (the
      // last connection to close removes the WAL files).
      let answer: { value: T } | { error: Error } | null = null;
      worker.on('message', (message: unknown) => {
        try {
          answer ??= { value: parse(message) };
        } catch (error) {
          answer ??= { error: error instanceof Error ? error : snapshotFailed(String(error)) };
        }
      });
      // Listeners stay attached after settling: an 'error' event without one would crash the
      // process.
      worker.on('error', (error: unknown) => {
        answer ??= { error: snapshotFailed(`the worker failed: ${error instanceof Error ? error.message : String(error)}`, error) };
      });
      worker.on('messageerror', (error) => {
        answer ??= { error: snapshotFailed('the image did not arrive', error) };
      });
      worker.on('exit', (code) => settle(answer ?? { error: snapshotFailed(`the worker exited with code ${code} without an image`) }));
    });
  }

  /**
   * Replaces the whole state with a snapshot image; appliedIndex() becomes the image's. The
   * image is checked first (CHORUS_BAD_SNAPSHOT leaves the current state untouched).
   *
   * A file-backed instance swaps files rather than copying rows: the image is written to a
   * temporary file beside the database, checked there and fsynced; the current connection checkpoints its WAL
   * and closes (a WAL left next to the new file would be replayed onto it, so any leftover WAL
   * is removed too); the temporary file is renamed over the database, the directory fsynced,
   * and the file reopened in WAL mode. A crash leaves either the old or the new state, whole.
   */
  restore(data: Uint8Array): void {
    this.stageImage(0, data);
    this.restoreStaged(data.byteLength);
  }

  /**
   * Takes the next piece of an image being received; offset 0 starts a new one (what was staged
   * of another is dropped). restoreStaged() then restores it without the whole image ever being
   * in memory: a file-backed instance writes each piece to the restore file beside the database
   * at once, an in-memory one keeps the pieces. An offset other than 0 or the bytes staged so far
   * is a caller's bug (Error).
   */
  stageImage(offset: number, chunk: Uint8Array): void {
    this.#assertOpen();
    if (offset === 0) {
      this.#dropStaged();
      if (this.#file !== null) removeRestoreFiles(this.#file); // a journal left there would roll back into the new image
      this.#staged = { fd: this.#file === null ? null : fs.openSync(restoreTempPath(this.#file), 'w'), chunks: [], bytes: 0 };
    }
    const staged = this.#staged;
    if (staged === null || offset !== staged.bytes) {
      throw new Error(`image piece at offset ${offset}, but ${staged === null ? 'no image is staged' : `${staged.bytes} bytes are`}`);
    }
    if (staged.fd !== null) writeFully(staged.fd, chunk, offset);
    else staged.chunks.push(chunk);
    staged.bytes += chunk.byteLength;
  }

  /** restore() of the image stageImage() received, which must be `totalBytes` long and, when
   * `appliedIndex` is given, hold exactly that applied index (else CHORUS_BAD_SNAPSHOT). */
  restoreStaged(totalBytes: number, appliedIndex?: number): void {
    this.#assertOpen();
    // The worker reads the file this would replace (and the WAL it would delete).
    if (this.#abortSnapshot !== null) throw new Error('restore while a snapshot is in progress: await snapshotAsync() first');
    const staged = this.#staged;
    if (staged === null || staged.bytes !== totalBytes) {
      throw new Error(`restore of a ${totalBytes}-byte image, but ${staged === null ? 'none' : `${staged.bytes} bytes`} staged`);
    }
    this.#staged = null;
    const file = this.#file;
    if (staged.fd === null || file === null) {
      const incoming = openImageInMemory(staged.chunks.length === 1 ? staged.chunks[0]! : concatChunks(staged.chunks, totalBytes));
      if (appliedIndex !== undefined && incoming.applied !== appliedIndex) {
        incoming.db.close();
        throw imageIndexMismatch(incoming.applied, appliedIndex);
      }
      this.#db.close();
      this.#adopt(incoming.db, incoming.applied);
      return;
    }
    fs.closeSync(staged.fd);
    const temp = restoreTempPath(file);
    // CHORUS_BAD_SNAPSHOT leaves the current state as it was.
    const imageApplied = checkImageFile(temp);
    if (appliedIndex !== undefined && imageApplied !== appliedIndex) {
      removeRestoreFiles(file);
      throw imageIndexMismatch(imageApplied, appliedIndex);
    }
    try {
      this.#db.pragma('wal_checkpoint(TRUNCATE)');
    } catch (error) {
      fs.rmSync(temp, { force: true });
      throw error;
    }
    this.#db.close();
    let failure: unknown;
    try {
      fs.rmSync(`${file}-wal`, { force: true });
      fs.rmSync(`${file}-shm`, { force: true });
      fs.renameSync(temp, file);
      fsyncDirectory(path.dirname(file));
    } catch (error) {
      // Whichever whole state the file now holds (old or new), reopen it below so the
      // instance stays usable, then report the failure.
      failure = error;
      fs.rmSync(temp, { force: true });
    }
    let db: Database.Database | undefined;
    try {
      db = new Database(file);
      configure(db, file);
      checkSchema(db, 'CHORUS_KV_SCHEMA', true);
      migrateToCurrent(db);
      this.#adopt(db, readAppliedIndex(db, 'CHORUS_KV_SCHEMA'));
    } catch (error) {
      db?.close();
      this.#closed = true;
      throw error;
    }
    if (failure !== undefined) throw failure;
  }

  #adopt(db: Database.Database, applied: number): void {
    this.#db = db;
    this.#st = prepareStatements(db);
    this.#applyTransaction = db.transaction((entries: readonly ApplyEntry[]) => this.#applyAll(entries));
    this.#applied = applied;
  }

  /** Forgets the image being staged, and its file. */
  #dropStaged(): void {
    const staged = this.#staged;
    this.#staged = null;
    if (staged === null || staged.fd === null) return;
    fs.closeSync(staged.fd);
    removeRestoreFiles(this.#file!);
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error('the state machine is closed');
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#abortSnapshot?.(snapshotFailed('the state machine was closed'));
    this.#dropStaged();
    this.#db.close();
  }
}
