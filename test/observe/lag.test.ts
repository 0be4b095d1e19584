import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LagTracker, ProgressWatch } from '../../src/observe/lag.ts';

test('lag in entries, bytes and seconds against the leader', () => {
  const lag = new LagTracker(16);
  for (let i = 1; i <= 10; i++) lag.noteAppended(i, 100, 1000 + i * 10);
  assert.deepEqual(lag.lag(10, 10, 5000), { entries: 0, bytes: 0, seconds: 0 });
  // Missing 7..10: 4 entries, 400 bytes, oldest appended at 1070.
  assert.deepEqual(lag.lag(6, 10, 2070), { entries: 4, bytes: 400, seconds: 1 });
});

test('an idle cluster shows no lag however old the last write', () => {
  const lag = new LagTracker(16);
  lag.noteAppended(1, 50, 0);
  assert.equal(lag.lag(1, 1, 1e9).seconds, 0);
});

test('the ring is bounded: old entries fall out and lag is measured from the oldest kept', () => {
  const lag = new LagTracker(4);
  for (let i = 1; i <= 10; i++) lag.noteAppended(i, 10, i * 1000);
  const l = lag.lag(2, 10, 11_000);
  assert.equal(l.entries, 8);
  assert.equal(l.seconds, 4, 'oldest kept is entry 7, appended at 7000');
  assert.equal(l.bytes, 40);
});

test('an overwritten suffix restarts the accounting there', () => {
  const lag = new LagTracker(16);
  for (let i = 1; i <= 5; i++) lag.noteAppended(i, 10, i);
  lag.noteAppended(4, 1000, 100);
  assert.deepEqual(lag.lag(3, 4, 1100), { entries: 1, bytes: 1000, seconds: 1 });
});

test('progress watch: a member whose index stands still while behind is stalled', () => {
  const watch = new ProgressWatch();
  assert.equal(watch.observe('n2', 5, false, 0, 1000), true);
  assert.equal(watch.observe('n2', 5, false, 500, 1000), true);
  assert.equal(watch.observe('n2', 5, false, 1500, 1000), false);
  assert.equal(watch.observe('n2', 5, true, 3000, 1000), true, 'caught up is not stalled');
  assert.equal(watch.observe('n2', 6, false, 3100, 1000), true);
});
