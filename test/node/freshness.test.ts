// The staleness bound of max_staleness_ms reads, from attested leader heartbeats: the latest
// heartbeat whose leader commit the member applied, its age, and the assumed delay; and the
// bounded history of heartbeats.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FreshnessTracker } from '../../src/node/freshness.ts';

test('the bound is the age of the latest heartbeat whose leader commit is applied, plus the assumed delay', () => {
  const f = new FreshnessTracker();
  assert.equal(f.boundMs(100, 1000, 50), Number.POSITIVE_INFINITY, 'no heartbeat proves anything');
  f.note(10, 1000);
  f.note(20, 1100);
  f.note(30, 1200);
  f.note(-1, 1300); // not attested: ignored
  assert.equal(f.size, 3);
  assert.equal(f.boundMs(30, 1250, 50), 50 + 50);
  assert.equal(f.boundMs(25, 1250, 50), 150 + 50, 'applied 25: only the heartbeat of commit 20 counts');
  assert.equal(f.boundMs(9, 1250, 50), Number.POSITIVE_INFINITY);
  assert.deepEqual(f.latest(), { leaderCommit: 30, arrivedMs: 1200 });
});

test('the history keeps the latest `capacity` heartbeats and forgets older ones', () => {
  const f = new FreshnessTracker(4);
  for (let i = 1; i <= 10; i++) f.note(i * 10, i * 100);
  assert.equal(f.size, 4, 'bounded');
  // Commit 60 (at 600 ms) was forgotten: a member that applied only 60 can no longer show a bound.
  assert.equal(f.boundMs(60, 1000, 0), Number.POSITIVE_INFINITY);
  assert.equal(f.boundMs(70, 1000, 0), 300);
  assert.throws(() => new FreshnessTracker(0), RangeError);
});
