// The member: one Raft group's replica, driven by the one driver (src/runtime/driver.ts) through
// ports, with its parts: proposals and commit levels (proposals.ts), reads (reads.ts),
// membership and switchover (membership.ts), what it shows of itself (views.ts), replicated
// settings (below), and multi-master keyspaces beside Raft (src/mm-node). It opens no socket:
// the composition root (chorus-node.ts) wires its transport and servers.
import type { SynchronousCommit } from '../core/policy/replication-policy.ts';
import type { Raft } from '../core/raft/raft.ts';
import type { Entry, Role } from '../core/raft/types.ts';
import type { LocalWrite, ReadView } from '../core/mm/index.ts';
import type { MultiMasterHost, MultiMasterWriteResult } from '../mm-node/host.ts';
import { encodeCommand, validateCommand } from '../kv/commands.ts';
import type { Command, KvLimits } from '../kv/commands.ts';
import type { ApplyResult, KeyspaceDef, KvRecord, RangeOptions, RangeResult, SqliteStateMachine } from '../kv/sqlite-state-machine.ts';
import type { NodeObserver } from '../observe/observer.ts';
import type { Clock } from '../ports/index.ts';
import type { Driver } from '../runtime/driver.ts';
import type { ReadMode, ReplicationPatch, WriteAck, WriteOptions } from '../shared/operations.ts';
import type { ClusterView, MemberChangeJson, Readiness, ReplicaHealth, ReplicationConfigJson, SwitchoverJson } from '../shared/api-types.ts';
import { ChorusError, NotLeaderError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { formatHostPort } from './config.ts';
import type { ResolvedConfig } from './config.ts';
import type { MemberContext } from './member-context.ts';
import { Membership } from './membership.ts';
import { Proposals, timeoutError } from './proposals.ts';
import { Reads } from './reads.ts';
import { eagerAppliedReportsWanted, resolveReplication } from './replication.ts';
import type { ReplicationState } from './replication.ts';
import { MemberViews } from './views.ts';

export type MemberState = 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

/** What the member needs of the process around it (transport and servers). */
export interface MemberEnvironment {
  /** A peer's address changed through the log (null: it was removed). */
  peerAddressChanged(id: string, address: string | null): void;
  peerClientAddress(id: string): string | null;
  peerConnected(id: string): boolean;
  advertisedClient(): string | null;
  isolated(): boolean;
}

export class Member {
  readonly id: string;
  readonly limits: KvLimits;
  readonly commandBytesMax: number;
  state: MemberState = 'starting';
  readonly proposals: Proposals;
  readonly reads: Reads;
  readonly membership: Membership;
  readonly views: MemberViews;
  private replicationState: ReplicationState;
  /** Peer addresses recorded through the log (null: forgotten after a removal). */
  private memberAddresses: Map<string, string | null>;
  /** Resolved at the next tick: proposals held during a leadership transfer, membership
   * changes waiting for the previous one, switchovers waiting for the new leader. Invariant:
   * each waiter is counted in proposals.pending, so the list is bounded by proposalsPendingMax. */
  private tickWaiters: (() => void)[] = [];
  private lastRole: Role = 'follower';
  private lastLeader: string | null = null;
  private lastTerm: number;
  snapshotsInstalled = 0;
  snapshotsTaken = 0;
  private readonly ctx: MemberContext;

  constructor(
    readonly config: ResolvedConfig,
    readonly logger: Logger,
    readonly raft: Raft,
    readonly driver: Driver<ApplyResult>,
    readonly stateMachine: SqliteStateMachine,
    readonly observer: NodeObserver,
    readonly clock: Clock,
    readonly mm: MultiMasterHost,
    private readonly env: MemberEnvironment,
  ) {
    this.id = config.id;
    this.limits = config.limits;
    this.commandBytesMax = config.commandBytesMax;
    this.lastTerm = raft.currentTerm();
    this.replicationState = resolveReplication(config, stateMachine.replicationSettings());
    this.memberAddresses = stateMachine.memberAddresses();
    raft.setEagerAppliedReports(eagerAppliedReportsWanted(this.replicationState, this.id));
    this.ctx = { id: this.id, config, logger, raft, driver, stateMachine, observer, clock, replication: () => this.replicationState };
    this.proposals = new Proposals(this.ctx);
    this.reads = new Reads(this.ctx);
    this.views = new MemberViews(this.ctx, {
      state: () => this.state,
      advertisedClient: () => env.advertisedClient(),
      peerAddressOf: (id) => this.peerAddressOf(id),
      peerClientAddress: (id) => env.peerClientAddress(id),
      peerConnected: (id) => env.peerConnected(id),
      isolated: () => env.isolated(),
      replicationConfig: () => this.replicationConfig(),
      evaluateStandbysNow: () => this.proposals.evaluateStandbysNow(),
    });
    this.membership = new Membership(this.ctx, this.proposals, {
      checkServing: () => this.checkServing(),
      requireLeader: () => this.requireLeader(),
      proposeEntry: (command, deadlineMs, level, waitForStandbys) => this.proposeEntry(command, deadlineMs, level, waitForStandbys),
      holdOneTick: () => this.holdOneTick(),
      peerAddressOf: (id) => this.peerAddressOf(id),
    });
  }

  /** Peer addresses recorded through the log, for the transport's directory at start. */
  recordedAddresses(): ReadonlyMap<string, string | null> {
    return this.memberAddresses;
  }

  // ------------------------------------------------------------------ the driver's hooks

  /** Each pump: reads start (they only step the core), standby waits are checked, and role
   * changes are logged and observed. */
  beforeReady(): void {
    if (this.state === 'running') this.reads.start();
    this.proposals.checkStandbyWaits();
    this.observeRole();
  }

  applied(entries: readonly Entry[], results: readonly ApplyResult[], committedAtMs: number): void {
    for (const result of results) {
      if (result.kind === 'replication-config' || result.kind === 'member-address') this.onSettingsApplied(result);
      else if (result.kind === 'keyspace' && result.created) this.mm.ensure(result.keyspace);
    }
    this.proposals.applied(entries, results, committedAtMs);
    this.observer.noteApplied(entries.length, this.clock.nowMs() - committedAtMs);
  }

  /** After advance(): the durable index moved (writes at 'local'), reads may be served. */
  advanced(): void {
    this.reads.serveApplied();
    this.proposals.ackLocalWrites();
    this.proposals.checkStandbyWaits();
  }

  ticked(now: number): void {
    this.proposals.expire(now);
    this.reads.expire(now);
    this.reads.retry();
    if (this.tickWaiters.length > 0) {
      const waiters = this.tickWaiters;
      this.tickWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  imageInstalled(index: number, bytes: number): void {
    this.snapshotsInstalled++;
    this.observer.noteSnapshotInstalled(index, bytes, this.raft.currentLeader());
    // The image carries the replicated settings and member addresses.
    this.reloadReplicatedSettings();
    this.proposals.imageInstalled(index);
  }

  private observeRole(): void {
    const raft = this.raft;
    const role = raft.currentRole();
    const leader = raft.currentLeader();
    const term = raft.currentTerm();
    // Events (elections, leader changes with their reason, membership): the observer compares.
    this.observer.observeRaft(role, leader, term, raft.log.config(), () => raft.status().lastLeaderChangeReason);
    if (role === this.lastRole && leader === this.lastLeader && term === this.lastTerm) return;
    if (role !== this.lastRole) {
      const fields = { from: this.lastRole, to: role, term };
      if (role === 'leader') this.logger.info('became-leader', { term, lastIndex: raft.log.lastIndex() });
      else if (role === 'candidate' || role === 'pre-candidate') this.logger.info('campaign', fields);
      else this.logger.info('role-changed', fields);
    }
    if (leader !== this.lastLeader) {
      this.logger.info('leader-changed', { leaderId: leader, previous: this.lastLeader, term, reason: raft.status().lastLeaderChangeReason });
    }
    this.lastRole = role;
    this.lastLeader = leader;
    this.lastTerm = term;
  }

  // ------------------------------------------------------------------ writes

  checkServing(): void {
    if (this.state === 'running') return;
    if (this.state === 'failed') throw new ChorusError('CHORUS_FATAL', 'this member stopped after a storage failure');
    throw new ChorusError('CHORUS_STOPPING', 'this member is not serving (starting or stopping)');
  }

  requireLeader(): void {
    if (this.raft.currentRole() !== 'leader') throw new NotLeaderError(this.raft.currentLeader());
  }

  async propose(command: Command, deadlineMs: number, options: WriteOptions = {}): Promise<WriteAck> {
    let level = options.level ?? this.replicationState.synchronousCommit;
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
  async proposeEntry(command: Command, deadlineMs: number, level: SynchronousCommit, waitForStandbys: boolean): Promise<WriteAck> {
    this.checkServing();
    this.proposals.admit();
    const data = encodeCommand(command);
    if (data.byteLength > this.commandBytesMax) {
      throw new ChorusError('CHORUS_REQUEST_TOO_LARGE', `the write encodes to ${data.byteLength} bytes, more than ${this.commandBytesMax}`);
    }
    const startedMs = this.clock.nowMs();
    let result = this.driver.propose(data);
    // A leadership transfer refuses proposals for at most an election timeout: hold the write
    // and propose it again, here if the transfer failed, or (NotLeaderError: the API forwards
    // it) at the new leader. Nothing was proposed while it is held.
    while (result.kind === 'dropped' && result.reason === 'transfer-in-progress' && this.clock.nowMs() < deadlineMs) {
      await this.holdOneTick();
      this.checkServing();
      result = this.driver.propose(data);
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
    // off: acknowledged once appended to the leader's log, before any fsync.
    if (level === 'off') return { committed: false, revision: result.index };
    return this.proposals.wait(result.index, result.term, level, waitForStandbys, startedMs, deadlineMs);
  }

  /** Waits for the next tick, counted as a pending proposal (which bounds the waiters). */
  holdOneTick(): Promise<void> {
    return this.proposals.counted(() => new Promise<void>((resolve) => this.tickWaiters.push(resolve)));
  }

  // ------------------------------------------------------------------ reads

  readBarrier(deadlineMs: number, mode: ReadMode = 'quorum'): Promise<void> {
    try {
      this.checkServing();
    } catch (error) {
      return Promise.reject(error);
    }
    return this.reads.barrier(deadlineMs, mode);
  }

  waitForApplied(index: number, deadlineMs: number): Promise<void> {
    try {
      this.checkServing();
    } catch (error) {
      return Promise.reject(error);
    }
    return this.reads.waitForApplied(index, deadlineMs);
  }

  get(key: string): KvRecord | undefined {
    this.checkServing();
    return this.stateMachine.get(key);
  }

  range(options: RangeOptions): RangeResult {
    this.checkServing();
    return this.stateMachine.range(options);
  }

  stalenessBoundMs(): number {
    return this.views.stalenessBoundMs();
  }

  replicaHealth(): ReplicaHealth {
    return this.views.replicaHealth();
  }

  readiness(): Readiness {
    return this.views.readiness();
  }

  leader(): { leaderId: string | null; clientAddress: string | null } {
    return this.views.leader();
  }

  clusterView(): ClusterView {
    return this.views.clusterView();
  }

  // ------------------------------------------------------------------ replicated settings

  /** A member's peer address: recorded through the log, else from the initial cluster. */
  peerAddressOf(id: string): string | null {
    const recorded = this.memberAddresses.get(id);
    if (recorded !== undefined) return recorded;
    const initial = this.config.initialCluster.get(id);
    return initial === undefined ? null : formatHostPort(initial);
  }

  replicationConfig(): ReplicationConfigJson {
    const r = this.replicationState;
    return { synchronous_commit: r.synchronousCommit, synchronous_standby_names: r.synchronousStandbyNames, source: r.source, revision: r.revision };
  }

  async setReplicationConfig(patch: ReplicationPatch, deadlineMs: number): Promise<ReplicationConfigJson> {
    this.checkServing();
    this.requireLeader();
    const command: Command = {
      kind: 'replication-config',
      synchronousCommit: patch.synchronousCommit ?? this.replicationState.synchronousCommit,
      synchronousStandbyNames: patch.synchronousStandbyNames ?? this.replicationState.synchronousStandbyNames,
    };
    validateCommand(command, this.limits);
    // Committed is enough: a change must get through while the current standby set is not met.
    await this.proposeEntry(command, deadlineMs, 'on', false);
    return this.replicationConfig();
  }

  /** Reacts to replicated settings: the standby set, eager apply reports, transport peers. */
  private onSettingsApplied(result: Extract<ApplyResult, { kind: 'replication-config' | 'member-address' }>): void {
    if (result.kind === 'replication-config') {
      this.replicationState = resolveReplication(this.config, result.settings);
      this.raft.setEagerAppliedReports(eagerAppliedReportsWanted(this.replicationState, this.id));
      this.logger.info('replication-config-applied', {
        synchronousCommit: result.settings.synchronousCommit, synchronousStandbyNames: result.settings.synchronousStandbyNames, revision: result.revision,
      });
      this.observer.noteSettingsApplied(result.settings, result.revision);
      return;
    }
    this.memberAddresses.set(result.id, result.peerAddress);
    this.peerAddressChanged(result.id, result.peerAddress);
  }

  private peerAddressChanged(id: string, address: string | null): void {
    if (id === this.id) return;
    if (address === null) this.views.forget(id);
    this.env.peerAddressChanged(id, address);
  }

  /** After an image replaced the state: settings and addresses as the image holds them. */
  private reloadReplicatedSettings(): void {
    this.replicationState = resolveReplication(this.config, this.stateMachine.replicationSettings());
    this.raft.setEagerAppliedReports(eagerAppliedReportsWanted(this.replicationState, this.id));
    const addresses = this.stateMachine.memberAddresses();
    for (const [id, address] of addresses) {
      if (this.memberAddresses.get(id) !== address) this.peerAddressChanged(id, address);
    }
    this.memberAddresses = addresses;
    for (const def of this.stateMachine.keyspaces()) this.mm.ensure(def);
  }

  // ------------------------------------------------------------------ membership

  addMember(request: { readonly id: string; readonly peerAddress: string; readonly learner: boolean }, deadlineMs: number): Promise<MemberChangeJson> {
    return this.membership.add(request, deadlineMs);
  }

  promoteMember(id: string, deadlineMs: number): Promise<MemberChangeJson> {
    return this.membership.promote(id, deadlineMs);
  }

  removeMember(id: string, deadlineMs: number): Promise<MemberChangeJson> {
    return this.membership.remove(id, deadlineMs);
  }

  switchover(to: string | null, deadlineMs: number): Promise<SwitchoverJson> {
    return this.membership.switchover(to, deadlineMs);
  }

  // ------------------------------------------------------------------ keyspaces

  keyspaces(): KeyspaceDef[] {
    return this.stateMachine.keyspaces();
  }

  keyspace(name: string): KeyspaceDef | undefined {
    return this.stateMachine.keyspace(name);
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

  // ------------------------------------------------------------------ end

  /** Every waiting request is answered: writes with an unknown outcome, reads refused. Held
   * proposals and switchovers wake up, find the member stopping and give up. */
  failWaiting(proposalError: () => Error, readError: () => Error): void {
    this.proposals.failAll(proposalError);
    const waiters = this.tickWaiters;
    this.tickWaiters = [];
    for (const wake of waiters) wake();
    this.reads.failAll(readError);
  }

  /** The member failed (a write or a core invariant): it answers nothing more. */
  failed(): void {
    this.state = 'failed';
    this.failWaiting(() => timeoutError('the member failed'), () => new ChorusError('CHORUS_FATAL', 'the member failed'));
  }
}
