// Runs the store contracts against the file stores (in temporary directories) and the memory stores.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryLogMedium, MemoryLogStore, MemorySnapshotMedium, MemorySnapshotStore, MemoryStableMedium, MemoryStableStore } from '../../src/storage/memory.ts';
import { FileSnapshotStore } from '../../src/storage/snapshot-store.ts';
import { FileStableStore } from '../../src/storage/stable-store.ts';
import { FileLogStore } from '../../src/storage/wal.ts';
import { logStoreContract, snapshotStoreContract, stableStoreContract } from './contracts.ts';
import type { StoreMedium } from './contracts.ts';

async function tempDirMedium<S>(open: (dir: string) => Promise<S>): Promise<StoreMedium<S>> {
  const dir = await mkdtemp(join(tmpdir(), 'chorus-storage-'));
  return { open: () => open(dir), dispose: () => rm(dir, { recursive: true, force: true }) };
}

const quiet = { logger: () => undefined };

logStoreContract('FileLogStore', () => tempDirMedium((dir) => FileLogStore.open(dir, quiet)));
// Small segments, so that every case also crosses segment boundaries.
logStoreContract('FileLogStore with 256-byte segments', () => tempDirMedium((dir) => FileLogStore.open(dir, { ...quiet, segmentBytesMax: 256 })));
// Preallocation in small chunks (extended every few appends), and none at all.
logStoreContract('FileLogStore with 2 KiB segments preallocated 300 bytes at a time', () => tempDirMedium((dir) => FileLogStore.open(dir, { ...quiet, segmentBytesMax: 2048, preallocateBytes: 300 })));
logStoreContract('FileLogStore without preallocation', () => tempDirMedium((dir) => FileLogStore.open(dir, { ...quiet, preallocateBytes: 0 })));
logStoreContract('MemoryLogStore', () => {
  const medium = new MemoryLogMedium();
  return { open: () => MemoryLogStore.open(medium) };
});

stableStoreContract('FileStableStore', () => tempDirMedium((dir) => FileStableStore.open(dir)));
stableStoreContract('MemoryStableStore', () => {
  const medium = new MemoryStableMedium();
  return { open: () => MemoryStableStore.open(medium) };
});

snapshotStoreContract('FileSnapshotStore', () => tempDirMedium((dir) => FileSnapshotStore.open(dir)));
snapshotStoreContract('MemorySnapshotStore', () => {
  const medium = new MemorySnapshotMedium();
  return { open: () => MemorySnapshotStore.open(medium) };
});
