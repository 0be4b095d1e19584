// The member runtime: drives the pure Raft core with a monotonic clock, the durable stores, the
// TCP transport and the SQLite state machine, and serves the HTTP API.
//
// The loop (one ready at a time, never two overlapping):
//   inputs (transport messages, proposals, reads, ticks) step the core synchronously; a pump
//   scheduled with setImmediate then takes one Ready and
//     1. sends messagesBeforePersist (the leader's appends: replicate while writing our disk);
//     2. saves a received snapshot and fixes the log ('keep' compacts, 'discard' resets);
//     3. appends the entries and fsyncs the WAL once (group commit: everything proposed while
//        the previous ready was on disk shares this fsync);
//     4. saves the hard state, after the WAL fsync (the core's recovery relies on entries never
//        being less durable than the hard state that follows them);
//     5. sends messages (votes and acknowledgements: only once durable);
//     6. restores a received snapshot into SQLite, applies committedEntries in one SQLite
//        transaction, answers the proposals waiting on them, serves confirmed reads;
//     7. advance().
//   While a ready is on disk the core keeps taking inputs; the next ready collects them.
import { randomInt } from 'node:crypto';
import fs from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { FastifyInstance } from 'fastify';
import { evaluateStandbys, writeAcknowledged } from '../core/policy/replication-policy.ts';
import type { MemberState, StandbyEvaluation, SynchronousCommit } from '../core/policy/replication-policy.ts';
import { Raft } from '../core/raft/raft.ts';
import type { ConfigChange } from '../core/raft/raft.ts';
import type { HardState, ReadFailure, ReadState, Ready, Role } from '../core/raft/types.ts';
import type { LocalWrite, ReadView } from '../core/mm/index.ts';
import { MultiMasterHost } from '../mm-node/host.ts';
import type { MultiMasterWriteResult } from '../mm-node/host.ts';
import { MultiMasterStore } from '../mm-node/store.ts';
import { registerMultiMasterMetrics } from '../mm-node/metrics.ts';
import type { WireMessage } from '../transport/types.ts';
import { encodeCommand, validateCommand, validateMemberId, validatePeerAddress } from '../kv/commands.ts';
import type { Command, KvLimits } from '../kv/commands.ts';
import type { ApplyResult, KeyspaceDef, KvRecord, RangeOptions, RangeResult } from '../kv/sqlite-state-machine.ts';
import { LagTracker, ProgressWatch } from '../observe/lag.ts';
import { NodeObserver } from '../observe/observer.ts';
import { TcpTransport } from '../transport/tcp-transport.ts';
import { registerObserveRoutes } from '../api/observe-routes.ts';
import { createApiServer } from '../api/server.ts';
import { BINARY_SERVER_DEFAULTS, BinaryServer } from '../api/binary-server.ts';
import type { MemberService, ReadMode, ReplicationPatch, WriteAck, WriteOptions } from '../api/service.ts';
import type { KeyspaceService } from '../api/keyspace-routes.ts';
import type {
  ClusterMember, ClusterView, MemberChangeJson, MemberRole, Readiness, ReplicaHealth, ReplicationConfigJson, SwitchoverJson, TestFaults,
} from '../api/types.ts';
import { IMAGES_DIR, isPositionOnly, openStorage, POSITION_ONLY } from './boot.ts';
import { FileImage } from './image-file.ts';
import type { OpenedStorage } from './boot.ts';
import { formatHostPort, parseHostPort, resolveConfig } from './config.ts';
import type { ChorusNodeConfig, HostPort, ResolvedConfig } from './config.ts';
import { ChorusError, NotLeaderError } from './errors.ts';
import { FreshnessTracker } from './freshness.ts';
import { eagerAppliedReportsWanted, resolveReplication } from './replication.ts';
import type { ReplicationState } from './replication.ts';
import { createJsonLogger, transportLogger } from './logger.ts';
import type { Logger } from './logger.ts';

/** A hard state whose only change is the commit index is saved at most this often: the commit
 * index is a hint for recovery (the core re-learns it from the leader), while term and vote
 * changes are saved before any message of their ready leaves. Saving every commit would add two
 * fsyncs (file and directory) to every ready on the leader. */
const COMMIT_SAVE_INTERVAL_MS = 1000;
/** After an image of the state failed (the worker died, say) or was of no use, the next attempt
 * waits this long. */
const IMAGE_RETRY_MS = 1000;
/** /readyz: a member is caught up when it has applied all but this many committed entries. */
const READY_APPLY_LAG_MAX = 100;
/** A member whose applied index has not moved for this many election timeouts while behind is
 * reported as not progressing. */
const STALL_ELECTION_TIMEOUTS = 5;

interface PendingProposal {
  readonly term: number;
  /** The commit level it is acknowledged at: 'local' once durable in this leader's log; 'on'
   * and 'remote_apply' once applied here and, with a standby set, confirmed by the standbys. */
  readonly level: SynchronousCommit;
  /** Internal proposals (settings, member addresses) wait for commit only, never for the
   * standby set: changing the set must work while it cannot be met. */
  readonly waitForStandbys: boolean;
  readonly startedMs: number;
  readonly deadlineMs: number;
  readonly resolve: (ack: WriteAck) => void;
  readonly reject: (error: Error) => void;
  /** Another proposal at the same index (an earlier term's, overwritten here but possibly still
   * committed elsewhere): only the applied term decides which one succeeded. */
  next: PendingProposal | null;
}

/** A write applied here, waiting for the synchronous standby set to confirm it. */
interface StandbyWait {
  readonly index: number;
  readonly level: SynchronousCommit;
  readonly result: ApplyResult;
  /** min(request deadline, start + syncStandbyTimeoutMs). */
  readonly deadlineMs: number;
  readonly resolve: (ack: WriteAck) => void;
  readonly reject: (error: Error) => void;
}

interface PendingRead {
  /** The confirmed read index, or -1 while waiting for the core. */
  index: number;
  /** Whether some attempt reached a leader (expiry is then a timeout, not "no leader"). */
  confirmedByLeader: boolean;
  /** How the read index is confirmed (a min_revision wait never asks the core). */
  readonly mode: ReadMode;
  readonly deadlineMs: number;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

type NodeState = 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

function memberRole(role: Role): MemberRole {
  return role === 'pre-candidate' ? 'candidate' : role;
}

function timeoutError(what: string): ChorusError {
  return new ChorusError('CHORUS_TIMEOUT', `${what}: the request deadline passed; the outcome is unknown (the write may still commit)`);
}

function standbyTimeoutError(index: number, standbys: string, why: string): ChorusError {
  return new ChorusError(
    'CHORUS_SYNC_STANDBY_TIMEOUT',
    `the write committed at revision ${index} (durable on a majority; it will not be undone) but the synchronous standby set ${standbys} did not confirm it: ${why}`,
  );
}

export class ChorusNode implements MemberService, KeyspaceService {
  readonly id: string;
  readonly config: ResolvedConfig;
  readonly logger: Logger;
  readonly limits: KvLimits;
  readonly commandBytesMax: number;
  private readonly storage: OpenedStorage;
  private readonly raft: Raft;
  private transport: TcpTransport | null = null;
  private api: FastifyInstance | null = null;
  private binary: BinaryServer | null = null;
  private boundBinary: HostPort | null = null;
  private boundClient: HostPort | null = null;
  private advertisedClient: string | null = null;
  private readonly onFatal: ((error: Error) => void) | undefined;
  private state: NodeState = 'starting';
  private stopping: Promise<void> | null = null;

  // ---- the loop
  /** The ready being persisted/applied. Invariant: at most one; ready() is never called while set. */
  private inflight: Ready | null = null;
  /** Settles when the in-flight ready is done (or immediately when none). */
  private inflightDone: Promise<void> = Promise.resolve();
  private pumpScheduled = false;
  private tickTimer: NodeJS.Timeout | null = null;
  private nextTickAtMs = 0;

  // ---- hard state
  private savedHardState: HardState | null;
  /** The latest hard state handed out and not yet saved (only its commit differs from saved). */
  private unsavedHardState: HardState | null = null;
  private hardStateSavedAtMs = 0;

  // ---- snapshots
  private snapshotting = false;
  /** Settles when our own snapshot save is done; a received snapshot waits for it, so that the
   * snapshot store's last (kept) file is the newer one. */
  private snapshotSaving: Promise<void> = Promise.resolve();
  /** raft.compact() deferred until no ready is in flight. */
  private deferredCompact: { index: number; retainFromIndex: number } | null = null;
  /** An image of the state is being made for a follower (raft.snapshotWanted()). */
  private imaging = false;
  /** Settles when the image being made was handed to the core (or given up). */
  private imageMaking: Promise<void> = Promise.resolve();
  /** After a failed image, no new attempt before this time (performance.now() ms). */
  private imageRetryAtMs = 0;
  /** Image files offered to the core; each is released once the core no longer holds it. */
  private readonly imageFiles = new Set<FileImage>();
  private imagesMade = 0;
  /** When the first chunk of the image being received arrived (null: none is being received). */
  private snapshotReceiveStartedMs: number | null = null;
  /** Applied entries past the last snapshot that start the next one (0: to be drawn). */
  private snapshotThresholdEntries = 0;

  // ---- waiting requests
  /** Accepted proposals by log index. Invariant: proposalsPending counts every chained one, and
   * is at most config.proposalsPendingMax. */
  private readonly proposals = new Map<number, PendingProposal>();
  private proposalsPending = 0;
  /** Reads that arrived since the last pump: they share one ReadIndex request (any index
   * confirmed after all of them started serves them all), which spares the leader a heartbeat
   * round and a follower a message per read. */
  private readsToStart: PendingRead[] = [];
  /** Batches of reads waiting for the core to confirm a read index, by readId. */
  private readonly readsAwaitingIndex = new Map<string, PendingRead[]>();
  /** Reads with a confirmed index, waiting for the state machine to apply it. */
  private readsAwaitingApply: PendingRead[] = [];
  /** Reads whose attempt failed (no leader, leader stepped down): retried at the next tick. */
  private readsToRetry: PendingRead[] = [];
  /** Invariant: the number of reads in the four collections above, at most readsPendingMax. */
  private readsPending = 0;
  private readSeq = 0;
  /** Writes applied here that wait for the standby set. They still count in proposalsPending. */
  private standbyWaits: StandbyWait[] = [];
  /** Log indexes holding a proposal at level 'local' (acknowledged once durable here). */
  private readonly localWaits = new Set<number>();
  /** Resolved at the next tick: proposals held during a leadership transfer, membership
   * changes waiting for the previous one, switchovers waiting for the new leader. Invariant:
   * each waiter is counted in proposalsPending, so the list is bounded by proposalsPendingMax. */
  private tickWaiters: (() => void)[] = [];

  // ---- replication
  private replication: ReplicationState;
  /** Attested leader heartbeats, for max_staleness_ms reads. */
  private readonly freshness = new FreshnessTracker();
  /** The attested heartbeats this member sent while leading, timed when they left. */
  private readonly ownFreshness = new FreshnessTracker();
  /** The leader's append times and sizes, for lag in seconds and bytes. */
  private readonly lagTracker = new LagTracker();
  private readonly progressWatch = new ProgressWatch();
  /** Peer addresses recorded through the log (null: forgotten after a removal). */
  private memberAddresses = new Map<string, string | null>();

  // ---- observation
  private snapshotsTaken = 0;
  private snapshotsInstalled = 0;
  private lastRole: Role = 'follower';
  private lastLeader: string | null = null;
  private lastTerm = 0;
  /** Metrics, events and alerts (src/observe): told what the loop does, reads it through a
   * narrow source. */
  readonly observer: NodeObserver;

  /** Multi-master keyspaces (src/mm-node): their own store and replication, beside Raft. */
  readonly mm: MultiMasterHost;
  private readonly mmStore: MultiMasterStore;

  // ---- test faults
  private dropFrom: ReadonlySet<string> = new Set();
  private isolated = false;

  private constructor(config: ResolvedConfig, logger: Logger, storage: OpenedStorage, mmStore: MultiMasterStore, onFatal: ((error: Error) => void) | undefined) {
    this.id = config.id;
    this.mmStore = mmStore;
    this.mm = new MultiMasterHost({
      self: config.id,
      store: mmStore,
      send: (m) => this.send(m),
      wallClockMs: () => Date.now(),
      monotonicMs: () => performance.now(),
      random: Math.random,
      logger: logger.child({ component: 'multi-master' }),
      onFatal: (error) => this.fatal(error),
      tuning: config.multiMaster,
      replicaOptions: { keyBytesMax: config.limits.keyBytesMax, valueBytesMax: config.limits.valueBytesMax, recordBytesMax: config.mmRecordBytesMax },
    });
    this.config = config;
    this.logger = logger;
    this.limits = config.limits;
    this.commandBytesMax = config.commandBytesMax;
    this.storage = storage;
    this.onFatal = onFatal;
    this.savedHardState = storage.hardState;
    this.raft = new Raft(
      {
        id: config.id,
        random: { int: (maxExclusive: number) => randomInt(maxExclusive) },
        electionTicks: config.electionTicks,
        heartbeatTicks: config.heartbeatTicks,
        preVote: true,
        checkQuorum: true,
        leaseTicks: config.leaseTicks,
      },
      {
        // A joining member knows nothing of the configuration: it learns it from the leader's
        // snapshot or log, and never campaigns before.
        initialConfig: config.join ? { voters: [], learners: [] } : { voters: [...config.initialCluster.keys()], learners: [] },
        hardState: storage.hardState,
        // A compaction's snapshot has no image: images are made when a follower needs one.
        ...(storage.snapshot !== null && isPositionOnly(storage.snapshot) ? { snapshotMeta: storage.snapshot.meta } : { snapshot: storage.snapshot }),
        entries: storage.entries,
      },
    );
    this.lastTerm = this.raft.currentTerm();
    this.replication = resolveReplication(config, storage.stateMachine.replicationSettings());
    this.memberAddresses = storage.stateMachine.memberAddresses();
    this.raft.setEagerAppliedReports(eagerAppliedReportsWanted(this.replication, this.id));
    this.observer = new NodeObserver({
      memberId: config.id,
      clusterId: config.clusterId,
      config: config.observe,
      logger,
      proposalsPendingMax: config.proposalsPendingMax,
      readsPendingMax: config.readsPendingMax,
      source: {
        clusterView: () => this.clusterView(),
        pending: () => ({ proposals: this.proposalsPending, reads: this.readsPending }),
        transportStats: () => this.transport?.stats() ?? null,
        multiMasterPeers: () => this.mm.stats().flatMap((ks) => ks.peers.map((p) => ({ id: p.peer, keyspace: ks.name, unreachableSeconds: p.suspected ? p.silentMs / 1000 : 0 }))),
      },
    });
    registerMultiMasterMetrics(this.observer.metrics.registry, () => this.mm.stats());
  }

  /** Opens the data directory, recovers, and starts serving (HTTP, then the peer transport). */
  static async start(input: ChorusNodeConfig): Promise<ChorusNode> {
    const config = resolveConfig(input);
    const logger = input.logger ?? createJsonLogger({ level: config.logLevel, base: { member: config.id } });
    const storage = await openStorage({ dataDir: config.dataDir, id: config.id, clusterId: config.clusterId, limits: config.limits, logger });
    let mmStore: MultiMasterStore;
    try {
      mmStore = MultiMasterStore.open(join(config.dataDir, 'mm.db'));
    } catch (error) {
      await closeStorage(storage);
      throw error;
    }
    let node: ChorusNode;
    try {
      node = new ChorusNode(config, logger, storage, mmStore, input.onFatal);
    } catch (error) {
      await closeStorage(storage);
      mmStore.close();
      throw new ChorusError('CHORUS_RECOVERY_FAILED', `the stored Raft state is inconsistent: ${(error as Error).message}`, { cause: error });
    }
    try {
      await node.startServing();
    } catch (error) {
      await node.stop();
      throw error;
    }
    return node;
  }

  private async startServing(): Promise<void> {
    const config = this.config;
    const api = createApiServer(this, {
      requestTimeoutMs: config.requestTimeoutMs,
      forwardHopsMax: config.forwardHopsMax,
      forwardsPendingMax: config.forwardsPendingMax,
      txnBodyBytesMax: config.txnBodyBytesMax,
      enableTestFaults: config.enableTestFaults,
      logger: this.logger,
    });
    this.api = api;
    registerObserveRoutes(api, {
      observer: this.observer,
      memberId: this.id,
      peers: () => this.clusterView().members.map((m) => ({ id: m.id, clientAddress: m.clientAddress })),
      leader: () => this.leader(),
    });
    await api.listen({ host: config.listenClient.host, port: config.listenClient.port });
    const address = api.server.address();
    if (address === null || typeof address === 'string') throw new ChorusError('CHORUS_INTERNAL', 'the HTTP server has no TCP address');
    this.boundClient = { host: address.address, port: address.port };
    this.advertisedClient = config.advertiseClient ?? defaultAdvertisedClient(this.boundClient, config.initialCluster.get(config.id));
    if (config.listenBinary !== null) {
      const binary = new BinaryServer(this, {
        ...BINARY_SERVER_DEFAULTS,
        requestTimeoutMs: config.requestTimeoutMs,
        forwardsPendingMax: config.forwardsPendingMax,
        logger: this.logger,
      });
      this.binary = binary;
      this.boundBinary = await binary.listen(config.listenBinary.host, config.listenBinary.port);
    }

    const peers = new Map<string, HostPort>();
    for (const [id, address] of config.initialCluster) if (id !== config.id) peers.set(id, address);
    // Addresses recorded through the log win over the initial cluster (null: removed).
    for (const [id, address] of this.memberAddresses) {
      if (id === config.id) continue;
      if (address === null) peers.delete(id);
      else peers.set(id, parseHostPort(address, `address of ${id}`));
    }
    const transport = await TcpTransport.start({
      clusterId: config.clusterId,
      selfId: config.id,
      listen: config.listenPeer,
      peers,
      frameBytesMax: config.frameBytesMax,
      clientAddress: this.advertisedClient,
      logger: transportLogger(this.logger),
    });
    this.transport = transport;
    transport.onMessage((m) => this.onMessage(m));
    for (const def of this.storage.stateMachine.keyspaces()) this.mm.ensure(def);
    this.mm.start();
    this.state = 'running';
    const status = this.raft.status();
    this.logger.info('member-started', {
      clusterId: config.clusterId,
      clientAddress: this.advertisedClient,
      ...(this.boundBinary === null ? {} : { binaryAddress: formatHostPort(this.boundBinary) }),
      peerAddress: formatHostPort(config.listenPeer),
      term: status.term,
      commitIndex: status.commitIndex,
      lastIndex: status.lastIndex,
      snapshotIndex: status.snapshotIndex,
      appliedIndex: this.storage.stateMachine.appliedIndex(),
      voters: status.config.voters,
    });
    this.observer.start({ term: status.term, commitIndex: status.commitIndex, clientAddress: this.advertisedClient });
    this.nextTickAtMs = performance.now() + config.tickMs;
    this.armTick();
    this.schedulePump();
  }

  /** The bound HTTP address (the actual port when 0 was asked for). */
  get clientAddress(): string {
    if (this.boundClient === null) throw new ChorusError('CHORUS_INTERNAL', 'not started');
    return formatHostPort(this.boundClient);
  }

  /** The bound address of the binary client protocol, or null when it is off. */
  get binaryAddress(): string | null {
    return this.boundBinary === null ? null : formatHostPort(this.boundBinary);
  }

  get clientUrl(): string {
    return `http://${this.clientAddress}`;
  }

  /** The Fastify instance (for inject() in tests). */
  get http(): FastifyInstance {
    if (this.api === null) throw new ChorusError('CHORUS_INTERNAL', 'not started');
    return this.api;
  }

  nowMs(): number {
    return performance.now();
  }

  // ------------------------------------------------------------------ ticks and pump

  private armTick(): void {
    const delayMs = Math.max(0, this.nextTickAtMs - performance.now());
    this.tickTimer = setTimeout(() => this.onTick(), delayMs);
  }

  private onTick(): void {
    this.tickTimer = null;
    if (this.state !== 'running') return;
    const now = performance.now();
    try {
      this.catchUpTicks(now);
    } catch (error) {
      this.fatal(error);
      return;
    }
    this.expireRequests(now);
    this.retryReads();
    if (this.tickWaiters.length > 0) {
      const waiters = this.tickWaiters;
      this.tickWaiters = [];
      for (const wake of waiters) wake();
    }
    this.schedulePump();
    this.armTick();
  }

  /** Resolves at the next tick (or at once when the member stops). */
  private nextTick(): Promise<void> {
    return new Promise<void>((resolve) => this.tickWaiters.push(resolve));
  }

  /**
   * Feeds the core every tick that fell due by `now`. After a stall (GC, SIGSTOP, a long
   * synchronous apply) the time that passed must reach the core before it decides anything
   * time-bound: a leader that slept through its lease would otherwise wake up still trusting
   * it (the simulator found exactly this). Replaying is bounded: past a few election timeouts
   * more ticks change nothing. A follower may then campaign before reading the heartbeats that
   * piled up meanwhile; pre-vote keeps that from disturbing a live leader.
   */
  private catchUpTicks(now: number): void {
    const tickMs = this.config.tickMs;
    if (this.nextTickAtMs > now) return;
    const due = Math.floor((now - this.nextTickAtMs) / tickMs) + 1;
    this.nextTickAtMs += due * tickMs;
    const replay = Math.min(due, 4 * this.config.electionTicks);
    for (let i = 0; i < replay; i++) this.raft.tick();
  }

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.state !== 'running' && this.state !== 'stopping') return;
    let ready: Ready;
    try {
      // Reads may start while a ready is on disk, as proposals do: it only steps the core.
      if (this.state === 'running') this.startReads();
      // Acknowledgements from followers arrive between readies: the standby set may be met now.
      if (this.standbyWaits.length > 0) this.checkStandbyWaits();
      this.releaseImages();
      this.maybeMakeImage();
      if (this.inflight !== null) return;
      this.observe();
      if (this.deferredCompact !== null) {
        const { index, retainFromIndex } = this.deferredCompact;
        this.deferredCompact = null;
        this.raft.compact(index, null, retainFromIndex);
      }
      if (this.state !== 'running' || !this.raft.hasReady()) return;
      ready = this.raft.ready();
    } catch (error) {
      this.fatal(error); // a broken core invariant: stop rather than act on a corrupt state
      return;
    }
    this.inflight = ready;
    this.inflightDone = this.handleReady(ready).then(
      () => {
        this.inflight = null;
        this.maybeSnapshot();
        this.pump();
      },
      (error: unknown) => {
        this.inflight = null;
        this.fatal(error);
      },
    );
  }

  private async handleReady(ready: Ready): Promise<void> {
    // A ready with nothing to write is mostly a commit: its entry-less appends only carry the
    // new commit index to the followers. They leave after the apply below, queued (the transport
    // writes them at the end of this turn of the loop), so that the answers it settles are not
    // behind two socket writes, each waking a follower (about 50 µs of this VM's CPU each). One
    // client's writes: p50 0.83 ms against 0.88 ms over four alternating runs. Everything else
    // (entries, snapshot chunks, heartbeats, votes, reads) leaves at once, as before.
    const deferCommitNotices = ready.entries.length === 0 && ready.snapshot === null;
    const deferred: WireMessage[] = [];
    for (const m of ready.messagesBeforePersist) {
      if (deferCommitNotices && m.type === 'Append' && m.entries.length === 0) deferred.push(m);
      else this.send(m);
    }
    // On the wire before our own WAL write and fsync: the followers' fsyncs overlap ours.
    if (ready.messagesBeforePersist.length > deferred.length) this.transport?.flush();
    this.observer.noteMessagesSent(ready.messagesBeforePersist);
    for (const m of ready.messagesBeforePersist) {
      if (m.type === 'Heartbeat' && m.leaderCommit >= 0) {
        // One broadcast carries one leaderCommit: note it once.
        this.ownFreshness.note(m.leaderCommit, performance.now());
        break;
      }
    }
    if (ready.entries.length > 0 && this.raft.currentRole() === 'leader') {
      // The leader's own appends: lag in seconds and bytes is measured from here.
      const now = performance.now();
      for (const entry of ready.entries) this.lagTracker.noteAppended(entry.index, entry.data?.byteLength ?? 0, now);
    }
    const { logStore, stableStore, snapshotStore } = this.storage;
    // An image being received goes to the restore file piece by piece, as it arrives: neither
    // the core nor this member holds it whole (writing it at install took a second per 500 MB).
    for (const chunk of ready.snapshotChunks) this.storage.stateMachine.stageImage(chunk.offset, chunk.data);
    const snapshot = ready.snapshot;
    if (snapshot !== null) {
      const receivedMs = performance.now();
      await this.snapshotSaving;
      await this.imageMaking; // restore() replaces the file an image may still be read from
      // The image is in SQLite's restore file already: SQLite checks it there, fsyncs it and
      // renames it over state.db, so the state is durable at the snapshot's index before anything
      // claims it. Then only the position is saved, as compaction does. (Saving the image in the
      // snapshot store as well would write it twice.) A crash in between boots with the old
      // log and a state database ahead of it: replay skips what SQLite holds (boot.ts).
      const restoreStartedMs = performance.now();
      this.installSnapshot(snapshot.meta.index, snapshot.totalBytes);
      const restoredMs = performance.now();
      await snapshotStore.save({ meta: snapshot.meta, data: POSITION_ONLY });
      if (ready.logAfterSnapshot === 'keep') await logStore.compact(snapshot.meta.index);
      else await logStore.reset(snapshot.meta.index + 1);
      const startedMs = this.snapshotReceiveStartedMs ?? receivedMs;
      this.snapshotReceiveStartedMs = null;
      this.logger.info('snapshot-installed', {
        snapshotIndex: snapshot.meta.index, appliedIndex: this.storage.stateMachine.appliedIndex(), bytes: snapshot.totalBytes,
        receiveMs: Math.round(receivedMs - startedMs), restoreMs: Math.round(restoredMs - restoreStartedMs),
        saveMs: Math.round(performance.now() - restoredMs),
      });
    }
    if (ready.entries.length > 0) {
      // One write of the whole batch and one fsync (the store queues them in call order).
      const syncStartedMs = performance.now();
      await Promise.all([logStore.append(ready.entries), logStore.sync()]);
      this.observer.noteWalSynced(ready.entries, performance.now() - syncStartedMs);
    }
    if (ready.hardState !== null) this.unsavedHardState = ready.hardState;
    const hs = this.unsavedHardState;
    if (hs !== null && this.mustSaveHardState(hs)) {
      await stableStore.save(hs); // after the WAL fsync above: never ahead of the entries
      this.savedHardState = hs;
      this.hardStateSavedAtMs = performance.now();
      if (this.unsavedHardState === hs) this.unsavedHardState = null;
    }
    if (this.state !== 'running' && this.state !== 'stopping') return;
    for (const m of ready.messages) this.send(m);
    // Acknowledgements are on the leader's commit path: out before the apply below.
    if (ready.messages.length > 0) this.transport?.flush();
    const applyStartedMs = performance.now();
    this.apply(ready.committedEntries);
    this.observer.noteApplied(ready.committedEntries.length, performance.now() - applyStartedMs);
    for (const m of deferred) this.send(m); // not flushed: see deferCommitNotices
    this.takeReadStates(ready.readStates, ready.readFailures);
    this.serveAppliedReads();
    this.raft.advance(ready);
    // advance() moved the durable index: writes at 'local' may be acknowledged now.
    if (this.localWaits.size > 0) this.ackLocalWrites();
    if (this.standbyWaits.length > 0) this.checkStandbyWaits();
  }

  private mustSaveHardState(hs: HardState): boolean {
    const saved = this.savedHardState;
    if (saved === null || saved.term !== hs.term || saved.vote !== hs.vote) return true;
    return saved.commit !== hs.commit && performance.now() - this.hardStateSavedAtMs >= COMMIT_SAVE_INTERVAL_MS;
  }

  private installSnapshot(index: number, bytes: number): void {
    this.storage.stateMachine.restoreStaged(bytes, index);
    this.snapshotsInstalled++;
    this.observer.noteSnapshotInstalled(index, bytes, this.raft.currentLeader());
    // The snapshot carries the replicated settings and member addresses.
    this.reloadReplicatedSettings();
    // Proposals the snapshot covers were decided elsewhere; their results are not known here.
    for (const [index2, head] of this.proposals) {
      if (index2 > index) continue;
      this.proposals.delete(index2);
      this.localWaits.delete(index2);
      for (let p: PendingProposal | null = head; p !== null; p = p.next) {
        this.proposalsPending--;
        p.reject(timeoutError('a snapshot replaced the log before the write applied here'));
      }
    }
  }

  private apply(entries: Ready['committedEntries']): void {
    if (entries.length === 0) return;
    // Committed when the core handed them out, just before this apply (commit latency).
    const committedMs = performance.now();
    const results = this.storage.stateMachine.applyBatch(entries);
    for (const result of results) {
      if (result.kind === 'replication-config' || result.kind === 'member-address') this.onSettingsApplied(result);
      else if (result.kind === 'keyspace' && result.created) this.mm.ensure(result.keyspace);
    }
    if (this.proposals.size === 0) return;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      const head = this.proposals.get(entry.index);
      if (head === undefined) continue;
      this.proposals.delete(entry.index);
      this.localWaits.delete(entry.index);
      const result = results[i]!;
      for (let p: PendingProposal | null = head; p !== null; p = p.next) {
        if (p.term === entry.term) this.observer.noteCommitted(p.level, committedMs - p.startedMs);
        if (p.term !== entry.term) {
          this.proposalsPending--;
          p.reject(new ChorusError('CHORUS_LEADER_CHANGED', `another entry committed at index ${entry.index}: the write was not applied`));
        } else if (result.kind === 'error') {
          this.proposalsPending--;
          p.reject(new ChorusError(result.code, result.message));
        } else if (result.kind === 'skipped') {
          // Applied before this run (cannot happen on the leader that proposed it); the result
          // is not available.
          this.proposalsPending--;
          p.reject(timeoutError(`entry ${entry.index} was applied earlier`));
        } else {
          this.settleApplied(entry.index, p, result);
        }
      }
    }
  }

  /** A proposal's entry is committed and applied here: acknowledge it, or wait for the standbys. */
  private settleApplied(index: number, p: PendingProposal, result: ApplyResult): void {
    if (p.level === 'off' || p.level === 'local') {
      // Not yet acknowledged as durable here (rare: the commit overtook the local fsync report).
      this.proposalsPending--;
      p.resolve({ committed: false, revision: index });
      return;
    }
    const evaluation = p.waitForStandbys ? this.evaluateStandbysNow() : null;
    if (!p.waitForStandbys || this.replication.standbySet === null || (evaluation !== null && this.standbysAcknowledge(p.level, index, evaluation))) {
      this.proposalsPending--;
      p.resolve({ committed: true, result });
      return;
    }
    // Still counted in proposalsPending until it settles.
    this.standbyWaits.push({
      index,
      level: p.level,
      result,
      deadlineMs: Math.min(p.deadlineMs, p.startedMs + this.config.syncStandbyTimeoutMs),
      resolve: p.resolve,
      reject: p.reject,
    });
  }

  /** The standby set as the leader sees it now; null when there is none or this is no leader. */
  private evaluateStandbysNow(): StandbyEvaluation | null {
    const set = this.replication.standbySet;
    if (set === null || this.raft.currentRole() !== 'leader') return null;
    const status = this.raft.status();
    const members = new Map<string, MemberState>();
    for (const [id, pr] of status.progress) {
      members.set(id, { durableIndex: pr.match, appliedIndex: pr.applied, connected: pr.ackAgeTicks !== null && pr.ackAgeTicks <= this.config.electionTicks });
    }
    members.set(this.id, { durableIndex: status.persistedIndex, appliedIndex: this.storage.stateMachine.appliedIndex(), connected: true });
    return evaluateStandbys(set, this.id, members);
  }

  private standbysAcknowledge(level: SynchronousCommit, index: number, standbys: StandbyEvaluation): boolean {
    return writeAcknowledged(level, {
      index,
      // Applied here, so committed: it is in every later leader's log.
      inLeaderLog: true,
      leaderDurableIndex: this.raft.log.persisted,
      commitIndex: this.raft.log.committed,
      leaderAppliedIndex: this.storage.stateMachine.appliedIndex(),
      standbys,
    });
  }

  private checkStandbyWaits(): void {
    const noSet = this.replication.standbySet === null;
    const evaluation = noSet ? null : this.evaluateStandbysNow();
    // Not leading any more: nobody here can tell; the waits run to their deadline.
    if (!noSet && evaluation === null) return;
    const still: StandbyWait[] = [];
    for (const w of this.standbyWaits) {
      if (noSet || this.standbysAcknowledge(w.level, w.index, evaluation!)) {
        this.proposalsPending--;
        w.resolve({ committed: true, result: w.result });
      } else {
        still.push(w);
      }
    }
    this.standbyWaits = still;
  }

  /** Acknowledges writes at 'local' whose entry is durable in this leader's log, at its term. */
  private ackLocalWrites(): void {
    const persisted = this.raft.log.persisted;
    for (const index of this.localWaits) {
      if (index > persisted) continue;
      const term = this.raft.log.term(index);
      let left = this.settleProposals(index, (p) => {
        if (p.level !== 'local' || p.term !== term) return false;
        p.resolve({ committed: false, revision: index });
        return true;
      });
      while (left !== null && left.level !== 'local') left = left.next;
      if (left === null) this.localWaits.delete(index);
    }
  }

  /**
   * Settles the proposals waiting at `index` that `settle` takes (it resolves or rejects one and
   * returns true), keeping the others in their order; returns the ones left (null: none).
   */
  private settleProposals(index: number, settle: (p: PendingProposal) => boolean): PendingProposal | null {
    let kept: PendingProposal | null = null;
    let tail: PendingProposal | null = null;
    for (let p = this.proposals.get(index) ?? null; p !== null; ) {
      const next: PendingProposal | null = p.next;
      if (settle(p)) {
        this.proposalsPending--;
      } else {
        p.next = null;
        if (tail === null) kept = p;
        else tail.next = p;
        tail = p;
      }
      p = next;
    }
    if (kept === null) this.proposals.delete(index);
    else this.proposals.set(index, kept);
    return kept;
  }

  /** Reacts to replicated settings: the standby set, eager apply reports, transport peers. */
  private onSettingsApplied(result: Extract<ApplyResult, { kind: 'replication-config' | 'member-address' }>): void {
    if (result.kind === 'replication-config') {
      this.replication = resolveReplication(this.config, result.settings);
      this.raft.setEagerAppliedReports(eagerAppliedReportsWanted(this.replication, this.id));
      this.logger.info('replication-config-applied', {
        synchronousCommit: result.settings.synchronousCommit, synchronousStandbyNames: result.settings.synchronousStandbyNames, revision: result.revision,
      });
      this.observer.noteSettingsApplied(result.settings, result.revision);
      return;
    }
    this.memberAddresses.set(result.id, result.peerAddress);
    this.applyPeerAddress(result.id, result.peerAddress);
  }

  private applyPeerAddress(id: string, address: string | null): void {
    if (id === this.id || this.transport === null) return;
    if (address === null) {
      this.transport.removePeer(id);
      this.progressWatch.forget(id);
    } else {
      this.transport.setPeer(id, parseHostPort(address, `address of ${id}`));
    }
  }

  /** After a snapshot replaced the state: settings and addresses as the snapshot holds them. */
  private reloadReplicatedSettings(): void {
    this.replication = resolveReplication(this.config, this.storage.stateMachine.replicationSettings());
    this.raft.setEagerAppliedReports(eagerAppliedReportsWanted(this.replication, this.id));
    const addresses = this.storage.stateMachine.memberAddresses();
    for (const [id, address] of addresses) {
      if (this.memberAddresses.get(id) !== address) this.applyPeerAddress(id, address);
    }
    this.memberAddresses = addresses;
    for (const def of this.storage.stateMachine.keyspaces()) this.mm.ensure(def);
  }

  private takeReadStates(states: readonly ReadState[], failures: readonly ReadFailure[]): void {
    const applied = this.storage.stateMachine.appliedIndex();
    for (const rs of states) {
      const batch = this.readsAwaitingIndex.get(rs.readId);
      if (batch === undefined) continue;
      this.readsAwaitingIndex.delete(rs.readId);
      for (const read of batch) {
        read.index = rs.index;
        read.confirmedByLeader = true;
        if (applied >= rs.index) this.finishRead(read, null);
        else this.readsAwaitingApply.push(read);
      }
    }
    for (const rf of failures) {
      const batch = this.readsAwaitingIndex.get(rf.readId);
      if (batch === undefined) continue;
      this.readsAwaitingIndex.delete(rf.readId);
      for (const read of batch) {
        if (rf.reason === 'dropped') {
          this.finishRead(read, new ChorusError('CHORUS_BUSY', 'too many reads are pending at the leader'));
        } else {
          if (rf.reason === 'stepped-down') read.confirmedByLeader = true;
          // No leader, or it changed: a read is safe to retry until its deadline.
          this.readsToRetry.push(read);
        }
      }
    }
  }

  private serveAppliedReads(): void {
    if (this.readsAwaitingApply.length === 0) return;
    const applied = this.storage.stateMachine.appliedIndex();
    const still: PendingRead[] = [];
    for (const read of this.readsAwaitingApply) {
      if (applied >= read.index) this.finishRead(read, null);
      else still.push(read);
    }
    this.readsAwaitingApply = still;
  }

  private finishRead(read: PendingRead, error: Error | null): void {
    this.readsPending--;
    if (error === null) read.resolve();
    else read.reject(error);
  }

  private retryReads(): void {
    if (this.readsToRetry.length === 0) return;
    for (const read of this.readsToRetry) this.readsToStart.push(read);
    this.readsToRetry = [];
    this.schedulePump();
  }

  /** Asks the core for one read index on behalf of every read waiting to start (one for the
   * lease reads, one for the others). */
  private startReads(): void {
    if (this.readsToStart.length === 0) return;
    const lease = this.readsToStart.filter((r) => r.mode === 'lease');
    const quorum = lease.length === 0 ? this.readsToStart : this.readsToStart.filter((r) => r.mode !== 'lease');
    this.readsToStart = [];
    for (const [batch, mode] of [[quorum, 'quorum'], [lease, 'lease']] as const) {
      if (batch.length === 0) continue;
      const readId = (++this.readSeq).toString(36);
      this.readsAwaitingIndex.set(readId, batch);
      this.raft.readIndex(readId, mode);
    }
  }

  private expireRequests(now: number): void {
    if (this.proposalsPending > 0) {
      for (const index of this.proposals.keys()) {
        this.settleProposals(index, (p) => {
          if (p.deadlineMs > now) return false;
          p.reject(timeoutError(`the write at index ${index} did not commit in time`));
          return true;
        });
      }
    }
    if (this.readsPending > 0) {
      const expire = (read: PendingRead): boolean => {
        if (read.deadlineMs > now) return false;
        this.finishRead(read, read.confirmedByLeader
          ? new ChorusError('CHORUS_TIMEOUT', 'the read did not complete in time')
          : new ChorusError('CHORUS_NO_LEADER', 'no leader confirmed the read before its deadline'));
        return true;
      };
      for (const [readId, batch] of this.readsAwaitingIndex) {
        const left = batch.filter((r) => !expire(r));
        if (left.length === 0) this.readsAwaitingIndex.delete(readId);
        else if (left.length !== batch.length) this.readsAwaitingIndex.set(readId, left);
      }
      this.readsToStart = this.readsToStart.filter((r) => !expire(r));
      this.readsAwaitingApply = this.readsAwaitingApply.filter((r) => !expire(r));
      this.readsToRetry = this.readsToRetry.filter((r) => !expire(r));
    }
    if (this.standbyWaits.length > 0) {
      const names = this.replication.synchronousStandbyNames;
      const why = this.raft.currentRole() === 'leader'
        ? `not confirmed within ${this.config.syncStandbyTimeoutMs} ms (or the request deadline)`
        : 'this member stopped leading before they confirmed it';
      this.standbyWaits = this.standbyWaits.filter((w) => {
        if (w.deadlineMs > now) return true;
        this.proposalsPending--;
        w.reject(standbyTimeoutError(w.index, `"${names}"`, why));
        return false;
      });
    }
  }

  // ------------------------------------------------------------------ snapshots

  /**
   * Log compaction, the way etcd does it: SQLite keeps the applied state durably once its files
   * are fsynced, so the log below the applied index can go without copying the state anywhere.
   * Only the snapshot's position (index, term, membership) is saved, with no image; an image is
   * made only when a follower needs one (maybeMakeImage). Before, every member serialized and
   * wrote its whole state every snapshotEntries entries: with 100 MB of state, half of its time.
   */
  private maybeSnapshot(): void {
    if (this.snapshotting || this.state !== 'running') return;
    const log = this.raft.log;
    const applied = log.applied;
    // Drawn per member and again after every compaction: members apply the same entries, and
    // with one fixed threshold they would all fsync and compact at once.
    if (this.snapshotThresholdEntries === 0) {
      const entries = this.config.snapshotEntries;
      this.snapshotThresholdEntries = entries + randomInt(Math.floor(entries / 4) + 1);
    }
    // A compaction done but not yet handed to the core (deferredCompact) counts already.
    const snapshotIndex = Math.max(log.snapshotIndex(), this.deferredCompact?.index ?? 0);
    if (applied - snapshotIndex <= this.snapshotThresholdEntries) return;
    // At boot SQLite may be ahead of the core (replayed entries are skipped): wait until the two
    // agree, so that the position saved is one the core has applied.
    if (this.storage.stateMachine.appliedIndex() !== applied) return;
    const startedMs = performance.now();
    this.snapshotting = true;
    this.snapshotSaving = (async () => {
      try {
        // Durable from here: the state at `index` no longer needs the log below it.
        const index = await this.storage.stateMachine.syncDurable();
        const term = log.term(index);
        const covered = Math.max(log.snapshotIndex(), this.deferredCompact?.index ?? 0);
        // Meanwhile a snapshot from the leader may have replaced the log below it, or the member
        // may have begun to stop: nothing to do then.
        if (this.state !== 'running' || term === undefined || index <= covered) return;
        const meta = { index, term, config: log.configAt(index) };
        // wal_keep: entries that followers up to walKeepEntries behind still need stay in the log.
        // A follower at `match` needs the entries after it and the one at it (the append's prevTerm).
        let retainFromIndex = index + 1;
        if (this.config.walKeepEntries > 0) {
          let neededFrom = index + 1;
          for (const pr of this.raft.status().progress.values()) neededFrom = Math.min(neededFrom, pr.match);
          retainFromIndex = Math.max(neededFrom, index + 1 - this.config.walKeepEntries, log.firstIndex());
        }
        // The position only (empty data): the state database holds the state (boot.ts).
        await this.storage.snapshotStore.save({ meta, data: POSITION_ONLY });
        // Saved: the core may drop the log prefix (it keeps what a follower receiving an image
        // still needs, in memory), then the WAL may.
        if (this.inflight === null) this.raft.compact(index, null, retainFromIndex);
        else this.deferredCompact = { index, retainFromIndex };
        await this.storage.logStore.compact(retainFromIndex - 1);
        this.snapshotsTaken++;
        this.observer.noteSnapshotTaken(index);
        this.logger.info('snapshot-taken', {
          snapshotIndex: index, term, logFirstIndex: retainFromIndex, durationMs: Math.round(performance.now() - startedMs),
        });
      } catch (error) {
        this.fatal(error); // an fsync or a snapshot save failed: the disk cannot be trusted
      } finally {
        this.snapshotting = false;
        this.snapshotThresholdEntries = 0;
      }
    })();
  }

  /** Deletes the image files the core no longer holds (compaction or a newer image dropped them). */
  private releaseImages(): void {
    if (this.imageFiles.size === 0) return;
    const held = this.raft.latestSnapshot()?.data;
    for (const file of this.imageFiles) {
      if (file === held) continue;
      file.release();
      this.imageFiles.delete(file);
    }
  }

  /**
   * A follower needs the state and the log no longer has the entries it lacks: the snapshot
   * worker writes an image of the state to a file in images/ (the event loop goes on), offered
   * to the core, which sends it in chunks read from the file. The core keeps it until a later
   * compaction or a newer image leaves it behind; releaseImages() then deletes the file.
   */
  private maybeMakeImage(): void {
    if (this.imaging || this.state !== 'running' || !this.raft.snapshotWanted()) return;
    if (performance.now() < this.imageRetryAtMs) return;
    const startedMs = performance.now();
    this.imaging = true;
    const path = join(this.config.dataDir, IMAGES_DIR, `image-${++this.imagesMade}.db`);
    this.imageMaking = (async () => {
      let image: FileImage | null = null;
      try {
        const made = await this.storage.stateMachine.imageFileAsync(path);
        image = FileImage.open(path, made.byteLength);
        const log = this.raft.log;
        // The core must still have the entries after it, and have applied it (at boot SQLite can
        // be ahead of the core).
        if (this.state !== 'running' || made.index > log.applied || made.index < log.firstIndex() - 1 || log.term(made.index) === undefined) {
          image.release();
          this.logger.info('snapshot-image-discarded', { imageIndex: made.index, appliedIndex: log.applied, logFirstIndex: log.firstIndex() });
          this.imageRetryAtMs = performance.now() + IMAGE_RETRY_MS; // not a whole new image at once
          return;
        }
        this.raft.offerSnapshot(made.index, image);
        this.imageFiles.add(image);
        this.releaseImages(); // the one it replaces (or this one, if the core kept a newer one)
        this.observer.noteSnapshotImage(made.index, made.byteLength);
        this.logger.info('snapshot-image', { imageIndex: made.index, bytes: made.byteLength, durationMs: Math.round(performance.now() - startedMs) });
        this.schedulePump();
      } catch (error) {
        // The file goes unless the core holds it.
        if (image === null) fs.rmSync(path, { force: true });
        else if (!this.imageFiles.has(image)) image.release();
        // Not fatal: the follower waits; a new attempt follows in a second.
        this.imageRetryAtMs = performance.now() + IMAGE_RETRY_MS;
        if (this.state === 'running') this.logger.warn('snapshot-image-failed', { error });
      } finally {
        this.imaging = false;
      }
    })();
  }

  // ------------------------------------------------------------------ network

  private send(m: WireMessage): void {
    this.transport?.send(m);
  }

  private onMessage(m: WireMessage): void {
    if (this.state !== 'running') return;
    if (this.isolated || this.dropFrom.has(m.from)) return;
    if (m.type === 'MultiMaster') {
      this.mm.onMessage(m);
      return;
    }
    try {
      this.raft.step(m);
    } catch (error) {
      this.fatal(error);
      return;
    }
    // When the first chunk of an image arrived: 'snapshot-installed' reports the receive time.
    if (m.type === 'Snapshot' && m.offset === 0 && this.snapshotReceiveStartedMs === null) this.snapshotReceiveStartedMs = performance.now();
    // An attested heartbeat of our current leader bounds the staleness of what we applied.
    if (m.type === 'Heartbeat' && m.leaderCommit >= 0 && m.term === this.raft.currentTerm() && this.raft.currentLeader() === m.from) {
      this.freshness.note(m.leaderCommit, performance.now());
    }
    this.schedulePump();
  }

  private observe(): void {
    const role = this.raft.currentRole();
    const leader = this.raft.currentLeader();
    const term = this.raft.currentTerm();
    // Events (elections, leader changes with their reason, membership): the observer compares.
    this.observer.observeRaft(role, leader, term, this.raft.log.config(), () => this.raft.status().lastLeaderChangeReason);
    if (role === this.lastRole && leader === this.lastLeader && term === this.lastTerm) return;
    if (role !== this.lastRole) {
      const fields = { from: this.lastRole, to: role, term };
      if (role === 'leader') this.logger.info('became-leader', { term, lastIndex: this.raft.log.lastIndex() });
      else if (role === 'candidate' || role === 'pre-candidate') this.logger.info('campaign', fields);
      else this.logger.info('role-changed', fields);
    }
    if (leader !== this.lastLeader) {
      this.logger.info('leader-changed', { leaderId: leader, previous: this.lastLeader, term, reason: this.raft.status().lastLeaderChangeReason });
    }
    this.lastRole = role;
    this.lastLeader = leader;
    this.lastTerm = term;
  }

  // ------------------------------------------------------------------ MemberService

  private checkServing(): void {
    if (this.state === 'running') return;
    if (this.state === 'failed') throw new ChorusError('CHORUS_FATAL', 'this member stopped after a storage failure');
    throw new ChorusError('CHORUS_STOPPING', 'this member is not serving (starting or stopping)');
  }

  async propose(command: Command, deadlineMs: number, options: WriteOptions = {}): Promise<WriteAck> {
    let level = options.level ?? this.replication.synchronousCommit;
    if (command.kind === 'txn' && (level === 'off' || level === 'local')) {
      // A transaction's answer is its result (did the comparisons hold, what did the gets see),
      // which exists only once it is applied, i.e. committed.
      if (options.level !== undefined) throw new ChorusError('CHORUS_BAD_REQUEST', `a transaction cannot be acknowledged at commit level ${level}: its result exists only once it is committed (use on or remote_apply)`);
      level = 'on';
    }
    if (command.kind === 'replication-config' || command.kind === 'member-address' || command.kind === 'keyspace-create') {
      throw new ChorusError('CHORUS_BAD_REQUEST', `${command.kind} commands are proposed by their own endpoints`);
    }
    return this.proposeEntry(command, deadlineMs, level, true);
  }

  /** Proposes `command` and resolves once acknowledged at `level` (see PendingProposal). */
  private async proposeEntry(command: Command, deadlineMs: number, level: SynchronousCommit, waitForStandbys: boolean): Promise<WriteAck> {
    this.checkServing();
    if (this.proposalsPending >= this.config.proposalsPendingMax) {
      this.observer.noteDropped('proposals', 'pending-max');
      throw new ChorusError('CHORUS_BUSY', `${this.proposalsPending} writes are pending (proposalsPendingMax)`);
    }
    const data = encodeCommand(command);
    if (data.byteLength > this.commandBytesMax) {
      throw new ChorusError('CHORUS_REQUEST_TOO_LARGE', `the write encodes to ${data.byteLength} bytes, more than ${this.commandBytesMax}`);
    }
    const startedMs = performance.now();
    let result = this.raft.propose(data);
    // A leadership transfer refuses proposals for at most an election timeout: hold the write
    // and propose it again, here if the transfer failed, or (NotLeaderError: the API forwards
    // it) at the new leader. Nothing was proposed while it is held.
    while (result.kind === 'dropped' && result.reason === 'transfer-in-progress' && performance.now() < deadlineMs) {
      await this.holdOneTick();
      this.checkServing();
      result = this.raft.propose(data);
    }
    switch (result.kind) {
      case 'not-leader':
        throw new NotLeaderError(result.leaderId);
      case 'busy':
        this.observer.noteDropped('proposals', 'uncommitted-max');
        throw new ChorusError('CHORUS_BUSY', 'too many uncommitted entries at the leader');
      case 'dropped':
        throw new ChorusError('CHORUS_BUSY', `the leader refused the write (${result.reason})`);
      case 'accepted':
        break;
    }
    this.observer.noteProposal(level);
    this.schedulePump();
    // off: acknowledged once appended to the leader's log, before any fsync.
    if (level === 'off') return { committed: false, revision: result.index };
    return new Promise<WriteAck>((resolve, reject) => {
      const pending: PendingProposal = {
        term: result.term, level, waitForStandbys, startedMs, deadlineMs, resolve, reject, next: this.proposals.get(result.index) ?? null,
      };
      this.proposals.set(result.index, pending);
      this.proposalsPending++;
      if (level === 'local') this.localWaits.add(result.index);
    });
  }

  /** Waits for the next tick, counted as a pending proposal (which bounds the waiters). */
  private async holdOneTick(): Promise<void> {
    this.proposalsPending++;
    try {
      await this.nextTick();
    } finally {
      this.proposalsPending--;
    }
  }

  readBarrier(deadlineMs: number, mode: ReadMode = 'quorum'): Promise<void> {
    try {
      this.checkServing();
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.readsPending >= this.config.readsPendingMax) {
      this.observer.noteDropped('reads', 'pending-max');
      return Promise.reject(new ChorusError('CHORUS_BUSY', `${this.readsPending} reads are pending (readsPendingMax)`));
    }
    return new Promise<void>((resolve, reject) => {
      this.readsToStart.push({ index: -1, confirmedByLeader: false, mode, deadlineMs, resolve, reject });
      this.readsPending++;
      this.schedulePump();
    });
  }

  waitForApplied(index: number, deadlineMs: number): Promise<void> {
    try {
      this.checkServing();
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.storage.stateMachine.appliedIndex() >= index) return Promise.resolve();
    if (this.readsPending >= this.config.readsPendingMax) {
      this.observer.noteDropped('reads', 'pending-max');
      return Promise.reject(new ChorusError('CHORUS_BUSY', `${this.readsPending} reads are pending (readsPendingMax)`));
    }
    return new Promise<void>((resolve, reject) => {
      // Expiry of a "confirmed" read is a timeout: this member has not applied the revision.
      this.readsAwaitingApply.push({ index, confirmedByLeader: true, mode: 'quorum', deadlineMs, resolve, reject });
      this.readsPending++;
    });
  }

  stalenessBoundMs(): number {
    if (this.state !== 'running') return Number.POSITIVE_INFINITY;
    const applied = this.storage.stateMachine.appliedIndex();
    const now = performance.now();
    if (this.raft.currentRole() === 'leader') {
      const status = this.raft.status();
      if (status.commitAttested && applied >= status.commitIndex) return 0;
      // Our own attested heartbeats, timed when they left: no delay to assume.
      return this.ownFreshness.boundMs(applied, now, 0);
    }
    return this.freshness.boundMs(applied, now, this.config.heartbeatDelayMaxMs);
  }

  replicaHealth(): ReplicaHealth {
    const status = this.raft.status();
    const role = this.roleOf(this.id, status);
    const latest = this.freshness.latest();
    const now = performance.now();
    const recent = latest !== null && now - latest.arrivedMs <= this.config.electionTicks * this.config.tickMs;
    const applied = this.state === 'running' ? this.storage.stateMachine.appliedIndex() : 0;
    const lagEntries = recent && status.leaderId !== null && role !== 'leader'
      ? Math.max(0, Math.max(latest.leaderCommit, status.commitIndex) - applied)
      : null;
    return { id: this.id, role, leaderId: status.leaderId, lagEntries };
  }

  /** A member's role as the API names it: learners are members outside the voters. */
  private roleOf(id: string, status: ReturnType<Raft['status']>): MemberRole {
    if (id === status.leaderId) return 'leader';
    if (status.config.learners.includes(id)) return 'learner';
    if (id === this.id) return memberRole(status.role);
    return 'follower';
  }

  get(key: string): KvRecord | undefined {
    this.checkServing();
    return this.storage.stateMachine.get(key);
  }

  range(options: RangeOptions): RangeResult {
    this.checkServing();
    return this.storage.stateMachine.range(options);
  }

  leader(): { leaderId: string | null; clientAddress: string | null } {
    const leaderId = this.raft.currentLeader();
    if (leaderId === null) return { leaderId, clientAddress: null };
    if (leaderId === this.id) return { leaderId, clientAddress: this.advertisedClient };
    // An isolated member (test faults) cannot reach the leader by HTTP either.
    if (this.isolated) return { leaderId, clientAddress: null };
    return { leaderId, clientAddress: this.transport?.peerClientAddress(leaderId) ?? null };
  }

  clusterView(): ClusterView {
    const status = this.raft.status();
    const isLeader = status.role === 'leader';
    const peerStats = this.transport?.stats().peers ?? {};
    const ids = [...status.config.voters, ...status.config.learners];
    const now = performance.now();
    const stallMs = STALL_ELECTION_TIMEOUTS * this.config.electionTicks * this.config.tickMs;
    const appliedHere = this.storage.stateMachine.appliedIndex();
    const members: ClusterMember[] = ids.map((id) => {
      const voter = status.config.voters.includes(id);
      const self = id === this.id;
      const role = this.roleOf(id, status);
      let reachable: boolean;
      let matchIndex: number | null = null;
      let appliedIndex: number | null = null;
      if (self) {
        reachable = true;
        if (isLeader) {
          matchIndex = status.persistedIndex;
          appliedIndex = appliedHere;
        }
      } else if (isLeader) {
        const pr = status.progress.get(id);
        reachable = pr !== undefined && pr.ackAgeTicks !== null && pr.ackAgeTicks <= this.config.electionTicks;
        matchIndex = pr?.match ?? 0;
        appliedIndex = pr?.applied ?? 0;
      } else {
        reachable = peerStats[id]?.connected ?? false;
      }
      let lag = null;
      let progressing: boolean | null = null;
      let canLead: boolean | null = null;
      let whyNot: string | null = null;
      if (appliedIndex !== null && matchIndex !== null) {
        // Lag is what the member can serve: its applied state against the leader's log.
        lag = this.lagTracker.lag(appliedIndex, status.lastIndex, now);
        progressing = this.progressWatch.observe(id, appliedIndex, appliedIndex >= status.commitIndex, now, stallMs);
        const behind = status.commitIndex - matchIndex;
        whyNot = !voter ? 'learner' : !reachable ? 'unreachable' : behind > 0 ? `behind by ${behind} entries` : null;
        canLead = whyNot === null;
      }
      return {
        id,
        peerAddress: this.peerAddressOf(id),
        clientAddress: self ? this.advertisedClient : this.transport?.peerClientAddress(id) ?? null,
        role,
        voter,
        reachable,
        matchIndex,
        appliedIndex,
        lagEntries: lag === null ? null : lag.entries,
        lagBytes: lag === null ? null : lag.bytes,
        lagSeconds: lag === null ? null : Math.round(lag.seconds * 1000) / 1000,
        progressing,
        canLead,
        whyNot,
      };
    });
    const evaluation = this.evaluateStandbysNow();
    return {
      clusterId: this.config.clusterId,
      term: status.term,
      leaderId: status.leaderId,
      self: {
        id: this.id,
        role: this.roleOf(this.id, status),
        commitIndex: status.commitIndex,
        appliedIndex: appliedHere,
        lastIndex: status.lastIndex,
        snapshotIndex: status.snapshotIndex,
        clientAddress: this.advertisedClient,
        peerAddress: this.peerAddressOf(this.id),
      },
      members,
      membersSource: isLeader ? 'leader' : 'local',
      replication: {
        ...this.replicationConfig(),
        standbys: evaluation?.standbys ?? [],
        satisfiable: isLeader ? (evaluation === null ? true : evaluation.satisfiable) : null,
      },
    };
  }

  /** A member's peer address: recorded through the log, else from the initial cluster. */
  private peerAddressOf(id: string): string | null {
    const recorded = this.memberAddresses.get(id);
    if (recorded !== undefined) return recorded;
    const initial = this.config.initialCluster.get(id);
    return initial === undefined ? null : formatHostPort(initial);
  }

  // ------------------------------------------------------------------ replication settings

  replicationConfig(): ReplicationConfigJson {
    const r = this.replication;
    return { synchronous_commit: r.synchronousCommit, synchronous_standby_names: r.synchronousStandbyNames, source: r.source, revision: r.revision };
  }

  async setReplicationConfig(patch: ReplicationPatch, deadlineMs: number): Promise<ReplicationConfigJson> {
    this.checkServing();
    this.requireLeader();
    const command: Command = {
      kind: 'replication-config',
      synchronousCommit: patch.synchronousCommit ?? this.replication.synchronousCommit,
      synchronousStandbyNames: patch.synchronousStandbyNames ?? this.replication.synchronousStandbyNames,
    };
    validateCommand(command, this.limits);
    // Committed is enough: a change must get through while the current standby set is not met.
    await this.proposeEntry(command, deadlineMs, 'on', false);
    return this.replicationConfig();
  }

  // ------------------------------------------------------------------ keyspaces

  get keyspaceService(): KeyspaceService {
    return this;
  }

  keyspaces(): KeyspaceDef[] {
    return this.storage.stateMachine.keyspaces();
  }

  keyspace(name: string): KeyspaceDef | undefined {
    return this.storage.stateMachine.keyspace(name);
  }

  /** Adds a keyspace to the catalog through the log (leader only: NotLeaderError elsewhere). A
   * multi-master keyspace is replicated on the cluster's voters and learners of this moment. */
  async createKeyspace(request: { readonly name: string; readonly mode: 'consensus' | 'multi-master'; readonly conflicts: '' | 'lww' | 'versions' | 'crdt' }, deadlineMs: number): Promise<{ readonly keyspace: KeyspaceDef; readonly created: boolean }> {
    this.checkServing();
    this.requireLeader();
    const { config } = this.raft.status();
    const command: Command = {
      kind: 'keyspace-create',
      name: request.name,
      mode: request.mode,
      conflicts: request.conflicts,
      members: request.mode === 'multi-master' ? [...config.voters, ...config.learners].sort() : [],
    };
    validateCommand(command, this.limits);
    const ack = await this.proposeEntry(command, deadlineMs, 'on', false);
    if (!ack.committed || ack.result.kind !== 'keyspace') throw new ChorusError('CHORUS_INTERNAL', 'a keyspace command applied as something else');
    return { keyspace: ack.result.keyspace, created: ack.result.created };
  }

  mmWrite(keyspace: string, key: string, write: LocalWrite, w: number, deadlineMs: number): Promise<MultiMasterWriteResult> {
    this.checkServing();
    return this.mm.write(keyspace, key, write, w, deadlineMs);
  }

  mmRead(keyspace: string, key: string): ReadView {
    this.checkServing();
    return this.mm.read(keyspace, key);
  }

  mmList(keyspace: string, prefix: string, limit: number): ReturnType<MultiMasterHost['list']> {
    this.checkServing();
    return this.mm.list(keyspace, prefix, limit);
  }

  // ------------------------------------------------------------------ membership and switchover

  private requireLeader(): void {
    if (this.raft.currentRole() !== 'leader') throw new NotLeaderError(this.raft.currentLeader());
  }

  async addMember(request: { readonly id: string; readonly peerAddress: string; readonly learner: boolean }, deadlineMs: number): Promise<MemberChangeJson> {
    const id = validateMemberId(request.id);
    const peerAddress = validatePeerAddress(request.peerAddress);
    this.checkServing();
    this.requireLeader();
    const { config } = this.raft.status();
    if (config.voters.includes(id) || config.learners.includes(id)) {
      throw new ChorusError('CHORUS_MEMBER_EXISTS', `${id} is already a ${config.voters.includes(id) ? 'voter' : 'learner'}`);
    }
    // The address first: once the configuration names the member, every member must be able
    // to dial it. Re-running after a failure is harmless (same record again).
    await this.proposeEntry({ kind: 'member-address', id, peerAddress }, deadlineMs, 'on', false);
    const revision = await this.changeMembership({ kind: request.learner ? 'add-learner' : 'add-voter', id }, deadlineMs);
    this.logger.info('member-added', { memberId: id, peerAddress, learner: request.learner, revision });
    return { id, peerAddress, role: request.learner ? 'learner' : 'voter', revision, commitIndex: this.raft.log.committed };
  }

  async promoteMember(id: string, deadlineMs: number): Promise<MemberChangeJson> {
    validateMemberId(id);
    this.checkServing();
    this.requireLeader();
    const { config } = this.raft.status();
    if (config.voters.includes(id)) throw new ChorusError('CHORUS_MEMBER_CHANGE_INVALID', `${id} is already a voter`);
    if (!config.learners.includes(id)) throw new ChorusError('CHORUS_MEMBER_NOT_FOUND', `no learner ${id} in the cluster`);
    const revision = await this.changeMembership({ kind: 'promote', id }, deadlineMs);
    this.logger.info('member-promoted', { memberId: id, revision });
    return { id, peerAddress: this.peerAddressOf(id), role: 'voter', revision, commitIndex: this.raft.log.committed };
  }

  async removeMember(id: string, deadlineMs: number): Promise<MemberChangeJson> {
    validateMemberId(id);
    this.checkServing();
    this.requireLeader();
    const { config } = this.raft.status();
    const isVoter = config.voters.includes(id);
    if (!isVoter && !config.learners.includes(id)) throw new ChorusError('CHORUS_MEMBER_NOT_FOUND', `no member ${id} in the cluster`);
    if (isVoter && config.voters.length === 1) throw new ChorusError('CHORUS_MEMBER_CHANGE_INVALID', `${id} is the last voter; a cluster needs at least one`);
    const set = this.replication.standbySet;
    if (set !== null) {
      // A set that can never be met again would block every write at on/remote_apply.
      const after = [...config.voters, ...config.learners].filter((m) => m !== id);
      const candidates = new Set<string>();
      for (const name of set.names) {
        for (const m of name === '*' ? after.filter((x) => x !== this.id) : after.includes(name) ? [name] : []) candidates.add(m);
      }
      if (candidates.size < set.count) {
        throw new ChorusError('CHORUS_MEMBER_CHANGE_INVALID', `removing ${id} leaves synchronous_standby_names "${this.replication.synchronousStandbyNames}" unsatisfiable; change it first (PUT /v1/config/replication)`);
      }
    }
    if (id === this.id) {
      // The leader hands over first, so that the cluster keeps serving while the change commits;
      // the API then forwards the request to the new leader, which removes this member.
      const handover = await this.switchover(null, deadlineMs);
      throw new NotLeaderError(handover.leaderId);
    }
    const peerAddress = this.peerAddressOf(id);
    const revision = await this.changeMembership({ kind: 'remove', id }, deadlineMs);
    this.logger.info('member-removed', { memberId: id, revision });
    try {
      // Forget its address so that no member keeps dialing it; harmless if this fails.
      await this.proposeEntry({ kind: 'member-address', id, peerAddress: null }, deadlineMs, 'on', false);
    } catch (error) {
      this.logger.warn('member-address-not-forgotten', { memberId: id, error });
    }
    return { id, peerAddress, role: 'removed', revision, commitIndex: this.raft.log.committed };
  }

  /**
   * Proposes a single-server configuration change and resolves with its index once it is
   * committed and applied here. The core takes one change at a time, and none during a
   * transfer: the change is held (counted as a pending proposal) and proposed again each tick
   * until the deadline.
   */
  private async changeMembership(change: ConfigChange, deadlineMs: number): Promise<number> {
    for (;;) {
      this.checkServing();
      if (this.proposalsPending >= this.config.proposalsPendingMax) {
        throw new ChorusError('CHORUS_BUSY', `${this.proposalsPending} writes are pending (proposalsPendingMax)`);
      }
      const result = this.raft.proposeConfigChange(change);
      if (result.kind === 'dropped' && result.reason !== 'invalid-config') {
        if (performance.now() >= deadlineMs) {
          throw new ChorusError('CHORUS_BUSY', `the membership change was not proposed (${result.reason}: another change or a transfer is still in progress); retry`);
        }
        await this.holdOneTick();
        continue;
      }
      switch (result.kind) {
        case 'not-leader':
          throw new NotLeaderError(result.leaderId);
        case 'busy':
          throw new ChorusError('CHORUS_BUSY', 'too many uncommitted entries at the leader');
        case 'dropped':
          throw new ChorusError('CHORUS_MEMBER_CHANGE_INVALID', `the change ${change.kind} ${change.id} is not valid for the current configuration`);
        case 'accepted':
          break;
      }
      this.schedulePump();
      await new Promise<WriteAck>((resolve, reject) => {
        const pending: PendingProposal = {
          term: result.term, level: 'on', waitForStandbys: false, startedMs: performance.now(), deadlineMs, resolve, reject,
          next: this.proposals.get(result.index) ?? null,
        };
        this.proposals.set(result.index, pending);
        this.proposalsPending++;
      });
      return result.index;
    }
  }

  async switchover(to: string | null, deadlineMs: number): Promise<SwitchoverJson> {
    if (to !== null) validateMemberId(to);
    this.checkServing();
    this.requireLeader();
    const status = this.raft.status();
    const target = to ?? this.bestSuccessor(status);
    if (target === null) throw new ChorusError('CHORUS_MEMBER_CHANGE_INVALID', 'no other voter is reachable and able to lead');
    if (target === this.id) return { previousLeaderId: this.id, leaderId: this.id, term: status.term };
    if (!status.config.voters.includes(target)) {
      if (status.config.learners.includes(target)) throw new ChorusError('CHORUS_MEMBER_CHANGE_INVALID', `${target} is a learner; promote it first`);
      throw new ChorusError('CHORUS_MEMBER_NOT_FOUND', `no voter ${target} in the cluster`);
    }
    const started = this.raft.transferLeadership(target);
    if (!started.ok) {
      if (started.reason === 'not-leader') throw new NotLeaderError(this.raft.currentLeader());
      throw new ChorusError('CHORUS_MEMBER_CHANGE_INVALID', `cannot transfer leadership to ${target} (${started.reason})`);
    }
    this.logger.info('switchover-started', { to: target, term: status.term });
    this.schedulePump();
    for (;;) {
      await this.holdOneTick();
      this.checkServing();
      const leaderId = this.raft.currentLeader();
      if (this.raft.currentRole() !== 'leader' && leaderId !== null && leaderId !== this.id) {
        return { previousLeaderId: this.id, leaderId, term: this.raft.currentTerm() };
      }
      const stillTrying = this.raft.currentRole() === 'leader' && this.raft.status().transferee === target;
      if ((this.raft.currentRole() === 'leader' && !stillTrying) || performance.now() >= deadlineMs) {
        // The core gave up after an election timeout, or the deadline passed. A TimeoutNow
        // already sent may still start an election: the outcome is not certain.
        throw new ChorusError('CHORUS_TIMEOUT', `the switchover to ${target} did not complete in time; leadership may still move`);
      }
    }
  }

  /** The reachable voter with the most of the log (ties: lowest id), or null. */
  private bestSuccessor(status: ReturnType<Raft['status']>): string | null {
    let best: { id: string; match: number } | null = null;
    for (const id of [...status.config.voters].sort()) {
      if (id === this.id) continue;
      const pr = status.progress.get(id);
      if (pr === undefined || pr.ackAgeTicks === null || pr.ackAgeTicks > this.config.electionTicks) continue;
      if (best === null || pr.match > best.match) best = { id, match: pr.match };
    }
    return best?.id ?? null;
  }

  readiness(): Readiness {
    const leaderId = this.raft.currentLeader();
    const commitIndex = this.raft.log.committed;
    const appliedIndex = this.state === 'running' ? this.storage.stateMachine.appliedIndex() : 0;
    let reason: string | undefined;
    if (this.state !== 'running') reason = `member is ${this.state}`;
    else if (leaderId === null) reason = 'no leader is known';
    else if (commitIndex - appliedIndex > READY_APPLY_LAG_MAX) reason = `applied ${appliedIndex} lags commit ${commitIndex}`;
    return { ready: reason === undefined, leaderId, commitIndex, appliedIndex, ...(reason === undefined ? {} : { reason }) };
  }

  /** Test-only network faults (the API exposes them with enableTestFaults). */
  setTestFaults(faults: TestFaults): void {
    const dropTo = new Set(faults.dropTo ?? []);
    this.dropFrom = new Set(faults.dropFrom ?? []);
    this.isolated = faults.isolate === true;
    const isolated = this.isolated;
    this.transport?.setFaults(isolated || dropTo.size > 0 ? { drop: (m) => isolated || dropTo.has(m.to) } : {});
    this.logger.warn('test-faults', { isolate: isolated, dropTo: [...dropTo], dropFrom: [...this.dropFrom] });
  }

  /** A snapshot of counters for tests and diagnostics. */
  debugState(): {
    proposalsPending: number; readsPending: number; role: Role; term: number; leaderId: string | null;
    commitIndex: number; appliedIndex: number; snapshotIndex: number; snapshotsTaken: number; snapshotsInstalled: number;
  } {
    return {
      snapshotsTaken: this.snapshotsTaken,
      snapshotsInstalled: this.snapshotsInstalled,
      proposalsPending: this.proposalsPending,
      readsPending: this.readsPending,
      role: this.raft.currentRole(),
      term: this.raft.currentTerm(),
      leaderId: this.raft.currentLeader(),
      commitIndex: this.raft.log.committed,
      appliedIndex: this.storage.stateMachine.appliedIndex(),
      snapshotIndex: this.raft.log.snapshotIndex(),
    };
  }

  // ------------------------------------------------------------------ shutdown

  private failWaiting(proposalError: () => Error, readError: () => Error): void {
    for (const head of this.proposals.values()) {
      for (let p: PendingProposal | null = head; p !== null; p = p.next) p.reject(proposalError());
    }
    this.proposals.clear();
    this.localWaits.clear();
    for (const w of this.standbyWaits) w.reject(proposalError());
    this.standbyWaits = [];
    this.proposalsPending = 0;
    // Held proposals and switchovers wake up, find the member stopping and give up.
    const waiters = this.tickWaiters;
    this.tickWaiters = [];
    for (const wake of waiters) wake();
    const reads = [...this.readsToStart, ...[...this.readsAwaitingIndex.values()].flat(), ...this.readsAwaitingApply, ...this.readsToRetry];
    this.readsToStart = [];
    this.readsAwaitingIndex.clear();
    this.readsAwaitingApply = [];
    this.readsToRetry = [];
    this.readsPending = 0;
    for (const read of reads) read.reject(readError());
  }

  private fatal(error: unknown): void {
    if (this.state === 'failed' || this.state === 'stopped') return;
    const err = error instanceof Error ? error : new Error(String(error));
    this.state = 'failed';
    if (this.tickTimer !== null) clearTimeout(this.tickTimer);
    this.tickTimer = null;
    this.logger.error('fatal', { code: 'CHORUS_FATAL', error: err, cause: (err as { code?: unknown }).code });
    this.failWaiting(() => timeoutError('the member failed'), () => new ChorusError('CHORUS_FATAL', 'the member failed'));
    this.onFatal?.(err);
  }

  /** Stops serving: new requests are refused, waiting ones answered (writes: outcome unknown),
   * the in-flight ready finishes, then the transport, HTTP server and stores close. */
  stop(): Promise<void> {
    if (this.stopping === null) this.stopping = this.stopInner();
    return this.stopping;
  }

  private async stopInner(): Promise<void> {
    const failed = this.state === 'failed';
    if (!failed) this.state = 'stopping';
    if (this.tickTimer !== null) clearTimeout(this.tickTimer);
    this.tickTimer = null;
    // No more rule evaluations (they read the stores); webhook deliveries still queued are dropped.
    const observerStopped = this.observer.stop();
    this.failWaiting(() => timeoutError('the member is stopping'), () => new ChorusError('CHORUS_STOPPING', 'the member is stopping'));
    const closeApi = this.api?.close().catch((error: unknown) => this.logger.warn('http-close-failed', { error }));
    const closeBinary = this.binary?.close().catch((error: unknown) => this.logger.warn('binary-close-failed', { error }));
    await this.inflightDone.catch(() => undefined);
    await this.snapshotSaving.catch(() => undefined);
    await this.imageMaking;
    this.mm.stop();
    await this.transport?.close();
    await closeApi;
    await closeBinary;
    await observerStopped;
    if (!failed && this.unsavedHardState !== null) {
      try {
        await this.storage.stableStore.save(this.unsavedHardState);
      } catch (error) {
        this.logger.warn('hard-state-save-failed', { error });
      }
    }
    for (const file of this.imageFiles) file.release();
    this.imageFiles.clear();
    for (const error of await closeStorage(this.storage)) this.logger.warn('store-close-failed', { error });
    try {
      this.mmStore.close();
    } catch (error) {
      this.logger.warn('store-close-failed', { error });
    }
    if (!failed) this.state = 'stopped';
    this.logger.info('member-stopped', {});
  }
}

/** The client address other members are told: the bound one, except that a wildcard host
 * (0.0.0.0, ::) is replaced by this member's host in the initial cluster, which peers can reach. */
function defaultAdvertisedClient(bound: HostPort, peer: HostPort | undefined): string {
  const wildcard = bound.host === '0.0.0.0' || bound.host === '::' || bound.host === '';
  return formatHostPort(wildcard && peer !== undefined ? { host: peer.host, port: bound.port } : bound);
}

/** Closes every store; returns the failures (a store that already failed may refuse to close). */
async function closeStorage(storage: OpenedStorage): Promise<unknown[]> {
  const results = await Promise.allSettled([storage.logStore.close(), storage.stableStore.close(), storage.snapshotStore.close()]);
  const failures: unknown[] = results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason);
  try {
    storage.stateMachine.close();
  } catch (error) {
    failures.push(error);
  }
  return failures;
}
