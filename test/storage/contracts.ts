// Contract tests for the LogStore, StableStore and SnapshotStore ports, written once and run
// against every implementation (file, memory, and the simulator's stores).
//
// How to use: call a contract at the top level of a *.test.ts file with a factory that makes a
// fresh, empty medium for each test case:
//
//   logStoreContract('FileLogStore', async () => {
//     const dir = await mkdtemp(join(tmpdir(), 'chorus-wal-'));
//     return { open: () => FileLogStore.open(dir), dispose: () => rm(dir, { recursive: true, force: true }) };
//   });
//
// `open()` may be called several times on one medium, each time after the previous store was
// closed, and must then show everything the closed store held (same directory, same backing
// object). The contracts close every store they open; `dispose` runs after each case.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Entry, HardState, Membership, Snapshot } from '../../src/core/raft/types.ts';
import type { LogStore, SnapshotStore, StableStore } from '../../src/ports/index.ts';

/** One medium (a directory, a backing object) on which stores are opened one after another. */
export interface StoreMedium<S> {
  /** Opens a store on the medium; after the previous store's close() it sees all it held. */
  open(): Promise<S>;
  /** Removes the medium after the test case (optional). */
  dispose?(): Promise<void>;
}

/** Makes a fresh, empty medium; called once per test case. */
export type StoreFactory<S> = () => StoreMedium<S> | Promise<StoreMedium<S>>;
export type LogStoreFactory = StoreFactory<LogStore>;
export type StableStoreFactory = StoreFactory<StableStore>;
export type SnapshotStoreFactory = StoreFactory<SnapshotStore>;

type Closable = { close(): PromiseLike<void> };

/** Runs `body` on a fresh medium; closes every store it opened and disposes of the medium. */
async function onFreshMedium<S extends Closable>(factory: StoreFactory<S>, body: (open: () => Promise<S>) => Promise<void>): Promise<void> {
  const medium = await factory();
  const opened: S[] = [];
  try {
    await body(async () => {
      const store = await medium.open();
      opened.push(store);
      return store;
    });
  } finally {
    for (const store of opened) await Promise.resolve(store.close()).catch(() => undefined);
    await medium.dispose?.();
  }
}

/** Deterministic bytes (xorshift32), so that failures reproduce. */
export function pseudoRandomBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let state = seed | 0 || 1;
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = state & 0xff;
  }
  return out;
}

const encoder = new TextEncoder();

export function normalEntry(index: number, term: number, text = `entry ${index} of term ${term}`): Entry {
  return { index, term, type: 'normal', data: encoder.encode(text) };
}

export function entryRange(from: number, to: number, term: number): Entry[] {
  const entries: Entry[] = [];
  for (let index = from; index <= to; index++) entries.push(normalEntry(index, term));
  return entries;
}

/** A form that compares with deepStrictEqual whatever Uint8Array subclass the store returns. */
export function plainEntry(entry: Entry): Record<string, unknown> {
  const plain: Record<string, unknown> = { index: entry.index, term: entry.term, type: entry.type };
  if (entry.data !== undefined) {
    assert.ok(entry.data instanceof Uint8Array, `entry ${entry.index}: data is a Uint8Array`);
    plain['data'] = Buffer.from(entry.data.buffer, entry.data.byteOffset, entry.data.byteLength).toString('hex');
  }
  if (entry.config !== undefined) plain['config'] = { voters: [...entry.config.voters], learners: [...entry.config.learners] };
  return plain;
}

export function assertEntries(actual: readonly Entry[], expected: readonly Entry[], message?: string): void {
  assert.deepStrictEqual(actual.map(plainEntry), expected.map(plainEntry), message);
}

async function assertLog(store: LogStore, expected: readonly Entry[], first: number, last: number, message: string): Promise<void> {
  assert.equal(store.firstIndex(), first, `${message}: firstIndex`);
  assert.equal(store.lastIndex(), last, `${message}: lastIndex`);
  assertEntries(await store.readAll(), expected, `${message}: readAll`);
}

async function rejectsWithCode(promise: PromiseLike<unknown>, code: string): Promise<void> {
  await assert.rejects(Promise.resolve(promise), (error: unknown) => {
    assert.equal((error as { code?: unknown }).code, code);
    return true;
  });
}

export function logStoreContract(name: string, factory: LogStoreFactory): void {
  describe(`LogStore contract: ${name}`, () => {
    test('a fresh store is empty: firstIndex 1, lastIndex 0', async () => {
      await onFreshMedium(factory, async (open) => {
        const store = await open();
        await assertLog(store, [], 1, 0, 'fresh');
        await store.close();
        await assertLog(await open(), [], 1, 0, 'fresh, reopened');
      });
    });

    test('append then readAll returns the entries', async () => {
      await onFreshMedium(factory, async (open) => {
        const store = await open();
        await store.append(entryRange(1, 5, 1));
        await store.append(entryRange(6, 8, 2));
        await assertLog(store, [...entryRange(1, 5, 1), ...entryRange(6, 8, 2)], 1, 8, 'after two appends');
        await store.append([]);
        assert.equal(store.lastIndex(), 8, 'an empty append changes nothing');
      });
    });

    test('many appends share one sync and survive a reopen', async () => {
      await onFreshMedium(factory, async (open) => {
        const store = await open();
        const expected: Entry[] = [];
        for (let batch = 0; batch < 50; batch++) {
          const entries = entryRange(batch * 20 + 1, batch * 20 + 20, 1 + Math.floor(batch / 10));
          await store.append(entries);
          expected.push(...entries);
        }
        await store.sync();
        await store.close();
        await assertLog(await open(), expected, 1, 1000, 'reopened');
      });
    });

    test('calls made without awaiting take effect in call order', async () => {
      await onFreshMedium(factory, async (open) => {
        const store = await open();
        await Promise.all([
          store.append(entryRange(1, 3, 1)),
          store.append(entryRange(4, 6, 1)),
          store.sync(),
          store.append(entryRange(5, 7, 2)),
          store.compact(2),
          store.append([normalEntry(8, 2)]),
          store.sync(),
        ]);
        const expected = [...entryRange(3, 4, 1), ...entryRange(5, 8, 2)];
        await assertLog(store, expected, 3, 8, 'after the burst');
        await store.close();
        await assertLog(await open(), expected, 3, 8, 'reopened');
      });
    });

    test('an append at an index <= lastIndex overwrites the suffix', async () => {
      await onFreshMedium(factory, async (open) => {
        const store = await open();
        await store.append(entryRange(1, 10, 1));
        await store.append(entryRange(6, 7, 2));
        await assertLog(store, [...entryRange(1, 5, 1), ...entryRange(6, 7, 2)], 1, 7, 'overwritten from 6');
        await store.append([normalEntry(7, 3)]);
        await store.append([normalEntry(8, 3)]);
        const expected = [...entryRange(1, 5, 1), normalEntry(6, 2), ...entryRange(7, 8, 3)];
        await assertLog(store, expected, 1, 8, 'last entry overwritten, then extended');
        await store.sync();
        await store.close();
        const reopened = await open();
        await assertLog(reopened, expected, 1, 8, 'reopened');
        await reopened.append(entryRange(1, 2, 4));
        await assertLog(reopened, entryRange(1, 2, 4), 1, 2, 'overwritten from the first index');
        await reopened.close();
        await assertLog(await open(), entryRange(1, 2, 4), 1, 2, 'reopened again');
      });
    });

    test('contiguity is enforced: a gap is refused and changes nothing', async () => {
      await onFreshMedium(factory, async (open) => {
        const store = await open();
        await rejectsWithCode(store.append([normalEntry(2, 1)]), 'CHORUS_LOG_NOT_CONTIGUOUS');
        await store.append(entryRange(1, 3, 1));
        await rejectsWithCode(store.append([normalEntry(5, 1)]), 'CHORUS_LOG_NOT_CONTIGUOUS');
        await rejectsWithCode(store.append([normalEntry(4, 1), normalEntry(6, 1)]), 'CHORUS_LOG_NOT_CONTIGUOUS');
        await assertLog(store, entryRange(1, 3, 1), 1, 3, 'after the refused appends');
        await store.append([normalEntry(4, 1)]);
        await assertLog(store, entryRange(1, 4, 1), 1, 4, 'the store still works');
      });
    });

    test('invalid entries are refused', async () => {
      await onFreshMedium(factory, async (open) => {
        const store = await open();
        const bogus = { index: 1, term: 1, type: 'bogus' } as unknown as Entry;
        await rejectsWithCode(store.append([bogus]), 'CHORUS_STORAGE_INVALID');
        await rejectsWithCode(store.append([{ index: 0, term: 1, type: 'noop' }]), 'CHORUS_STORAGE_INVALID');
        await rejectsWithCode(store.append([{ index: 1, term: -1, type: 'noop' }]), 'CHORUS_STORAGE_INVALID');
        await assertLog(store, [], 1, 0, 'nothing stored');
      });
    });

    test('compact discards the prefix durably: firstIndex survives a reopen', async () => {
      await onFreshMedium(factory, async (open) => {
        let store = await open();
        await store.append(entryRange(1, 30, 1));
        await store.sync();
        await store.compact(10);
        await assertLog(store, entryRange(11, 30, 1), 11, 30, 'compacted through 10');
        await store.compact(5);
        await assertLog(store, entryRange(11, 30, 1), 11, 30, 'compacting an older index does nothing');
        await rejectsWithCode(store.append([normalEntry(10, 2)]), 'CHORUS_LOG_NOT_CONTIGUOUS');
        await store.close();
        store = await open();
        await assertLog(store, entryRange(11, 30, 1), 11, 30, 'reopened');
        await store.compact(30);
        await assertLog(store, [], 31, 30, 'compacted through the last index');
        await store.close();
        store = await open();
        await assertLog(store, [], 31, 30, 'reopened empty');
        await store.append([normalEntry(31, 2)]);
        await store.sync();
        await store.close();
        await assertLog(await open(), [normalEntry(31, 2)], 31, 31, 'appended after compaction, reopened');
      });
    });

    test('compact beyond the last index leaves an empty log that continues after it', async () => {
      await onFreshMedium(factory, async (open) => {
        const store = await open();
        await store.append(entryRange(1, 5, 1));
        await store.compact(9);
        await assertLog(store, [], 10, 9, 'compacted past the end');
        await store.append(entryRange(10, 11, 2));
        await store.sync();
        await store.close();
        await assertLog(await open(), entryRange(10, 11, 2), 10, 11, 'reopened');
      });
    });

    test('reset discards everything and appends resume at the new index', async () => {
      await onFreshMedium(factory, async (open) => {
        let store = await open();
        await store.append(entryRange(1, 20, 1));
        await store.sync();
        await store.reset(100);
        await assertLog(store, [], 100, 99, 'reset to 100');
        await store.close();
        store = await open();
        await assertLog(store, [], 100, 99, 'reset, reopened');
        await store.append(entryRange(100, 102, 3));
        await store.sync();
        await store.close();
        store = await open();
        await assertLog(store, entryRange(100, 102, 3), 100, 102, 'appended after the reset, reopened');
        // A reset to an index inside the old log keeps none of it.
        await store.reset(101);
        await assertLog(store, [], 101, 100, 'reset inside the old log');
        await store.append([normalEntry(101, 4)]);
        await store.sync();
        await store.close();
        await assertLog(await open(), [normalEntry(101, 4)], 101, 101, 'reset inside the old log, reopened');
      });
    });

    test('a reopen after close gives identical entries and indexes', async () => {
      await onFreshMedium(factory, async (open) => {
        const store = await open();
        const config: Membership = { voters: ['a', 'b', 'c'], learners: ['d'] };
        await store.append([
          { index: 1, term: 1, type: 'noop' },
          { index: 2, term: 1, type: 'config', config },
          ...entryRange(3, 40, 1),
        ]);
        await store.append(entryRange(35, 60, 2));
        await store.compact(4);
        await store.sync();
        const before = await store.readAll();
        const [first, last] = [store.firstIndex(), store.lastIndex()];
        await store.close();
        const reopened = await open();
        assert.equal(reopened.firstIndex(), first);
        assert.equal(reopened.lastIndex(), last);
        assertEntries(await reopened.readAll(), before);
        assertEntries(await reopened.readAll(), before, 'a second readAll gives the same');
      });
    });

    test('Uint8Array payloads and config entries round-trip', async () => {
      await onFreshMedium(factory, async (open) => {
        const store = await open();
        const backing = pseudoRandomBytes(64, 7);
        const entries: Entry[] = [
          { index: 1, term: 1, type: 'normal', data: new Uint8Array(0) },
          { index: 2, term: 1, type: 'normal', data: backing.subarray(10, 20) },
          { index: 3, term: 1, type: 'normal', data: Buffer.from('a Buffer') },
          { index: 4, term: 1, type: 'normal', data: pseudoRandomBytes(100_000, 3) },
          { index: 5, term: 1, type: 'noop' },
          { index: 6, term: 2, type: 'config', config: { voters: ['n1', 'n2'], learners: [] } },
          { index: 7, term: 2, type: 'config', config: { voters: ['n1'], learners: ['n2', 'n3'] } },
          { index: 8, term: 2, type: 'normal' },
        ];
        await store.append(entries);
        assertEntries(await store.readAll(), entries, 'same session');
        await store.sync();
        await store.close();
        const reopened = await open();
        const read = await reopened.readAll();
        assertEntries(read, entries, 'reopened');
        assert.equal(read[4]!.data, undefined, 'no data stays no data');
        assert.equal(read[0]!.data!.length, 0, 'empty data stays empty data');
      });
    });

    test('the store keeps its own copy of appended data', async () => {
      await onFreshMedium(factory, async (open) => {
        const store = await open();
        const data = new Uint8Array([1, 2, 3]);
        await store.append([{ index: 1, term: 1, type: 'normal', data }]);
        data[0] = 9;
        assertEntries(await store.readAll(), [{ index: 1, term: 1, type: 'normal', data: new Uint8Array([1, 2, 3]) }]);
      });
    });

    test('a closed store refuses calls', async () => {
      await onFreshMedium(factory, async (open) => {
        const store = await open();
        await store.append(entryRange(1, 2, 1));
        await store.close();
        await rejectsWithCode(store.append([normalEntry(3, 1)]), 'CHORUS_STORE_CLOSED');
        await rejectsWithCode(store.readAll(), 'CHORUS_STORE_CLOSED');
        await rejectsWithCode(store.sync(), 'CHORUS_STORE_CLOSED');
      });
    });
  });
}

export function stableStoreContract(name: string, factory: StableStoreFactory): void {
  describe(`StableStore contract: ${name}`, () => {
    test('a fresh store loads null', async () => {
      await onFreshMedium(factory, async (open) => {
        assert.equal(await (await open()).load(), null);
      });
    });

    test('save then load, also after a reopen', async () => {
      await onFreshMedium(factory, async (open) => {
        const store = await open();
        const state: HardState = { term: 3, vote: 'node-b', commit: 17 };
        await store.save(state);
        assert.deepStrictEqual(await store.load(), state);
        await store.close();
        assert.deepStrictEqual(await (await open()).load(), state);
      });
    });

    test('the last save wins; a null vote round-trips', async () => {
      await onFreshMedium(factory, async (open) => {
        const store = await open();
        await store.save({ term: 1, vote: 'a', commit: 0 });
        await store.save({ term: 2, vote: null, commit: 5 });
        assert.deepStrictEqual(await store.load(), { term: 2, vote: null, commit: 5 });
        await store.close();
        assert.deepStrictEqual(await (await open()).load(), { term: 2, vote: null, commit: 5 });
      });
    });

    test('saves made without awaiting apply in order', async () => {
      await onFreshMedium(factory, async (open) => {
        const store = await open();
        const saves: PromiseLike<void>[] = [];
        for (let term = 1; term <= 10; term++) saves.push(store.save({ term, vote: `v${term}`, commit: term * 2 }));
        await Promise.all(saves);
        assert.deepStrictEqual(await store.load(), { term: 10, vote: 'v10', commit: 20 });
      });
    });

    test('an invalid state is refused', async () => {
      await onFreshMedium(factory, async (open) => {
        const store = await open();
        await rejectsWithCode(store.save({ term: -1, vote: null, commit: 0 }), 'CHORUS_STORAGE_INVALID');
        await rejectsWithCode(store.save({ term: 1, vote: 7 as unknown as string, commit: 0 }), 'CHORUS_STORAGE_INVALID');
        assert.equal(await store.load(), null);
      });
    });

    test('a closed store refuses calls', async () => {
      await onFreshMedium(factory, async (open) => {
        const store = await open();
        await store.close();
        await rejectsWithCode(store.load(), 'CHORUS_STORE_CLOSED');
        await rejectsWithCode(store.save({ term: 1, vote: null, commit: 0 }), 'CHORUS_STORE_CLOSED');
      });
    });
  });
}

function plainSnapshot(snapshot: Snapshot | null): unknown {
  if (snapshot === null) return null;
  assert.ok(snapshot.data instanceof Uint8Array, 'snapshot data is a Uint8Array');
  return {
    meta: { index: snapshot.meta.index, term: snapshot.meta.term, config: { voters: [...snapshot.meta.config.voters], learners: [...snapshot.meta.config.learners] } },
    data: Buffer.from(snapshot.data.buffer, snapshot.data.byteOffset, snapshot.data.byteLength).toString('hex'),
  };
}

export function snapshotStoreContract(name: string, factory: SnapshotStoreFactory): void {
  describe(`SnapshotStore contract: ${name}`, () => {
    test('a fresh store loads null', async () => {
      await onFreshMedium(factory, async (open) => {
        assert.equal(await (await open()).load(), null);
      });
    });

    test('save then load, also after a reopen', async () => {
      await onFreshMedium(factory, async (open) => {
        const store = await open();
        const snapshot: Snapshot = {
          meta: { index: 120, term: 4, config: { voters: ['a', 'b', 'c'], learners: ['d'] } },
          data: pseudoRandomBytes(1 << 20, 11),
        };
        await store.save(snapshot);
        assert.deepStrictEqual(plainSnapshot(await store.load()), plainSnapshot(snapshot));
        await store.close();
        assert.deepStrictEqual(plainSnapshot(await (await open()).load()), plainSnapshot(snapshot));
      });
    });

    test('only the newest snapshot is kept', async () => {
      await onFreshMedium(factory, async (open) => {
        const store = await open();
        const older: Snapshot = { meta: { index: 10, term: 1, config: { voters: ['a'], learners: [] } }, data: pseudoRandomBytes(1000, 1) };
        const newer: Snapshot = { meta: { index: 20, term: 2, config: { voters: ['a', 'b'], learners: [] } }, data: pseudoRandomBytes(500, 2) };
        await store.save(older);
        await store.save(newer);
        assert.deepStrictEqual(plainSnapshot(await store.load()), plainSnapshot(newer));
        await store.close();
        assert.deepStrictEqual(plainSnapshot(await (await open()).load()), plainSnapshot(newer));
      });
    });

    test('empty data round-trips', async () => {
      await onFreshMedium(factory, async (open) => {
        const store = await open();
        const snapshot: Snapshot = { meta: { index: 0, term: 0, config: { voters: [], learners: [] } }, data: new Uint8Array(0) };
        await store.save(snapshot);
        await store.close();
        assert.deepStrictEqual(plainSnapshot(await (await open()).load()), plainSnapshot(snapshot));
      });
    });

    test('an invalid snapshot is refused', async () => {
      await onFreshMedium(factory, async (open) => {
        const store = await open();
        const bad = { meta: { index: 1, term: 1, config: { voters: 'a', learners: [] } }, data: new Uint8Array(1) } as unknown as Snapshot;
        await rejectsWithCode(store.save(bad), 'CHORUS_STORAGE_INVALID');
        assert.equal(await store.load(), null);
      });
    });

    test('a closed store refuses calls', async () => {
      await onFreshMedium(factory, async (open) => {
        const store = await open();
        await store.close();
        await rejectsWithCode(store.load(), 'CHORUS_STORE_CLOSED');
      });
    });
  });
}
