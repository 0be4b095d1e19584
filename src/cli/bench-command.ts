// `chorus bench`: the benchmark of `npm run bench` as a command. With --endpoints it measures
// the user's own running cluster (writes of new keys under bench-, reads of them; nothing is
// deleted); without, it starts its own clusters and compares Chorus with etcd and Redis.
import { ChorusError } from '../shared/errors.ts';

export interface BenchFlags {
  readonly endpoints?: string;
  readonly quick?: boolean;
  readonly only?: string;
  readonly etcd: boolean;
  readonly redis: boolean;
  readonly json?: string;
  readonly keepData?: boolean;
  readonly timeoutMs?: number;
}

function list(text: string | undefined): string[] | undefined {
  const items = text?.split(',').map((item) => item.trim()).filter((item) => item !== '');
  return items === undefined || items.length === 0 ? undefined : items;
}

/** Runs the bench and prints its table; resolves to the exit code (1: a phase failed). */
export async function runBenchCommand(flags: BenchFlags): Promise<number> {
  const endpoints = list(flags.endpoints);
  for (const endpoint of endpoints ?? []) {
    const url = /^https?:\/\//.test(endpoint) ? endpoint : `http://${endpoint}`;
    if (!URL.canParse(url)) throw new ChorusError('CHORUS_BAD_REQUEST', `--endpoints: not a URL: ${endpoint}`);
  }
  const only = list(flags.only);
  // Loaded only for this command: the bench is not needed to run or use a member.
  const { runBench } = await import('../../bench/index.ts');
  const { saveAndPrint } = await import('../../bench/output.ts');
  const report = await runBench({
    quick: flags.quick ?? false,
    ...(endpoints === undefined ? {} : { endpoints }),
    ...(only === undefined ? {} : { only }),
    ...(flags.etcd ? {} : { etcd: false }),
    ...(flags.redis ? {} : { redis: false }),
    keepData: flags.keepData ?? false,
    ...(flags.timeoutMs === undefined ? {} : { settings: { requestTimeoutMs: flags.timeoutMs } }),
  });
  return saveAndPrint(report, { partial: true, json: flags.json ?? null });
}
