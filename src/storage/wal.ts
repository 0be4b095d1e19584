// The write-ahead log of a Raft member: segment files of checksummed records, recovered at open.
// The on-disk format and the durability order are specified in docs/storage-format.md; keep the
// two in step.
//
// I/O model. Appends are synchronous pwrite calls (one per batch) into the page cache: that is a
// memcpy, far cheaper than a thread-pool round trip, and it keeps the order of appends trivially
// the order of calls. Everything that waits for the disk (fdatasync, fsync of the directory) runs
// on the libuv thread pool, so the event loop keeps serving the network meanwhile. A sync that is
// in flight does not hold up later appends; they are covered by the next sync (group commit).
//
// Preallocation. The last segment is kept ahead of its records with zero bytes, written (not
// fallocated) a chunk at a time: an append then overwrites blocks the file already has, so its
// fdatasync flushes data only. An append that grows the file makes every fdatasync commit the
// filesystem journal too (the size changed); measured here, three members syncing at once:
// 220 µs per small append and sync that grows the file, 166 µs into zero-filled blocks. This is
// why PostgreSQL fills its WAL segments with zeros. A zero length never starts a record, so
// recovery reads the zeros as the end of the log.
//
// Ordering. Calls are applied in the order they are made. Calls that must wait for the disk
// (rollover, truncation, compaction, reset, readAll) queue the calls made after them; while
// nothing is queued, an append writes at once, without a promise hop before the write.
import { closeSync, ftruncateSync, openSync, unlinkSync } from 'node:fs';
import { readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Entry } from '../core/raft/types.ts';
import type { LogStore } from '../ports/index.ts';
import { checkEntry, decodeEntry, decodeValue, encodeEntry, encodeValue } from './codec.ts';
import { LogNotContiguousError, StoreClosedError, StoreFailedError, WalCorruptError } from './errors.ts';
import { frame, FRAME_HEADER_BYTES, readFrame, writeFrame } from './frame.ts';
import type { FrameRead } from './frame.ts';
import { ensureDir, fdatasyncAsync, readFileIfExists, removeIfExists, replaceFileDurably, syncDir, writeFullySync } from './fsio.ts';

export const SEGMENT_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;
/** The last segment is kept this far ahead of its records with zeros (see Preallocation). */
export const PREALLOCATE_BYTES_DEFAULT = 1024 * 1024;
/** The log's own metadata: its logical first index, and whether a reset was in progress. */
export const WAL_META_FILE = 'wal.meta';
const SEGMENT_SUFFIX = '.wal';
const SEGMENT_NAME = /^\d{20}\.wal$/;
const INDEX_DIGITS = 20;

/** The file name of the segment whose first record holds `firstIndex`. */
export function segmentFileName(firstIndex: number): string {
  return String(firstIndex).padStart(INDEX_DIGITS, '0') + SEGMENT_SUFFIX;
}

export interface FileLogStoreOptions {
  /** A segment takes no more batches once it holds this many bytes (default 64 MiB). One batch
   * is never split, so a segment can exceed it by up to one batch. */
  segmentBytesMax?: number;
  /** Receives recovery warnings (a torn tail cut off, leftovers of an interrupted operation). */
  logger?: (msg: string) => void;
  /** Zero bytes written ahead of the records of the last segment, a chunk of this size at a time
   * (default 1 MiB, capped at segmentBytesMax; 0: none, every append grows the file). */
  preallocateBytes?: number;
}

interface Segment {
  /** The index of the segment's first record; the file is named after it. */
  readonly firstIndex: number;
  readonly path: string;
  /** offsets[i] is the byte offset of the record holding index firstIndex + i. Invariant:
   * strictly ascending, offsets[0] === 0 when non-empty. */
  readonly offsets: number[];
  /** Bytes of valid records. */
  sizeBytes: number;
  /** The file's size. Invariant: >= sizeBytes, and every byte from sizeBytes on is zero
   * (preallocated); equal to sizeBytes for every segment but the last. */
  allocatedBytes: number;
}

function segmentLastIndex(segment: Segment): number {
  return segment.firstIndex + segment.offsets.length - 1;
}

/** A batch of entries framed into one buffer, ready for one write. */
interface Batch {
  readonly firstIndex: number;
  readonly count: number;
  readonly buffer: Buffer;
  /** Offset of each record within `buffer`. */
  readonly offsets: readonly number[];
}

interface WalMeta {
  /** The logical first index: entries below it are compacted, even if a segment still holds them. */
  readonly firstIndex: number;
  /** True between the two steps of reset(): recovery must delete every segment. */
  readonly resetting: boolean;
}

function invariant(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(`FileLogStore invariant violated: ${message}`);
}

function checkIndexArgument(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`${name} must be a safe integer >= ${min}, got ${value}`);
  }
}

export class FileLogStore implements LogStore {
  private readonly dir: string;
  private readonly segmentBytesMax: number;
  /** 0: no preallocation. Invariant: <= segmentBytesMax. */
  private readonly preallocateBytes: number;

  /** Ascending by firstIndex; each starts right after the previous one's last index. */
  private segments: Segment[];
  /** The last segment and its descriptor. Invariant: null iff `segments` is empty. */
  private active: { readonly segment: Segment; readonly fd: number } | null;
  /** Invariant: first >= 1 and last >= first - 1 (last === first - 1 when the log is empty). */
  private first: number;
  private last: number;

  /** Records were written to the active segment since its last fdatasync was started. */
  private activeDirty = false;
  /** A segment file was created since the last directory fsync was started. */
  private dirDirty = false;
  /** The flush started last; it waits for the ones before it. Never rejects (failures go to
   * `failure`). A descriptor is closed only after awaiting it. */
  private flushing: Promise<void> = Promise.resolve();

  /** Settles when the last queued call has finished; `pending` counts queued calls. */
  private tail: Promise<void> = Promise.resolve();
  private pending = 0;

  /** Entries decoded at open, handed out by the first readAll() unless the log changed since. */
  private recovered: Entry[] | null;
  private failure: StoreFailedError | null = null;
  private closing: Promise<void> | null = null;

  private constructor(dir: string, segmentBytesMax: number, preallocateBytes: number, state: RecoveredLog) {
    this.dir = dir;
    this.segmentBytesMax = segmentBytesMax;
    this.preallocateBytes = Math.min(preallocateBytes, segmentBytesMax);
    this.segments = state.segments;
    this.active = state.active;
    this.first = state.first;
    this.last = state.last;
    this.recovered = state.entries;
    invariant((this.active === null) === (this.segments.length === 0), 'active segment iff segments');
  }

  /** Opens (creating if needed) the log in `dir` and recovers it; see docs/storage-format.md. */
  static async open(dir: string, options: FileLogStoreOptions = {}): Promise<FileLogStore> {
    const segmentBytesMax = options.segmentBytesMax ?? SEGMENT_BYTES_MAX_DEFAULT;
    checkIndexArgument('segmentBytesMax', segmentBytesMax, 1);
    const preallocateBytes = options.preallocateBytes ?? PREALLOCATE_BYTES_DEFAULT;
    checkIndexArgument('preallocateBytes', preallocateBytes, 0);
    const logger = options.logger ?? ((msg: string) => console.warn(msg));
    await ensureDir(dir);
    await removeIfExists(join(dir, `${WAL_META_FILE}.tmp`));
    const state = await recover(dir, logger);
    return new FileLogStore(dir, segmentBytesMax, preallocateBytes, state);
  }

  firstIndex(): number {
    return this.first;
  }

  lastIndex(): number {
    return this.last;
  }

  readAll(): Promise<Entry[]> {
    return this.enqueue(() => {
      const recovered = this.recovered;
      if (recovered !== null) {
        this.recovered = null; // the caller owns it now; later calls read the files again
        return recovered;
      }
      return this.readSegments();
    });
  }

  append(entries: readonly Entry[]): Promise<void> {
    const unusable = this.unusable();
    if (unusable !== null) return Promise.reject(unusable);
    if (entries.length === 0) return Promise.resolve();
    let batch: Batch;
    try {
      batch = encodeBatch(entries); // now, so that later changes by the caller cannot leak in
    } catch (error) {
      return Promise.reject(error);
    }
    return this.enqueue(() => this.appendBatch(batch));
  }

  sync(): Promise<void> {
    // The queued step only captures what to flush, so appends made after this call need not
    // wait for the disk; the returned promise does.
    return this.enqueue(() => ({ flushed: this.startFlush() })).then((step) => step.flushed);
  }

  compact(index: number): Promise<void> {
    try {
      checkIndexArgument('compact index', index, 0);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.enqueue(() => (index < this.first ? undefined : this.compactThrough(index)));
  }

  reset(nextIndex: number): Promise<void> {
    try {
      checkIndexArgument('reset nextIndex', nextIndex, 1);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.enqueue(() => this.resetTo(nextIndex));
  }

  /** Lets queued calls finish, flushes what was written (unless the store failed), and releases
   * the files. Calls made after close() are refused. */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    const finish = async (): Promise<void> => {
      await this.tail;
      let flushError: Error | null = null;
      if (this.failure === null && (this.activeDirty || this.dirDirty)) {
        try {
          await this.startFlush();
        } catch (error) {
          flushError = this.fail(error);
        }
      }
      await this.flushing;
      const active = this.active;
      this.active = null;
      this.segments = [];
      this.recovered = null;
      if (active !== null) {
        try {
          closeSync(active.fd);
        } catch (error) {
          // After a failure the descriptor may be unusable; closing must still release the store.
          if (this.failure === null) throw error;
        }
      }
      if (flushError !== null) throw flushError;
    };
    this.closing = finish();
    return this.closing;
  }

  // ---- queueing and failure ----

  private unusable(): Error | null {
    if (this.closing !== null) return new StoreClosedError('FileLogStore');
    return this.failure;
  }

  /** Runs `op` after every call made before it (at once when none is pending). */
  private enqueue<T>(op: () => T | Promise<T>): Promise<T> {
    const unusable = this.unusable();
    if (unusable !== null) return Promise.reject(unusable);
    if (this.pending === 0) {
      let result: T | Promise<T>;
      try {
        result = op();
      } catch (error) {
        return Promise.reject(error);
      }
      return result instanceof Promise ? this.track(result) : Promise.resolve(result);
    }
    return this.track(
      this.tail.then(() => {
        if (this.failure !== null) throw this.failure;
        return op();
      }),
    );
  }

  private track<T>(operation: Promise<T>): Promise<T> {
    this.pending++;
    // Registered before the caller's continuation, so `pending` is already back down when the
    // caller resumes and its next append can take the direct path.
    const settled = operation.then(
      () => {
        this.pending--;
      },
      () => {
        this.pending--;
      },
    );
    this.tail = settled;
    return operation;
  }

  /** Records the first I/O failure; from then on every call is refused. */
  private fail(error: unknown): StoreFailedError {
    if (this.failure === null) this.failure = error instanceof StoreFailedError ? error : new StoreFailedError('FileLogStore', error);
    return this.failure;
  }

  private async guarded(io: () => Promise<void>): Promise<void> {
    try {
      await io();
    } catch (error) {
      throw this.fail(error);
    }
  }

  // ---- appends ----

  private appendBatch(batch: Batch): void | Promise<void> {
    const start = batch.firstIndex;
    if (start < this.first) {
      throw new LogNotContiguousError(`append at index ${start} is below the first index ${this.first} (compacted)`);
    }
    if (start > this.last + 1) {
      throw new LogNotContiguousError(`append at index ${start} would leave a gap after the last index ${this.last}`);
    }
    this.recovered = null;
    const truncates = start <= this.last;
    if (!truncates && !this.mustRoll()) {
      try {
        this.writeBatch(batch);
      } catch (error) {
        throw this.fail(error);
      }
      return;
    }
    return this.guarded(async () => {
      if (truncates) await this.truncateFrom(start);
      if (this.mustRoll()) await this.roll(start);
      this.writeBatch(batch);
    });
  }

  private mustRoll(): boolean {
    return this.active === null || this.active.segment.sizeBytes >= this.segmentBytesMax;
  }

  private writeBatch(batch: Batch): void {
    const active = this.active;
    invariant(active !== null, 'a segment is open for writing');
    const segment = active.segment;
    invariant(batch.firstIndex === segmentLastIndex(segment) + 1, 'the batch continues the active segment');
    invariant(batch.firstIndex === this.last + 1, 'the batch continues the log');
    writeFullySync(active.fd, batch.buffer, segment.sizeBytes);
    for (const offset of batch.offsets) segment.offsets.push(segment.sizeBytes + offset);
    segment.sizeBytes += batch.buffer.length;
    segment.allocatedBytes = Math.max(segment.allocatedBytes, segment.sizeBytes);
    this.last = batch.firstIndex + batch.count - 1;
    this.activeDirty = true;
    this.preallocate(active.fd, segment);
  }

  /**
   * Keeps at least half a chunk of zeros after the records of the active segment, writing the
   * next chunk once less is left (one pwrite into the page cache; the next sync makes it
   * durable, once per chunk). Not past the point where the segment rolls over.
   */
  private preallocate(fd: number, segment: Segment): void {
    const chunk = this.preallocateBytes;
    if (chunk === 0 || segment.allocatedBytes - segment.sizeBytes >= chunk / 2) return;
    if (segment.allocatedBytes >= this.segmentBytesMax) return;
    const bytes = Math.min(chunk, this.segmentBytesMax - segment.allocatedBytes);
    writeFullySync(fd, zeroBytes(bytes), segment.allocatedBytes);
    segment.allocatedBytes += bytes;
    this.activeDirty = true;
  }

  /** Starts a new segment whose first record will hold `firstIndex`. */
  private async roll(firstIndex: number): Promise<void> {
    if (this.active !== null) {
      // The old segment is complete and durable before the new one gets a byte, and so is its
      // directory entry: recovery can then treat damage anywhere but the last segment as
      // corruption, and never finds a later segment without the earlier one.
      await this.flushing;
      const full = this.active.segment;
      if (full.allocatedBytes > full.sizeBytes) {
        // A closed segment ends with its last record: recovery takes any other bytes there for
        // damage. The zeros go before the sync below makes the segment durable.
        ftruncateSync(this.active.fd, full.sizeBytes);
        full.allocatedBytes = full.sizeBytes;
        this.activeDirty = true;
      }
      if (this.activeDirty) await fdatasyncAsync(this.active.fd);
      this.activeDirty = false;
      if (this.dirDirty) await syncDir(this.dir);
      this.dirDirty = false;
      closeSync(this.active.fd);
      this.active = null;
    }
    const segment: Segment = { firstIndex, path: join(this.dir, segmentFileName(firstIndex)), offsets: [], sizeBytes: 0, allocatedBytes: 0 };
    const fd = openSync(segment.path, 'wx'); // a file by that name would be a bookkeeping bug
    this.segments.push(segment);
    this.active = { segment, fd };
    this.dirDirty = true; // the next sync makes the new directory entry durable
  }

  /** Removes the entries from `index` on, so that `index` is the next to be written. */
  private async truncateFrom(index: number): Promise<void> {
    invariant(index >= this.first && index <= this.last, 'truncation inside the log');
    await this.flushing; // no descriptor may close under an fdatasync in flight
    const keep = this.segmentHolding(index);
    const segment = this.segments[keep];
    invariant(segment !== undefined, 'a segment holds the truncation index');
    // Later segments go first, newest first, and durably: a crash part way then leaves a
    // contiguous log, and never the old tail behind the new records written below.
    let deleted = false;
    for (let j = this.segments.length - 1; j > keep; j--) {
      const doomed = this.segments[j]!;
      if (this.active !== null && this.active.segment === doomed) {
        closeSync(this.active.fd);
        this.active = null;
        this.activeDirty = false;
      }
      unlinkSync(doomed.path);
      deleted = true;
    }
    this.segments.length = keep + 1;
    if (deleted) {
      await syncDir(this.dir);
      this.dirDirty = false;
    }
    if (this.active === null) {
      this.active = { segment, fd: openSync(segment.path, 'r+') };
      this.activeDirty = false;
    }
    const offset = segment.offsets[index - segment.firstIndex];
    invariant(offset !== undefined, 'the truncation index has a record offset');
    // Cut to the offset (the zeros after it go too; the next append preallocates again).
    ftruncateSync(this.active.fd, offset);
    segment.offsets.length = index - segment.firstIndex;
    segment.sizeBytes = offset;
    segment.allocatedBytes = offset;
    this.last = index - 1;
    // The cut reaches the disk before anything is written over it; otherwise a crash could
    // leave new records followed by old ones that recovery would read as one log.
    await fdatasyncAsync(this.active.fd);
    this.activeDirty = false;
  }

  /** The position in `segments` of the segment holding `index` (binary search). */
  private segmentHolding(index: number): number {
    let low = 0;
    let high = this.segments.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >>> 1;
      if (this.segments[mid]!.firstIndex <= index) low = mid;
      else high = mid - 1;
    }
    return low;
  }

  // ---- sync ----

  /** Starts flushing everything written so far; resolves once it (and every earlier flush) is
   * on disk. */
  private startFlush(): Promise<void> {
    const fd = this.activeDirty && this.active !== null ? this.active.fd : null;
    const dir = this.dirDirty;
    this.activeDirty = false;
    this.dirDirty = false;
    const previous = this.flushing;
    const flush = (async () => {
      await previous;
      if (this.failure !== null) throw this.failure;
      if (fd !== null) await fdatasyncAsync(fd);
      if (dir) await syncDir(this.dir);
    })();
    this.flushing = flush.then(
      () => undefined,
      (error: unknown) => {
        this.fail(error);
      },
    );
    return flush.catch((error: unknown) => {
      throw this.fail(error);
    });
  }

  // ---- compaction and reset ----

  private compactThrough(index: number): Promise<void> {
    return this.guarded(async () => {
      this.recovered = null;
      // The meta file first: from then on recovery ignores entries <= index, whichever of the
      // deletions below reach the disk before a crash.
      await writeMeta(this.dir, { firstIndex: index + 1, resetting: false });
      this.first = index + 1;
      if (this.last < index) this.last = index;
      await this.flushing;
      // Oldest first, so that a crash part way leaves a contiguous suffix.
      let deleted = false;
      while (this.segments.length > 0 && segmentLastIndex(this.segments[0]!) <= index) {
        const doomed = this.segments.shift()!;
        if (this.active !== null && this.active.segment === doomed) {
          closeSync(this.active.fd);
          this.active = null;
          this.activeDirty = false;
        }
        unlinkSync(doomed.path);
        deleted = true;
      }
      if (deleted) {
        await syncDir(this.dir);
        this.dirDirty = false;
      }
    });
  }

  private resetTo(nextIndex: number): Promise<void> {
    return this.guarded(async () => {
      this.recovered = null;
      if (this.segments.length > 0) {
        // Two steps, because deleting several files is not atomic and the old segments may
        // hold indexes >= nextIndex: any that survived a crash would read as the new log.
        // While the meta file says `resetting`, recovery deletes every segment.
        await writeMeta(this.dir, { firstIndex: nextIndex, resetting: true });
        await this.flushing;
        if (this.active !== null) closeSync(this.active.fd);
        this.active = null;
        this.activeDirty = false;
        for (const segment of this.segments) unlinkSync(segment.path);
        this.segments = [];
        await syncDir(this.dir);
        this.dirDirty = false;
      }
      // Cleared before any new segment exists, so recovery never deletes records written after.
      await writeMeta(this.dir, { firstIndex: nextIndex, resetting: false });
      this.first = nextIndex;
      this.last = nextIndex - 1;
    });
  }

  // ---- reading ----

  private async readSegments(): Promise<Entry[]> {
    const entries: Entry[] = [];
    for (const segment of this.segments) {
      const buffer = await readFile(segment.path);
      const skip = Math.max(0, this.first - segment.firstIndex);
      for (let i = skip; i < segment.offsets.length; i++) {
        const offset = segment.offsets[i]!;
        const record = readFrame(buffer, offset, segment.sizeBytes);
        if (record.kind !== 'ok') throw new WalCorruptError(segment.path, offset, describeBadFrame(record));
        entries.push(decodeRecord(segment.path, offset, buffer, record.payloadStart, record.end, segment.firstIndex + i));
      }
    }
    return entries;
  }
}

// ---- encoding ----

function encodeBatch(entries: readonly Entry[]): Batch {
  const first = entries[0]!;
  const payloads: Buffer[] = [];
  let totalBytes = 0;
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    checkEntry(entry);
    if (entry.index !== first.index + i) {
      throw new LogNotContiguousError(`entries of one append must be contiguous: index ${entry.index} follows ${first.index + i - 1}`);
    }
    const payload = encodeEntry(entry);
    payloads.push(payload);
    totalBytes += FRAME_HEADER_BYTES + payload.length;
  }
  const buffer = Buffer.allocUnsafe(totalBytes);
  const offsets: number[] = [];
  let position = 0;
  for (const payload of payloads) {
    offsets.push(position);
    position = writeFrame(buffer, position, payload);
  }
  invariant(position === totalBytes, 'the batch buffer is filled exactly');
  return { firstIndex: first.index, count: entries.length, buffer, offsets };
}

async function writeMeta(dir: string, meta: WalMeta): Promise<void> {
  await replaceFileDurably(dir, WAL_META_FILE, [frame(encodeValue({ firstIndex: meta.firstIndex, resetting: meta.resetting }))]);
}

async function readMeta(dir: string): Promise<WalMeta | null> {
  const path = join(dir, WAL_META_FILE);
  const buffer = await readFileIfExists(path);
  if (buffer === null) return null;
  const record = readFrame(buffer, 0, buffer.length);
  if (record.kind !== 'ok') throw new WalCorruptError(path, 0, describeBadFrame(record));
  if (record.end !== buffer.length) throw new WalCorruptError(path, record.end, 'unexpected bytes after the meta record');
  let value: unknown;
  try {
    value = decodeValue(buffer.subarray(record.payloadStart, record.end));
  } catch (error) {
    throw new WalCorruptError(path, 0, 'the meta record does not decode', { cause: error });
  }
  const { firstIndex, resetting } = (value ?? {}) as Record<string, unknown>;
  if (typeof firstIndex !== 'number' || !Number.isSafeInteger(firstIndex) || firstIndex < 1 || typeof resetting !== 'boolean') {
    throw new WalCorruptError(path, 0, 'the meta record does not hold {firstIndex, resetting}');
  }
  return { firstIndex, resetting };
}

function describeBadFrame(record: Exclude<FrameRead, { kind: 'ok' }>): string {
  switch (record.kind) {
    case 'truncated':
      return 'the record runs past the end of the file';
    case 'empty':
      return 'a record with a zero length';
    case 'checksum':
      return 'checksum mismatch';
  }
}

function decodeRecord(path: string, offset: number, buffer: Buffer, start: number, end: number, expectedIndex: number): Entry {
  let entry: Entry;
  try {
    entry = decodeEntry(buffer.subarray(start, end));
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw new WalCorruptError(path, offset, `the checksum matches but the record does not decode as an entry (${detail})`, { cause: error });
  }
  if (entry.index !== expectedIndex) {
    throw new WalCorruptError(path, offset, `the record holds index ${entry.index} where index ${expectedIndex} belongs`);
  }
  return entry;
}

// ---- recovery ----

interface RecoveredLog {
  readonly segments: Segment[];
  readonly active: { readonly segment: Segment; readonly fd: number } | null;
  readonly first: number;
  readonly last: number;
  /** The entries from `first` on. */
  readonly entries: Entry[];
}

interface SegmentFile {
  readonly firstIndex: number;
  readonly path: string;
}

async function recover(dir: string, logger: (msg: string) => void): Promise<RecoveredLog> {
  let meta = await readMeta(dir);
  let files: SegmentFile[] = (await readdir(dir))
    .filter((name) => SEGMENT_NAME.test(name))
    .sort() // zero-padded, so the text order is the numeric order
    .map((name) => ({ firstIndex: Number(name.slice(0, INDEX_DIGITS)), path: join(dir, name) }));
  for (const file of files) {
    if (!Number.isSafeInteger(file.firstIndex) || file.firstIndex < 1) {
      throw new WalCorruptError(file.path, 0, 'the segment name is not an index between 1 and 2^53-1');
    }
  }
  let dirChanged = false;

  if (meta !== null && meta.resetting) {
    logger(`wal: ${dir}: finishing an interrupted reset to index ${meta.firstIndex}: deleting ${files.length} segment(s)`);
    for (const file of files) await unlink(file.path);
    files = [];
    await syncDir(dir);
    meta = { firstIndex: meta.firstIndex, resetting: false };
    await writeMeta(dir, meta);
  }

  const first = meta?.firstIndex ?? files[0]?.firstIndex ?? 1;
  // Whole segments before the one that holds `first` are leftovers of an interrupted compaction.
  while (files.length >= 2 && files[1]!.firstIndex <= first) {
    const leftover = files.shift()!;
    logger(`wal: ${leftover.path}: deleting a segment compacted away before a restart`);
    await unlink(leftover.path);
    dirChanged = true;
  }
  const head = files[0];
  if (head !== undefined && head.firstIndex > first) {
    throw new WalCorruptError(head.path, 0, `the log starts at index ${first} (${WAL_META_FILE}) but its first segment starts at ${head.firstIndex}`);
  }

  const segments: Segment[] = [];
  const entries: Entry[] = [];
  let activeFd: number | null = null;
  try {
    for (let i = 0; i < files.length; i++) {
      const file = files[i]!;
      const previous = segments[segments.length - 1];
      if (previous !== undefined && file.firstIndex !== segmentLastIndex(previous) + 1) {
        throw new WalCorruptError(file.path, 0, `the segment starts at index ${file.firstIndex} but the previous one ends at ${segmentLastIndex(previous)}`);
      }
      const isLast = i === files.length - 1;
      const buffer = await readFile(file.path);
      const scan = scanSegment(file, buffer, isLast, first, entries);
      if (isLast) activeFd = openSync(file.path, 'r+');
      if (scan.tornAt !== null) {
        invariant(activeFd !== null, 'only the last segment has a torn tail');
        logger(`wal: ${file.path}: cutting off a torn record at byte offset ${scan.tornAt} (${scan.tornReason}); ${buffer.length - scan.tornAt} bytes discarded`);
        ftruncateSync(activeFd, scan.tornAt);
        await fdatasyncAsync(activeFd); // before anything new is written where the torn bytes were
      }
      const sizeBytes = scan.tornAt ?? scan.zerosFrom ?? buffer.length;
      segments.push({ firstIndex: file.firstIndex, path: file.path, offsets: scan.offsets, sizeBytes, allocatedBytes: scan.tornAt ?? buffer.length });
    }

    let last = segments.length > 0 ? segmentLastIndex(segments[segments.length - 1]!) : first - 1;
    if (segments.length > 0 && last < first) {
      // Everything left is below the first index: compact() removed the records past the end
      // of the log, or would have, but for a crash.
      invariant(segments.length === 1, 'a single leftover segment');
      const leftover = segments.pop()!;
      logger(`wal: ${leftover.path}: deleting a segment compacted away before a restart`);
      closeSync(activeFd!);
      activeFd = null;
      await unlink(leftover.path);
      dirChanged = true;
      last = first - 1;
    }
    if (dirChanged) await syncDir(dir);

    const lastSegment = segments[segments.length - 1];
    const active = lastSegment !== undefined && activeFd !== null ? { segment: lastSegment, fd: activeFd } : null;
    return { segments, active, first, last, entries };
  } catch (error) {
    if (activeFd !== null) closeSync(activeFd);
    throw error;
  }
}

interface SegmentScan {
  readonly offsets: number[];
  /** Where a torn tail starts (the file is cut there), or null. */
  readonly tornAt: number | null;
  readonly tornReason: string;
  /** Where the preallocated zeros after the last record start (last segment only), or null. */
  readonly zerosFrom: number | null;
}

/** Reads every record of one segment, appending those at or after `first` to `out`. */
function scanSegment(file: SegmentFile, buffer: Buffer, isLast: boolean, first: number, out: Entry[]): SegmentScan {
  const offsets: number[] = [];
  let position = 0;
  let index = file.firstIndex;
  while (position < buffer.length) {
    const record = readFrame(buffer, position, buffer.length);
    if (record.kind === 'ok') {
      // A record whose checksum matches is what was written; if it does not decode, that is
      // never a torn write.
      const entry = decodeRecord(file.path, position, buffer, record.payloadStart, record.end, index);
      offsets.push(position);
      if (index >= first) out.push(entry);
      index++;
      position = record.end;
      continue;
    }
    // The last segment's preallocated zeros: the end of the log, nothing torn.
    if (isLast && isZeroFrom(buffer, position)) return { offsets, tornAt: null, tornReason: '', zerosFrom: position };
    const reason = describeBadFrame(record);
    // A torn write can only be the tail of the last segment (older segments were made durable
    // before the next one was started), and nothing valid follows it.
    if (!isLast || findRecordAfter(buffer, position + 1, index) !== null) {
      throw new WalCorruptError(file.path, position, reason);
    }
    return { offsets, tornAt: position, tornReason: reason, zerosFrom: null };
  }
  return { offsets, tornAt: null, tornReason: '', zerosFrom: null };
}

/** Whether every byte of `buffer` from `from` on is zero. */
function isZeroFrom(buffer: Buffer, from: number): boolean {
  for (let position = from; position < buffer.length; position++) {
    if (buffer[position] !== 0) return false;
  }
  return true;
}

/**
 * The offset of the first valid record (checksum matches, decodes as an entry with index >=
 * `indexMin`) starting anywhere from `from` on, or null. The bad record's own length field
 * cannot be trusted to say where the next record starts, so every offset is tried; this runs
 * only when recovery meets a bad record.
 */
function findRecordAfter(buffer: Buffer, from: number, indexMin: number): number | null {
  for (let position = from; position + FRAME_HEADER_BYTES < buffer.length; position++) {
    const length = buffer.readUInt32LE(position);
    if (length === 0 || position + FRAME_HEADER_BYTES + length > buffer.length) continue;
    const marker = buffer[position + FRAME_HEADER_BYTES]!;
    // Entries are msgpack maps (fixmap, map16, map32): a cheap filter before the checksum.
    if (!((marker >= 0x80 && marker <= 0x8f) || marker === 0xde || marker === 0xdf)) continue;
    const record = readFrame(buffer, position, buffer.length);
    if (record.kind !== 'ok') continue;
    try {
      const entry = decodeEntry(buffer.subarray(record.payloadStart, record.end));
      if (entry.index >= indexMin) return position;
    } catch {
      // not an entry: keep looking
    }
  }
  return null;
}

let zeros: Buffer = Buffer.alloc(0);

/** `bytes` zero bytes (a view of one shared buffer: never written to). */
function zeroBytes(bytes: number): Buffer {
  if (zeros.length < bytes) zeros = Buffer.alloc(bytes);
  return zeros.subarray(0, bytes);
}
