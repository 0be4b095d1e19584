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
import { performance } from 'node:perf_hooks';
import type { FastifyInstance } from 'fastify';
import { Raft } from '../core/raft/raft.ts';
import type { HardState, Message, ReadFailure, ReadState, Ready, Role } from '../core/raft/types.ts';
import { encodeCommand } from '../kv/commands.ts';
import type { Command, KvLimits } from '../kv/commands.ts';
import type { ApplyResult, KvRecord, RangeOptions, RangeResult } from '../kv/sqlite-state-machine.ts';
import { TcpTransport } from '../transport/tcp-transport.ts';
import { createApiServer } from '../api/server.ts';
import type { MemberService } from '../api/service.ts';
import type { ClusterMember, ClusterView, MemberRole, Readiness, TestFaults } from '../api/types.ts';
import { openStorage } from './boot.ts';
import type { OpenedStorage } from './boot.ts';
import { formatHostPort, resolveConfig } from './config.ts';
import type { ChorusNodeConfig, HostPort, ResolvedConfig } from './config.ts';
import { ChorusError, NotLeaderError } from './errors.ts';
import { createJsonLogger, transportLogger } from './logger.ts';
import type { Logger } from './logger.ts';

/** A hard state whose only change is the commit index is saved at most this often: the commit
 * index is a hint for recovery (the core re-learns it from the leader), while term and vote
 * changes are saved before any message of their ready leaves. Saving every commit would add two
 * fsyncs (file and directory) to every ready on the leader. */
const COMMIT_SAVE_INTERVAL_MS = 1000;
/** /readyz: a member is caught up when it has applied all but this many committed entries. */
const READY_APPLY_LAG_MAX = 100;

interface PendingProposal {
  readonly term: number;
  readonly deadlineMs: number;
  readonly resolve: (result: ApplyResult) => void;
  readonly reject: (error: Error) => void;
  /** Another proposal at the same index (an earlier term's, overwritten here but possibly still
   * committed elsewhere): only the applied term decides which one succeeded. */
  next: PendingProposal | null;
}

interface PendingRead {
  /** The confirmed read index, or -1 while waiting for the core. */
  index: number;
  /** Whether some attempt reached a leader (expiry is then a timeout, not "no leader"). */
  confirmedByLeader: boolean;
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

export class ChorusNode implements MemberService {
  readonly id: string;
  readonly config: ResolvedConfig;
  readonly logger: Logger;
  readonly limits: KvLimits;
  readonly commandBytesMax: number;
  private readonly storage: OpenedStorage;
  private readonly raft: Raft;
  private transport: TcpTransport | null = null;
  private api: FastifyInstance | null = null;
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
  private deferredCompact: { index: number; data: Uint8Array; retainFromIndex: number } | null = null;

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

  // ---- observation
  private snapshotsTaken = 0;
  private snapshotsInstalled = 0;
  private lastRole: Role = 'follower';
  private lastLeader: string | null = null;
  private lastTerm = 0;

  // ---- test faults
  private dropFrom: ReadonlySet<string> = new Set();
  private isolated = false;

  private constructor(config: ResolvedConfig, logger: Logger, storage: OpenedStorage, onFatal: ((error: Error) => void) | undefined) {
    this.id = config.id;
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
        leaseTicks: 0,
      },
      {
        initialConfig: { voters: [...config.initialCluster.keys()], learners: [] },
        hardState: storage.hardState,
        snapshot: storage.snapshot,
        entries: storage.entries,
      },
    );
    this.lastTerm = this.raft.currentTerm();
  }

  /** Opens the data directory, recovers, and starts serving (HTTP, then the peer transport). */
  static async start(input: ChorusNodeConfig): Promise<ChorusNode> {
    const config = resolveConfig(input);
    const logger = input.logger ?? createJsonLogger({ level: config.logLevel, base: { member: config.id } });
    const storage = await openStorage({ dataDir: config.dataDir, id: config.id, clusterId: config.clusterId, limits: config.limits, logger });
    let node: ChorusNode;
    try {
      node = new ChorusNode(config, logger, storage, input.onFatal);
    } catch (error) {
      await closeStorage(storage);
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
    await api.listen({ host: config.listenClient.host, port: config.listenClient.port });
    const address = api.server.address();
    if (address === null || typeof address === 'string') throw new ChorusError('CHORUS_INTERNAL', 'the HTTP server has no TCP address');
    this.boundClient = { host: address.address, port: address.port };
    this.advertisedClient = config.advertiseClient ?? defaultAdvertisedClient(this.boundClient, config.initialCluster.get(config.id));

    const peers = new Map<string, HostPort>();
    for (const [id, address] of config.initialCluster) if (id !== config.id) peers.set(id, address);
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
    this.state = 'running';
    const status = this.raft.status();
    this.logger.info('member-started', {
      clusterId: config.clusterId,
      clientAddress: this.advertisedClient,
      peerAddress: formatHostPort(config.listenPeer),
      term: status.term,
      commitIndex: status.commitIndex,
      lastIndex: status.lastIndex,
      snapshotIndex: status.snapshotIndex,
      appliedIndex: this.storage.stateMachine.appliedIndex(),
      voters: status.config.voters,
    });
    this.nextTickAtMs = performance.now() + config.tickMs;
    this.armTick();
    this.schedulePump();
  }

  /** The bound HTTP address (the actual port when 0 was asked for). */
  get clientAddress(): string {
    if (this.boundClient === null) throw new ChorusError('CHORUS_INTERNAL', 'not started');
    return formatHostPort(this.boundClient);
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
    this.schedulePump();
    this.armTick();
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
      if (this.inflight !== null) return;
      this.observe();
      if (this.deferredCompact !== null) {
        const { index, data, retainFromIndex } = this.deferredCompact;
        this.deferredCompact = null;
        this.raft.compact(index, data, retainFromIndex);
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
    for (const m of ready.messagesBeforePersist) this.send(m);
    const { logStore, stableStore, snapshotStore } = this.storage;
    const snapshot = ready.snapshot;
    if (snapshot !== null) {
      await this.snapshotSaving;
      await snapshotStore.save(snapshot);
      if (ready.logAfterSnapshot === 'keep') await logStore.compact(snapshot.meta.index);
      else await logStore.reset(snapshot.meta.index + 1);
    }
    if (ready.entries.length > 0) {
      // One write of the whole batch and one fsync (the store queues them in call order).
      await Promise.all([logStore.append(ready.entries), logStore.sync()]);
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
    if (snapshot !== null) this.installSnapshot(snapshot.meta.index, snapshot.data);
    this.apply(ready.committedEntries);
    this.takeReadStates(ready.readStates, ready.readFailures);
    this.serveAppliedReads();
    this.raft.advance(ready);
  }

  private mustSaveHardState(hs: HardState): boolean {
    const saved = this.savedHardState;
    if (saved === null || saved.term !== hs.term || saved.vote !== hs.vote) return true;
    return saved.commit !== hs.commit && performance.now() - this.hardStateSavedAtMs >= COMMIT_SAVE_INTERVAL_MS;
  }

  private installSnapshot(index: number, data: Uint8Array): void {
    this.storage.stateMachine.restore(data);
    this.snapshotsInstalled++;
    this.logger.info('snapshot-installed', { snapshotIndex: index, appliedIndex: this.storage.stateMachine.appliedIndex() });
    // Proposals the snapshot covers were decided elsewhere; their results are not known here.
    for (const [index2, head] of this.proposals) {
      if (index2 > index) continue;
      this.proposals.delete(index2);
      for (let p: PendingProposal | null = head; p !== null; p = p.next) {
        this.proposalsPending--;
        p.reject(timeoutError('a snapshot replaced the log before the write applied here'));
      }
    }
  }

  private apply(entries: Ready['committedEntries']): void {
    if (entries.length === 0) return;
    const results = this.storage.stateMachine.applyBatch(entries);
    if (this.proposals.size === 0) return;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      const head = this.proposals.get(entry.index);
      if (head === undefined) continue;
      this.proposals.delete(entry.index);
      const result = results[i]!;
      for (let p: PendingProposal | null = head; p !== null; p = p.next) {
        this.proposalsPending--;
        if (p.term !== entry.term) {
          p.reject(new ChorusError('CHORUS_LEADER_CHANGED', `another entry committed at index ${entry.index}: the write was not applied`));
        } else if (result.kind === 'error') {
          p.reject(new ChorusError(result.code, result.message));
        } else if (result.kind === 'skipped') {
          // Applied before this run (cannot happen on the leader that proposed it); the result
          // is not available.
          p.reject(timeoutError(`entry ${entry.index} was applied earlier`));
        } else {
          p.resolve(result);
        }
      }
    }
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

  /** Asks the core for one read index on behalf of every read waiting to start. */
  private startReads(): void {
    if (this.readsToStart.length === 0) return;
    const readId = (++this.readSeq).toString(36);
    this.readsAwaitingIndex.set(readId, this.readsToStart);
    this.readsToStart = [];
    this.raft.readIndex(readId, 'quorum');
  }

  private expireRequests(now: number): void {
    if (this.proposalsPending > 0) {
      for (const [index, head] of this.proposals) {
        let kept: PendingProposal | null = null;
        let tail: PendingProposal | null = null;
        for (let p: PendingProposal | null = head; p !== null; ) {
          const next: PendingProposal | null = p.next;
          if (p.deadlineMs <= now) {
            this.proposalsPending--;
            p.reject(timeoutError(`the write at index ${index} did not commit in time`));
          } else {
            p.next = null;
            if (tail === null) kept = p;
            else tail.next = p;
            tail = p;
          }
          p = next;
        }
        if (kept === null) this.proposals.delete(index);
        else if (kept !== head) this.proposals.set(index, kept);
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
  }

  // ------------------------------------------------------------------ snapshots

  private maybeSnapshot(): void {
    if (this.snapshotting || this.state !== 'running') return;
    const log = this.raft.log;
    const applied = log.applied;
    if (applied - log.snapshotIndex() <= this.config.snapshotEntries) return;
    // At boot SQLite may be ahead of the core (replayed entries are skipped): wait until the two
    // agree, so that the image is exactly the state at `applied`.
    if (this.storage.stateMachine.appliedIndex() !== applied) return;
    const term = log.term(applied);
    if (term === undefined) return;
    const meta = { index: applied, term, config: log.configAt(applied) };
    // wal_keep: entries that followers up to walKeepEntries behind still need stay in the log.
    // A follower at `match` needs the entries after it and the one at it (the append's prevTerm).
    let retainFromIndex = applied + 1;
    if (this.config.walKeepEntries > 0) {
      let neededFrom = applied + 1;
      for (const pr of this.raft.status().progress.values()) neededFrom = Math.min(neededFrom, pr.match);
      retainFromIndex = Math.max(neededFrom, applied + 1 - this.config.walKeepEntries, log.firstIndex());
    }
    const startedMs = performance.now();
    const { data } = this.storage.stateMachine.snapshot();
    this.snapshotting = true;
    this.snapshotSaving = (async () => {
      try {
        await this.storage.snapshotStore.save({ meta, data });
        // Durable now: the core may drop the log prefix, then the WAL may.
        if (this.inflight === null) this.raft.compact(meta.index, data, retainFromIndex);
        else this.deferredCompact = { index: meta.index, data, retainFromIndex };
        await this.storage.logStore.compact(retainFromIndex - 1);
        this.snapshotsTaken++;
        this.logger.info('snapshot-taken', {
          snapshotIndex: meta.index, term, bytes: data.byteLength, logFirstIndex: retainFromIndex,
          durationMs: Math.round(performance.now() - startedMs),
        });
      } catch (error) {
        this.fatal(error);
      } finally {
        this.snapshotting = false;
      }
    })();
  }

  // ------------------------------------------------------------------ network

  private send(m: Message): void {
    this.transport?.send(m);
  }

  private onMessage(m: Message): void {
    if (this.state !== 'running') return;
    if (this.isolated || this.dropFrom.has(m.from)) return;
    try {
      this.raft.step(m);
    } catch (error) {
      this.fatal(error);
      return;
    }
    this.schedulePump();
  }

  private observe(): void {
    const role = this.raft.currentRole();
    const leader = this.raft.currentLeader();
    const term = this.raft.currentTerm();
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

  async propose(command: Command, deadlineMs: number): Promise<ApplyResult> {
    this.checkServing();
    if (this.proposalsPending >= this.config.proposalsPendingMax) {
      throw new ChorusError('CHORUS_BUSY', `${this.proposalsPending} writes are pending (proposalsPendingMax)`);
    }
    const data = encodeCommand(command);
    if (data.byteLength > this.commandBytesMax) {
      throw new ChorusError('CHORUS_REQUEST_TOO_LARGE', `the write encodes to ${data.byteLength} bytes, more than ${this.commandBytesMax}`);
    }
    const result = this.raft.propose(data);
    switch (result.kind) {
      case 'not-leader':
        throw new NotLeaderError(result.leaderId);
      case 'busy':
        throw new ChorusError('CHORUS_BUSY', 'too many uncommitted entries at the leader');
      case 'dropped':
        throw new ChorusError('CHORUS_BUSY', `the leader refused the write (${result.reason})`);
      case 'accepted':
        break;
    }
    this.schedulePump();
    return new Promise<ApplyResult>((resolve, reject) => {
      const pending: PendingProposal = { term: result.term, deadlineMs, resolve, reject, next: this.proposals.get(result.index) ?? null };
      this.proposals.set(result.index, pending);
      this.proposalsPending++;
    });
  }

  readBarrier(deadlineMs: number): Promise<void> {
    try {
      this.checkServing();
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.readsPending >= this.config.readsPendingMax) {
      return Promise.reject(new ChorusError('CHORUS_BUSY', `${this.readsPending} reads are pending (readsPendingMax)`));
    }
    return new Promise<void>((resolve, reject) => {
      this.readsToStart.push({ index: -1, confirmedByLeader: false, deadlineMs, resolve, reject });
      this.readsPending++;
      this.schedulePump();
    });
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
    const members: ClusterMember[] = ids.map((id) => {
      const voter = status.config.voters.includes(id);
      const peer = this.config.initialCluster.get(id);
      const self = id === this.id;
      const role: MemberRole = id === status.leaderId ? 'leader' : self ? memberRole(status.role) : voter ? 'follower' : 'learner';
      let reachable: boolean;
      let matchIndex: number | null = null;
      if (self) {
        reachable = true;
        if (isLeader) matchIndex = status.persistedIndex;
      } else if (isLeader) {
        const pr = status.progress.get(id);
        reachable = pr !== undefined && pr.ackAgeTicks !== null && pr.ackAgeTicks <= this.config.electionTicks;
        matchIndex = pr?.match ?? 0;
      } else {
        reachable = peerStats[id]?.connected ?? false;
      }
      return {
        id,
        peerAddress: peer === undefined ? null : formatHostPort(peer),
        clientAddress: self ? this.advertisedClient : this.transport?.peerClientAddress(id) ?? null,
        role,
        voter,
        reachable,
        matchIndex,
        lagEntries: matchIndex === null ? null : Math.max(0, status.lastIndex - matchIndex),
      };
    });
    const peer = this.config.initialCluster.get(this.id);
    return {
      clusterId: this.config.clusterId,
      term: status.term,
      leaderId: status.leaderId,
      self: {
        id: this.id,
        role: memberRole(status.role),
        commitIndex: status.commitIndex,
        appliedIndex: this.storage.stateMachine.appliedIndex(),
        lastIndex: status.lastIndex,
        snapshotIndex: status.snapshotIndex,
        clientAddress: this.advertisedClient,
        peerAddress: peer === undefined ? null : formatHostPort(peer),
      },
      members,
      membersSource: isLeader ? 'leader' : 'local',
    };
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
    this.proposalsPending = 0;
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
    this.failWaiting(() => timeoutError('the member is stopping'), () => new ChorusError('CHORUS_STOPPING', 'the member is stopping'));
    const closeApi = this.api?.close().catch((error: unknown) => this.logger.warn('http-close-failed', { error }));
    await this.inflightDone.catch(() => undefined);
    await this.snapshotSaving.catch(() => undefined);
    await this.transport?.close();
    await closeApi;
    if (!failed && this.unsavedHardState !== null) {
      try {
        await this.storage.stableStore.save(this.unsavedHardState);
      } catch (error) {
        this.logger.warn('hard-state-save-failed', { error });
      }
    }
    for (const error of await closeStorage(this.storage)) this.logger.warn('store-close-failed', { error });
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
