// The multi-master simulator over 100 seeds (all three conflict modes, faults on): every seed
// must converge after the faults stop and match the model of acknowledged writes. A failure
// names the seed and the command that replays it with a full trace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configForSeed } from '../../sim/mm/config.ts';
import { MmSimulation } from '../../sim/mm/cluster.ts';
import { runMmSeed } from '../../sim/mm/run-seed.ts';

test('multi-master simulator: 100 seeds converge and keep every acknowledged write', () => {
  const failures: string[] = [];
  let writes = 0;
  const modes = new Set<string>();
  for (let seed = 1; seed <= 100; seed++) {
    const result = runMmSeed(seed);
    writes += result.stats.writesOk;
    modes.add(result.config.mode);
    if (!result.ok) failures.push(`seed ${seed} (${result.config.mode}): ${result.violation}\n  replay: node --import tsx sim/mm/run.ts --seed ${seed} --trace`);
  }
  assert.deepEqual(failures, []);
  assert.deepEqual([...modes].sort(), ['crdt', 'lww', 'versions']);
  assert.ok(writes > 10_000, `only ${writes} acknowledged writes checked`);
});

test('multi-master simulator: the same seed replays the same run', () => {
  const lines = (): string[] => {
    const out: string[] = [];
    runMmSeed(7, { trace: (line) => out.push(line) });
    return out;
  };
  const first = lines();
  assert.ok(first.length > 100);
  assert.deepEqual(lines(), first);
});

test('multi-master simulator: the model check catches an acknowledged write that disappears', () => {
  // Sabotage, once per mode: after the run, a delete the clients never made (as a bug in merge
  // or storage would produce) reaches every member. The members agree with each other, so only
  // the model of acknowledged writes can tell that a write was lost.
  for (const seed of [3, 4, 5]) {
    const config = { ...configForSeed(seed), faults: [] };
    const sim = new MmSimulation(config);
    sim.startWorkload();
    sim.runFor(300);
    sim.stopWorkload();
    sim.checkConvergence(5000);
    sim.checkModel();
    const [victim, ...others] = sim.members;
    const key = victim!.replica.keys().find((k) => victim!.replica.get(k).found)!;
    const physicalMs = 2 ** 47;
    const sabotage = victim!.replica.delete(key, physicalMs);
    for (const m of others) m.replica.applyRepair([sabotage.record], physicalMs);
    assert.throws(() => sim.checkModel(), /lww-winner|lost-or-phantom-write/, `seed ${seed} (${config.mode})`);
  }
});
