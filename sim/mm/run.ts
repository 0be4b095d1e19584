// The multi-master seed runner. `node --import tsx sim/mm/run.ts --seeds 300` runs seeds;
// `--seed S --trace` replays one with its full trace. The last line is always
// `seeds=N violations=V`.
import { parseArgs } from 'node:util';
import { runMmSeed } from './run-seed.ts';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string' },
    seed: { type: 'string' },
    start: { type: 'string' },
    trace: { type: 'boolean', default: false },
    'stop-on-violation': { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help) {
  console.log(`usage: node --import tsx sim/mm/run.ts [--seeds N] [--start S] [--seed S --trace] [--stop-on-violation] [--quiet]
  --seeds N            run N seeds (default 100), starting at --start (default: derived from the time of day)
  --seed S             run only seed S
  --trace              print the full deterministic trace of each run
  --stop-on-violation  stop at the first violation
Prints one line per violation with the command that replays it, and last: seeds=N violations=V`);
  process.exit(0);
}

function count(text: string | undefined, fallback: number, name: string): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`--${name} must be a non-negative integer, got ${text}`);
    process.exit(2);
  }
  return n;
}

const seeds: number[] = [];
if (values.seed !== undefined) seeds.push(count(values.seed, 0, 'seed'));
else {
  const n = count(values.seeds, 100, 'seeds');
  // Without --start each run explores new seeds; every failure prints its own seed anyway.
  const start = count(values.start, (process.hrtime()[1] ^ process.pid) % 1_000_000_000, 'start');
  for (let i = 0; i < n; i++) seeds.push(start + i);
}

let violations = 0;
let writes = 0;
const startedMs = performance.now();
for (const [i, seed] of seeds.entries()) {
  const result = runMmSeed(seed, values.trace ? { trace: (line) => console.log(line) } : {});
  writes += result.stats.writesOk ?? 0;
  const s = result.stats;
  if (!result.ok) {
    violations++;
    console.log(`seed=${seed} mode=${result.config.mode} violation=${result.violation}`);
    console.log(`  replay: node --import tsx sim/mm/run.ts --seed ${seed} --trace`);
    if (values['stop-on-violation']) {
      seeds.length = i + 1;
      break;
    }
  } else if (values.trace || values.seed !== undefined) {
    console.log(
      `seed=${seed} ok mode=${result.config.mode} members=${result.config.members.length} writes=${s.writesOk} refused=${s.writesRefused} ` +
        `messages=${s.messagesSent} dropped=${s.messagesDropped} crashes=${s.crashes} partitions=${s.partitions} clock_jumps=${s.clockJumps} ` +
        `repairs=${s.repairs} hints=${s.hintsQueued}/${s.hintsApplied} hints_dropped=${s.hintsDropped} hints_refused=${s.hintsRefused} ` +
        `tombstones_collected=${s.tombstonesCollected} lww_overwrites=${s.lwwOverwrites} converged_after=${s.convergedAtMs.toFixed(0)}ms`,
    );
  }
  if (!values.quiet && seeds.length >= 50 && (i + 1) % 100 === 0) {
    console.error(`.. ${i + 1}/${seeds.length} seeds, ${violations} violations, ${((performance.now() - startedMs) / 1000).toFixed(1)}s`);
  }
}
if (!values.quiet) console.error(`acknowledged writes checked: ${writes}; ${((performance.now() - startedMs) / 1000).toFixed(1)}s`);
console.log(`seeds=${seeds.length} violations=${violations}`);
process.exit(violations === 0 ? 0 : 1);
