// The public surface of the durable stores. Format and durability order: docs/storage-format.md.
export { crc32c, crc32cUpdate } from './crc32c.ts';
export {
  InvalidRecordError,
  LogNotContiguousError,
  SnapshotCorruptError,
  StableCorruptError,
  StorageError,
  StoreClosedError,
  StoreFailedError,
  WalCorruptError,
} from './errors.ts';
export type { StorageErrorCode } from './errors.ts';
export { MemoryLogMedium, MemoryLogStore, MemorySnapshotMedium, MemorySnapshotStore, MemoryStableMedium, MemoryStableStore } from './memory.ts';
export { FileSnapshotStore, SNAPSHOT_FILE } from './snapshot-store.ts';
export { FileStableStore, HARD_STATE_FILE } from './stable-store.ts';
export { FileLogStore, SEGMENT_BYTES_MAX_DEFAULT, segmentFileName, WAL_META_FILE } from './wal.ts';
export type { FileLogStoreOptions } from './wal.ts';
