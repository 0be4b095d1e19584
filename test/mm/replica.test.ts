import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClockDriftError, MmError, MultiMasterReplica, type ChangeBatch, type ShippedRecord } from '../../src/core/mm/index.ts';
import { Cluster, dec, enc, text } from './harness.ts';

const isCode = (code: string) => (e: unknown) => e instanceof MmError && e.code === code;

test('replica: open persists a new incarnation; a restart restores records, seqs and counters', () => {
  const c = new Cluster('versions', 2);
  assert.equal(c.r(0).stats().incarnation, 1);
  c.put(0, 'a', 'one');
  c.put(0, 'b', 'two');
  c.del(0, 'a');
  const before = c.r(0).stateHash();
  c.restart(0);
  assert.equal(c.r(0).stats().incarnation, 2);
  assert.equal(c.r(0).stateHash(), before);
  assert.equal(c.r(0).stats().lastSeq, 3);
  assert.equal(c.r(0).stats().changeLogEntries, 2);
  assert.equal(c.put(0, 'c', 'three').dot.seq, 4);
  // Durable state of another member or mode is refused.
  const wrong = () => MultiMasterReplica.open({ ...c.options(1) }, { meta: c.durables[0]!.meta, records: [] });
  assert.throws(wrong, isCode('CHORUS_BAD_DURABLE_STATE'));
  assert.throws(() => MultiMasterReplica.open({ ...c.options(0), mode: 'lww' }, { meta: c.durables[0]!.meta, records: [] }), isCode('CHORUS_BAD_DURABLE_STATE'));
});

test('replica: changes are shipped in batches bounded by count and bytes, and resume from the acknowledged cursor', () => {
  const c = new Cluster('lww', 2);
  for (let i = 0; i < 5; i++) c.put(0, `k${i}`, `v${i}`);
  const b1 = c.batch(0, 1, 2);
  assert.deepEqual([b1.fromSeq, b1.toSeq, b1.complete, b1.records.length], [0, 2, false, 2]);
  // Lost in the network: the next batch starts from the same cursor.
  const again = c.batch(0, 1, 2);
  assert.deepEqual([again.fromSeq, again.toSeq], [0, 2]);
  c.deliver(again);
  const b2 = c.batch(0, 1, 2);
  assert.deepEqual([b2.fromSeq, b2.toSeq, b2.complete], [2, 4, false]);
  c.deliver(b2);
  // A byte limit below one record still ships one record per batch.
  const b3 = c.batch(0, 1, 100, 1);
  assert.deepEqual([b3.fromSeq, b3.toSeq, b3.complete, b3.records.length], [4, 5, true, 1]);
  c.deliver(b3);
  // Rewriting a key moves its entry: only it is shipped again, never the whole history.
  c.put(0, 'k1', 'v1bis');
  const b4 = c.batch(0, 1);
  assert.deepEqual(b4.records.map((r) => r.key), ['k1']);
  c.deliver(b4);
  c.assertConverged();
  // An empty complete batch is a heartbeat.
  const hb = c.batch(0, 1);
  assert.deepEqual([hb.fromSeq, hb.toSeq, hb.complete, hb.records.length], [6, 6, true, 0]);
});

test('replica: a crash loses unpersisted acknowledgements; the stream resumes from what was persisted, duplicates are harmless', () => {
  const c = new Cluster('crdt', 2);
  for (let i = 0; i < 4; i++) c.crdt(0, `s${i}`, { type: 'set', op: 'add', value: i });
  c.stream(0, 1, 2);
  assert.equal(c.r(0).stats().lastSeq, 4);
  // n1 crashes before its tick persisted n2's acks: it resends from cursor 0.
  c.restart(0);
  const resend = c.batch(0, 1);
  assert.equal(resend.fromSeq, 0);
  assert.equal(resend.records.length, 4);
  const res = c.deliver(resend);
  assert.equal(res.applied, true);
  assert.equal(res.changed, 0);
  // After a tick the cursor survives a crash.
  c.housekeeping();
  c.restart(0);
  assert.equal(c.batch(0, 1).fromSeq, 4);
  // The receiver's cursor survives its own crash too (it is persisted with the records).
  c.restart(1);
  assert.equal(c.r(1).inboundOf('n1').cursor, 4);
});

test('replica: a batch sent before one already applied is skipped; applying twice changes nothing', () => {
  const c = new Cluster('versions', 2);
  c.put(0, 'x', 'a');
  const older = c.batch(0, 1);
  c.put(0, 'y', 'b');
  const newer = c.batch(0, 1);
  assert.equal(c.deliver(newer).applied, true);
  const stale = c.deliver(older);
  assert.equal(stale.applied, false);
  assert.equal(stale.persist.length, 0);
  assert.equal(c.r(1).stats().batchesRefused, 1);
  assert.equal(c.deliver(newer).applied, false);
  c.assertConverged(['x', 'y']);
});

test('replica: a batch leaving a gap after the receiver cursor is refused', () => {
  const c = new Cluster('lww', 2);
  c.put(0, 'x', '1');
  c.put(0, 'y', '2');
  const b = c.batch(0, 1);
  const gap: ChangeBatch = { ...b, fromSeq: 1 };
  const res = c.deliver(gap);
  assert.equal(res.applied, false);
  assert.equal(res.ack.cursor, 0);
  assert.equal(c.r(1).inspect('y'), null);
});

test('replica: a batch with a stamp beyond maxClockDriftMs is refused whole with CHORUS_CLOCK_DRIFT, and accepted once clocks agree', () => {
  const c = new Cluster('lww', 2, { maxClockDriftMs: 5000 });
  c.clocks[0] = 1_000_000 + 60_000; // n1's clock runs a minute ahead
  c.put(0, 'x', 'from the future');
  c.put(1, 'y', 'local');
  const b = c.batch(0, 1);
  assert.throws(() => c.r(1).applyRemote(b, c.now(1)), (e: unknown) => e instanceof ClockDriftError && e.code === 'CHORUS_CLOCK_DRIFT');
  assert.equal(c.r(1).inspect('x'), null);
  assert.equal(c.r(1).inboundOf('n1').cursor, 0);
  assert.equal(c.r(1).stats().clockDriftRejections, 1);
  // Repairs and hints are held to the same bound.
  assert.throws(() => c.r(1).applyRepair(b.records, c.now(1)), isCode('CHORUS_CLOCK_DRIFT'));
  // n2's clock catches up (or n1's is fixed): the same batch goes through.
  c.clocks[1] = 1_000_000 + 56_000;
  assert.equal(c.deliver(b).applied, true);
  assert.equal(dec.decode((c.r(1).get('x') as { value: Uint8Array }).value), 'from the future');
  // n2's next write is stamped after the write it has seen.
  const next = c.put(1, 'x', 'after');
  assert.ok(next.stamp.physicalMs >= 1_060_000);
});

for (const mode of ['lww', 'versions', 'crdt'] as const) {
  const write = (c: Cluster, i: number, key: string, v: string) => (mode === 'crdt' ? c.crdt(i, key, { type: 'register', op: 'set', value: v }) : c.put(i, key, v));

  test(`replica (${mode}): a tombstone is collected only once every member has seen it, and the key never comes back`, () => {
    const c = new Cluster(mode, 3);
    const first = write(c, 0, 'k', 'v1');
    c.syncAll();
    c.del(1, 'k');
    // n3 is unreachable: n2's tombstone stays.
    c.stream(1, 0);
    c.stream(0, 1);
    c.housekeeping();
    assert.equal(c.r(1).stats().tombstones, 1);
    assert.equal(c.r(0).stats().tombstones, 1);
    // n3 gets it; once every member's acknowledgement is known everywhere, it goes everywhere.
    c.syncAll();
    c.syncAll();
    for (let i = 0; i < 3; i++) {
      assert.equal(c.r(i).stats().tombstones, 0, `tombstone collected at ${c.ids[i]}`);
      assert.equal(c.r(i).inspect('k'), null);
    }
    // A late copy of the deleted record (a delayed push, an old repair, a stale hint) is pruned.
    const stale: ShippedRecord = first.record;
    for (let i = 0; i < 3; i++) {
      const res = c.r(i).applyRepair([stale], c.now(i), 'hint');
      assert.equal(res.changed, 0);
      assert.equal(c.r(i).get('k').found, false);
    }
    // A new write after the delete is a new key.
    write(c, 2, 'k', 'v2');
    c.syncAll();
    c.assertConverged(['k']);
    assert.equal(c.r(0).get('k').found, true);
  });
}

test('replica (lww): a tombstone waits until older writes nobody has seen yet are seen everywhere', () => {
  const c = new Cluster('lww', 2);
  c.put(0, 'a', 'x');
  const older = c.put(0, 'k', 'written before the delete, not yet replicated');
  c.advance(1000);
  c.del(1, 'k'); // n2 deletes k without having seen n1's write
  c.stream(1, 0);
  // n1's stream to n2 is partial: n2 has not seen n1's write of k.
  c.deliver(c.batch(0, 1, 1));
  c.housekeeping();
  c.stream(1, 0);
  c.housekeeping();
  assert.equal(c.r(1).stats().tombstones, 1, 'n2 must keep the tombstone: an older write may still arrive');
  // The older write arrives late, as a push: the tombstone's greater stamp still wins.
  c.r(1).applyRepair([older.record], c.now(1), 'push');
  assert.equal(c.r(1).get('k').found, false);
  c.syncAll();
  c.syncAll();
  assert.equal(c.r(0).stats().tombstones + c.r(1).stats().tombstones, 0);
  c.assertConverged(['k']);
  assert.equal(c.r(0).get('k').found, false);
  assert.equal(c.r(0).stats().lwwOverwrites, 1, 'n1 counted its write lost to the concurrent delete');
});

test('replica: hints are bounded per peer, dropping the oldest or refusing, and counted', () => {
  const rec = (c: Cluster, key: string, size: number): ShippedRecord => c.put(0, key, 'x'.repeat(size)).record;
  const drop = new Cluster('lww', 3, { hintsMax: 2, hintsBytesMax: 10_000, hintsPolicy: 'drop-oldest' });
  for (const k of ['a', 'b', 'c']) assert.equal(drop.r(0).addHint('n2', rec(drop, k, 10)), 'queued');
  assert.deepEqual(drop.r(0).hintsPending('n2').count, 2);
  assert.equal(drop.r(0).stats().hintsDropped, 1);
  const hinted = drop.r(0).hintsFor('n2', 10, 1 << 20)!;
  assert.deepEqual(hinted.hints.map((h) => h.key), ['b', 'c']);
  // Merging into a queued key does not count against the limit.
  assert.equal(drop.r(0).addHint('n2', rec(drop, 'c', 20)), 'merged');
  assert.equal(drop.r(0).stats().hintsDropped, 1);
  // An ack of a hint that changed since it was sent does not drop it.
  drop.r(0).ackHints('n2', hinted.hints.map((h) => ({ key: h.key, version: h.version })));
  assert.deepEqual(drop.r(0).hintsFor('n2', 10, 1 << 20)!.hints.map((h) => h.key), ['c']);
  // Delivery: the target merges hints like repairs and counts them.
  const batch = drop.r(0).hintsFor('n2', 10, 1 << 20)!;
  const res = drop.r(1).applyRepair(batch.hints, drop.now(1), 'hint');
  assert.equal(res.changed, 1);
  assert.equal(drop.r(1).stats().hintsApplied, 1);
  drop.r(0).ackHints('n2', batch.hints);
  assert.equal(drop.r(0).hintsFor('n2', 10, 1 << 20), null);

  const refuse = new Cluster('lww', 3, { hintsMax: 2, hintsBytesMax: 300, hintsPolicy: 'refuse' });
  assert.equal(refuse.r(0).addHint('n3', rec(refuse, 'a', 10)), 'queued');
  assert.equal(refuse.r(0).addHint('n3', rec(refuse, 'b', 10)), 'queued');
  assert.equal(refuse.r(0).addHint('n3', rec(refuse, 'c', 10)), 'refused');
  assert.equal(refuse.r(0).stats().hintsRefused, 1);
  // The byte limit: one hint larger than the whole queue is refused under either policy.
  assert.equal(refuse.r(0).addHint('n2', rec(refuse, 'big', 1000)), 'refused');
  assert.equal(drop.r(0).addHint('n3', rec(drop, 'big', 20_000)), 'refused');
  assert.equal(refuse.r(0).stats().hintsRefused, 2);
  // Hints go out in bounded batches: countMax and bytesMax (at least one).
  const many = new Cluster('lww', 2);
  for (let i = 0; i < 5; i++) many.r(0).addHint('n2', rec(many, `k${i}`, 100));
  assert.equal(many.r(0).hintsFor('n2', 2, 1 << 20)!.hints.length, 2);
  assert.equal(many.r(0).hintsFor('n2', 100, 1)!.hints.length, 1);
  assert.equal(many.r(0).hintsPending('n2').count, 5);
  assert.ok(many.r(0).hintsPending('n2').bytes > 500);
  assert.throws(() => many.r(0).addHint('n9', rec(many, 'z', 1)), isCode('CHORUS_BAD_REPLICATION_MESSAGE'));
  // Hints live in memory only: a crash loses them (the stream and anti-entropy cover for them).
  many.restart(0);
  assert.equal(many.r(0).hintsPending('n2').count, 0);
});

test('replica: new keys past keysMax are refused (tombstones count); remote records are still accepted', () => {
  const c = new Cluster('versions', 2, { keysMax: 4 });
  c.put(0, 'a', '1');
  c.put(0, 'b', '2');
  c.put(0, 'c', '3');
  c.del(0, 'c');
  c.del(0, 'x');
  assert.throws(() => c.put(0, 'd', '4'), isCode('CHORUS_KEYSPACE_FULL'));
  assert.throws(() => c.del(0, 'e'), isCode('CHORUS_KEYSPACE_FULL'));
  c.put(0, 'a', 'overwrite is fine');
  // A remote record is accepted past the limit: refusing it would break convergence.
  c.put(1, 'd', 'remote');
  c.stream(1, 0);
  assert.equal(c.r(0).stats().keys + c.r(0).stats().tombstones, 5);
  // Once the two tombstones are collected, a new key fits again.
  c.syncAll();
  c.syncAll();
  assert.equal(c.r(0).stats().tombstones, 0);
  c.put(0, 'e', 'fits');
  assert.throws(() => c.put(0, 'f', 'no'), isCode('CHORUS_KEYSPACE_FULL'));
});

test('replica: keys, values and records are bounded', () => {
  const c = new Cluster('crdt', 1, { keyBytesMax: 8, valueBytesMax: 16, recordBytesMax: 400 });
  assert.throws(() => c.crdt(0, '', { type: 'counter', op: 'incr' }), isCode('CHORUS_BAD_KEY'));
  assert.throws(() => c.crdt(0, 'ééééé', { type: 'counter', op: 'incr' }), isCode('CHORUS_BAD_KEY'));
  let refused = false;
  for (let i = 0; i < 100 && !refused; i++) {
    try {
      c.crdt(0, 'set', { type: 'set', op: 'add', value: `element-${i}` });
    } catch (e) {
      assert.ok(isCode('CHORUS_VALUE_TOO_LARGE')(e));
      refused = true;
    }
  }
  assert.ok(refused, 'a set cannot grow past recordBytesMax');
  const kv = new Cluster('lww', 1, { valueBytesMax: 16 });
  assert.throws(() => kv.put(0, 'k', 'x'.repeat(17)), isCode('CHORUS_VALUE_TOO_LARGE'));
  assert.throws(() => kv.r(0).crdt('k', { type: 'counter', op: 'incr' }, 1), isCode('CHORUS_WRONG_MODE'));
  assert.throws(() => new Cluster('crdt', 1).put(0, 'k', 'v'), isCode('CHORUS_WRONG_MODE'));
  assert.throws(() => new Cluster('versions', 1).put(0, 'k', 'v', 'not a token!'), isCode('CHORUS_BAD_TOKEN'));
});

test('replica: anti-entropy finds and repairs what the stream missed, by range digests and key hashes', () => {
  const c = new Cluster('versions', 2, { digestLeafBits: 4 });
  // Writes applied at each member but never streamed (as if the stream had been lost).
  for (let i = 0; i < 40; i++) c.put(i % 2, `key${i}`, `v${i}`);
  c.put(0, 'both', 'from n1');
  c.put(1, 'both', 'from n2');
  assert.notEqual(c.r(0).stateHash(), c.r(1).stateHash());
  const whole = c.r(0).digest(8);
  assert.equal(whole.length, 8);
  assert.equal(whole.reduce((n, d) => n + d.keys, 0), 21);
  const moved = c.antiEntropy(0, 1, 4, 3);
  assert.ok(moved >= 42, `moved ${moved}`);
  c.assertConverged();
  const view = c.r(0).get('both');
  assert.ok(view.mode === 'versions' && view.siblings.length === 2);
  assert.equal(c.r(0).stats().repairs + c.r(1).stats().repairs, 42);
  // Nothing to do once equal.
  assert.equal(c.antiEntropy(0, 1), 0);
  // Paging: keysInRange lists at most countMax keys after afterKey.
  const page1 = c.r(0).keysInRange({ start: 0, end: 16 }, 5);
  const page2 = c.r(0).keysInRange({ start: 0, end: 16 }, 5, page1.entries[4]!.key);
  assert.equal(page1.complete, false);
  assert.ok(page2.entries[0]!.key > page1.entries[4]!.key);
  // recordsFor honours its byte budget (and always sends one record).
  assert.equal(c.r(0).recordsFor(['key1', 'key2', 'key3'], 1).records.length, 1);
});

test('replica: malformed or misaddressed replication messages are refused', () => {
  const c = new Cluster('lww', 2);
  c.put(0, 'x', '1');
  const b = c.batch(0, 1);
  const bad = (batch: unknown) => assert.throws(() => c.r(1).applyRemote(batch as ChangeBatch, c.now(1)), isCode('CHORUS_BAD_REPLICATION_MESSAGE'));
  bad({ ...b, keyspace: 'other' });
  bad({ ...b, target: 'n1' });
  bad({ ...b, origin: 'n9' });
  bad({ ...b, toSeq: -1 });
  bad({ ...b, records: [{ key: 'x', state: { mode: 'versions', siblings: [], context: [] } }] });
  bad({ ...b, records: [{ key: 'x', state: { ...b.records[0]!.state, dot: { member: 'n9', seq: 1 } } }] });
  bad({ ...b, records: [{ key: 'x', state: { ...b.records[0]!.state, value: 'not bytes' } }] });
  assert.throws(() => c.r(0).onAck({ keyspace: 'ks', origin: 'n1', from: 'n2', cursor: 99, seen: 0, frontier: null }), isCode('CHORUS_BAD_REPLICATION_MESSAGE'));
  assert.throws(() => c.r(0).changesSince('n1', 1, 1), isCode('CHORUS_BAD_REPLICATION_MESSAGE'));
  const dvv = new Cluster('versions', 2);
  dvv.put(0, 'x', '1');
  const db = dvv.batch(0, 1);
  const state = db.records[0]!.state;
  // A sibling outside its context would break the merge rule: refused.
  assert.throws(
    () => dvv.r(1).applyRemote({ ...db, records: [{ key: 'x', state: { ...state, context: [] } as typeof state }] }, dvv.now(1)),
    isCode('CHORUS_BAD_REPLICATION_MESSAGE'),
  );
  assert.equal(text(dvv.r(1).get('x')), text({ mode: 'versions', found: false, siblings: [], token: 'MQ' }));
  void enc;
});

test('keyspace definitions: {"name","mode":"multi-master","conflicts"} is parsed strictly', async () => {
  const { parseKeyspaceSpec } = await import('../../src/core/mm/index.ts');
  assert.deepEqual(parseKeyspaceSpec({ name: 'carts', mode: 'multi-master', conflicts: 'crdt' }), { name: 'carts', mode: 'multi-master', conflicts: 'crdt' });
  for (const bad of [null, [], { name: 'carts', mode: 'consensus', conflicts: 'lww' }, { name: 'carts', mode: 'multi-master', conflicts: 'mvcc' }, { name: 'no spaces', mode: 'multi-master', conflicts: 'lww' }, { name: 'x', mode: 'multi-master', conflicts: 'lww', extra: 1 }]) {
    assert.throws(() => parseKeyspaceSpec(bad), isCode('CHORUS_BAD_KEYSPACE'));
  }
});
