// The `chorus` command line. bin/chorus.js registers tsx and imports this module, which parses
// process.argv and runs the command.
import { Command, InvalidArgumentError } from 'commander';
import { DEFAULT_ENDPOINTS, reportError, runDel, runGet, runList, runPut, runStatus } from './client-commands.ts';
import type { ClientFlags } from './client-commands.ts';
import { runDev } from './dev.ts';
import { runStart } from './start.ts';

function integer(name: string, min = 0) {
  return (text: string): number => {
    if (!/^\d+$/.test(text)) throw new InvalidArgumentError(`${name} must be an integer`);
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be at least ${min}`);
    return n;
  };
}

function clientCommand(program: Command, name: string, description: string): Command {
  return program
    .command(name)
    .description(description)
    .option('--endpoints <urls>', 'comma-separated member URLs', process.env['CHORUS_ENDPOINTS'] ?? DEFAULT_ENDPOINTS)
    .option('--timeout-ms <ms>', 'deadline of the operation, retries included', integer('--timeout-ms', 1), 10_000);
}

function run(action: () => Promise<void>): Promise<void> {
  return action().catch(reportError);
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('chorus')
    .description('Chorus: a replicated key-value store on Raft')
    .showHelpAfterError()
    .enablePositionalOptions();

  program
    .command('start')
    .description('run one member of a cluster (also restarts a member on its existing data)')
    .option('--config <file>', 'settings from a JSON file or a key: value YAML subset (flags override it)')
    .option('--id <id>', 'this member\'s id, as in --initial-cluster')
    .option('--data-dir <dir>', 'where the member keeps its data (wal/, snap/, state.db)')
    .option('--listen-client <host:port>', 'HTTP API address')
    .option('--listen-peer <host:port>', 'node-to-node address (must match --initial-cluster)')
    .option('--initial-cluster <list>', 'the voters: n1=127.0.0.1:7001,n2=127.0.0.1:7002,...')
    .option('--cluster-id <id>', 'cluster id (default: derived from --initial-cluster)')
    .option('--advertise-client <host:port>', 'client address given to other members (default: the bound --listen-client)')
    .option('--tick-ms <ms>', 'Raft tick (default 100)', integer('--tick-ms', 1))
    .option('--election-ticks <n>', 'election timeout in ticks (default 10)', integer('--election-ticks', 2))
    .option('--heartbeat-ticks <n>', 'heartbeat interval in ticks (default 1)', integer('--heartbeat-ticks', 1))
    .option('--snapshot-entries <n>', 'entries applied between snapshots (default 10000)', integer('--snapshot-entries', 1))
    .option('--wal-keep-entries <n>', 'entries kept below a snapshot for lagging followers (default 5000)', integer('--wal-keep-entries', 0))
    .option('--value-bytes-max <n>', 'largest value in bytes (default 1048576; same on every member)', integer('--value-bytes-max', 1))
    .option('--request-timeout-ms <ms>', 'request deadline (default 5000)', integer('--request-timeout-ms', 1))
    .option('--proposals-pending-max <n>', 'writes waiting to commit before 503 CHORUS_BUSY (default 10000)', integer('--proposals-pending-max', 1))
    .option('--reads-pending-max <n>', 'reads waiting before 503 CHORUS_BUSY (default 10000)', integer('--reads-pending-max', 1))
    .option('--log-level <level>', 'debug, info, warn or error (default info)')
    .option('--enable-test-faults', 'expose POST /v1/test/faults (tests only)')
    .action((flags: Record<string, unknown>) => runStart(flags));

  program
    .command('dev')
    .description('start a local cluster, each member in its own process; Ctrl-C stops it')
    .option('--nodes <n>', 'number of members', integer('--nodes', 1), 3)
    .option('--dir <dir>', 'data and log directory', './chorus-data')
    .option('--base-port <port>', 'client port of the first member (peers use base-port - 1000)', integer('--base-port', 1), 8001)
    .option('--peer-base-port <port>', 'peer port of the first member', integer('--peer-base-port', 1))
    .option('--tick-ms <ms>', 'Raft tick of every member', integer('--tick-ms', 1))
    .action((flags: { nodes: number; dir: string; basePort: number; peerBasePort?: number; tickMs?: number }) =>
      runDev(flags).catch((error: unknown) => {
        process.stderr.write(`chorus dev: ${error instanceof Error ? error.message : String(error)}\n`);
        process.exit(1);
      }));

  clientCommand(program, 'status', 'show the members, their roles, term, commit index and lag')
    .option('--json', 'print JSON')
    .action((flags: ClientFlags & { json?: boolean }) => run(() => runStatus(flags)));

  clientCommand(program, 'put', 'write a key')
    .argument('<key>')
    .argument('<value>')
    .action((key: string, value: string, flags: ClientFlags) => run(() => runPut(key, value, flags)));

  clientCommand(program, 'get', 'read a key (linearizable unless --stale)')
    .argument('<key>')
    .option('--stale', 'serve from the member\'s local state, without confirming with the leader')
    .option('--revision', 'also print the revisions (to stderr)')
    .action((key: string, flags: ClientFlags & { stale?: boolean; revision?: boolean }) => run(() => runGet(key, flags)));

  clientCommand(program, 'del', 'delete a key')
    .argument('<key>')
    .action((key: string, flags: ClientFlags) => run(() => runDel(key, flags)));

  clientCommand(program, 'list', 'list keys with a prefix')
    .argument('[prefix]', 'key prefix', '')
    .option('--limit <n>', 'most keys to list (default 1000)', integer('--limit', 1))
    .option('--json', 'print JSON (values as UTF-8 text)')
    .action((prefix: string, flags: ClientFlags & { limit?: number; json?: boolean }) => run(() => runList(prefix, flags)));

  return program;
}

await buildProgram().parseAsync(process.argv);
