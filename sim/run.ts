// The seed runner. `npm run sim -- --seeds 1000` runs random seeds; `--seed S --trace`
// replays one seed with its full trace. The last line is always `seeds=N violations=V`.
import { parseArgs } from 'node:util';
import { runSeed } from './run-seed.ts';

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
  console.log(`usage: npm run sim -- [--seeds N] [--start S] [--seed S --trace] [--stop-on-violation] [--quiet]
  --seeds N            run N seeds (default 100), starting at --start (default: derived from the time of day)
  --seed S             run only seed S
  --trace              print the full deterministic trace of each run
  --stop-on-violation  stop at the first violation
Prints one line per violation with the command that replays it, and last: seeds=N violations=V`);
  process.exit(0);
}

function parseCount(text: string | undefined, fallback: number, name: string): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`--${name} must be a non-negative integer, got ${text}`);
    process.exit(2);
  }
  return n;
}

const seeds: number[] = [];
if (values.seed !== undefined) {
  seeds.push(parseCount(values.seed, 0, 'seed'));
} else {
  const count = parseCount(values.seeds, 100, 'seeds');
  // Without --start, each run explores new seeds; every failure prints its own seed anyway.
  const start = parseCount(values.start, (process.hrtime()[1] ^ process.pid) % 1_000_000_000, 'start');
  for (let i = 0; i < count; i++) seeds.push(start + i);
}

let violations = 0;
let ops = 0;
const startedAtMs = performance.now();
for (const [i, seed] of seeds.entries()) {
  const result = runSeed(seed, values.trace ? { trace: (line) => console.log(line) } : {});
  ops += result.stats.opsOk;
  if (!result.ok) {
    violations++;
    console.log(`seed=${seed} exit=${result.violation}`);
    console.log(`  replay: npm run sim -- --seed ${seed} --trace`);
    if (values['stop-on-violation']) {
      seeds.length = i + 1;
      break;
    }
  } else if (values.trace || values.seed !== undefined) {
    const s = result.stats;
    console.log(`seed=${seed} ok time=${s.timeMs.toFixed(0)}ms events=${s.events} ops_ok=${s.opsOk} failed=${s.opsFailed} unknown=${s.opsUnknown} leaders=${s.leadersElected} commit=${s.maxCommit} snapshots=${s.snapshotsTaken}/${s.snapshotsInstalled} config_changes=${s.configChanges} crashes=${s.crashes}`);
  }
  if (!values.quiet && seeds.length >= 50 && (i + 1) % 100 === 0) {
    console.error(`.. ${i + 1}/${seeds.length} seeds, ${violations} violations, ${((performance.now() - startedAtMs) / 1000).toFixed(1)}s`);
  }
}
if (!values.quiet) console.error(`acknowledged operations checked: ${ops}; ${((performance.now() - startedAtMs) / 1000).toFixed(1)}s`);
console.log(`seeds=${seeds.length} violations=${violations}`);
process.exit(violations === 0 ? 0 : 1);
