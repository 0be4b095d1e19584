// Durable state of this member's multi-master keyspaces: one SQLite file (mm.db in the data
// directory) with every keyspace's records and replica meta, written in the StoreOps the core
// hands out (src/core/mm/replica.ts, "Durability contract").
//
// Unlike the Raft state machine, nothing here can be replayed from a log: a write acknowledged
// at a multi-master keyspace exists only in this file until peers have it. So the file runs at
// synchronous = FULL (every commit fsyncs the WAL) and every batch of ops is one transaction:
// a crash leaves all of a batch or none of it.
import Database from 'better-sqlite3';
import { Packr } from 'msgpackr';
import type { DurableState, ReplicaMeta, StoreOp, StoredRecord } from '../core/mm/index.ts';
import { ChorusError } from '../shared/errors.ts';

const SCHEMA_VERSION = 1;

const SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS mm_meta (
  keyspace TEXT NOT NULL PRIMARY KEY,
  meta BLOB NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS mm_records (
  keyspace TEXT NOT NULL,
  key TEXT NOT NULL,
  record BLOB NOT NULL,
  PRIMARY KEY (keyspace, key)
) STRICT, WITHOUT ROWID;
`;

// Plain msgpack maps, binary values as bin: records hold Uint8Array values and nested arrays.
const packr = new Packr({ useRecords: false, moreTypes: false, structuredClone: false, mapsAsObjects: true, copyBuffers: true, int64AsType: 'number', useFloat32: 0 });

export interface KeyspaceOps {
  readonly keyspace: string;
  readonly ops: readonly StoreOp[];
}

export class MultiMasterStore {
  readonly #db: Database.Database;
  readonly #upsert: Database.Statement<[string, string, Uint8Array]>;
  readonly #remove: Database.Statement<[string, string]>;
  readonly #setMeta: Database.Statement<[string, Uint8Array]>;
  readonly #write: (batches: readonly KeyspaceOps[]) => void;
  #closed = false;
  /** Transactions committed (each one fsync), for metrics. */
  commits = 0;

  private constructor(db: Database.Database) {
    this.#db = db;
    this.#upsert = db.prepare('INSERT INTO mm_records (keyspace, key, record) VALUES (?, ?, ?) ON CONFLICT (keyspace, key) DO UPDATE SET record = excluded.record');
    this.#remove = db.prepare('DELETE FROM mm_records WHERE keyspace = ? AND key = ?');
    this.#setMeta = db.prepare('INSERT INTO mm_meta (keyspace, meta) VALUES (?, ?) ON CONFLICT (keyspace) DO UPDATE SET meta = excluded.meta');
    this.#write = db.transaction((batches: readonly KeyspaceOps[]) => {
      const metas = new Map<string, ReplicaMeta>();
      for (const { keyspace, ops } of batches) {
        for (const op of ops) {
          if (op.op === 'put') this.#upsert.run(keyspace, op.key, packr.pack(op.record));
          else if (op.op === 'delete') this.#remove.run(keyspace, op.key);
          else metas.set(keyspace, op.meta); // only the last meta of a keyspace matters
        }
      }
      for (const [keyspace, meta] of metas) this.#setMeta.run(keyspace, packr.pack(meta));
    });
  }

  /** Opens (or creates) the file. `file` ':memory:' keeps everything in memory (tests). */
  static open(file: string): MultiMasterStore {
    const db = new Database(file);
    try {
      db.pragma('trusted_schema = OFF');
      if (file !== ':memory:') {
        const mode = db.pragma('journal_mode = WAL', { simple: true });
        if (mode !== 'wal') throw new Error(`SQLite refused WAL mode for ${file} (got ${String(mode)})`);
        db.pragma('synchronous = FULL');
      }
      const version = db.pragma('user_version', { simple: true });
      if (version !== 0 && version !== SCHEMA_VERSION) {
        throw new ChorusError('CHORUS_KV_SCHEMA', `${file}: multi-master schema version ${String(version)}, expected ${SCHEMA_VERSION}`);
      }
      db.exec(SCHEMA_SQL);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
      return new MultiMasterStore(db);
    } catch (error) {
      db.close();
      throw error;
    }
  }

  /** What was persisted for `keyspace` (meta null and no records for a new keyspace). The
   * records are decoded lazily; the core validates each one as it opens. */
  load(keyspace: string): DurableState {
    this.#assertOpen();
    const metaRow = this.#db.prepare<[string], { meta: Uint8Array }>('SELECT meta FROM mm_meta WHERE keyspace = ?').get(keyspace);
    const rows = this.#db.prepare<[string], [string, Uint8Array]>('SELECT key, record FROM mm_records WHERE keyspace = ?').raw();
    const records = function* (): Generator<readonly [string, StoredRecord]> {
      for (const [key, blob] of rows.iterate(keyspace)) yield [key, packr.unpack(blob) as StoredRecord];
    };
    return { meta: metaRow === undefined ? null : (packr.unpack(metaRow.meta) as ReplicaMeta), records: records() };
  }

  /** Writes every batch atomically and durably, in order (one transaction, one WAL fsync). */
  write(batches: readonly KeyspaceOps[]): void {
    if (batches.every((b) => b.ops.length === 0)) return;
    this.#assertOpen();
    this.#write(batches);
    this.commits++;
  }

  /** Bytes of the database file and its WAL, approximately (page count × page size). */
  sizeBytes(): number {
    if (this.#closed) return 0;
    const pages = this.#db.pragma('page_count', { simple: true }) as number;
    const pageBytes = this.#db.pragma('page_size', { simple: true }) as number;
    return pages * pageBytes;
  }

  #assertOpen(): void {
    if (this.#closed) throw new ChorusError('CHORUS_STOPPING', 'the multi-master store is closed');
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }
}
