// The `chorus` command line. bin/chorus.js registers tsx and imports this module, which parses
// process.argv and runs the command.
import { Command, InvalidArgumentError } from 'commander';
import type { CommitLevel, Consistency } from '../client/index.ts';
import {
  DEFAULT_ENDPOINTS, reportError, runCrdt, runDel, runGet, runKeyspaceCreate, runKeyspaceList, runList, runMemberAdd, runMemberPromote,
  runMemberRemove, runPut, runReplication, runStatus, runSwitchover,
} from './client-commands.ts';
import type { ClientFlags, MemberAddFlags, WriteFlags } from './client-commands.ts';
import { runBenchCommand } from './bench-command.ts';
import type { BenchFlags } from './bench-command.ts';
import { runDev } from './dev.ts';
import { runRebuild, type RebuildFlags } from './rebuild.ts';
import { registerObserveCommands } from './observe-commands.ts';
import { runStart } from './start.ts';

function integer(name: string, min = 0) {
  return (text: string): number => {
    if (!/^\d+$/.test(text)) throw new InvalidArgumentError(`${name} must be an integer`);
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be at least ${min}`);
    return n;
  };
}

function oneOf<T extends string>(name: string, values: readonly T[]) {
  return (text: string): T => {
    if (!(values as readonly string[]).includes(text)) throw new InvalidArgumentError(`${name} must be one of ${values.join(', ')}`);
    return text as T;
  };
}

const COMMIT_LEVELS: readonly CommitLevel[] = ['off', 'local', 'on', 'remote_apply'];
const COMMIT_HELP = 'commit level: off (appended at the leader), local (durable at the leader), on (committed on a majority and the synchronous standbys), remote_apply (as on, and applied on the standbys); default: the cluster\'s synchronous_commit';

const KEYSPACE_HELP = 'a keyspace of the catalog instead of the default one (see chorus keyspace)';
const W_HELP = 'multi-master keyspaces: acknowledge once this many members hold the write durably (default 1: this member)';
const CONTEXT_HELP = 'versions keyspaces: the causal context of a read (get --revision prints it); the write replaces the siblings it saw';

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
    .option('--listen-binary <host:port>', 'also serve the binary client protocol here (put/get/del pipelined over TCP; docs/api.md); off by default')
    .option('--tick-ms <ms>', 'Raft tick (default 50; elections after 10-20 ticks without a leader)', integer('--tick-ms', 1))
    .option('--election-ticks <n>', 'election timeout in ticks (default 10)', integer('--election-ticks', 2))
    .option('--heartbeat-ticks <n>', 'heartbeat interval in ticks (default 1)', integer('--heartbeat-ticks', 1))
    .option('--snapshot-entries <n>', 'entries applied between log compactions (default 10000; no state is copied: see docs/durability.md)', integer('--snapshot-entries', 1))
    .option('--wal-keep-entries <n>', 'log entries kept below a snapshot so lagging members catch up without one, as PostgreSQL\'s wal_keep_size (default 5000); members further behind get the snapshot', integer('--wal-keep-entries', 0))
    .option('--value-bytes-max <n>', 'largest value in bytes (default 1048576; same on every member)', integer('--value-bytes-max', 1))
    .option('--request-timeout-ms <ms>', 'request deadline (default 5000)', integer('--request-timeout-ms', 1))
    .option('--proposals-pending-max <n>', 'writes waiting to commit before 503 CHORUS_BUSY (default 10000)', integer('--proposals-pending-max', 1))
    .option('--reads-pending-max <n>', 'reads waiting before 503 CHORUS_BUSY (default 10000)', integer('--reads-pending-max', 1))
    .option('--synchronous-commit <level>', 'cluster default commit level: off, local, on (default) or remote_apply; a seed: a value set with PUT /v1/config/replication (chorus replication) wins')
    .option('--synchronous-standby-names <set>', '\'FIRST k (n2, n3)\', \'ANY k (n2, n3)\' or a list: members (voters or learners) that must confirm writes at on/remote_apply (default none; a seed, as above)')
    .option('--sync-standby-timeout-ms <ms>', 'how long a committed write waits for the standby set before 504 CHORUS_SYNC_STANDBY_TIMEOUT (default 5000)', integer('--sync-standby-timeout-ms', 1))
    .option('--lease-ticks <n>', 'leader lease for consistency=lease reads, in ticks (default election-ticks - 2; 0 disables it)', integer('--lease-ticks', 0))
    .option('--heartbeat-delay-max-ms <ms>', 'largest leader-heartbeat delay assumed by max_staleness_ms reads (default 50)', integer('--heartbeat-delay-max-ms', 0))
    .option('--join', 'join a running cluster (as etcd\'s --initial-cluster-state existing): start with no configuration, wait to be added (chorus member add) and bootstrap from the leader; needs --cluster-id')
    .option('--initial-cluster-state <state>', 'new (default) or existing (the same as --join)', oneOf('--initial-cluster-state', ['new', 'existing']))
    .option('--log-level <level>', 'debug, info, warn or error (default info)')
    .option('--enable-test-faults', 'expose POST /v1/test/faults (tests only)')
    .option('--alert-webhook <url>', 'POST every raised and resolved alert to this URL as JSON (rules: the config file\'s alerts section; docs/observability.md)')
    .action((flags: Record<string, unknown>) => runStart(flags));

  program
    .command('dev')
    .description('start a local cluster, each member in its own process; Ctrl-C stops it')
    .option('--nodes <n>', 'number of members', integer('--nodes', 1), 3)
    .option('--dir <dir>', 'data and log directory', './chorus-data')
    .option('--base-port <port>', 'client port of the first member (peers use base-port - 1000, the binary protocol base-port + 1000)', integer('--base-port', 1), 8001)
    .option('--peer-base-port <port>', 'peer port of the first member', integer('--peer-base-port', 1))
    .option('--binary-base-port <port>', 'binary protocol port (--listen-binary) of the first member', integer('--binary-base-port', 1))
    .option('--tick-ms <ms>', 'Raft tick of every member', integer('--tick-ms', 1))
    .option('--config <file>', 'a config file for every member (e.g. only an alerts section: docs/observability.md)')
    .option('--alert-webhook <url>', 'every member POSTs its alerts here')
    .action((flags: { nodes: number; dir: string; basePort: number; peerBasePort?: number; binaryBasePort?: number; tickMs?: number; config?: string; alertWebhook?: string }) =>
      runDev(flags).catch((error: unknown) => {
        process.stderr.write(`chorus dev: ${error instanceof Error ? error.message : String(error)}\n`);
        process.exit(1);
      }));

  clientCommand(program, 'status', 'show the members: role, term, commit and applied index, lag in entries, bytes and seconds, progress, whether each could lead now, and the replication settings')
    .option('--json', 'print JSON')
    .action((flags: ClientFlags & { json?: boolean }) => run(() => runStatus(flags)));

  clientCommand(program, 'put', 'write a key')
    .argument('<key>')
    .argument('<value>')
    .option('--commit <level>', COMMIT_HELP, oneOf('--commit', COMMIT_LEVELS))
    .option('--keyspace <name>', KEYSPACE_HELP)
    .option('--w <n>', W_HELP, integer('--w', 1))
    .option('--context <token>', CONTEXT_HELP)
    .action((key: string, value: string, flags: WriteFlags) => run(() => runPut(key, value, flags)));

  clientCommand(program, 'get', 'read a key (linearizable unless told otherwise)')
    .argument('<key>')
    .option('--consistency <level>', 'linearizable (default: confirmed with the leader), lease (the leader\'s lease), stale (the member\'s own state)', oneOf('--consistency', ['linearizable', 'lease', 'stale'] as const))
    .option('--stale', 'the same as --consistency stale')
    .option('--max-staleness-ms <ms>', 'stale read only from a member that can show its state is at most this old (else the next endpoint)', integer('--max-staleness-ms', 0))
    .option('--min-revision <n>', 'stale read once the member applied this revision (read your writes anywhere)', integer('--min-revision', 0))
    .option('--revision', 'also print the revisions (to stderr; in a multi-master keyspace the stamp or the causal context)')
    .option('--keyspace <name>', `${KEYSPACE_HELP}; versions and crdt keyspaces answer JSON`)
    .action((key: string, flags: ClientFlags & { stale?: boolean; revision?: boolean; consistency?: Consistency; maxStalenessMs?: number; minRevision?: number; keyspace?: string }) => run(() => runGet(key, flags)));

  clientCommand(program, 'del', 'delete a key')
    .argument('<key>')
    .option('--commit <level>', COMMIT_HELP, oneOf('--commit', COMMIT_LEVELS))
    .option('--keyspace <name>', KEYSPACE_HELP)
    .option('--w <n>', W_HELP, integer('--w', 1))
    .option('--context <token>', CONTEXT_HELP)
    .action((key: string, flags: WriteFlags) => run(() => runDel(key, flags)));

  clientCommand(program, 'crdt', 'apply a CRDT operation in a crdt keyspace, e.g. \'{"type":"counter","op":"incr","by":5}\'')
    .argument('<key>')
    .argument('<op>', 'the operation as JSON: counter incr/decr, set add/remove, register set, map update/remove')
    .requiredOption('--keyspace <name>', 'the crdt keyspace')
    .option('--w <n>', W_HELP, integer('--w', 1))
    .action((key: string, op: string, flags: ClientFlags & { keyspace: string; w?: number }) => run(() => runCrdt(key, op, flags)));

  const keyspace = program.command('keyspace').description('the keyspace catalog (replicated through the Raft log)');
  clientCommand(keyspace, 'create', 'create a keyspace: consensus (like /v1/kv) or multi-master (every member accepts writes)')
    .argument('<name>')
    .requiredOption('--mode <mode>', 'consensus or multi-master', oneOf('--mode', ['consensus', 'multi-master'] as const))
    .option('--conflicts <strategy>', 'multi-master: lww (last write wins on hybrid logical clocks), versions (siblings), crdt', oneOf('--conflicts', ['lww', 'versions', 'crdt'] as const))
    .action((name: string, flags: ClientFlags & { mode: 'consensus' | 'multi-master'; conflicts?: 'lww' | 'versions' | 'crdt' }) => run(() => runKeyspaceCreate(name, flags)));
  clientCommand(keyspace, 'list', 'list the keyspaces')
    .option('--json', 'print JSON')
    .action((flags: ClientFlags & { json?: boolean }) => run(() => runKeyspaceList(flags)));

  const member = program.command('member').description('change the cluster\'s membership (one change at a time, safe under write load)');
  clientCommand(member, 'add', 'add a member (a voter, or a read replica with --learner), then show its progress until it caught up')
    .argument('<id>', 'the new member\'s id')
    .requiredOption('--peer <host:port>', 'its node-to-node address (its --listen-peer)')
    .option('--learner', 'add it as a learner: it receives the log, never votes, serves reads (promote it later)')
    .option('--no-wait', 'return once the change committed, without waiting for the member to catch up')
    .option('--wait-timeout-ms <ms>', 'how long to wait for it to catch up', integer('--wait-timeout-ms', 1), 600_000)
    .action((id: string, flags: MemberAddFlags) => run(() => runMemberAdd(id, flags)));
  clientCommand(member, 'promote', 'make a learner a voter')
    .argument('<id>')
    .action((id: string, flags: ClientFlags) => run(() => runMemberPromote(id, flags)));
  clientCommand(member, 'remove', 'remove a member (removing the leader first hands leadership over)')
    .argument('<id>')
    .action((id: string, flags: ClientFlags) => run(() => runMemberRemove(id, flags)));

  program
    .command('bench')
    .description('measure throughput and latency with the load generator of npm run bench (docs/benchmarks.md). With --endpoints: a running cluster of yours (writes new keys named bench-NNNNNNNNNN with 100-byte values and reads them back; deletes nothing). Without: starts its own 3-member Chorus cluster and compares it with etcd 3.4 and Redis 7 side by side')
    .option('--endpoints <urls>', 'comma-separated client URLs of the cluster to measure (only the load phases run: writes, commit=local, reads)')
    .option('--quick', 'seconds instead of minutes (2 s per phase)')
    .option('--only <ids>', 'run only these phases (comma-separated): write-1, write-16, write-64, write-256, write-local, read-linearizable, read-stale, write-1-binary, write-64-binary, write-256-binary, read-linearizable-binary (these need the members\' --listen-binary: not with --endpoints), memory, snapshot, failover, mm-write-64, mm-repair')
    .option('--no-etcd', 'do not start etcd (without --endpoints)')
    .option('--no-redis', 'do not start Redis (without --endpoints)')
    .option('--keep-data', 'keep the temporary data directories and member logs (without --endpoints)')
    .option('--json <file>', 'also save the report as JSON')
    .option('--timeout-ms <ms>', 'deadline of one request', integer('--timeout-ms', 1))
    .action((flags: BenchFlags) => run(async () => {
      process.exitCode = await runBenchCommand(flags);
    }));

  clientCommand(program, 'rebuild', 'rebuild a stopped member whose data is lost or damaged from its peers: remove it, move its data aside, add it back as a learner that bootstraps from a snapshot')
    .argument('<id>', 'the member to rebuild (stop it first)')
    .requiredOption('--data-dir <dir>', 'its data directory (moved aside, never deleted)')
    .requiredOption('--peer <host:port>', 'its node-to-node address (its --listen-peer)')
    .action((id: string, flags: RebuildFlags) => run(async () => {
      await runRebuild(id, flags);
    }));

  clientCommand(program, 'switchover', 'planned leadership transfer: no acknowledged write is lost; writes pause for about a round trip')
    .option('--to <id>', 'the voter to hand leadership to (default: the most caught-up reachable voter)')
    .action((flags: ClientFlags & { to?: string }) => run(() => runSwitchover(flags)));

  clientCommand(program, 'replication', 'show, or set cluster-wide (replicated through the log), synchronous_commit and synchronous_standby_names')
    .option('--synchronous-commit <level>', 'off, local, on or remote_apply')
    .option('--synchronous-standby-names <set>', '\'FIRST k (n2, n3)\', \'ANY k (n2, n3)\', a list, or \'\' for none')
    .option('--json', 'print JSON')
    .action((flags: ClientFlags & { synchronousCommit?: string; synchronousStandbyNames?: string; json?: boolean }) => run(() => runReplication(flags)));

  clientCommand(program, 'list', 'list keys with a prefix')
    .argument('[prefix]', 'key prefix', '')
    .option('--limit <n>', 'most keys to list (default 1000)', integer('--limit', 1))
    .option('--json', 'print JSON (values as UTF-8 text)')
    .option('--keyspace <name>', `${KEYSPACE_HELP}; items are printed as JSON, one per line`)
    .action((prefix: string, flags: ClientFlags & { limit?: number; json?: boolean; keyspace?: string }) => run(() => runList(prefix, flags)));

  registerObserveCommands(program, clientCommand);

  return program;
}

await buildProgram().parseAsync(process.argv);
