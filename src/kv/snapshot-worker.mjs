// @ts-check
// The worker of SqliteStateMachine.snapshotAsync(): reads a consistent image of the state
// database on its own thread, so that the main thread keeps serving (and applying) meanwhile.
//
// Plain JavaScript on purpose: it then starts without the TypeScript loader, which the CLI
// registers on the main thread only, and starts faster.
//
// In:  workerData = { file: string, out?: string } (a state database in WAL mode, opened by the
//      main thread; `out`: write the image to this new file instead of returning it)
// Out: one message, { index: number, data: Uint8Array } (data's buffer transferred), or with
//      `out` { index: number, byteLength: number }, or { error: string }. The main thread
//      patches the header and checks the index.
import { parentPort, workerData } from 'node:worker_threads';
import fs from 'node:fs';
import Database from 'better-sqlite3';

const port = parentPort;
if (port === null) throw new Error('snapshot-worker.mjs runs as a worker thread only');

/** @type {import('better-sqlite3').Database | undefined} */
let db;
try {
  // fileMustExist: a missing file is an error, never a new empty database.
  db = new Database(workerData.file, { readonly: true, fileMustExist: true });
  if (typeof workerData.out === 'string') {
    // VACUUM INTO writes one consistent read of the database to a new file, page by page: no
    // copy of the state in memory. It cannot run inside a transaction, so the applied index is
    // read from the file it wrote.
    db.prepare('VACUUM INTO ?').run(workerData.out);
    const written = new Database(workerData.out, { readonly: true, fileMustExist: true });
    try {
      const index = written.prepare('SELECT applied_index FROM applied WHERE id = 1').pluck().get();
      port.postMessage({ index, byteLength: fs.statSync(workerData.out).size });
    } finally {
      written.close();
    }
  } else {
    // One read transaction around both reads: in WAL mode it pins one snapshot of the database,
    // so the applied index is the one of the pages serialized, whatever the main thread commits
    // meanwhile.
    db.exec('BEGIN');
    const index = db.prepare('SELECT applied_index FROM applied WHERE id = 1').pluck().get();
    const image = db.serialize();
    db.exec('COMMIT');
    // serialize() returns memory SQLite allocated, which postMessage cannot transfer: it would
    // be cloned, the second copy on the receiving (main) thread. Copied here instead, into a
    // buffer that moves without a copy.
    const data = new Uint8Array(image.byteLength);
    data.set(image);
    port.postMessage({ index, data }, [data.buffer]);
  }
} catch (error) {
  port.postMessage({ error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
} finally {
  db?.close();
}
