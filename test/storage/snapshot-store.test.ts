// File-specific behaviour of FileSnapshotStore: the on-disk format and corruption detection.
import assert from 'node:assert/strict';
import { readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { unpack } from 'msgpackr';
import type { Snapshot } from '../../src/core/raft/types.ts';
import { crc32c } from '../../src/storage/crc32c.ts';
import { SnapshotCorruptError } from '../../src/storage/errors.ts';
import { FileSnapshotStore, SNAPSHOT_FILE } from '../../src/storage/snapshot-store.ts';
import { pseudoRandomBytes } from './contracts.ts';
import { flipBit, withTempDir } from './helpers.ts';

const snapshot: Snapshot = {
  meta: { index: 99, term: 5, config: { voters: ['a', 'b', 'c'], learners: [] } },
  data: pseudoRandomBytes(10_000, 5),
};

async function saveOne(dir: string): Promise<void> {
  const store = await FileSnapshotStore.open(dir);
  await store.save(snapshot);
  await store.close();
}

async function expectCorrupt(dir: string): Promise<void> {
  const store = await FileSnapshotStore.open(dir);
  await assert.rejects(store.load(), (error: unknown) => {
    assert.ok(error instanceof SnapshotCorruptError, `a SnapshotCorruptError, got ${String(error)}`);
    assert.equal(error.code, 'CHORUS_SNAPSHOT_CORRUPT');
    assert.equal(error.file, join(dir, SNAPSHOT_FILE));
    return true;
  });
  await store.close();
}

test('the file is [u32 meta length][meta msgpack][u64 data length][data][u32 CRC32C of all before]', async () => {
  await withTempDir(async (dir) => {
    await saveOne(dir);
    const bytes = await readFile(join(dir, SNAPSHOT_FILE));
    const metaLength = bytes.readUInt32LE(0);
    assert.deepEqual(unpack(bytes.subarray(4, 4 + metaLength)), snapshot.meta);
    const dataLength = Number(bytes.readBigUInt64LE(4 + metaLength));
    assert.equal(dataLength, snapshot.data.length);
    const dataStart = 4 + metaLength + 8;
    assert.ok(Buffer.from(snapshot.data).equals(bytes.subarray(dataStart, dataStart + dataLength)));
    assert.equal(bytes.length, dataStart + dataLength + 4);
    assert.equal(bytes.readUInt32LE(bytes.length - 4), crc32c(bytes, 0, bytes.length - 4));
  });
});

test('a flipped bit anywhere is CHORUS_SNAPSHOT_CORRUPT', async () => {
  await withTempDir(async (dir) => {
    await saveOne(dir);
    const size = (await stat(join(dir, SNAPSHOT_FILE))).size;
    for (const offset of [0, 6, 60, 5000, size - 1]) {
      await saveOne(dir);
      await flipBit(join(dir, SNAPSHOT_FILE), offset);
      await expectCorrupt(dir);
    }
  });
});

test('a cut-short file is CHORUS_SNAPSHOT_CORRUPT', async () => {
  await withTempDir(async (dir) => {
    await saveOne(dir);
    const path = join(dir, SNAPSHOT_FILE);
    await truncate(path, (await stat(path)).size - 100);
    await expectCorrupt(dir);
    await truncate(path, 3);
    await expectCorrupt(dir);
  });
});

test('only one snapshot file is kept and no temporary file is left behind', async () => {
  await withTempDir(async (dir) => {
    const store = await FileSnapshotStore.open(dir);
    for (let index = 1; index <= 5; index++) {
      await store.save({ meta: { index, term: 1, config: { voters: ['a'], learners: [] } }, data: pseudoRandomBytes(100, index) });
    }
    assert.deepEqual(await readdir(dir), [SNAPSHOT_FILE]);
    assert.equal((await store.load())?.meta.index, 5);
    await store.close();
  });
});

test('a leftover temporary file is removed at open and never read', async () => {
  await withTempDir(async (dir) => {
    await saveOne(dir);
    await writeFile(join(dir, `${SNAPSHOT_FILE}.tmp`), Buffer.from('half a snapshot'));
    const store = await FileSnapshotStore.open(dir);
    assert.deepEqual(await readdir(dir), [SNAPSHOT_FILE]);
    assert.equal((await store.load())?.meta.index, 99);
    await store.close();
  });
});

test('a snapshot larger than one checksum slice round-trips', async () => {
  await withTempDir(async (dir) => {
    const big: Snapshot = { meta: snapshot.meta, data: pseudoRandomBytes(9 * 1024 * 1024 + 3, 8) };
    const store = await FileSnapshotStore.open(dir);
    await store.save(big);
    const loaded = await store.load();
    assert.ok(loaded !== null && Buffer.from(big.data).equals(loaded.data));
    await store.close();
  });
});
