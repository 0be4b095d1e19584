// The seed runner. `npm run sim -- --seeds 1000` runs random seeds; `--seed S --trace`
// replays one seed with its full trace. The last line is always `seeds=N violations=V`.
import { runSeed } from './run-seed.ts';
import { runSeedsFromCommandLine } from './seed-runner.ts';

runSeedsFromCommandLine({
  command: 'npm run sim --',
  run: (seed, trace) => runSeed(seed, trace !== undefined ? { trace } : {}),
  ok: (result) => result.ok,
  describeViolation: (seed, result) => `seed=${seed} exit=${result.violation}`,
  describeOk: (seed, { stats: s }) =>
    `seed=${seed} ok time=${s.timeMs.toFixed(0)}ms events=${s.events} ops_ok=${s.opsOk} failed=${s.opsFailed} unknown=${s.opsUnknown} leaders=${s.leadersElected} commit=${s.maxCommit} snapshots=${s.snapshotsTaken}/${s.snapshotsInstalled} config_changes=${s.configChanges} crashes=${s.crashes}`,
  checkedLabel: 'acknowledged operations',
  checkedCount: (result) => result.stats.opsOk,
});
