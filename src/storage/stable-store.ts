// Term, vote and commit of a Raft member, in one small file replaced atomically on every save.
// Format and durability order: docs/storage-format.md.
import { join } from 'node:path';
import type { HardState } from '../core/raft/types.ts';
import type { StableStore } from '../ports/index.ts';
import { checkHardState, decodeHardState, encodeHardState } from './codec.ts';
import { StableCorruptError, StoreClosedError } from './errors.ts';
import { frame, readFrame } from './frame.ts';
import { ensureDir, readFileIfExists, removeIfExists, replaceFileDurably } from './fsio.ts';

export const HARD_STATE_FILE = 'hardstate';

export class FileStableStore implements StableStore {
  private readonly dir: string;
  /** Calls run one at a time, in call order, so two saves never share the temporary file. */
  private tail: Promise<unknown> = Promise.resolve(); // never rejects
  private closed = false;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** Opens (creating if needed) the store in `dir`. It may share `dir` with the other stores. */
  static async open(dir: string): Promise<FileStableStore> {
    await ensureDir(dir);
    // A temporary file is never authoritative: its save did not return.
    await removeIfExists(join(dir, `${HARD_STATE_FILE}.tmp`));
    return new FileStableStore(dir);
  }

  load(): Promise<HardState | null> {
    return this.serialize(async () => {
      const path = join(this.dir, HARD_STATE_FILE);
      const buffer = await readFileIfExists(path);
      if (buffer === null) return null;
      const record = readFrame(buffer, 0, buffer.length);
      if (record.kind !== 'ok') throw new StableCorruptError(path, record.kind === 'checksum' ? 'checksum mismatch' : 'the record is cut short');
      if (record.end !== buffer.length) throw new StableCorruptError(path, 'unexpected bytes after the record');
      try {
        return decodeHardState(buffer.subarray(record.payloadStart, record.end));
      } catch (error) {
        const detail = error instanceof Error ? error.message : String(error);
        throw new StableCorruptError(path, `the checksum matches but the record does not decode (${detail})`, { cause: error });
      }
    });
  }

  save(state: HardState): Promise<void> {
    try {
      checkHardState(state);
    } catch (error) {
      return Promise.reject(error);
    }
    const bytes = frame(encodeHardState(state));
    return this.serialize(() => replaceFileDurably(this.dir, HARD_STATE_FILE, [bytes]));
  }

  close(): Promise<void> {
    this.closed = true;
    return this.tail.then(() => undefined);
  }

  private serialize<T>(op: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new StoreClosedError('FileStableStore'));
    const result = this.tail.then(op);
    this.tail = result.catch(() => undefined); // one failed call does not fail the next
    return result;
  }
}
