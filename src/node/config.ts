// Configuration of a member: the settings, their defaults and validation, and the parsing of
// addresses and of the initial cluster. Shared by the embeddable ChorusNode and the CLI.
import { createHash } from 'node:crypto';
import { formatStandbyNames, parseStandbyNames, parseSynchronousCommit } from '../core/policy/replication-policy.ts';
import type { SynchronousCommit } from '../core/policy/replication-policy.ts';
import { DEFAULT_KV_LIMITS } from '../kv/commands.ts';
import type { KvLimits } from '../kv/commands.ts';
import { resolveObserveConfig } from '../observe/config.ts';
import type { AlertsSettings, ObserveConfig } from '../observe/config.ts';
import { DEFAULT_MM_TUNING } from '../mm-node/host.ts';
import type { MultiMasterTuning } from '../mm-node/host.ts';
import { ChorusError } from '../shared/errors.ts';
import type { LogLevel, Logger } from '../shared/logger.ts';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export interface ChorusNodeConfig {
  /** This member's id; must appear in initialCluster. */
  readonly id: string;
  /** Holds wal/, snap/, state.db and member.json. Created if missing. */
  readonly dataDir: string;
  /** HTTP API address, "host:port" (port 0 picks a free port; read it back from clientAddress). */
  readonly listenClient: string;
  /** Node-to-node address, "host:port"; must match this member's entry in initialCluster. */
  readonly listenPeer: string;
  /** "n1=127.0.0.1:7001,n2=127.0.0.1:7002,...": the voters the cluster starts with. */
  readonly initialCluster: string;
  /** Members of different clusters refuse each other. Default: derived from initialCluster. */
  readonly clusterId?: string;
  /** The client address other members forward to. Default: the bound listenClient address. */
  readonly advertiseClient?: string;
  /** Where the binary client protocol listens (docs/api.md); off when absent. */
  readonly listenBinary?: string;
  /** One Raft tick (default 50 ms: with 10 election ticks a follower campaigns 0.5-1 s after the
   * leader's last heartbeat, which keeps a failover under 1.5 s; etcd's 100 ms heartbeat and 1 s
   * election timeout give 1-2 s). */
  readonly tickMs?: number;
  /** A follower campaigns after [electionTicks, 2*electionTicks) ticks without a leader (default 10). */
  readonly electionTicks?: number;
  /** The leader sends heartbeats every heartbeatTicks ticks (default 1). */
  readonly heartbeatTicks?: number;
  /** The log is compacted when more than this many entries were applied since the last
   * compaction (default 10,000). Only the snapshot's position is saved; SQLite holds the state
   * (docs/durability.md). */
  readonly snapshotEntries?: number;
  /** After a snapshot, the log keeps up to this many entries below it (default 5000, as etcd's
   * catch-up entries), so that a follower a little behind catches up from the log instead of
   * receiving the whole snapshot. 0 keeps none. */
  readonly walKeepEntries?: number;
  /** Longest key in UTF-8 bytes (default 4096). Must be the same on every member. */
  readonly keyBytesMax?: number;
  /** Multi-master replication timings and limits (see MultiMasterTuning; defaults suit a LAN). */
  readonly multiMaster?: Partial<MultiMasterTuning>;
  /** Longest value in bytes (default 1 MiB). Must be the same on every member. */
  readonly valueBytesMax?: number;
  /** Deadline of a client request (default 5000 ms); a write still pending then gets 504. */
  readonly requestTimeoutMs?: number;
  /** Proposals waiting to commit (default 10,000); beyond it writes get 503 CHORUS_BUSY. */
  readonly proposalsPendingMax?: number;
  /** Linearizable reads waiting (default 10,000); beyond it reads get 503 CHORUS_BUSY. */
  readonly readsPendingMax?: number;
  /** Writes being forwarded to the leader at once (default 1024); beyond it 503 CHORUS_BUSY. */
  readonly forwardsPendingMax?: number;
  /** A request is forwarded at most this many times (default 2). */
  readonly forwardHopsMax?: number;
  /** The cluster's default commit level (PostgreSQL's synchronous_commit): off, local, on
   * (default) or remote_apply. A seed: once a value was replicated through
   * PUT /v1/config/replication, the replicated value wins. */
  readonly synchronousCommit?: string;
  /** The synchronous standby set (PostgreSQL's synchronous_standby_names): 'FIRST k (a, b)',
   * 'ANY k (a, b)', 'k (a, b)' or a bare list; '' (default) for none. A seed, as above. */
  readonly synchronousStandbyNames?: string;
  /** How long a write at on/remote_apply waits for the standby set once committed, before
   * 504 CHORUS_SYNC_STANDBY_TIMEOUT (default 5000 ms; the request deadline still applies). */
  readonly syncStandbyTimeoutMs?: number;
  /** Leader lease in ticks for ?consistency=lease reads (default electionTicks - 2; 0 disables
   * the lease, and lease reads then confirm with a heartbeat round like linearizable ones).
   * Must be below electionTicks: see docs/guarantees.md for the clock assumption. */
  readonly leaseTicks?: number;
  /** The longest a leader heartbeat is assumed to take to arrive, added to the staleness bound
   * of max_staleness_ms reads (default 50 ms). See docs/replication.md. */
  readonly heartbeatDelayMaxMs?: number;
  /** Join an existing cluster (etcd's --initial-cluster-state existing): start with an empty
   * configuration and wait for the leader, which adds this member with POST /v1/members and
   * sends it a snapshot and the log. Requires clusterId. */
  readonly join?: boolean;
  /** 'new' (default) or 'existing' (the same as join: true). */
  readonly initialClusterState?: string;
  /** Registers POST /v1/test/faults (never in production). */
  readonly enableTestFaults?: boolean;
  /** Alert rules, their evaluation and the webhook (the config file's `alerts` section; see
   * docs/observability.md). Unset fields take the defaults of defaultAlertRules. */
  readonly alerts?: AlertsSettings;
  /** POST raised and resolved alerts to this URL as JSON (wins over alerts.webhook). */
  readonly alertWebhook?: string;
  readonly logLevel?: LogLevel;
  /** Default: JSON lines on stderr at logLevel. */
  readonly logger?: Logger;
  /** Called once when persisting or applying fails and the member stops serving. The CLI exits. */
  readonly onFatal?: (error: Error) => void;
}

const MiB = 1024 * 1024;

export interface ResolvedConfig {
  readonly id: string;
  readonly dataDir: string;
  readonly listenClient: HostPort;
  readonly listenPeer: HostPort;
  readonly initialCluster: ReadonlyMap<string, HostPort>;
  readonly clusterId: string;
  readonly advertiseClient: string | undefined;
  readonly listenBinary: HostPort | null;
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly snapshotEntries: number;
  readonly walKeepEntries: number;
  readonly limits: KvLimits;
  readonly multiMaster: MultiMasterTuning;
  /** Largest record of a multi-master keyspace (siblings, sets and maps grow past one value). */
  readonly mmRecordBytesMax: number;
  /** Largest encoded command (one log entry's payload): an entry must fit in one transport frame,
   * or it could never be replicated and would wedge the log. */
  readonly commandBytesMax: number;
  /** Largest request body of POST /v1/txn (JSON with base64 values). */
  readonly txnBodyBytesMax: number;
  /** The transport's frame limit: the largest command plus an append batch, with room to spare. */
  readonly frameBytesMax: number;
  readonly requestTimeoutMs: number;
  readonly proposalsPendingMax: number;
  readonly readsPendingMax: number;
  readonly forwardsPendingMax: number;
  readonly forwardHopsMax: number;
  readonly synchronousCommit: SynchronousCommit;
  /** Canonical form ('' for none). */
  readonly synchronousStandbyNames: string;
  readonly syncStandbyTimeoutMs: number;
  readonly leaseTicks: number;
  readonly heartbeatDelayMaxMs: number;
  readonly join: boolean;
  readonly enableTestFaults: boolean;
  readonly observe: ObserveConfig;
  readonly logLevel: LogLevel;
}

function invalid(message: string): ChorusError {
  return new ChorusError('CHORUS_CONFIG_INVALID', message);
}

/** Parses "host:port" (IPv6 as "[::1]:port"). Port 0 is allowed when `allowZero`. */
export function parseHostPort(text: string, what: string, allowZero = false): HostPort {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  if (match === null) throw invalid(`${what} must be host:port, got ${JSON.stringify(text)}`);
  const host = match[1] ?? match[2] ?? '';
  const port = Number(match[3]);
  if (port > 65535 || (port === 0 && !allowZero)) throw invalid(`${what} has an invalid port: ${JSON.stringify(text)}`);
  return { host, port };
}

export function formatHostPort(address: HostPort): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

const MEMBER_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Parses "n1=host:port,n2=host:port". Ids are 1-64 characters of [A-Za-z0-9._-]. */
export function parseInitialCluster(text: string): Map<string, HostPort> {
  const members = new Map<string, HostPort>();
  for (const part of text.split(',')) {
    const item = part.trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    if (eq <= 0) throw invalid(`initial cluster entry ${JSON.stringify(item)} must be id=host:port`);
    const id = item.slice(0, eq);
    if (!MEMBER_ID.test(id)) throw invalid(`member id ${JSON.stringify(id)} must be 1-64 characters of A-Z a-z 0-9 . _ -`);
    if (members.has(id)) throw invalid(`member ${id} appears twice in the initial cluster`);
    members.set(id, parseHostPort(item.slice(eq + 1), `address of ${id}`));
  }
  if (members.size === 0) throw invalid('the initial cluster is empty');
  return members;
}

/** As etcd: a hash of the sorted initial members, so that members started with different
 * initial clusters (different clusters) refuse each other's connections. */
export function deriveClusterId(initialCluster: ReadonlyMap<string, HostPort>): string {
  const canonical = [...initialCluster].map(([id, address]) => `${id}=${formatHostPort(address)}`).sort().join(',');
  return createHash('sha256').update(`chorus-cluster-v1\n${canonical}`).digest('hex').slice(0, 16);
}

function intSetting(value: number | undefined, fallback: number, name: string, min: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < min) throw invalid(`${name} must be an integer >= ${min}, got ${String(value)}`);
  return v;
}

export function resolveConfig(config: ChorusNodeConfig): ResolvedConfig {
  if (typeof config.id !== 'string' || !MEMBER_ID.test(config.id)) {
    throw invalid(`id must be 1-64 characters of A-Z a-z 0-9 . _ -, got ${JSON.stringify(config.id)}`);
  }
  if (typeof config.dataDir !== 'string' || config.dataDir === '') throw invalid('dataDir is required');
  if (typeof config.initialCluster !== 'string') throw invalid('initialCluster is required');
  const initialCluster = parseInitialCluster(config.initialCluster);
  const self = initialCluster.get(config.id);
  if (self === undefined) throw invalid(`member ${config.id} is not in the initial cluster ${config.initialCluster}`);
  if (typeof config.listenPeer !== 'string') throw invalid('listenPeer is required');
  const listenPeer = parseHostPort(config.listenPeer, 'listenPeer');
  if (listenPeer.port !== self.port) {
    throw invalid(`listenPeer ${config.listenPeer} does not match this member's initial cluster address ${formatHostPort(self)}`);
  }
  if (typeof config.listenClient !== 'string') throw invalid('listenClient is required');
  const listenClient = parseHostPort(config.listenClient, 'listenClient', true);
  if (config.advertiseClient !== undefined) parseHostPort(config.advertiseClient, 'advertiseClient');
  const listenBinary = config.listenBinary === undefined ? null : parseHostPort(config.listenBinary, 'listenBinary', true);
  const state = config.initialClusterState ?? 'new';
  if (state !== 'new' && state !== 'existing') throw invalid(`initialClusterState must be new or existing, got ${JSON.stringify(state)}`);
  const join = config.join === true || state === 'existing';
  if (join && config.clusterId === undefined) {
    // A derived id hashes the initial members; a joining member's list differs from the one the
    // cluster started with, so it must be told the id (chorus member add prints it).
    throw invalid('joining an existing cluster needs its clusterId (--cluster-id; `chorus status` and GET /v1/cluster show it)');
  }
  const clusterId = config.clusterId ?? deriveClusterId(initialCluster);
  if (typeof clusterId !== 'string' || clusterId === '' || clusterId.length > 128) throw invalid('clusterId must be 1-128 characters');

  const electionTicks = intSetting(config.electionTicks, 10, 'electionTicks', 2);
  const heartbeatTicks = intSetting(config.heartbeatTicks, 1, 'heartbeatTicks', 1);
  if (heartbeatTicks >= electionTicks) throw invalid('heartbeatTicks must be below electionTicks');
  // Two ticks of margin below the election timeout: with the default 10 ticks, clocks may
  // drift by 20% relative to each other (docs/guarantees.md).
  const leaseTicks = intSetting(config.leaseTicks, Math.max(0, electionTicks - 2), 'leaseTicks', 0);
  if (leaseTicks >= electionTicks) throw invalid(`leaseTicks must be below electionTicks (${electionTicks}), got ${leaseTicks}`);
  let synchronousCommit: SynchronousCommit;
  let synchronousStandbyNames: string;
  try {
    synchronousCommit = parseSynchronousCommit(config.synchronousCommit ?? 'on');
    synchronousStandbyNames = formatStandbyNames(parseStandbyNames(config.synchronousStandbyNames ?? ''));
  } catch (error) {
    throw invalid((error as Error).message);
  }
  const limits: KvLimits = {
    keyBytesMax: intSetting(config.keyBytesMax, DEFAULT_KV_LIMITS.keyBytesMax, 'keyBytesMax', 1),
    valueBytesMax: intSetting(config.valueBytesMax, DEFAULT_KV_LIMITS.valueBytesMax, 'valueBytesMax', 1),
    txnOpsMax: DEFAULT_KV_LIMITS.txnOpsMax,
  };
  if (limits.valueBytesMax > 64 * MiB) throw invalid('valueBytesMax must be at most 64 MiB');
  if (limits.keyBytesMax > 64 * 1024) throw invalid('keyBytesMax must be at most 64 KiB');
  // Room for one maximal put plus a second value (a txn comparing and writing), keys and framing.
  const commandBytesMax = Math.max(4 * MiB, 2 * limits.valueBytesMax + 8 * limits.keyBytesMax + 64 * 1024);
  return {
    id: config.id,
    dataDir: config.dataDir,
    listenClient,
    listenPeer,
    initialCluster,
    clusterId,
    advertiseClient: config.advertiseClient,
    listenBinary,
    tickMs: intSetting(config.tickMs, 50, 'tickMs', 1),
    electionTicks,
    heartbeatTicks,
    snapshotEntries: intSetting(config.snapshotEntries, 10_000, 'snapshotEntries', 1),
    walKeepEntries: intSetting(config.walKeepEntries, 5000, 'walKeepEntries', 0),
    limits,
    multiMaster: resolveMultiMasterTuning(config.multiMaster),
    mmRecordBytesMax: Math.max(4 * MiB, 2 * limits.valueBytesMax),
    commandBytesMax,
    // base64 grows bytes by 4/3; JSON field names and escapes need a little more.
    txnBodyBytesMax: Math.ceil((commandBytesMax * 4) / 3) + 64 * 1024,
    frameBytesMax: Math.max(16 * MiB, commandBytesMax + 2 * MiB),
    requestTimeoutMs: intSetting(config.requestTimeoutMs, 5000, 'requestTimeoutMs', 1),
    proposalsPendingMax: intSetting(config.proposalsPendingMax, 10_000, 'proposalsPendingMax', 1),
    readsPendingMax: intSetting(config.readsPendingMax, 10_000, 'readsPendingMax', 1),
    forwardsPendingMax: intSetting(config.forwardsPendingMax, 1024, 'forwardsPendingMax', 1),
    forwardHopsMax: intSetting(config.forwardHopsMax, 2, 'forwardHopsMax', 0),
    synchronousCommit,
    synchronousStandbyNames,
    syncStandbyTimeoutMs: intSetting(config.syncStandbyTimeoutMs, 5000, 'syncStandbyTimeoutMs', 1),
    leaseTicks,
    heartbeatDelayMaxMs: intSetting(config.heartbeatDelayMaxMs, 50, 'heartbeatDelayMaxMs', 0),
    join,
    enableTestFaults: config.enableTestFaults ?? false,
    observe: resolveObserveConfig(config.alerts, config.alertWebhook),
    logLevel: config.logLevel ?? 'info',
  };
}

function resolveMultiMasterTuning(given: Partial<MultiMasterTuning> | undefined): MultiMasterTuning {
  const tuning = { ...DEFAULT_MM_TUNING, ...given };
  for (const [name, value] of Object.entries(tuning)) {
    if (!Number.isSafeInteger(value) || value < 1) throw new ChorusError('CHORUS_CONFIG_INVALID', `multiMaster.${name} must be a positive integer`);
  }
  return tuning;
}
