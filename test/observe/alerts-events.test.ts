import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AlertEngine, type AlertCondition } from '../../src/observe/alerts.ts';
import { EventHistory } from '../../src/observe/events.ts';

const lag: AlertCondition = { id: 'replication-lag:n2', rule: 'replication-lag', severity: 'warning', message: 'n2 is 12s behind', forMs: 1000 };

test('an alert is raised once its condition held for its duration, and resolved when it stops', () => {
  const engine = new AlertEngine();
  assert.deepEqual(engine.evaluate([lag], 0).raised, []);
  assert.deepEqual(engine.evaluate([lag], 500).raised, []);
  const step = engine.evaluate([lag], 1000);
  assert.equal(step.raised.length, 1);
  assert.equal(engine.active().length, 1);
  assert.deepEqual(engine.evaluate([lag], 2000).raised, [], 'raised once, not every evaluation');
  const cleared = engine.evaluate([], 2500);
  assert.equal(cleared.resolved.length, 1);
  assert.equal(engine.active().length, 0);
});

test('a condition that flaps before its duration never raises', () => {
  const engine = new AlertEngine();
  engine.evaluate([lag], 0);
  engine.evaluate([], 900);
  assert.deepEqual(engine.evaluate([lag], 1500).raised, [], 'the clock restarted at 1500');
  assert.equal(engine.evaluate([lag], 2500).raised.length, 1);
});

test('the event history is bounded and ordered, and readers resume by sequence', () => {
  const history = new EventHistory(3);
  const seen: number[] = [];
  history.onEvent((e) => seen.push(e.seq));
  for (let i = 0; i < 5; i++) history.record('election', 'n1', `election ${i}`);
  assert.deepEqual(history.list().map((e) => e.seq), [3, 4, 5]);
  assert.deepEqual(history.list({ sinceSeq: 4 }).map((e) => e.seq), [5]);
  assert.deepEqual(history.list({ limit: 1 }).map((e) => e.seq), [5]);
  assert.deepEqual(seen, [1, 2, 3, 4, 5]);
});
