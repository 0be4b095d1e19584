// `npm run bench [-- --quick]`: runs the benchmark of Chorus against etcd (consensus phases) and
// Redis (multi-master phases), prints the table on stdout (progress goes to stderr) and saves
// the report as JSON for bench/chart.ts.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { formatTable, runBench } from './index.ts';
import { describePeers } from './report.ts';

const USAGE = `usage: npm run bench -- [options]

  --quick              seconds instead of minutes (CI smoke): short phases, 20,000 keys,
                       3 leader kills, no snapshot transfer, 2,000 keys to repair
  --endpoints <urls>   measure a running Chorus cluster (comma-separated client URLs) instead
                       of starting one; only the load phases run, without etcd or Redis
  --no-etcd            do not run etcd
  --no-redis           do not run Redis (the multi-master rows' peer)
  --only <ids>         run only these phases (comma-separated): write-1, write-16, write-64,
                       write-256, write-local, read-linearizable, read-stale, memory,
                       snapshot, failover, mm-write-64, mm-repair
  --keep-data          keep the temporary data directories and member logs
  --json <file>        where to save the report (default bench/results/latest-<mode>.json)
  -h, --help           this text
`;

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));

function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        endpoints: { type: 'string' },
        'no-etcd': { type: 'boolean', default: false },
        'no-redis': { type: 'boolean', default: false },
        'keep-data': { type: 'boolean', default: false },
        only: { type: 'string' },
        json: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return Promise.resolve();
  }
  // Ctrl-C: exit through process.exit, so that the exit hook kills the members and removes
  // the temporary data.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      process.stderr.write(`\n${signal}: stopping the clusters\n`);
      process.exit(130);
    });
  }
  const list = (text: string | undefined): string[] | undefined => text?.split(',').map((e) => e.trim()).filter((e) => e !== '');
  const endpoints = list(values.endpoints);
  const only = list(values.only);
  return runBench({
    quick: values.quick,
    ...(endpoints === undefined ? {} : { endpoints }),
    ...(only === undefined ? {} : { only }),
    ...(values['no-etcd'] ? { etcd: false } : {}),
    ...(values['no-redis'] ? { redis: false } : {}),
    keepData: values['keep-data'],
  }).then((report) => {
    // A partial run must not replace the latest complete report (docs and chart come from it).
    const name = only === undefined ? `latest-${report.mode}.json` : `partial-${report.mode}.json`;
    const file = resolve(values.json ?? join(BENCH_DIR, 'results', name));
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
    const header = `Chorus ${report.chorusRevision ?? ''} vs ${describePeers(report)} (${report.mode} mode, ${report.machine.cpus} cores, ${report.machine.memoryGiB} GiB, Node ${report.machine.node}, `
      + `load average at start ${report.machine.loadAverage.join(' ')}), ${(report.durationMs / 1000).toFixed(0)} s`;
    process.stdout.write(`\n${header}\n\n${formatTable(report)}\n\nreport saved to ${file}\n`);
    const broken = report.rows.flatMap((row) => Object.values(row.results).filter((r) => r.status === 'failed'));
    const lost = report.rows.some((row) => Object.values(row.results).some((r) => (r.lostWrites ?? 0) > 0));
    if (lost) process.stderr.write('ACKNOWLEDGED WRITES WERE LOST (see the failover row)\n');
    if (broken.length > 0) process.stderr.write(`${broken.length} phase(s) failed (see the table)\n`);
    process.exitCode = lost || broken.length > 0 ? 1 : 0;
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
