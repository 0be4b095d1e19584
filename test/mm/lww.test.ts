import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lostConcurrently, lwwView, mergeLww, writeLww } from '../../src/core/mm/lww.ts';
import { MultiMasterReplica } from '../../src/core/mm/replica.ts';
import { MmError } from '../../src/core/mm/errors.ts';

const enc = new TextEncoder();

test('lww: the greatest stamp wins whatever the order; the dot breaks stamp ties', () => {
  const v1 = writeLww(null, enc.encode('one'), { member: 'a', seq: 1 }, { physicalMs: 10, logical: 0, member: 'a' });
  const v2 = writeLww(null, enc.encode('two'), { member: 'b', seq: 1 }, { physicalMs: 10, logical: 1, member: 'b' });
  assert.equal(mergeLww(v1, v2), v2);
  assert.equal(mergeLww(v2, v1), v2);
  const tieA = writeLww(null, enc.encode('x'), { member: 'a', seq: 5 }, { physicalMs: 1, logical: 0, member: 'c' });
  const tieB = writeLww(null, enc.encode('y'), { member: 'b', seq: 5 }, { physicalMs: 1, logical: 0, member: 'c' });
  assert.equal(mergeLww(tieA, tieB), tieB);
  assert.equal(mergeLww(tieB, tieA), tieB);
  assert.equal(lwwView(v2).stamp, '00000000000a.00000001.b');
});

test('lww: a write records what it overwrote, which tells knowing overwrites from lost writes', () => {
  const v1 = writeLww(null, enc.encode('one'), { member: 'a', seq: 1 }, { physicalMs: 10, logical: 0, member: 'a' });
  const knowing = writeLww(v1, enc.encode('two'), { member: 'b', seq: 1 }, { physicalMs: 11, logical: 0, member: 'b' });
  const blind = writeLww(null, enc.encode('three'), { member: 'c', seq: 1 }, { physicalMs: 12, logical: 0, member: 'c' });
  assert.equal(lostConcurrently(v1, knowing), false);
  assert.equal(lostConcurrently(v1, blind), true);
  // The history is transitive: a write on top of `knowing` has seen v1 too.
  const later = writeLww(knowing, null, { member: 'c', seq: 2 }, { physicalMs: 13, logical: 0, member: 'c' });
  assert.equal(lostConcurrently(v1, later), false);
  assert.equal(lwwView(later).found, false);
});

test('lww: a replica counts its own writes lost to concurrent writes (lww_overwrites), once each', () => {
  const members = ['a', 'b'];
  const a = MultiMasterReplica.open({ keyspace: 'k', mode: 'lww', self: 'a', members }).replica;
  const b = MultiMasterReplica.open({ keyspace: 'k', mode: 'lww', self: 'b', members }).replica;
  a.put('x', enc.encode('from a'), 1000);
  b.put('x', enc.encode('from b'), 2000);
  const toA = a.applyRemote(b.changesSince('a', 10, 1 << 20), 1000);
  assert.equal(toA.overwritten.length, 1);
  assert.equal(a.stats().lwwOverwrites, 1);
  const toB = b.applyRemote(a.changesSince('b', 10, 1 << 20), 2000);
  assert.equal(toB.overwritten.length, 0);
  // A knowing overwrite (b read a's value first) is not a loss.
  a.put('y', enc.encode('a1'), 3000);
  b.applyRemote(a.changesSince('b', 10, 1 << 20), 3000);
  b.put('y', enc.encode('b1'), 4000);
  const again = a.applyRemote(b.changesSince('a', 10, 1 << 20), 3000);
  assert.equal(again.overwritten.length, 0);
  assert.equal(a.stats().lwwOverwrites, 1);
});

test('lww: tokens and CRDT ops are refused in an lww keyspace', () => {
  const { replica } = MultiMasterReplica.open({ keyspace: 'k', mode: 'lww', self: 'a', members: ['a'] });
  assert.throws(() => replica.crdt('x', { type: 'counter', op: 'incr' }, 1), (e: unknown) => e instanceof MmError && e.code === 'CHORUS_WRONG_MODE');
  assert.throws(() => replica.put('x', enc.encode('v'), 1, 'MQ'), (e: unknown) => e instanceof MmError && e.code === 'CHORUS_WRONG_MODE');
});
