// File-specific behaviour of FileLogStore: recovery from torn tails and corruption, segment
// rollover, truncation across segments, compaction, and the crash states of compaction and reset.
import assert from 'node:assert/strict';
import { closeSync } from 'node:fs';
import { readFile, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { pack, unpack } from 'msgpackr';
import type { Entry } from '../../src/core/raft/types.ts';
import { WalCorruptError } from '../../src/storage/errors.ts';
import { frame, FRAME_HEADER_BYTES } from '../../src/storage/frame.ts';
import { FileLogStore, segmentFileName, WAL_META_FILE } from '../../src/storage/wal.ts';
import type { FileLogStoreOptions } from '../../src/storage/wal.ts';
import { assertEntries, entryRange, normalEntry } from './contracts.ts';
import { editFile, flipBit, recordOffsets, segmentNames, withTempDir } from './helpers.ts';

interface Opened {
  store: FileLogStore;
  warnings: string[];
}

// The byte-level tests below cut and edit files that end with their last record, so they turn
// preallocation off unless they test it (the preallocation tests at the end pass it).
async function openLog(dir: string, options: FileLogStoreOptions = {}): Promise<Opened> {
  const warnings: string[] = [];
  const store = await FileLogStore.open(dir, { logger: (msg) => warnings.push(msg), preallocateBytes: 0, ...options });
  return { store, warnings };
}

/** Writes `entries` in batches of `batchSize`, syncs and closes. */
async function writeLog(dir: string, entries: readonly Entry[], options: FileLogStoreOptions = {}, batchSize = entries.length): Promise<void> {
  const { store } = await openLog(dir, options);
  for (let i = 0; i < entries.length; i += batchSize) await store.append(entries.slice(i, i + batchSize));
  await store.sync();
  await store.close();
}

async function expectCorrupt(dir: string, file: string, offset: number, options: FileLogStoreOptions = {}, reason?: RegExp): Promise<void> {
  await assert.rejects(openLog(dir, options), (error: unknown) => {
    assert.ok(error instanceof WalCorruptError, `a WalCorruptError, got ${String(error)}`);
    assert.equal(error.code, 'CHORUS_WAL_CORRUPT');
    assert.equal(error.file, join(dir, file));
    assert.equal(error.offset, offset);
    assert.match(error.message, new RegExp(`${file}.*byte offset ${offset}\\b`));
    if (reason !== undefined) assert.match(error.message, reason);
    return true;
  });
}

const FIRST_SEGMENT = segmentFileName(1);

test('segment files are named by their first index, zero-padded to 20 digits', () => {
  assert.equal(segmentFileName(1), '00000000000000000001.wal');
  assert.equal(segmentFileName(1234), '00000000000000001234.wal');
});

test('a torn last record is cut off at reopen with a warning; the entries before it survive', async () => {
  await withTempDir(async (dir) => {
    await writeLog(dir, entryRange(1, 10, 1));
    const path = join(dir, FIRST_SEGMENT);
    const offsets = recordOffsets(await readFile(path));
    const { size } = await stat(path);
    await truncate(path, size - 3);

    const { store, warnings } = await openLog(dir);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, new RegExp(`${FIRST_SEGMENT}.*torn record at byte offset ${offsets[9]}`));
    assert.equal(store.lastIndex(), 9);
    assertEntries(await store.readAll(), entryRange(1, 9, 1));
    assert.equal((await stat(path)).size, offsets[9], 'the torn bytes are gone from the file');

    await store.append([normalEntry(10, 2)]);
    await store.sync();
    await store.close();
    const reopened = await openLog(dir);
    assert.deepEqual(reopened.warnings, []);
    assertEntries(await reopened.store.readAll(), [...entryRange(1, 9, 1), normalEntry(10, 2)]);
    await reopened.store.close();
  });
});

test('a last record cut inside its header is a torn record too', async () => {
  await withTempDir(async (dir) => {
    await writeLog(dir, entryRange(1, 5, 1));
    const path = join(dir, FIRST_SEGMENT);
    const offsets = recordOffsets(await readFile(path));
    await truncate(path, offsets[4]! + 5);
    const { store, warnings } = await openLog(dir);
    assert.equal(warnings.length, 1);
    assertEntries(await store.readAll(), entryRange(1, 4, 1));
    await store.close();
  });
});

test('a checksum mismatch on the very last record is a torn record', async () => {
  await withTempDir(async (dir) => {
    await writeLog(dir, entryRange(1, 5, 1));
    const path = join(dir, FIRST_SEGMENT);
    const offsets = recordOffsets(await readFile(path));
    await flipBit(path, offsets[4]! + FRAME_HEADER_BYTES + 3);
    const { store, warnings } = await openLog(dir);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /checksum mismatch/);
    assertEntries(await store.readAll(), entryRange(1, 4, 1));
    await store.close();
  });
});

test('a zero-filled tail (preallocated, or grown but its data never reached the disk) ends the log; appends go into it', async () => {
  await withTempDir(async (dir) => {
    await writeLog(dir, entryRange(1, 5, 1));
    const path = join(dir, FIRST_SEGMENT);
    const before = (await stat(path)).size;
    await editFile(path, (bytes) => Buffer.concat([bytes, Buffer.alloc(4096)]));
    const { store, warnings } = await openLog(dir);
    assert.deepEqual(warnings, [], 'zeros are not damage');
    assertEntries(await store.readAll(), entryRange(1, 5, 1));
    assert.equal((await stat(path)).size, before + 4096, 'the zeros are kept');
    await store.append([normalEntry(6, 1)]);
    await store.sync();
    await store.close();
    assert.equal((await stat(path)).size, before + 4096, 'the record went into the zeros');
    const reopened = await openLog(dir);
    assert.deepEqual(reopened.warnings, []);
    assertEntries(await reopened.store.readAll(), entryRange(1, 6, 1));
    await reopened.store.close();
  });
});

test('a flipped bit in the middle of a segment is corruption naming the file and offset', async () => {
  await withTempDir(async (dir) => {
    await writeLog(dir, entryRange(1, 10, 1));
    const path = join(dir, FIRST_SEGMENT);
    const offsets = recordOffsets(await readFile(path));
    await flipBit(path, offsets[4]! + FRAME_HEADER_BYTES + 6);
    await expectCorrupt(dir, FIRST_SEGMENT, offsets[4]!);
  });
});

test('a flipped bit in a length field in the middle of a segment is corruption, not a torn tail', async () => {
  await withTempDir(async (dir) => {
    await writeLog(dir, entryRange(1, 10, 1));
    const path = join(dir, FIRST_SEGMENT);
    const offsets = recordOffsets(await readFile(path));
    // Bit 30 of the length: the record now claims to run far past the end of the file.
    await editFile(path, (bytes) => {
      bytes[offsets[4]! + 3] = bytes[offsets[4]! + 3]! ^ 0x40;
      return bytes;
    });
    await expectCorrupt(dir, FIRST_SEGMENT, offsets[4]!);
  });
});

test('damage to the last record of a segment that is not the last is corruption', async () => {
  await withTempDir(async (dir) => {
    const options = { segmentBytesMax: 200 };
    await writeLog(dir, entryRange(1, 30, 1), options, 3);
    const names = await segmentNames(dir);
    assert.ok(names.length >= 3, `several segments, got ${names.length}`);
    const path = join(dir, names[0]!);
    const offsets = recordOffsets(await readFile(path));
    const lastOffset = offsets[offsets.length - 1]!;
    await flipBit(path, lastOffset + FRAME_HEADER_BYTES + 2);
    await expectCorrupt(dir, names[0]!, lastOffset, options);
  });
});

test('a record whose checksum matches but which is not an entry is corruption, even at the tail', async () => {
  await withTempDir(async (dir) => {
    await writeLog(dir, entryRange(1, 3, 1));
    const path = join(dir, FIRST_SEGMENT);
    const size = (await stat(path)).size;
    await editFile(path, (bytes) => Buffer.concat([bytes, frame(pack({ hello: 'world' }))]));
    await expectCorrupt(dir, FIRST_SEGMENT, size);
  });
});

test('a record holding the wrong index is corruption', async () => {
  await withTempDir(async (dir) => {
    await writeLog(dir, entryRange(1, 3, 1));
    const path = join(dir, FIRST_SEGMENT);
    const size = (await stat(path)).size;
    await editFile(path, (bytes) => Buffer.concat([bytes, frame(pack({ index: 7, term: 1, type: 'noop' }))]));
    await expectCorrupt(dir, FIRST_SEGMENT, size);
  });
});

test('segments roll over at segmentBytesMax and recovery reads across all of them', async () => {
  await withTempDir(async (dir) => {
    const options = { segmentBytesMax: 300 };
    const entries = entryRange(1, 100, 1);
    await writeLog(dir, entries, options, 3);
    const names = await segmentNames(dir);
    assert.ok(names.length >= 10, `many segments, got ${names.length}`);
    let expectedFirst = 1;
    for (const [i, name] of names.entries()) {
      const bytes = await readFile(join(dir, name));
      const offsets = recordOffsets(bytes);
      const firstRecord = unpack(bytes.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + bytes.readUInt32LE(0))) as Entry;
      assert.equal(name, segmentFileName(firstRecord.index), 'named by its first index');
      assert.equal(firstRecord.index, expectedFirst, 'segments are contiguous');
      if (i < names.length - 1) assert.ok(bytes.length >= 300, `${name} was full before the next one started`);
      expectedFirst += offsets.length;
    }
    assert.equal(expectedFirst, 101);

    const { store, warnings } = await openLog(dir, options);
    assert.deepEqual(warnings, []);
    assert.equal(store.firstIndex(), 1);
    assert.equal(store.lastIndex(), 100);
    assertEntries(await store.readAll(), entries);
    await store.close();
  });
});

test('a torn tail in the last of several segments is cut off', async () => {
  await withTempDir(async (dir) => {
    const options = { segmentBytesMax: 300 };
    await writeLog(dir, entryRange(1, 50, 1), options, 3);
    const names = await segmentNames(dir);
    const lastPath = join(dir, names[names.length - 1]!);
    await truncate(lastPath, (await stat(lastPath)).size - 1);
    const { store, warnings } = await openLog(dir, options);
    assert.equal(warnings.length, 1);
    assertEntries(await store.readAll(), entryRange(1, 49, 1));
    await store.close();
  });
});

test('truncation across a segment boundary deletes the later segments', async () => {
  await withTempDir(async (dir) => {
    const options = { segmentBytesMax: 300 };
    await writeLog(dir, entryRange(1, 60, 1), options, 3);
    const namesBefore = await segmentNames(dir);
    const secondFirst = Number(namesBefore[1]!.slice(0, 20));
    const cut = secondFirst + 1; // inside the second segment

    const { store } = await openLog(dir, options);
    await store.append(entryRange(cut, cut + 1, 2));
    assert.equal(store.lastIndex(), cut + 1);
    const namesAfter = await segmentNames(dir);
    assert.deepEqual(namesAfter, namesBefore.slice(0, 2), 'segments after the cut are gone');
    const expected = [...entryRange(1, cut - 1, 1), ...entryRange(cut, cut + 1, 2)];
    assertEntries(await store.readAll(), expected);
    // Appending on from there rolls over into fresh segments again.
    const more = entryRange(cut + 2, 80, 2);
    for (let i = 0; i < more.length; i += 3) await store.append(more.slice(i, i + 3));
    await store.sync();
    await store.close();

    const reopened = await openLog(dir, options);
    assert.deepEqual(reopened.warnings, []);
    assertEntries(await reopened.store.readAll(), [...expected, ...more]);
    // A cut exactly at the first index of a segment empties it and deletes the rest.
    const names = await segmentNames(dir);
    assert.ok(names.length > 3);
    const thirdFirst = Number(names[2]!.slice(0, 20));
    await reopened.store.append([normalEntry(thirdFirst, 3)]);
    await reopened.store.sync();
    await reopened.store.close();
    assert.deepEqual(await segmentNames(dir), names.slice(0, 3));
    const again = await openLog(dir, options);
    assertEntries(await again.store.readAll(), [...[...expected, ...more].slice(0, thirdFirst - 1), normalEntry(thirdFirst, 3)]);
    await again.store.close();
  });
});

test('compaction deletes whole segments only and firstIndex survives a reopen', async () => {
  await withTempDir(async (dir) => {
    const options = { segmentBytesMax: 300 };
    await writeLog(dir, entryRange(1, 60, 1), options, 3);
    const names = await segmentNames(dir);
    const thirdFirst = Number(names[2]!.slice(0, 20));
    const index = thirdFirst + 1; // inside the third segment

    const { store } = await openLog(dir, options);
    await store.compact(index);
    assert.deepEqual(await segmentNames(dir), names.slice(2), 'the two segments entirely <= index are gone, the third stays');
    assert.equal(store.firstIndex(), index + 1);
    await store.close();

    const reopened = await openLog(dir, options);
    assert.deepEqual(reopened.warnings, []);
    assert.equal(reopened.store.firstIndex(), index + 1);
    assert.equal(reopened.store.lastIndex(), 60);
    assertEntries(await reopened.store.readAll(), entryRange(index + 1, 60, 1));
    await reopened.store.close();
  });
});

test('a missing segment in the middle is corruption', async () => {
  await withTempDir(async (dir) => {
    const options = { segmentBytesMax: 300 };
    await writeLog(dir, entryRange(1, 60, 1), options, 3);
    const names = await segmentNames(dir);
    await unlink(join(dir, names[1]!));
    await expectCorrupt(dir, names[2]!, 0, options);
  });
});

test('recovery finishes an interrupted reset: every segment is deleted', async () => {
  await withTempDir(async (dir) => {
    await writeLog(dir, entryRange(1, 20, 1), { segmentBytesMax: 300 }, 3);
    // The crash state between the two steps of reset(50): the meta says `resetting`, the
    // segments are still there.
    await writeFile(join(dir, WAL_META_FILE), frame(pack({ firstIndex: 50, resetting: true })));
    const { store, warnings } = await openLog(dir);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /interrupted reset/);
    assert.deepEqual(await segmentNames(dir), []);
    assert.equal(store.firstIndex(), 50);
    assert.equal(store.lastIndex(), 49);
    assertEntries(await store.readAll(), []);
    await store.append([normalEntry(50, 2)]);
    await store.sync();
    await store.close();
    const reopened = await openLog(dir);
    assert.deepEqual(reopened.warnings, []);
    assertEntries(await reopened.store.readAll(), [normalEntry(50, 2)]);
    await reopened.store.close();
  });
});

test('recovery finishes an interrupted compaction: segments below the first index are deleted', async () => {
  await withTempDir(async (dir) => {
    const options = { segmentBytesMax: 300 };
    await writeLog(dir, entryRange(1, 60, 1), options, 3);
    const names = await segmentNames(dir);
    const thirdFirst = Number(names[2]!.slice(0, 20));
    // The crash state after compact() wrote the meta file but before it deleted anything.
    await writeFile(join(dir, WAL_META_FILE), frame(pack({ firstIndex: thirdFirst + 2, resetting: false })));
    const { store, warnings } = await openLog(dir, options);
    assert.equal(warnings.length, 2, 'one warning per leftover segment');
    assert.deepEqual(await segmentNames(dir), names.slice(2));
    assert.equal(store.firstIndex(), thirdFirst + 2);
    assertEntries(await store.readAll(), entryRange(thirdFirst + 2, 60, 1));
    await store.close();
  });
});

test('a first index past every stored entry leaves an empty log', async () => {
  await withTempDir(async (dir) => {
    await writeLog(dir, entryRange(1, 5, 1));
    await writeFile(join(dir, WAL_META_FILE), frame(pack({ firstIndex: 9, resetting: false })));
    const { store } = await openLog(dir);
    assert.equal(store.firstIndex(), 9);
    assert.equal(store.lastIndex(), 8);
    assert.deepEqual(await segmentNames(dir), []);
    await store.append([normalEntry(9, 2)]);
    await store.close();
  });
});

test('a log that starts after its first index is corruption', async () => {
  await withTempDir(async (dir) => {
    const { store } = await openLog(dir);
    await store.reset(3);
    await store.append(entryRange(3, 5, 1));
    await store.close();
    // The meta file says the log starts at 2; the segment starts at 3.
    await writeFile(join(dir, WAL_META_FILE), frame(pack({ firstIndex: 2, resetting: false })));
    await expectCorrupt(dir, segmentFileName(3), 0, {}, /log starts at index 2.*first segment starts at 3/);
  });
});

test('a damaged meta file is corruption', async () => {
  await withTempDir(async (dir) => {
    const { store } = await openLog(dir);
    await store.append(entryRange(1, 5, 1));
    await store.compact(2);
    await store.close();
    await flipBit(join(dir, WAL_META_FILE), FRAME_HEADER_BYTES + 1);
    await expectCorrupt(dir, WAL_META_FILE, 0);
  });
});

test('a leftover temporary meta file is removed at open and ignored', async () => {
  await withTempDir(async (dir) => {
    await writeLog(dir, entryRange(1, 5, 1));
    await writeFile(join(dir, `${WAL_META_FILE}.tmp`), frame(pack({ firstIndex: 4, resetting: false })));
    const { store } = await openLog(dir);
    assert.equal(store.firstIndex(), 1);
    await assert.rejects(stat(join(dir, `${WAL_META_FILE}.tmp`)), { code: 'ENOENT' });
    await store.close();
  });
});

test('appends after a sync is started are covered by the next sync, not lost', async () => {
  await withTempDir(async (dir) => {
    const { store } = await openLog(dir);
    await store.append(entryRange(1, 10, 1));
    const firstSync = store.sync();
    const laterAppend = store.append(entryRange(11, 20, 1)); // does not wait for the disk
    const secondSync = store.sync();
    await Promise.all([firstSync, laterAppend, secondSync]);
    await store.close();
    const reopened = await openLog(dir);
    assertEntries(await reopened.store.readAll(), entryRange(1, 20, 1));
    await reopened.store.close();
  });
});

test('the stores may share one directory', async () => {
  await withTempDir(async (dir) => {
    await writeLog(dir, entryRange(1, 3, 1));
    await writeFile(join(dir, 'hardstate'), Buffer.from('not a segment'));
    const { store, warnings } = await openLog(dir);
    assert.deepEqual(warnings, []);
    assertEntries(await store.readAll(), entryRange(1, 3, 1));
    await store.close();
  });
});

test('after an I/O error the store refuses further calls with CHORUS_STORAGE_FAILED', async () => {
  await withTempDir(async (dir) => {
    const { store } = await openLog(dir);
    await store.append(entryRange(1, 3, 1));
    // Simulate a failing disk: pull the descriptor out from under the store, so that its
    // fdatasync fails (EBADF).
    const internals = store as unknown as { active: { fd: number } };
    closeSync(internals.active.fd);
    await assert.rejects(store.sync(), { code: 'CHORUS_STORAGE_FAILED' });
    await assert.rejects(store.append([normalEntry(4, 1)]), { code: 'CHORUS_STORAGE_FAILED' });
    await assert.rejects(store.sync(), { code: 'CHORUS_STORAGE_FAILED' });
    await store.close();
    // Reopening recovers what reached the file.
    const reopened = await openLog(dir);
    assertEntries(await reopened.store.readAll(), entryRange(1, 3, 1));
    await reopened.store.close();
  });
});

// ---- preallocation ----

/** Where the records of a segment file end: the offset of its first zero length field. */
function recordsEnd(bytes: Buffer): number {
  let position = 0;
  while (position + FRAME_HEADER_BYTES <= bytes.length && bytes.readUInt32LE(position) !== 0) position += FRAME_HEADER_BYTES + bytes.readUInt32LE(position);
  return position;
}

test('preallocation: the last segment is kept ahead of its records with zeros, a chunk at a time', async () => {
  await withTempDir(async (dir) => {
    const options = { preallocateBytes: 4096 };
    const { store } = await openLog(dir, options);
    const path = join(dir, FIRST_SEGMENT);
    await store.append(entryRange(1, 1, 1));
    assert.equal((await stat(path)).size, recordsEnd(await readFile(path)) + 4096, 'a chunk after the first record');
    let grewAt = 0;
    for (let i = 2; i <= 200; i++) {
      const sizeBefore = (await stat(path)).size;
      await store.append([normalEntry(i, 1)]);
      const bytes = await readFile(path);
      const end = recordsEnd(bytes);
      assert.ok(bytes.length - end >= 2048 - 200, `at least about half a chunk of zeros ahead (${bytes.length - end})`);
      assert.ok(bytes.subarray(end).every((b) => b === 0), 'only zeros after the records');
      if (bytes.length > sizeBefore) grewAt++;
    }
    assert.ok(grewAt >= 2 && grewAt < 30, `the file grew a chunk at a time, not per append (${grewAt} times)`);
    await store.sync();
    await store.close();
    const reopened = await openLog(dir, options);
    assert.deepEqual(reopened.warnings, []);
    assertEntries(await reopened.store.readAll(), entryRange(1, 200, 1));
    await reopened.store.append([normalEntry(201, 2)]);
    await reopened.store.sync();
    await reopened.store.close();
    const again = await openLog(dir, options);
    assertEntries(await again.store.readAll(), [...entryRange(1, 200, 1), normalEntry(201, 2)]);
    await again.store.close();
  });
});

test('preallocation: a segment that rolls over is cut to its last record; only the last segment has zeros', async () => {
  await withTempDir(async (dir) => {
    const options = { segmentBytesMax: 1024, preallocateBytes: 512 };
    await writeLog(dir, entryRange(1, 120, 1), options, 2);
    const names = await segmentNames(dir);
    assert.ok(names.length >= 5, `several segments (${names.length})`);
    for (const [i, name] of names.entries()) {
      const bytes = await readFile(join(dir, name));
      const end = recordsEnd(bytes);
      if (i < names.length - 1) assert.equal(bytes.length, end, `${name} ends with its last record`);
      else assert.ok(bytes.length > end && bytes.subarray(end).every((b) => b === 0), 'the last segment ends with zeros');
      assert.ok(bytes.length <= 1024 + 512, `${name} is not allocated past the segment size`);
    }
    const { store, warnings } = await openLog(dir, options);
    assert.deepEqual(warnings, []);
    assertEntries(await store.readAll(), entryRange(1, 120, 1));
    await store.close();
  });
});

/** A log of entries 1..last written with 4 KiB preallocation: its first segment's bytes, and
 * where its records end (the zeros begin). */
async function preallocatedLog(dir: string, last: number): Promise<{ options: FileLogStoreOptions; path: string; bytes: Buffer; end: number }> {
  const options = { preallocateBytes: 4096 };
  await writeLog(dir, entryRange(1, last, 1), options);
  const path = join(dir, FIRST_SEGMENT);
  const bytes = await readFile(path);
  return { options, path, bytes, end: recordsEnd(bytes) };
}

test('preallocation: a record torn inside the zeros is cut off with a warning', async () => {
  await withTempDir(async (dir) => {
    const { options, path, bytes, end } = await preallocatedLog(dir, 5);
    // The first half of a sixth record reached the disk, the rest of the chunk is still zeros.
    const torn = frame(pack({ index: 6, term: 1, type: 'noop' }));
    torn.copy(bytes, end, 0, Math.floor(torn.length / 2));
    await writeFile(path, bytes);
    const { store, warnings } = await openLog(dir, options);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, new RegExp(`torn record at byte offset ${end}`));
    assertEntries(await store.readAll(), entryRange(1, 5, 1));
    assert.equal((await stat(path)).size, end, 'cut at the torn record, zeros included');
    await store.append([normalEntry(6, 2)]);
    await store.sync();
    await store.close();
    const reopened = await openLog(dir, options);
    assert.deepEqual(reopened.warnings, []);
    assertEntries(await reopened.store.readAll(), [...entryRange(1, 5, 1), normalEntry(6, 2)]);
    await reopened.store.close();
  });
});

test('preallocation: a valid record after the zeros is corruption, not a tail', async () => {
  await withTempDir(async (dir) => {
    const { options, path, bytes, end } = await preallocatedLog(dir, 3);
    frame(pack({ index: 9, term: 1, type: 'noop' })).copy(bytes, end + 100);
    await writeFile(path, bytes);
    await expectCorrupt(dir, FIRST_SEGMENT, end, options);
  });
});

test('preallocation: overwriting a suffix cuts the file there and preallocates again', async () => {
  await withTempDir(async (dir) => {
    const options = { preallocateBytes: 4096 };
    await writeLog(dir, entryRange(1, 20, 1), options);
    const { store } = await openLog(dir, options);
    await store.append(entryRange(15, 16, 2)); // 15..20 of term 1 replaced by 15..16 of term 2
    await store.sync();
    const bytes = await readFile(join(dir, FIRST_SEGMENT));
    const end = recordsEnd(bytes);
    assert.equal(recordOffsets(bytes.subarray(0, end)).length, 16);
    assert.ok(bytes.length > end && bytes.subarray(end).every((b) => b === 0), 'zeros again after the new records');
    await store.close();
    const reopened = await openLog(dir, options);
    assert.deepEqual(reopened.warnings, []);
    assertEntries(await reopened.store.readAll(), [...entryRange(1, 14, 1), ...entryRange(15, 16, 2)]);
    await reopened.store.close();
  });
});
