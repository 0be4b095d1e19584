// The multi-master seed runner. `node --import tsx sim/mm/run.ts --seeds 300` runs seeds;
// `--seed S --trace` replays one with its full trace. The last line is always
// `seeds=N violations=V`.
import { runSeedsFromCommandLine } from '../seed-runner.ts';
import { runMmSeed } from './run-seed.ts';

runSeedsFromCommandLine({
  command: 'node --import tsx sim/mm/run.ts',
  run: (seed, trace) => runMmSeed(seed, trace !== undefined ? { trace } : {}),
  ok: (result) => result.ok,
  describeViolation: (seed, result) => `seed=${seed} mode=${result.config.mode} violation=${result.violation}`,
  describeOk: (seed, { config, stats: s }) =>
    `seed=${seed} ok mode=${config.mode} members=${config.members.length} writes=${s.writesOk} refused=${s.writesRefused} ` +
    `messages=${s.messagesSent} dropped=${s.messagesDropped} crashes=${s.crashes} partitions=${s.partitions} clock_jumps=${s.clockJumps} ` +
    `repairs=${s.repairs} hints=${s.hintsQueued}/${s.hintsApplied} hints_dropped=${s.hintsDropped} hints_refused=${s.hintsRefused} ` +
    `tombstones_collected=${s.tombstonesCollected} lww_overwrites=${s.lwwOverwrites} converged_after=${s.convergedAtMs.toFixed(0)}ms`,
  checkedLabel: 'acknowledged writes',
  checkedCount: (result) => result.stats.writesOk ?? 0,
});
