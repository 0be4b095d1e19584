// The latest snapshot of a Raft member: one file, replaced atomically, checksummed as a whole.
// Format and durability order: docs/storage-format.md.
//
//   [u32 meta length][meta: msgpack {index, term, config}][u64 data length][data][u32 CRC32C]
//
// All integers little-endian; the CRC32C covers every byte before it.
import { join } from 'node:path';
import type { Snapshot } from '../core/raft/types.ts';
import type { SnapshotStore } from '../ports/index.ts';
import { checkSnapshot, decodeSnapshotMeta, encodeSnapshotMeta } from './codec.ts';
import { crc32cUpdate } from './crc32c.ts';
import { SnapshotCorruptError, StoreClosedError } from './errors.ts';
import { ensureDir, readFileIfExists, removeIfExists, replaceFileDurably } from './fsio.ts';

export const SNAPSHOT_FILE = 'snapshot';
const META_LENGTH_BYTES = 4;
const DATA_LENGTH_BYTES = 8;
const CRC_BYTES = 4;
/** The checksum of a large snapshot is computed in slices of this size, yielding to the event
 * loop in between, so that a gigabyte of state does not stall the network for a second. */
const CHECKSUM_SLICE_BYTES = 4 * 1024 * 1024;

export class FileSnapshotStore implements SnapshotStore {
  private readonly dir: string;
  /** Calls run one at a time, in call order. Never rejects. */
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** Opens (creating if needed) the store in `dir`. It may share `dir` with the other stores. */
  static async open(dir: string): Promise<FileSnapshotStore> {
    await ensureDir(dir);
    // A temporary file is never authoritative: its save did not return.
    await removeIfExists(join(dir, `${SNAPSHOT_FILE}.tmp`));
    return new FileSnapshotStore(dir);
  }

  load(): Promise<Snapshot | null> {
    return this.serialize(async () => {
      const path = join(this.dir, SNAPSHOT_FILE);
      const file = await readFileIfExists(path);
      if (file === null) return null;
      return parseSnapshot(path, file);
    });
  }

  /** Replaces the stored snapshot. `snapshot.data` is read while the save runs: do not change it
   * before the returned promise settles. */
  save(snapshot: Snapshot): Promise<void> {
    try {
      checkSnapshot(snapshot);
    } catch (error) {
      return Promise.reject(error);
    }
    const meta = encodeSnapshotMeta(snapshot.meta);
    return this.serialize(async () => {
      const header = Buffer.allocUnsafe(META_LENGTH_BYTES + meta.length + DATA_LENGTH_BYTES);
      header.writeUInt32LE(meta.length, 0);
      header.set(meta, META_LENGTH_BYTES);
      header.writeBigUInt64LE(BigInt(snapshot.data.length), META_LENGTH_BYTES + meta.length);
      const trailer = Buffer.allocUnsafe(CRC_BYTES);
      trailer.writeUInt32LE(await checksum([header, snapshot.data]), 0);
      await replaceFileDurably(this.dir, SNAPSHOT_FILE, [header, snapshot.data, trailer]);
    });
  }

  close(): Promise<void> {
    this.closed = true;
    return this.tail.then(() => undefined);
  }

  private serialize<T>(op: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new StoreClosedError('FileSnapshotStore'));
    const result = this.tail.then(op);
    this.tail = result.catch(() => undefined); // one failed call does not fail the next
    return result;
  }
}

async function checksum(parts: readonly Uint8Array[]): Promise<number> {
  let crc = 0;
  let sinceYield = 0;
  for (const part of parts) {
    for (let start = 0; start < part.length; start += CHECKSUM_SLICE_BYTES) {
      const end = Math.min(part.length, start + CHECKSUM_SLICE_BYTES);
      crc = crc32cUpdate(crc, part, start, end);
      sinceYield += end - start;
      if (sinceYield >= CHECKSUM_SLICE_BYTES) {
        sinceYield = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
  }
  return crc;
}

async function parseSnapshot(path: string, file: Buffer): Promise<Snapshot> {
  const minimumBytes = META_LENGTH_BYTES + 1 + DATA_LENGTH_BYTES + CRC_BYTES;
  if (file.length < minimumBytes) throw new SnapshotCorruptError(path, `${file.length} bytes is too short for a snapshot`);
  const crcOffset = file.length - CRC_BYTES;
  if ((await checksum([file.subarray(0, crcOffset)])) !== file.readUInt32LE(crcOffset)) {
    throw new SnapshotCorruptError(path, 'checksum mismatch');
  }
  // The checksum matches, so what follows can only fail if the file was not written by us.
  const metaLength = file.readUInt32LE(0);
  const dataLengthOffset = META_LENGTH_BYTES + metaLength;
  if (dataLengthOffset + DATA_LENGTH_BYTES > crcOffset) throw new SnapshotCorruptError(path, 'the meta length runs past the end');
  const dataLength = file.readBigUInt64LE(dataLengthOffset);
  const dataOffset = dataLengthOffset + DATA_LENGTH_BYTES;
  if (BigInt(crcOffset - dataOffset) !== dataLength) {
    throw new SnapshotCorruptError(path, `the data length ${dataLength} does not match the file size ${file.length}`);
  }
  let meta;
  try {
    meta = decodeSnapshotMeta(file.subarray(META_LENGTH_BYTES, dataLengthOffset));
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw new SnapshotCorruptError(path, `the meta does not decode (${detail})`, { cause: error });
  }
  // A view, not a copy: the file buffer belongs to this snapshot alone.
  return { meta, data: file.subarray(dataOffset, crcOffset) };
}
