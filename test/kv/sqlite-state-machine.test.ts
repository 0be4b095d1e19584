import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Packr } from 'msgpackr';
import { encodeCommand, KvError } from '../../src/kv/commands.ts';
import type { Command, Compare, CompareOp, CompareTarget, Op } from '../../src/kv/commands.ts';
import { prefixEnd, SqliteStateMachine } from '../../src/kv/sqlite-state-machine.ts';
import type { ApplyEntry, ApplyResult, KvRecord } from '../../src/kv/sqlite-state-machine.ts';
import { assertKvError, bytes, EntryLog, hex, plain } from './helpers.ts';

function memory(limits?: { keyBytesMax?: number; valueBytesMax?: number; txnOpsMax?: number }): SqliteStateMachine {
  return SqliteStateMachine.open(':memory:', limits === undefined ? {} : { limits });
}

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chorus-kv-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function put(key: string, value: string): Command {
  return { kind: 'put', key, value: bytes(value) };
}

function del(key: string): Command {
  return { kind: 'delete', key };
}

/** A record with its value as text, for compact assertions. */
function view(record: KvRecord | undefined): unknown {
  if (record === undefined) return undefined;
  const { key, value, createRevision, modRevision, version } = record;
  return { key, value: Buffer.from(value).toString(), createRevision, modRevision, version };
}

function only<T>(results: readonly T[]): T {
  assert.equal(results.length, 1);
  return results[0]!;
}

/** Applies one command as the next entry and returns its result. */
function applyOne(sm: SqliteStateMachine, log: EntryLog, cmd: Command): ApplyResult {
  return only(sm.applyBatch([log.normal(cmd)]));
}

// --------------------------------------------------------------------------------------------
// Revisions and versions

test('put, put, delete, put: revisions and versions as etcd', () => {
  const sm = memory();
  const log = new EntryLog();
  assert.deepEqual(applyOne(sm, log, put('a', 'one')), { kind: 'put', revision: 1 });
  assert.deepEqual(view(sm.get('a')), { key: 'a', value: 'one', createRevision: 1, modRevision: 1, version: 1 });
  sm.applyBatch([log.noop()]); // index 2: revisions are log indexes, gaps included
  assert.deepEqual(applyOne(sm, log, put('a', 'two')), { kind: 'put', revision: 3 });
  assert.deepEqual(view(sm.get('a')), { key: 'a', value: 'two', createRevision: 1, modRevision: 3, version: 2 });
  assert.deepEqual(applyOne(sm, log, del('a')), { kind: 'delete', revision: 4, deleted: 1 });
  assert.equal(sm.get('a'), undefined);
  assert.deepEqual(applyOne(sm, log, del('a')), { kind: 'delete', revision: 5, deleted: 0 });
  assert.deepEqual(applyOne(sm, log, put('a', 'three')), { kind: 'put', revision: 6 });
  assert.deepEqual(view(sm.get('a')), { key: 'a', value: 'three', createRevision: 6, modRevision: 6, version: 1 });
  assert.equal(sm.appliedIndex(), 6);
  assert.equal(sm.count(), 1);
  sm.close();
});

test('values round-trip as bytes, including empty and binary ones', () => {
  const sm = memory();
  const log = new EntryLog();
  const binary = new Uint8Array([0, 255, 0, 1]);
  sm.applyBatch([log.normal({ kind: 'put', key: 'bin', value: binary }), log.normal({ kind: 'put', key: 'empty', value: new Uint8Array(0) })]);
  assert.equal(hex(sm.get('bin')!.value), hex(binary));
  assert.equal(sm.get('empty')!.value.byteLength, 0);
  assert.ok(sm.get('empty')!.value instanceof Uint8Array);
  sm.close();
});

test('reads validate their key', () => {
  const sm = memory();
  assertKvError(() => sm.get(''), 'CHORUS_BAD_KEY');
  assertKvError(() => sm.get('\ud800'), 'CHORUS_BAD_KEY');
  assertKvError(() => sm.get('k'.repeat(4097)), 'CHORUS_KEY_TOO_LARGE');
  assertKvError(() => sm.range({ prefix: '\ud800' }), 'CHORUS_BAD_KEY');
  assertKvError(() => sm.range({ limit: 0 }), 'CHORUS_BAD_REQUEST');
  assertKvError(() => sm.range({ limit: 1.5 }), 'CHORUS_BAD_REQUEST');
  sm.close();
});

// --------------------------------------------------------------------------------------------
// Transactions

/** State for the compare matrix: 'k' = "m", created at 1, modified at 2, version 2. */
function compareFixture(): { sm: SqliteStateMachine; log: EntryLog } {
  const sm = memory();
  const log = new EntryLog();
  sm.applyBatch([log.normal(put('k', 'l')), log.normal(put('k', 'm'))]);
  assert.deepEqual(view(sm.get('k')), { key: 'k', value: 'm', createRevision: 1, modRevision: 2, version: 2 });
  return { sm, log };
}

function flagTxn(compare: Compare[]): Command {
  return {
    kind: 'txn',
    compare,
    success: [{ op: 'put', key: 'flag', value: bytes('success') }],
    failure: [{ op: 'put', key: 'flag', value: bytes('failure') }],
  };
}

test('txn compares each target with each operator on a present key', () => {
  const { sm, log } = compareFixture();
  // [target, operand, expected for ==, !=, <, >]; "<" reads "stored < operand".
  const table: [CompareTarget, number | Uint8Array, Record<CompareOp, boolean>][] = [
    ['version', 1, { '==': false, '!=': true, '<': false, '>': true }],
    ['version', 2, { '==': true, '!=': false, '<': false, '>': false }],
    ['version', 3, { '==': false, '!=': true, '<': true, '>': false }],
    ['createRevision', 0, { '==': false, '!=': true, '<': false, '>': true }],
    ['createRevision', 1, { '==': true, '!=': false, '<': false, '>': false }],
    ['createRevision', 2, { '==': false, '!=': true, '<': true, '>': false }],
    ['modRevision', 1, { '==': false, '!=': true, '<': false, '>': true }],
    ['modRevision', 2, { '==': true, '!=': false, '<': false, '>': false }],
    ['modRevision', 99, { '==': false, '!=': true, '<': true, '>': false }],
    ['value', bytes('l'), { '==': false, '!=': true, '<': false, '>': true }],
    ['value', bytes('m'), { '==': true, '!=': false, '<': false, '>': false }],
    ['value', bytes('ma'), { '==': false, '!=': true, '<': true, '>': false }],
    ['value', bytes(''), { '==': false, '!=': true, '<': false, '>': true }],
  ];
  for (const [target, value, want] of table) {
    for (const op of ['==', '!=', '<', '>'] as const) {
      const result = applyOne(sm, log, flagTxn([{ key: 'k', target, op, value }]));
      assert.equal(result.kind, 'txn');
      if (result.kind !== 'txn') continue;
      const label = `${target} ${op} ${typeof value === 'number' ? value : Buffer.from(value).toString()}`;
      assert.equal(result.succeeded, want[op], label);
      assert.equal(Buffer.from(sm.get('flag')!.value).toString(), want[op] ? 'success' : 'failure', label);
    }
  }
  // The compared key was never touched.
  assert.deepEqual(view(sm.get('k')), { key: 'k', value: 'm', createRevision: 1, modRevision: 2, version: 2 });
  sm.close();
});

test('txn compares on an absent key see version, revisions 0 and no value', () => {
  const { sm, log } = compareFixture();
  const cases: [Compare, boolean][] = [
    [{ key: 'nope', target: 'version', op: '==', value: 0 }, true],
    [{ key: 'nope', target: 'version', op: '>', value: 0 }, false],
    [{ key: 'nope', target: 'createRevision', op: '==', value: 0 }, true],
    [{ key: 'nope', target: 'createRevision', op: '<', value: 1 }, true],
    [{ key: 'nope', target: 'modRevision', op: '!=', value: 0 }, false],
    [{ key: 'nope', target: 'modRevision', op: '<', value: 0 }, false],
    [{ key: 'nope', target: 'value', op: '==', value: bytes('') }, false],
    [{ key: 'nope', target: 'value', op: '!=', value: bytes('m') }, true],
    [{ key: 'nope', target: 'value', op: '<', value: bytes('m') }, false],
    [{ key: 'nope', target: 'value', op: '>', value: bytes('') }, false],
  ];
  for (const [c, want] of cases) {
    const result = applyOne(sm, log, flagTxn([c]));
    assert.ok(result.kind === 'txn');
    assert.equal(result.succeeded, want, `${c.target} ${c.op}`);
  }
  assert.equal(sm.get('nope'), undefined);
  sm.close();
});

test('txn success branch applies every op at one revision, gets see earlier ops', () => {
  const sm = memory();
  const log = new EntryLog();
  sm.applyBatch([log.normal(put('x', 'old')), log.normal(put('y', 'doomed'))]);
  const success: Op[] = [
    { op: 'get', key: 'x' },
    { op: 'put', key: 'x', value: bytes('new') },
    { op: 'get', key: 'x' },
    { op: 'delete', key: 'y' },
    { op: 'get', key: 'y' },
    { op: 'put', key: 'z', value: bytes('born') },
    { op: 'delete', key: 'never' },
  ];
  const result = applyOne(sm, log, {
    kind: 'txn',
    // Both compares must hold; they see the state before the txn.
    compare: [
      { key: 'x', target: 'value', op: '==', value: bytes('old') },
      { key: 'z', target: 'version', op: '==', value: 0 },
    ],
    success,
    failure: [{ op: 'put', key: 'failed', value: bytes('1') }],
  });
  assert.deepEqual(plain(result), plain({
    kind: 'txn',
    revision: 3,
    succeeded: true,
    results: [
      { op: 'get', key: 'x', value: bytes('old'), createRevision: 1, modRevision: 1, version: 1 },
      { op: 'put', key: 'x' },
      { op: 'get', key: 'x', value: bytes('new'), createRevision: 1, modRevision: 3, version: 2 },
      { op: 'delete', key: 'y', deleted: 1 },
      { op: 'get', key: 'y', absent: true },
      { op: 'put', key: 'z' },
      { op: 'delete', key: 'never', deleted: 0 },
    ],
  }));
  assert.deepEqual(view(sm.get('z')), { key: 'z', value: 'born', createRevision: 3, modRevision: 3, version: 1 });
  assert.equal(sm.get('y'), undefined);
  assert.equal(sm.get('failed'), undefined, 'the failure branch did not run');
  sm.close();
});

test('txn failure branch runs alone when any compare fails', () => {
  const sm = memory();
  const log = new EntryLog();
  sm.applyBatch([log.normal(put('x', 'v'))]);
  const result = applyOne(sm, log, {
    kind: 'txn',
    compare: [
      { key: 'x', target: 'version', op: '==', value: 1 }, // holds
      { key: 'x', target: 'value', op: '==', value: bytes('other') }, // fails
    ],
    success: [{ op: 'put', key: 'x', value: bytes('success') }],
    failure: [
      { op: 'put', key: 'f1', value: bytes('a') },
      { op: 'put', key: 'f2', value: bytes('b') },
      { op: 'get', key: 'x' },
    ],
  });
  assert.ok(result.kind === 'txn');
  assert.equal(result.succeeded, false);
  assert.equal(result.revision, 2);
  assert.equal(result.results.length, 3);
  assert.equal(Buffer.from(sm.get('x')!.value).toString(), 'v');
  assert.equal(sm.get('f1')!.modRevision, 2);
  assert.equal(sm.get('f2')!.modRevision, 2);
  // An empty compare list always succeeds; an empty branch writes nothing.
  const empty = applyOne(sm, log, { kind: 'txn', compare: [], success: [], failure: [] });
  assert.deepEqual(empty, { kind: 'txn', revision: 3, succeeded: true, results: [] });
  sm.close();
});

test('an invalid txn is rejected whole at apply time: no partial writes', () => {
  const sm = memory();
  const log = new EntryLog();
  // A forged txn that writes one key twice; encodeCommand does not validate, the apply does.
  const result = applyOne(sm, log, {
    kind: 'txn',
    compare: [],
    success: [
      { op: 'put', key: 'a', value: bytes('1') },
      { op: 'put', key: 'b', value: bytes('1') },
      { op: 'put', key: 'a', value: bytes('2') },
    ],
    failure: [],
  });
  assert.equal(result.kind, 'error');
  assert.ok(result.kind === 'error' && result.code === 'CHORUS_BAD_REQUEST');
  assert.equal(sm.count(), 0);
  assert.equal(sm.appliedIndex(), 1);
  sm.close();
});

// --------------------------------------------------------------------------------------------
// Batches, replay, bad entries

function mixedBatch(log: EntryLog, n: number): ApplyEntry[] {
  const entries: ApplyEntry[] = [];
  for (let i = 0; i < n; i++) {
    if (i % 10 === 3) entries.push(log.noop());
    else if (i % 10 === 7) entries.push(log.config());
    else if (i % 10 === 5) entries.push(log.normal(del(`key/${i - 2}`)));
    else entries.push(log.normal(put(`key/${i % 50}`, `v${i}`)));
  }
  return entries;
}

test('re-applying entries at or below the applied index is a no-op', () => {
  const sm = memory();
  const log = new EntryLog();
  const batch = mixedBatch(log, 60);
  const first = sm.applyBatch(batch);
  assert.equal(first.filter((r) => r.kind === 'skipped').length, 0);
  const digest = sm.digest();
  assert.equal(sm.appliedIndex(), 60);

  const again = sm.applyBatch(batch);
  assert.deepEqual(again, batch.map((e) => ({ kind: 'skipped', revision: e.index })));
  assert.equal(sm.digest(), digest);
  assert.equal(sm.appliedIndex(), 60);

  // A batch straddling the applied index skips the old part and applies the new part.
  const log2 = new EntryLog(50);
  const straddle = mixedBatch(log2, 20); // indexes 50..69
  const results = sm.applyBatch(straddle);
  assert.deepEqual(results.slice(0, 11).map((r) => r.kind), Array(11).fill('skipped'));
  assert.ok(results.slice(11).every((r) => r.kind !== 'skipped'));
  assert.equal(sm.appliedIndex(), 69);

  // The replayed state equals the state of a replica that saw each entry once.
  const other = memory();
  other.applyBatch(batch);
  other.applyBatch(straddle.slice(11));
  assert.equal(other.digest(), sm.digest());
  sm.close();
  other.close();
});

test('many entries apply in one transaction: a failing batch leaves nothing behind', () => {
  const sm = memory();
  const log = new EntryLog();
  const batch = mixedBatch(log, 5000);
  const results = sm.applyBatch(batch);
  assert.equal(results.length, 5000);
  assert.equal(sm.appliedIndex(), 5000);
  assert.deepEqual(results[3], { kind: 'none', revision: 4 });
  assert.deepEqual(results[7], { kind: 'none', revision: 8 });
  const digest = sm.digest();
  // One big batch reaches the state of applying the entries one at a time.
  const single = memory();
  for (const entry of batch) single.applyBatch([entry]);
  assert.equal(single.digest(), digest);
  assert.equal(single.count(), sm.count());
  single.close();

  // Entries 5001..5100 followed by a gap: the exception rolls back all of them.
  const more = mixedBatch(log, 100);
  const gap: ApplyEntry = { index: log.next + 1, type: 'noop' };
  assertKvError(() => sm.applyBatch([...more, gap]), 'CHORUS_APPLY_OUT_OF_ORDER');
  assert.equal(sm.appliedIndex(), 5000);
  assert.equal(sm.digest(), digest);
  // The same entries without the gap then apply normally.
  sm.applyBatch(more);
  assert.equal(sm.appliedIndex(), 5100);
  assertKvError(() => sm.applyBatch([{ index: 0, type: 'noop' }]), 'CHORUS_APPLY_OUT_OF_ORDER');
  assert.deepEqual(sm.applyBatch([]), []);
  sm.close();
});

test('a bad entry in the middle of a batch yields an error result and the others apply', () => {
  const forge = new Packr({ useRecords: false, mapsAsObjects: true });
  const build = (): ApplyEntry[] => {
    const log = new EntryLog();
    return [
      log.normal(put('a', '1')),
      log.raw(new Uint8Array([0xde, 0xad, 0xbe, 0xef])), // corrupt
      log.normal(put('k'.repeat(4097), 'x')), // too large a key (encode does not check limits)
      log.raw(undefined), // a normal entry without payload
      log.raw(forge.pack({ kind: 'config', voters: [] })), // a kind this code does not know
      log.normal({ kind: 'put', key: 'big', value: new Uint8Array(1048577) }),
      log.raw(forge.pack({ kind: 'put', key: new Uint8Array([0xc3, 0x28]), value: bytes('v') })), // invalid UTF-8 key
      log.raw(new Uint8Array(100_000).fill(0x91)), // absurd nesting
      log.normal(put('b', '2')),
    ];
  };
  const sm = memory();
  const results = sm.applyBatch(build());
  assert.deepEqual(results.map((r) => (r.kind === 'error' ? r.code : r.kind)), [
    'put',
    'CHORUS_BAD_COMMAND',
    'CHORUS_KEY_TOO_LARGE',
    'CHORUS_BAD_COMMAND',
    'CHORUS_BAD_COMMAND',
    'CHORUS_VALUE_TOO_LARGE',
    'CHORUS_BAD_COMMAND',
    'CHORUS_BAD_COMMAND',
    'put',
  ]);
  assert.deepEqual(results.map((r) => r.revision), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(sm.appliedIndex(), 9);
  assert.deepEqual(sm.range().records.map((r) => r.key), ['a', 'b']);
  assert.equal(sm.get('b')!.modRevision, 9);

  // Deterministic: another replica reaches the same results, messages included, and state.
  const replica = memory();
  assert.deepEqual(replica.applyBatch(build()), results);
  assert.equal(replica.digest(), sm.digest());
  sm.close();
  replica.close();
});

test('apply-time validation uses the configured limits', () => {
  const sm = memory({ valueBytesMax: 4, keyBytesMax: 2 });
  assert.equal(sm.limits.valueBytesMax, 4);
  const log = new EntryLog();
  const results = sm.applyBatch([
    log.normal({ kind: 'put', key: 'ab', value: new Uint8Array(4) }),
    log.normal({ kind: 'put', key: 'ab', value: new Uint8Array(5) }),
    log.normal({ kind: 'put', key: 'abc', value: new Uint8Array(1) }),
  ]);
  assert.deepEqual(results.map((r) => (r.kind === 'error' ? r.code : r.kind)), ['put', 'CHORUS_VALUE_TOO_LARGE', 'CHORUS_KEY_TOO_LARGE']);
  sm.close();
});

// --------------------------------------------------------------------------------------------
// Ranges

test('prefix range is ordered by UTF-8 bytes, honours the limit and treats keys literally', () => {
  const sm = memory();
  const log = new EntryLog();
  const keys = [
    'a/', 'a/b', 'a/b/c', 'a/c', 'a0', 'a.', 'a', 'b', 'a%', 'a_', 'a%x',
    'é/x', 'é/y', 'é', 'ê', '😀/1', '😀/2', '\ufffd', '\ud7ff', '\ue000', '\u{10ffff}', '\u{10ffff}\u{10ffff}z',
    'n\u0000a', 'n\u0000b', 'n', 'n\u0001',
  ];
  sm.applyBatch(keys.map((k) => log.normal(put(k, k))));
  const scan = (prefix: string, limit?: number) => {
    const result = sm.range(limit === undefined ? { prefix } : { prefix, limit });
    for (const r of result.records) assert.equal(Buffer.from(r.value).toString(), r.key);
    return { keys: result.records.map((r) => r.key), more: result.more };
  };
  assert.deepEqual(scan('a/'), { keys: ['a/', 'a/b', 'a/b/c', 'a/c'], more: false });
  assert.deepEqual(scan('a/', 2), { keys: ['a/', 'a/b'], more: true });
  assert.deepEqual(scan('a/', 4), { keys: ['a/', 'a/b', 'a/b/c', 'a/c'], more: false });
  assert.deepEqual(scan('a/b'), { keys: ['a/b', 'a/b/c'], more: false });
  assert.deepEqual(scan('a%'), { keys: ['a%', 'a%x'], more: false }, "'%' is not a wildcard");
  assert.deepEqual(scan('a_'), { keys: ['a_'], more: false }, "'_' is not a wildcard");
  assert.deepEqual(scan('é'), { keys: ['é', 'é/x', 'é/y'], more: false });
  assert.deepEqual(scan('é/'), { keys: ['é/x', 'é/y'], more: false });
  assert.deepEqual(scan('😀'), { keys: ['😀/1', '😀/2'], more: false });
  assert.deepEqual(scan('\ud7ff'), { keys: ['\ud7ff'], more: false }, 'the successor skips the surrogate range');
  assert.deepEqual(scan('\u{10ffff}'), { keys: ['\u{10ffff}', '\u{10ffff}\u{10ffff}z'], more: false }, 'no successor exists');
  assert.deepEqual(scan('n\u0000'), { keys: ['n\u0000a', 'n\u0000b'], more: false });
  assert.deepEqual(scan('zzz'), { keys: [], more: false });

  // The whole range is in UTF-8 byte order: U+FFFD sorts before U+1F600 (JS sorts the other way).
  const all = sm.range();
  assert.equal(all.more, false);
  const byteOrder = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
  assert.deepEqual(all.records.map((r) => r.key), byteOrder);
  assert.ok(byteOrder.indexOf('\ufffd') < byteOrder.indexOf('😀/1'));
  assert.deepEqual(sm.range({ limit: 3 }).records.map((r) => r.key), byteOrder.slice(0, 3));
  assert.equal(sm.range({ limit: 3 }).more, true);
  assert.equal(sm.count(), keys.length);
  sm.close();
});

test('prefixEnd bumps the last code point that can grow', () => {
  assert.equal(prefixEnd('a/'), 'a0');
  assert.equal(prefixEnd('é'), 'ê');
  assert.equal(prefixEnd('\ud7ff'), '\ue000');
  assert.equal(prefixEnd('😀'), '😁');
  assert.equal(prefixEnd('a\u{10ffff}'), 'b');
  assert.equal(prefixEnd('\u{10ffff}\u{10ffff}'), undefined);
  assert.equal(prefixEnd(''), undefined);
});

// --------------------------------------------------------------------------------------------
// Digest

test('digest covers keys, values and revisions, not the history of pages', () => {
  const a = memory();
  const b = memory();
  const logA = new EntryLog();
  const logB = new EntryLog();
  a.applyBatch([logA.normal(put('k', 'v'))]);
  b.applyBatch([logB.normal(put('k', 'v'))]);
  assert.equal(a.digest(), b.digest());
  // Same key and value, another revision.
  const c = memory();
  const logC = new EntryLog();
  c.applyBatch([logC.noop(), logC.normal(put('k', 'v'))]);
  assert.notEqual(c.digest(), a.digest());
  // Same key and revisions, another value.
  const d = memory();
  d.applyBatch([new EntryLog().normal(put('k', 'w'))]);
  assert.notEqual(d.digest(), a.digest());
  // A key/value boundary shift changes the digest.
  const e = memory();
  const f = memory();
  e.applyBatch([new EntryLog().normal(put('ab', 'c'))]);
  f.applyBatch([new EntryLog().normal(put('a', 'bc'))]);
  assert.notEqual(e.digest(), f.digest());
  // A noop changes the applied index, not the digest.
  const before = a.digest();
  a.applyBatch([logA.noop()]);
  assert.equal(a.digest(), before);
  for (const sm of [a, b, c, d, e, f]) sm.close();
});

// --------------------------------------------------------------------------------------------
// Snapshots, files, restore

function populate(sm: SqliteStateMachine, log: EntryLog, n: number): void {
  sm.applyBatch(mixedBatch(log, n));
  sm.applyBatch([
    log.normal({ kind: 'put', key: 'bin/😀', value: new Uint8Array(3000).fill(9) }),
    log.normal({
      kind: 'txn',
      compare: [{ key: 'bin/😀', target: 'version', op: '==', value: 1 }],
      success: [{ op: 'put', key: 'bin/😀', value: bytes('again') }, { op: 'put', key: 'txn', value: bytes('yes') }],
      failure: [],
    }),
  ]);
}

test('snapshot then restore into a fresh instance gives the same state', () => {
  const source = memory();
  const log = new EntryLog();
  populate(source, log, 300);
  const snap = source.snapshot();
  assert.equal(snap.index, source.appliedIndex());

  const target = memory();
  target.applyBatch([new EntryLog().normal(put('stale', 'x'))]);
  target.restore(snap.data);
  assert.equal(target.appliedIndex(), snap.index);
  assert.equal(target.digest(), source.digest());
  assert.equal(target.count(), source.count());
  assert.equal(target.get('stale'), undefined);

  // Both continue identically; entries the snapshot covers are skipped.
  const next = mixedBatch(new EntryLog(snap.index - 5), 30);
  const fromSource = source.applyBatch(next);
  const fromTarget = target.applyBatch(next);
  assert.deepEqual(fromTarget, fromSource);
  assert.equal(fromTarget.filter((r) => r.kind === 'skipped').length, 6);
  assert.equal(target.digest(), source.digest());
  source.close();
  target.close();
});

test('a snapshot of a file-backed instance holds what is still in its WAL', (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'state.db');
  const sm = SqliteStateMachine.open(file);
  populate(sm, new EntryLog(), 200);
  assert.ok(fs.existsSync(`${file}-wal`));
  const snap = sm.snapshot();
  const copy = memory();
  copy.restore(snap.data);
  assert.equal(copy.digest(), sm.digest());
  assert.equal(copy.appliedIndex(), sm.appliedIndex());
  sm.close();
  copy.close();
});

test('a file-backed instance keeps its state and applied index across reopen', (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'state.db');
  const log = new EntryLog();
  const first = SqliteStateMachine.open(file);
  populate(first, log, 100);
  const digest = first.digest();
  const applied = first.appliedIndex();
  first.close();
  first.close(); // idempotent

  const second = SqliteStateMachine.open(file);
  assert.equal(second.appliedIndex(), applied);
  assert.equal(second.digest(), digest);
  // Replaying the log from the start after a "crash" changes nothing.
  const replay = mixedBatch(new EntryLog(), 100);
  assert.ok(second.applyBatch(replay).every((r) => r.kind === 'skipped'));
  assert.equal(second.digest(), digest);
  second.close();
});

test('restore on a file-backed instance survives reopen', (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'state.db');
  const source = memory();
  populate(source, new EntryLog(), 400);
  const snap = source.snapshot();

  const target = SqliteStateMachine.open(file);
  populate(target, new EntryLog(), 1000); // different, larger state, partly in the WAL
  target.restore(snap.data);
  assert.equal(target.appliedIndex(), snap.index);
  assert.equal(target.digest(), source.digest());
  assert.equal(fs.existsSync(`${file}.restore-tmp`), false);
  // Still writable, still in WAL mode after the swap.
  const next = mixedBatch(new EntryLog(snap.index + 1), 20);
  target.applyBatch(next);
  source.applyBatch(next);
  assert.equal(target.digest(), source.digest());
  assert.ok(fs.existsSync(`${file}-wal`), 'the reopened file is in WAL mode');
  target.close();

  const reopened = SqliteStateMachine.open(file);
  assert.equal(reopened.appliedIndex(), source.appliedIndex());
  assert.equal(reopened.digest(), source.digest());
  reopened.close();

  // Independently of our code: the file is a sound SQLite database.
  const raw = new Database(file, { readonly: true });
  assert.equal(raw.pragma('integrity_check', { simple: true }), 'ok');
  assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
  raw.close();
  source.close();
});

test('a file-backed snapshot restores into another file-backed instance', (t) => {
  const dir = tempDir(t);
  const a = SqliteStateMachine.open(path.join(dir, 'a.db'));
  const b = SqliteStateMachine.open(path.join(dir, 'b.db'));
  populate(a, new EntryLog(), 150);
  b.restore(a.snapshot().data);
  assert.equal(b.digest(), a.digest());
  b.close();
  const again = SqliteStateMachine.open(path.join(dir, 'b.db'));
  assert.equal(again.digest(), a.digest());
  assert.equal(again.appliedIndex(), a.appliedIndex());
  again.close();
  a.close();
});

test('a bad snapshot is refused with CHORUS_BAD_SNAPSHOT and changes nothing', (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'state.db');
  const sm = SqliteStateMachine.open(file);
  populate(sm, new EntryLog(), 50);
  const digest = sm.digest();
  const applied = sm.appliedIndex();

  const foreign = new Database(':memory:');
  foreign.exec('CREATE TABLE other (x); INSERT INTO other VALUES (1)');
  const tampered = memory();
  tampered.applyBatch([new EntryLog().normal(put('k', 'v'))]);
  const good = tampered.snapshot().data;
  // A valid image with an extra trigger must not be adopted.
  const withTrigger = new Database(Buffer.from(good));
  withTrigger.exec('CREATE TRIGGER sneaky AFTER INSERT ON kv BEGIN DELETE FROM kv; END');
  const truncated = good.subarray(0, Math.floor(good.byteLength / 2));
  const scribbled = new Uint8Array(good);
  scribbled.fill(0x5a, 200, good.byteLength);

  const bad: Uint8Array[] = [
    new Uint8Array(0),
    bytes('not a database at all, clearly, and long enough to pass a length check, surely, yes it is long enough now'),
    foreign.serialize(),
    withTrigger.serialize(),
    truncated,
    scribbled,
  ];
  for (const data of bad) {
    assertKvError(() => sm.restore(data), 'CHORUS_BAD_SNAPSHOT');
    assert.equal(sm.digest(), digest);
    assert.equal(sm.appliedIndex(), applied);
    // The image was written beside the database to be checked there: nothing of it stays.
    assert.deepEqual(fs.readdirSync(dir).filter((name) => name.includes('restore')), []);
  }
  // The good image is still fine, and the caller's bytes were not modified, even when its
  // header says WAL mode (the file written gets the rollback header).
  const walHeader = new Uint8Array(good);
  walHeader[18] = 2;
  walHeader[19] = 2;
  const walCopy = new Uint8Array(walHeader);
  sm.restore(walHeader);
  assert.equal(hex(walHeader), hex(walCopy));
  assert.equal(sm.digest(), tampered.digest());
  const goodCopy = new Uint8Array(good);
  sm.restore(good);
  assert.equal(hex(good), hex(goodCopy));
  assert.equal(sm.digest(), tampered.digest());
  foreign.close();
  withTrigger.close();
  tampered.close();
  sm.close();
});

test('opening a file that belongs to something else is CHORUS_KV_SCHEMA', (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'foreign.db');
  const foreign = new Database(file);
  foreign.exec('CREATE TABLE other (x)');
  foreign.close();
  assertKvError(() => SqliteStateMachine.open(file), 'CHORUS_KV_SCHEMA');
  const newer = path.join(dir, 'newer.db');
  const sm = SqliteStateMachine.open(newer);
  sm.close();
  const db = new Database(newer);
  db.pragma('user_version = 99');
  db.close();
  assertKvError(() => SqliteStateMachine.open(newer), 'CHORUS_KV_SCHEMA');
});

test('an image staged piece by piece restores like the whole image; offset 0 starts over', (t) => {
  const dir = tempDir(t);
  const source = SqliteStateMachine.open(path.join(dir, 'source.db'));
  populate(source, new EntryLog(), 120);
  const image = source.snapshot().data;
  const pieceBytes = 4096;
  for (const target of [SqliteStateMachine.open(path.join(dir, 'state.db')), memory()]) {
    const before = target.digest();
    // A first image abandoned half way (the leader changed): the next offset 0 drops it.
    target.stageImage(0, image.subarray(0, pieceBytes));
    target.stageImage(pieceBytes, image.subarray(pieceBytes, 2 * pieceBytes));
    assert.throws(() => target.stageImage(5 * pieceBytes, image.subarray(0, 10)), /offset 20480, but 8192 bytes are/);
    for (let offset = 0; offset < image.byteLength; offset += pieceBytes) {
      target.stageImage(offset, image.subarray(offset, Math.min(image.byteLength, offset + pieceBytes)));
    }
    assert.equal(target.digest(), before, 'staging changes nothing');
    assert.throws(() => target.restoreStaged(image.byteLength + 1), /staged/);
    target.restoreStaged(image.byteLength);
    assert.equal(target.digest(), source.digest());
    assert.equal(target.appliedIndex(), source.appliedIndex());
    assert.throws(() => target.restoreStaged(image.byteLength), /none staged/, 'the staged image was used up');
    target.close();
  }
  assert.deepEqual(fs.readdirSync(dir).filter((name) => name.includes('restore')), []);
  // An image whose applied index is not the snapshot's is refused, and changes nothing.
  const other = SqliteStateMachine.open(path.join(dir, 'state.db'));
  const otherDigest = other.digest();
  other.stageImage(0, image);
  assertKvError(() => other.restoreStaged(image.byteLength, source.appliedIndex() + 1), 'CHORUS_BAD_SNAPSHOT');
  assert.equal(other.digest(), otherDigest);
  // A rollback journal left beside the restore file (a crash while the check upgraded an image)
  // is removed with it, so that it can never be rolled back into the next image.
  fs.writeFileSync(path.join(dir, 'state.db.restore-tmp-journal'), 'a journal of another image');
  other.stageImage(0, image);
  assert.deepEqual(fs.readdirSync(dir).filter((name) => name.includes('restore')), ['state.db.restore-tmp']);
  other.restoreStaged(image.byteLength, source.appliedIndex());
  assert.equal(other.digest(), source.digest());
  other.close();
  fs.writeFileSync(path.join(dir, 'state.db.restore-tmp-journal'), 'left by a crash');
  SqliteStateMachine.open(path.join(dir, 'state.db')).close();
  assert.deepEqual(fs.readdirSync(dir).filter((name) => name.includes('restore')), [], 'open removes it too');
  // close() removes a half-received image.
  const closing = SqliteStateMachine.open(path.join(dir, 'state.db'));
  closing.stageImage(0, image.subarray(0, pieceBytes));
  assert.deepEqual(fs.readdirSync(dir).filter((name) => name.includes('restore')), ['state.db.restore-tmp']);
  closing.close();
  assert.deepEqual(fs.readdirSync(dir).filter((name) => name.includes('restore')), []);
  source.close();
});

test('open removes the temporary file of a restore that crashed before its rename', (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'state.db');
  const sm = SqliteStateMachine.open(file);
  sm.applyBatch([new EntryLog().normal(put('k', 'v'))]);
  sm.close();
  fs.writeFileSync(`${file}.restore-tmp`, 'half an image');
  const reopened = SqliteStateMachine.open(file);
  assert.equal(fs.existsSync(`${file}.restore-tmp`), false);
  assert.equal(reopened.appliedIndex(), 1);
  reopened.close();
});

test('errors carry stable codes and the KvError class', () => {
  const sm = memory();
  try {
    sm.get('');
    assert.fail('expected a KvError');
  } catch (error) {
    assert.ok(error instanceof KvError);
    assert.ok(error instanceof Error);
    assert.equal(error.name, 'KvError');
    assert.equal(error.code, 'CHORUS_BAD_KEY');
  }
  sm.close();
});

test('encodeCommand output is what the state machine applies', () => {
  // Guards the contract between proposers (who encode) and the state machine (which decodes).
  const sm = memory();
  const data = encodeCommand(put('k', 'v'));
  assert.deepEqual(sm.applyBatch([{ index: 1, type: 'normal', data }]), [{ kind: 'put', revision: 1 }]);
  // A payload that arrives as a plain Uint8Array (not a Buffer), e.g. from the transport.
  const copy = new Uint8Array(encodeCommand(put('k', 'w')));
  assert.deepEqual(sm.applyBatch([{ index: 2, type: 'normal', data: copy }]), [{ kind: 'put', revision: 2 }]);
  assert.equal(Buffer.from(sm.get('k')!.value).toString(), 'w');
  sm.close();
});
