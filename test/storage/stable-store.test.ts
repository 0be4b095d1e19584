// File-specific behaviour of FileStableStore: the on-disk format and corruption detection.
import assert from 'node:assert/strict';
import { readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { unpack } from 'msgpackr';
import { crc32c } from '../../src/storage/crc32c.ts';
import { StableCorruptError } from '../../src/storage/errors.ts';
import { frame } from '../../src/storage/frame.ts';
import { FileStableStore, HARD_STATE_FILE } from '../../src/storage/stable-store.ts';
import { editFile, flipBit, withTempDir } from './helpers.ts';

async function expectCorrupt(dir: string): Promise<void> {
  const store = await FileStableStore.open(dir);
  await assert.rejects(store.load(), (error: unknown) => {
    assert.ok(error instanceof StableCorruptError, `a StableCorruptError, got ${String(error)}`);
    assert.equal(error.code, 'CHORUS_STABLE_CORRUPT');
    assert.equal(error.file, join(dir, HARD_STATE_FILE));
    assert.match(error.message, new RegExp(HARD_STATE_FILE));
    return true;
  });
  await store.close();
}

async function saveOne(dir: string): Promise<void> {
  const store = await FileStableStore.open(dir);
  await store.save({ term: 7, vote: 'node-a', commit: 42 });
  await store.close();
}

test('the file is one frame: [u32 length][u32 CRC32C][msgpack {term, vote, commit}]', async () => {
  await withTempDir(async (dir) => {
    await saveOne(dir);
    const bytes = await readFile(join(dir, HARD_STATE_FILE));
    const length = bytes.readUInt32LE(0);
    assert.equal(bytes.length, 8 + length);
    assert.equal(bytes.readUInt32LE(4), crc32c(bytes.subarray(8)));
    assert.deepEqual(unpack(bytes.subarray(8)), { term: 7, vote: 'node-a', commit: 42 });
    assert.deepEqual(await readdir(dir), [HARD_STATE_FILE], 'no temporary file is left behind');
  });
});

test('a flipped bit is CHORUS_STABLE_CORRUPT', async () => {
  for (const offset of [0, 5, 9, 20]) {
    await withTempDir(async (dir) => {
      await saveOne(dir);
      await flipBit(join(dir, HARD_STATE_FILE), offset);
      await expectCorrupt(dir);
    });
  }
});

test('a cut-short file is CHORUS_STABLE_CORRUPT', async () => {
  await withTempDir(async (dir) => {
    await saveOne(dir);
    const path = join(dir, HARD_STATE_FILE);
    await truncate(path, (await stat(path)).size - 1);
    await expectCorrupt(dir);
  });
});

test('bytes after the record are CHORUS_STABLE_CORRUPT', async () => {
  await withTempDir(async (dir) => {
    await saveOne(dir);
    await editFile(join(dir, HARD_STATE_FILE), (bytes) => Buffer.concat([bytes, Buffer.from([0])]));
    await expectCorrupt(dir);
  });
});

test('a record that checks out but is not a hard state is CHORUS_STABLE_CORRUPT', async () => {
  await withTempDir(async (dir) => {
    await writeFile(join(dir, HARD_STATE_FILE), frame(Buffer.from([0x92, 0x01, 0x02]))); // msgpack [1, 2]
    await expectCorrupt(dir);
  });
});

test('a leftover temporary file is removed at open and never read', async () => {
  await withTempDir(async (dir) => {
    await saveOne(dir);
    await writeFile(join(dir, `${HARD_STATE_FILE}.tmp`), Buffer.from('half a save'));
    const store = await FileStableStore.open(dir);
    assert.deepEqual(await readdir(dir), [HARD_STATE_FILE]);
    assert.deepEqual(await store.load(), { term: 7, vote: 'node-a', commit: 42 });
    await store.close();
  });
});

test('open creates missing directories', async () => {
  await withTempDir(async (dir) => {
    const nested = join(dir, 'a', 'b');
    const store = await FileStableStore.open(nested);
    await store.save({ term: 1, vote: null, commit: 0 });
    await store.close();
    assert.deepEqual(await readdir(nested), [HARD_STATE_FILE]);
  });
});
