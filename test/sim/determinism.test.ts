// The simulator's promise: one seed reproduces one run exactly, healthy seeds pass every
// checker, and the checkers do catch a broken core (here: reads served at a stale index).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Raft } from '../../src/core/raft/raft.ts';
import type { ReadState, Ready } from '../../src/core/raft/types.ts';
import { runSeed } from '../../sim/run-seed.ts';
import type { SeedResult } from '../../sim/run-seed.ts';

function traced(seed: number): { result: SeedResult; lines: string[] } {
  const lines: string[] = [];
  const result = runSeed(seed, { trace: (line) => lines.push(line) });
  return { result, lines };
}

test('the same seed gives the same trace, line for line', () => {
  for (const seed of [3, 5, 8]) {
    const first = traced(seed);
    const second = traced(seed);
    assert.ok(first.lines.length > 100, `seed ${seed}: only ${first.lines.length} trace lines`);
    assert.equal(second.lines.length, first.lines.length, `seed ${seed}: trace lengths differ`);
    const diverged = first.lines.findIndex((line, i) => line !== second.lines[i]);
    assert.equal(diverged, -1, `seed ${seed} diverged at line ${diverged}:\n  ${first.lines[diverged]}\n  ${second.lines[diverged]}`);
    assert.deepEqual(second.result, first.result);
  }
});

test('tracing does not change the run', () => {
  const withTrace = traced(5).result;
  const without = runSeed(5);
  assert.deepEqual(without, withTrace);
});

test('different seeds give different runs', () => {
  const a = traced(3).lines;
  const b = traced(8).lines;
  assert.notDeepEqual(a, b);
});

test('healthy seeds pass every checker with real work done', () => {
  for (const seed of [2, 3, 5, 8, 10]) {
    const result = runSeed(seed);
    assert.equal(result.violation, null, `seed ${seed}: ${result.violation ?? ''}`);
    assert.equal(result.ok, true);
    assert.ok(result.stats.opsOk > 0, `seed ${seed} completed no operations`);
    assert.ok(result.stats.leadersElected >= 1, `seed ${seed} elected no leader`);
  }
});

test('the linearizability checker catches a core that serves reads at a stale index', () => {
  // Break the core from outside, through the Ready contract only: every confirmed read index
  // becomes 0, so a lagging member answers reads from whatever state it has.
  const original = Raft.prototype.ready;
  Raft.prototype.ready = function (this: Raft): Ready {
    const ready = original.call(this);
    const states = ready.readStates as ReadState[];
    for (let i = 0; i < states.length; i++) states[i] = { readId: states[i]!.readId, index: 0 };
    return ready;
  };
  const outcomes: string[] = [];
  try {
    for (const seed of [4, 7, 9, 11, 3, 5, 8, 10, 12]) {
      const result = runSeed(seed);
      outcomes.push(`seed ${seed}: ${result.ok ? 'ok' : (result.violation ?? '').split('\n')[0]!}`);
      if (!result.ok && result.violation?.startsWith('linearizability') === true) break;
    }
  } finally {
    Raft.prototype.ready = original;
  }
  assert.ok(outcomes.some((o) => /: linearizability/.test(o)), `no seed caught the stale reads:\n${outcomes.join('\n')}`);
  // With the core restored, the seed that caught it passes.
  const caught = Number(/seed (\d+): linearizability/.exec(outcomes.join('\n'))![1]);
  assert.equal(runSeed(caught).ok, true);
});
