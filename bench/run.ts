// `npm run bench [-- --quick]`: runs the benchmark of Chorus against etcd (consensus phases) and
// Redis (multi-master phases), prints the table on stdout (progress goes to stderr) and saves
// the report as JSON for bench/chart.ts.
import { parseArgs } from 'node:util';
import { runBench } from './index.ts';
import { saveAndPrint } from './output.ts';

const USAGE = `usage: npm run bench -- [options]

  --quick              seconds instead of minutes (CI smoke): short phases, 20,000 keys,
                       3 leader kills, no snapshot transfer, 2,000 keys to repair
  --endpoints <urls>   measure a running Chorus cluster (comma-separated client URLs) instead
                       of starting one; only the load phases run, without etcd or Redis
  --no-etcd            do not run etcd
  --no-redis           do not run Redis (the multi-master rows' peer)
  --only <ids>         run only these phases (comma-separated): write-1, write-16, write-64,
                       write-256, write-local, read-linearizable, read-stale,
                       write-1-binary, write-64-binary, write-256-binary,
                       read-linearizable-binary, memory, snapshot, failover,
                       mm-write-64, mm-repair
  --keep-data          keep the temporary data directories and member logs
  --json <file>        where to save the report (default bench/results/latest-<mode>.json)
  -h, --help           this text
`;

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
    process.exitCode = saveAndPrint(report, { partial: only !== undefined || endpoints !== undefined, json: values.json });
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
