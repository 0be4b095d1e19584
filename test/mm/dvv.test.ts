import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeToken, dvvView, encodeToken, mergeDvv, putDvv, deleteDvv, type DvvRecord } from '../../src/core/mm/dvv.ts';
import { MultiMasterReplica } from '../../src/core/mm/replica.ts';
import { MmError } from '../../src/core/mm/errors.ts';
import type { HlcStamp } from '../../src/core/mm/hlc.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();
const st = (physicalMs: number, member = 'a'): HlcStamp => ({ physicalMs, logical: 0, member });
const values = (r: DvvRecord): string[] => dvvView(r).siblings.map((s) => dec.decode(s.value));

test('dvv: a put with a token replaces exactly the siblings it saw; a concurrent one survives', () => {
  const a1 = putDvv(null, enc.encode('v1'), null, { member: 'a', seq: 1 }, st(1)).record;
  // b has seen v1 (replicated) and, concurrently with a's next write, writes with v1's context.
  const a2 = putDvv(a1, enc.encode('v2'), a1.context, { member: 'a', seq: 2 }, st(2)).record;
  const b1 = putDvv(a1, enc.encode('w1'), a1.context, { member: 'b', seq: 1 }, st(3, 'b')).record;
  assert.deepEqual(values(a2), ['v2']);
  const merged = mergeDvv(a2, b1);
  assert.deepEqual(values(merged), ['v2', 'w1']);
  assert.deepEqual(mergeDvv(b1, a2), merged);
  // A client that read both siblings resolves them into one.
  const resolved = putDvv(merged, enc.encode('r'), merged.context, { member: 'b', seq: 2 }, st(4, 'b'));
  assert.deepEqual(values(resolved.record), ['r']);
  assert.equal(resolved.replaced.length, 2);
  // Stale copies arriving later change nothing.
  assert.deepEqual(mergeDvv(mergeDvv(resolved.record, a2), b1), resolved.record);
});

test('dvv: a blind put joins the siblings; a blind delete removes what this member holds', () => {
  const r1 = putDvv(null, enc.encode('x'), null, { member: 'a', seq: 1 }, st(1)).record;
  const r2 = putDvv(r1, enc.encode('y'), null, { member: 'a', seq: 2 }, st(2)).record;
  assert.deepEqual(values(r2), ['x', 'y']);
  const gone = deleteDvv(r2, null, { member: 'a', seq: 3 });
  assert.equal(gone.record.siblings.length, 0);
  assert.equal(dvvView(gone.record).found, false);
  // A delete with an older token leaves siblings it did not see.
  const partial = deleteDvv(r2, r1.context, { member: 'a', seq: 3 });
  assert.deepEqual(values(partial.record), ['y']);
});

test('dvv: many clients writing through one member with their tokens never pile up siblings', () => {
  const members = ['a', 'b'];
  const { replica } = MultiMasterReplica.open({ keyspace: 'k', mode: 'versions', self: 'a', members });
  // 200 sequential read-modify-write cycles from 50 different clients.
  for (let i = 0; i < 200; i++) {
    const token = replica.get('cart');
    assert.equal(token.mode, 'versions');
    if (token.mode !== 'versions') return;
    replica.put('cart', enc.encode(`client${i % 50}:${i}`), 1000 + i, token.token);
  }
  const view = replica.get('cart');
  assert.ok(view.mode === 'versions' && view.siblings.length === 1);
  // Truly concurrent writers (all with the same token) each keep a sibling, no more...
  const base = replica.get('cart');
  if (base.mode !== 'versions') return;
  for (let c = 0; c < 5; c++) replica.put('cart', enc.encode(`concurrent${c}`), 2000 + c, base.token);
  const concurrent = replica.get('cart');
  assert.ok(concurrent.mode === 'versions' && concurrent.siblings.length === 5);
  // ...and one write with the merged token resolves them.
  if (concurrent.mode !== 'versions') return;
  replica.put('cart', enc.encode('merged'), 3000, concurrent.token);
  const final = replica.get('cart');
  assert.ok(final.mode === 'versions' && final.siblings.length === 1 && dec.decode(final.siblings[0]!.value) === 'merged');
});

test('dvv: blind writes past siblingsMax are refused with CHORUS_TOO_MANY_SIBLINGS', () => {
  const { replica } = MultiMasterReplica.open({ keyspace: 'k', mode: 'versions', self: 'a', members: ['a'], siblingsMax: 3 });
  for (let i = 0; i < 3; i++) replica.put('k', enc.encode(`v${i}`), 1000 + i);
  assert.throws(() => replica.put('k', enc.encode('v3'), 1010), (e: unknown) => e instanceof MmError && e.code === 'CHORUS_TOO_MANY_SIBLINGS');
  const view = replica.get('k');
  assert.ok(view.mode === 'versions' && view.siblings.length === 3);
  // With a token the write goes through (it replaces what it saw).
  if (view.mode === 'versions') replica.put('k', enc.encode('ok'), 1020, view.token);
  assert.equal(replica.stats().lastSeq, 4);
});

test('dvv: tokens are base64url of a compact context, round-trip, and reject garbage', () => {
  const ctx = [['a', 3], ['n-2.x', 17]] as const;
  const token = encodeToken(ctx);
  assert.match(token, /^[A-Za-z0-9_-]+$/);
  assert.deepEqual(decodeToken(token), ctx);
  assert.deepEqual(decodeToken(encodeToken([])), []);
  const bad = (t: string, members?: ReadonlySet<string>): void =>
    assert.throws(() => decodeToken(t, members), (e: unknown) => e instanceof MmError && e.code === 'CHORUS_BAD_TOKEN');
  bad('!!!');
  bad(`${token}A`);
  bad(encodeToken([['b', 1], ['a', 2]]));
  bad(token, new Set(['a']));
  bad('x'.repeat(9000));
});

test('dvv: a forged token cannot hide writes a member has not made yet', () => {
  const members = ['a', 'b'];
  const a = MultiMasterReplica.open({ keyspace: 'k', mode: 'versions', self: 'a', members }).replica;
  a.put('k', enc.encode('one'), 1000);
  // The token claims 1000 events of a and of b; entries are clamped to what a knows exists.
  const forged = encodeToken([['a', 1000], ['b', 1000]]);
  const res = a.put('k', enc.encode('two'), 1001, forged);
  assert.deepEqual(res.clientContext, [['a', 1]]);
  const next = a.put('k', enc.encode('three'), 1002);
  const view = a.get('k');
  assert.ok(view.mode === 'versions');
  assert.deepEqual(view.siblings.map((s) => dec.decode(s.value)), ['two', 'three']);
  assert.equal(next.dot.seq, 3);
});
