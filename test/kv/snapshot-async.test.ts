// SqliteStateMachine.snapshotAsync(): the image taken on a worker thread is the same state as
// snapshot()'s, stays consistent while applies go on, leaves no file behind, and fails cleanly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SqliteStateMachine } from '../../src/kv/sqlite-state-machine.ts';
import type { ApplyEntry, StateMachineSnapshot } from '../../src/kv/sqlite-state-machine.ts';
import { bytes, EntryLog } from './helpers.ts';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chorus-kv-snap-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** `n` entries from `log`: puts over a small key space (so most overwrite) and some deletes,
 * with values that name their index, so the state at every index is distinct. */
function writes(log: EntryLog, n: number): ApplyEntry[] {
  const entries: ApplyEntry[] = [];
  for (let i = 0; i < n; i++) {
    const index = log.next;
    const key = `k/${(index * 7919) % 1500}`;
    entries.push(index % 11 === 0 ? log.normal({ kind: 'delete', key }) : log.normal({ kind: 'put', key, value: bytes(`v${index}`.repeat(8)) }));
  }
  return entries;
}

/** The image restored into a fresh in-memory instance, as its digest and applied index. */
function restored(snap: StateMachineSnapshot): { digest: string; applied: number } {
  const copy = SqliteStateMachine.open(':memory:');
  try {
    copy.restore(snap.data);
    return { digest: copy.digest(), applied: copy.appliedIndex() };
  } finally {
    copy.close();
  }
}

test('snapshotAsync of a file-backed instance is the state of snapshot(), and restores', async (t) => {
  const dir = tempDir(t);
  const sm = SqliteStateMachine.open(path.join(dir, 'state.db'));
  t.after(() => sm.close());
  sm.applyBatch(writes(new EntryLog(), 3000)); // partly still in the WAL
  const sync = sm.snapshot();
  const async = await sm.snapshotAsync();
  assert.equal(async.index, sync.index);
  assert.equal(async.index, sm.appliedIndex());
  // Like snapshot()'s, the image is marked as not in WAL mode, so it opens in memory.
  assert.deepEqual([async.data[18], async.data[19]], [1, 1]);
  assert.deepEqual(restored(async), restored(sync));
  assert.deepEqual(restored(async), { digest: sm.digest(), applied: sm.appliedIndex() });

  // A file-backed instance restores it too, and the source keeps working after it.
  const target = SqliteStateMachine.open(path.join(dir, 'target.db'));
  t.after(() => target.close());
  target.restore(async.data);
  assert.equal(target.digest(), sm.digest());
  const next = writes(new EntryLog(sm.appliedIndex() + 1), 50);
  sm.applyBatch(next);
  target.applyBatch(next);
  assert.equal(target.digest(), sm.digest());
});

test('snapshotAsync of an in-memory instance answers with snapshot()', async () => {
  const sm = SqliteStateMachine.open(':memory:');
  sm.applyBatch(writes(new EntryLog(), 500));
  const snap = await sm.snapshotAsync();
  assert.equal(snap.index, 500);
  assert.deepEqual(restored(snap), { digest: sm.digest(), applied: 500 });
  sm.close();
  await assert.rejects(sm.snapshotAsync(), /closed/);
});

test('a snapshot taken while applies go on is the state at the index it reports', async (t) => {
  const dir = tempDir(t);
  const sm = SqliteStateMachine.open(path.join(dir, 'state.db'));
  t.after(() => sm.close());
  const log = new EntryLog();
  const history: ApplyEntry[] = writes(log, 20_000);
  sm.applyBatch(history);
  const before = sm.appliedIndex();
  let done = false;
  const taking = sm.snapshotAsync().finally(() => {
    done = true;
  });
  // Small batches, each its own commit, one per event-loop turn until the image arrives.
  do {
    const batch = writes(log, 25);
    history.push(...batch);
    sm.applyBatch(batch);
    await new Promise<void>((resolve) => setImmediate(resolve));
  } while (!done);
  const snap = await taking;
  assert.ok(snap.index >= before && snap.index <= sm.appliedIndex(), `index ${snap.index} outside [${before}, ${sm.appliedIndex()}]`);

  // The same entries replayed up to the image's index give the same state.
  const replay = SqliteStateMachine.open(':memory:');
  replay.applyBatch(history.filter((e) => e.index <= snap.index));
  assert.deepEqual(restored(snap), { digest: replay.digest(), applied: snap.index });
  replay.close();
});

test('snapshotAsync writes no file: the directory holds only the database and its WAL', async (t) => {
  const dir = tempDir(t);
  const sm = SqliteStateMachine.open(path.join(dir, 'state.db'));
  sm.applyBatch(writes(new EntryLog(), 1000));
  for (let i = 0; i < 3; i++) await sm.snapshotAsync();
  assert.deepEqual(fs.readdirSync(dir).sort(), ['state.db', 'state.db-shm', 'state.db-wal']);
  sm.close();
  assert.deepEqual(fs.readdirSync(dir).filter((name) => name !== 'state.db'), []);
});

test('one snapshot at a time; restore refuses to run under one; close rejects the one in flight', async (t) => {
  const dir = tempDir(t);
  const sm = SqliteStateMachine.open(path.join(dir, 'state.db'));
  sm.applyBatch(writes(new EntryLog(), 1000));
  const first = sm.snapshotAsync();
  await assert.rejects(sm.snapshotAsync(), /another snapshot is in progress/);
  const image = sm.snapshot();
  assert.throws(() => sm.restore(image.data), /snapshot is in progress/);
  assert.equal((await first).index, 1000);
  sm.restore(image.data); // fine once it is done

  const inFlight = sm.snapshotAsync();
  sm.close();
  await assert.rejects(inFlight, /state machine snapshot failed: the state machine was closed/);
});

test('a worker that cannot read the database rejects, and the instance keeps working', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'state.db');
  const sm = SqliteStateMachine.open(file);
  t.after(() => sm.close());
  sm.applyBatch(writes(new EntryLog(), 200));
  // The open connection keeps the unlinked files; the worker finds nothing to open.
  for (const name of fs.readdirSync(dir)) fs.rmSync(path.join(dir, name));
  await assert.rejects(sm.snapshotAsync(), (error: unknown) => {
    assert.ok(error instanceof Error);
    assert.match(error.message, /^state machine snapshot failed: /);
    return true;
  });
  // Nothing was left in flight, nothing was created, and applies go on.
  await assert.rejects(sm.snapshotAsync(), /^Error: state machine snapshot failed: (?!another)/);
  assert.deepEqual(fs.readdirSync(dir), []);
  sm.applyBatch(writes(new EntryLog(201), 10));
  assert.equal(sm.appliedIndex(), 210);
});

test('syncDurable covers what was applied at the call, for a file-backed and an in-memory instance', async (t) => {
  const file = path.join(tempDir(t), 'state.db');
  const sm = SqliteStateMachine.open(file);
  const log = new EntryLog();
  sm.applyBatch(writes(log, 50));
  const pending = sm.syncDurable();
  sm.applyBatch(writes(log, 10)); // applied after the call: not promised
  assert.equal(await pending, 50);
  assert.equal(await sm.syncDurable(), 60);
  sm.close();
  await assert.rejects(sm.syncDurable(), /closed/);

  const memory = SqliteStateMachine.open(':memory:');
  memory.applyBatch(writes(new EntryLog(), 5));
  assert.equal(await memory.syncDurable(), 5);
  memory.close();
});

test('imageFileAsync writes a consistent image to a file while applies go on; it restores to the index it reports', async (t) => {
  const dir = tempDir(t);
  const sm = SqliteStateMachine.open(path.join(dir, 'state.db'));
  t.after(() => sm.close());
  const log = new EntryLog();
  sm.applyBatch(writes(log, 3000));
  const out = path.join(dir, 'image-1.tmp');
  const pending = sm.imageFileAsync(out);
  await assert.rejects(sm.imageFileAsync(path.join(dir, 'image-2.tmp')), /another snapshot is in progress/);
  // Applies go on while the worker reads; the image is one of the states in between.
  const digests = new Map<number, string>([[sm.appliedIndex(), sm.digest()]]);
  for (let i = 0; i < 20; i++) {
    sm.applyBatch(writes(log, 25));
    digests.set(sm.appliedIndex(), sm.digest());
    await new Promise((resolve) => setImmediate(resolve));
  }
  const image = await pending;
  assert.equal(image.byteLength, fs.statSync(out).size);
  assert.ok(digests.has(image.index), `image at ${image.index}, a state the source went through`);
  const target = SqliteStateMachine.open(path.join(dir, 'target.db'));
  t.after(() => target.close());
  target.restore(fs.readFileSync(out));
  assert.equal(target.appliedIndex(), image.index);
  assert.equal(target.digest(), digests.get(image.index));

  const memory = SqliteStateMachine.open(':memory:');
  t.after(() => memory.close());
  await assert.rejects(memory.imageFileAsync(path.join(dir, 'image-3.tmp')), /in-memory/);
});
