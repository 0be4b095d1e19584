// The command line shared by the seed runners (Raft and multi-master): which seeds to run, a
// line per violation with the command that replays it, progress on stderr, and always last
// `seeds=N violations=V`; the exit code says whether any seed failed.
import { parseArgs } from 'node:util';

export interface SeedRunnerSpec<R> {
  /** The command users type, e.g. `npm run sim --`; usage and replay lines start with it. */
  readonly command: string;
  readonly run: (seed: number, trace: ((line: string) => void) | undefined) => R;
  readonly ok: (result: R) => boolean;
  /** The line printed for a violating seed (before its replay command). */
  readonly describeViolation: (seed: number, result: R) => string;
  /** The line printed for a passing seed when tracing or running one seed. */
  readonly describeOk: (seed: number, result: R) => string;
  /** What the runs checked, e.g. "acknowledged operations", and how many per run. */
  readonly checkedLabel: string;
  readonly checkedCount: (result: R) => number;
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

export function runSeedsFromCommandLine<R>(spec: SeedRunnerSpec<R>): never {
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
    console.log(`usage: ${spec.command} [--seeds N] [--start S] [--seed S --trace] [--stop-on-violation] [--quiet]
  --seeds N            run N seeds (default 100), starting at --start (default: derived from the time of day)
  --seed S             run only seed S
  --trace              print the full deterministic trace of each run
  --stop-on-violation  stop at the first violation
Prints one line per violation with the command that replays it, and last: seeds=N violations=V`);
    process.exit(0);
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
  let checked = 0;
  const startedAtMs = performance.now();
  const elapsedS = (): string => ((performance.now() - startedAtMs) / 1000).toFixed(1);
  for (const [i, seed] of seeds.entries()) {
    const result = spec.run(seed, values.trace ? (line) => console.log(line) : undefined);
    checked += spec.checkedCount(result);
    if (!spec.ok(result)) {
      violations++;
      console.log(spec.describeViolation(seed, result));
      console.log(`  replay: ${spec.command} --seed ${seed} --trace`);
      if (values['stop-on-violation']) {
        seeds.length = i + 1;
        break;
      }
    } else if (values.trace || values.seed !== undefined) {
      console.log(spec.describeOk(seed, result));
    }
    if (!values.quiet && seeds.length >= 50 && (i + 1) % 100 === 0) {
      console.error(`.. ${i + 1}/${seeds.length} seeds, ${violations} violations, ${elapsedS()}s`);
    }
  }
  if (!values.quiet) console.error(`${spec.checkedLabel} checked: ${checked}; ${elapsedS()}s`);
  console.log(`seeds=${seeds.length} violations=${violations}`);
  process.exit(violations === 0 ? 0 : 1);
}
