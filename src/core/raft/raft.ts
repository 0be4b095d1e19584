// The Raft consensus core: a pure, synchronous state machine. It is driven by tick(), step()
// and propose(); it hands the driver a Ready (what to persist, send, apply) and learns through
// advance() that the driver did it. No I/O, no clocks, no randomness of its own. This file holds
// the roles, elections, the term and receiver rules, the commit rule and leadership transfer; a
// leader's replication, majorities, leases, membership changes, reads, images, the Ready
// contract and the invariant checks live in the modules beside it.
import { assert } from './assert.ts';
import { applyConfigChange, configChangeAllowed, membersOf, type ConfigChange } from './confchange.ts';
import { RaftInvariants } from './invariants.ts';
import { RaftLog, type RaftLogView } from './log.ts';
import { resolveOptions, type Random, type RaftBootState, type RaftOptions, type RaftSettings } from './options.ts';
import { Outbox } from './outbox.ts';
import { Lease, type Leadership } from './lease.ts';
import { electionOutcome } from './quorum.ts';
import { ForwardedReads, LeaderReads, type LeaderReadContext } from './read-index.ts';
import { Readies } from './ready.ts';
import { Replication } from './replication.ts';
import { SnapshotReceiver } from './snapshot-receiver.ts';
import { SnapshotSender, type LeaderStamp } from './snapshot-sender.ts';
import type { LeaderChangeReason, RaftStatus } from './status.ts';
import type {
  AppendMessage,
  AppendResponseMessage,
  Entry,
  HardState,
  Image,
  ImageBytes,
  HeartbeatMessage,
  Membership,
  Message,
  NodeId,
  ProposeResult,
  Ready,
  Role,
  SnapshotChunkMessage,
  SnapshotResponseMessage,
  VoteResponseMessage,
} from './types.ts';

export { applyConfigChange, type ConfigChange } from './confchange.ts';
export { quorumValue } from './quorum.ts';
export type { Random, RaftBootState, RaftOptions } from './options.ts';
export type { LeaderChangeReason, ProgressStatus, RaftStatus } from './status.ts';
export type { RaftLogView } from './log.ts';

export const emptyMembership: Membership = { voters: [], learners: [] };

export class Raft {
  readonly id: NodeId;
  private readonly random: Random;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly leaseTicks: number;
  private readonly settings: RaftSettings;

  private role: Role = 'follower';
  // Invariant: term never decreases; at most one vote per term (vote only changes from null).
  private term = 0;
  private vote: NodeId | null = null;
  private leaderId: NodeId | null = null;
  /** The log; outside the core it is seen through `log`, read-only. */
  private readonly raftLog: RaftLog;
  /** Messages and read answers until the next ready. */
  private readonly out = new Outbox();
  /** The image held for followers behind the log, and its transfers. */
  private readonly images: SnapshotSender;
  /** The image being received from the leader. */
  private readonly receiver = new SnapshotReceiver();
  private readonly leaderReads: LeaderReads;
  /** Reads forwarded to the leader; they expire after two election timeouts. */
  private readonly forwardedReads: ForwardedReads;
  private invariants: RaftInvariants | null = null;

  /** This member's own tick count since it started: its local, monotonic notion of time. */
  private tickNow = 0;
  private electionElapsed = 0;
  private randomizedElectionTicks: number;
  private heartbeatElapsed = 0;
  /** Check-quorum, the voters' lease, lease reads and commit attestation. */
  private readonly lease: Lease;

  // Candidate state.
  private votesGranted = new Set<NodeId>();
  private votesRejected = new Set<NodeId>();

  // Leader state.
  /** Each follower's progress, and what is sent to it. */
  private readonly replication: Replication;
  /** The index of this term's no-op; reads and config changes wait until it commits (§8). */
  private termStartIndex = 0;
  /** Config changes are one at a time: a new one waits until this index is committed. */
  private pendingConfigIndex = 0;
  private transferee: NodeId | null = null;
  private transferStartTick = 0;
  private leaderSeq = 0;
  private needBroadcastAppend = false;
  private needBroadcastCommit = false;
  private needBroadcastHeartbeat = false;

  private lastLeaderChangeReason: LeaderChangeReason = 'boot';

  /** The readies handed out, and the hard state they carried. */
  private readonly readies: Readies;
  /** Followers report each advance of their applied index at once (for remote_apply). */
  private eagerAppliedReports = false;

  constructor(options: RaftOptions, boot: RaftBootState) {
    this.id = options.id;
    this.random = options.random;
    this.settings = resolveOptions(options);
    this.electionTicks = this.settings.electionTicks;
    this.heartbeatTicks = this.settings.heartbeatTicks;
    this.leaseTicks = this.settings.leaseTicks;
    this.lease = new Lease(this.settings);
    this.leaderReads = new LeaderReads(this.id, this.settings.readsPendingMax, this.out);
    this.forwardedReads = new ForwardedReads(this.id, this.settings.readsPendingMax, this.out);

    const snapshot = boot.snapshot ?? null;
    this.images = new SnapshotSender(this.id, snapshot, this.settings.snapshotChunkBytes, this.settings.snapshotChunksInflightMax, this.electionTicks, this.out);
    this.raftLog = new RaftLog(boot.initialConfig, snapshot?.meta ?? boot.snapshotMeta ?? null, boot.entries ?? []);
    this.replication = new Replication(this.id, this.raftLog, this.images, this.out, this.settings);
    const hs = boot.hardState ?? null;
    if (hs !== null) {
      this.term = hs.term;
      this.vote = hs.vote;
      // The stored commit may exceed what survived in the log only if storage broke its contract.
      assert(hs.commit <= this.raftLog.lastIndex(), `stored commit ${hs.commit} beyond log ${this.raftLog.lastIndex()}`);
      this.raftLog.commitTo(hs.commit);
    }
    // Entries are made durable before the hard state that follows them, so a crash between the
    // two can leave entries of a term the hard state never reached. Adopt that term without a
    // vote: any vote cast in it was never sent, since votes leave only once durable.
    if (this.raftLog.lastTerm() > this.term) {
      this.term = this.raftLog.lastTerm();
      this.vote = null;
    }
    this.readies = new Readies(this.raftLog, this.out, this.receiver, this.settings.applyEntriesMax, this.hardState());
    this.randomizedElectionTicks = this.drawElectionTicks();
  }

  // ---------------------------------------------------------------- inputs

  /** One unit of this member's time. */
  tick(): void {
    this.tickNow++;
    if (this.role === 'leader') this.tickLeader();
    else this.tickElection();
    this.maybeCheck();
  }

  step(m: Message): void {
    this.stepInner(m);
    this.maybeCheck();
  }

  propose(data: Uint8Array): ProposeResult {
    const refusal = this.refuseProposal();
    if (refusal !== null) return refusal;
    const entry: Entry = { index: this.raftLog.lastIndex() + 1, term: this.term, type: 'normal', data };
    this.appendAsLeader(entry);
    this.maybeCheck();
    return { kind: 'accepted', index: entry.index, term: entry.term };
  }

  proposeConfigChange(change: ConfigChange): ProposeResult {
    const refusal = this.refuseProposal();
    if (refusal !== null) return refusal;
    if (!configChangeAllowed(this.pendingConfigIndex, this.raftLog.committed, this.termStartIndex)) {
      return { kind: 'dropped', reason: 'config-change-pending' };
    }
    const next = applyConfigChange(this.raftLog.config(), change);
    if (next === null) return { kind: 'dropped', reason: 'invalid-config' };
    const entry: Entry = { index: this.raftLog.lastIndex() + 1, term: this.term, type: 'config', config: next };
    this.appendAsLeader(entry);
    this.pendingConfigIndex = entry.index;
    this.maybeCheck();
    return { kind: 'accepted', index: entry.index, term: entry.term };
  }

  /**
   * Requests a linearizable read. The answer arrives as a ReadState (serve once applied >=
   * index) or a ReadFailure in a later ready. With `lease` and a valid lease the leader answers
   * without a round of heartbeats.
   */
  readIndex(readId: string, mode: 'quorum' | 'lease' = 'quorum'): void {
    if (this.role === 'leader') {
      if (mode === 'lease' && this.lease.valid(this.leadership())) {
        this.out.readConfirmed({ readId, index: this.raftLog.committed });
      } else {
        this.leaderRead(readId, null);
      }
    } else if (this.leaderId !== null && this.role === 'follower') {
      this.forwardedReads.forward(readId, this.leaderId, this.term, this.tickNow);
    } else {
      this.out.readFailed({ readId, reason: 'not-leader', leaderId: this.leaderId });
    }
    this.maybeCheck();
  }

  /** Planned switchover: hand leadership to `target` once it has caught up. */
  transferLeadership(target: NodeId): { ok: true } | { ok: false; reason: 'not-leader' | 'not-a-voter' | 'already-leader' } {
    if (this.role !== 'leader') return { ok: false, reason: 'not-leader' };
    if (target === this.id) return { ok: false, reason: 'already-leader' };
    if (!this.raftLog.config().voters.includes(target)) return { ok: false, reason: 'not-a-voter' };
    this.transferee = target;
    this.transferStartTick = this.tickNow;
    const pr = this.replication.get(target);
    if (pr !== undefined && pr.match === this.raftLog.lastIndex()) this.sendTimeoutNow(target);
    else this.sendAppend(target, false);
    this.maybeCheck();
    return { ok: true };
  }

  /**
   * The application's state at `index` (<= applied) is durable: the log before it can go, except
   * entries from `retainFromIndex` on (wal_keep: followers behind the snapshot catch up from the
   * log). `data` is an image of that state for followers that need one, or null when the driver
   * makes images only on request (snapshotWanted()). The driver must have made the snapshot
   * durable before calling this. Returns the first index the log keeps: below an image being
   * sent, entries stay so that the follower can continue from it; the driver's log store may
   * still drop them (only memory is kept, the state is durable).
   */
  compact(index: number, data: ImageBytes | null, retainFromIndex = index + 1): number {
    assert(index <= this.raftLog.applied, `compact ${index} beyond applied ${this.raftLog.applied}`);
    if (data !== null) this.offerSnapshot(index, data);
    if (index <= this.raftLog.snapshotIndex()) return this.raftLog.firstIndex();
    const term = this.raftLog.term(index);
    assert(term !== undefined, `compact: no term at ${index}`);
    const meta = { index, term, config: this.raftLog.configAt(index) };
    // Below an image being sent, or just installed, the entries stay (see SnapshotSender).
    const retainFrom = this.images.retainFrom(retainFromIndex, this.replication.followers().values(), this.tickNow, (pr) => this.replication.recentlyActive(pr, this.tickNow));
    this.raftLog.compact(meta, Math.max(retainFrom, this.raftLog.firstIndex()));
    this.images.forgetBelow(this.raftLog.firstIndex());
    this.maybeCheck();
    return this.raftLog.firstIndex();
  }

  /**
   * An image of the state at `index` (the log's snapshot index <= index <= applied), for the
   * followers that need one. Those waiting for it get it now.
   */
  offerSnapshot(index: number, data: ImageBytes): void {
    assert(index <= this.raftLog.applied, `offerSnapshot ${index} beyond applied ${this.raftLog.applied}`);
    assert(index >= this.raftLog.firstIndex() - 1, `offerSnapshot ${index} below the log's start ${this.raftLog.firstIndex()}`);
    if (this.images.holdsFrom(index)) return;
    const term = this.raftLog.term(index);
    assert(term !== undefined, `offerSnapshot: no term at ${index}`);
    this.images.offer({ meta: { index, term, config: this.raftLog.configAt(index) }, data });
    if (this.role === 'leader') this.replication.imageOffered(this.stamp());
    this.maybeCheck();
  }

  /** Whether a follower waits for an image this member does not hold (see offerSnapshot). */
  snapshotWanted(): boolean {
    return this.images.isWanted();
  }

  /** With remote_apply in force every member reports applies at once, not at the next heartbeat. */
  setEagerAppliedReports(on: boolean): void {
    this.eagerAppliedReports = on;
  }

  // ---------------------------------------------------------------- ready / advance

  hasReady(): boolean {
    if (this.readies.isInFlight()) return false;
    return this.needBroadcastAppend || this.needBroadcastCommit || this.needBroadcastHeartbeat || this.readies.pending(this.hardState());
  }

  /** Collects what the driver must do now. Only one ready is handed out at a time. */
  ready(): Ready {
    assert(!this.readies.isInFlight(), 'ready() called before advance() of the previous ready');
    this.flushBroadcasts();
    return this.readies.take(this.hardState());
  }

  /** The driver persisted, sent and applied everything in `ready`. */
  advance(ready: Ready): void {
    if (this.readies.advance(ready) && this.eagerAppliedReports && this.role === 'follower' && this.leaderId !== null) {
      this.send({ type: 'HeartbeatResp', from: this.id, to: this.leaderId, term: this.term, seq: 0, sentTick: 0, applied: this.raftLog.applied }, 'after');
    }
    if (this.role === 'leader') {
      // Raft thesis §10.2.1: the leader counts itself only once its own write is durable.
      this.maybeCommit();
    }
    this.maybeCheck();
  }

  // ---------------------------------------------------------------- queries

  status(): RaftStatus {
    const config = this.raftLog.config();
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leaderId: this.leaderId,
      commitIndex: this.raftLog.committed,
      appliedIndex: this.raftLog.applied,
      lastIndex: this.raftLog.lastIndex(),
      persistedIndex: this.raftLog.persisted,
      snapshotIndex: this.raftLog.snapshotIndex(),
      config,
      progress: this.replication.statuses(config, this.tickNow),
      leaseValid: this.role === 'leader' && this.lease.valid(this.leadership()),
      commitAttested: this.lease.commitAttested(this.leadership()),
      transferee: this.transferee,
      tick: this.tickNow,
      lastLeaderChangeReason: this.lastLeaderChangeReason,
    };
  }

  /** The log, read-only: positions, terms and configurations for the driver. */
  get log(): RaftLogView {
    return this.raftLog;
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  currentRole(): Role {
    return this.role;
  }

  currentTerm(): number {
    return this.term;
  }

  currentLeader(): NodeId | null {
    return this.leaderId;
  }

  /** The image this member would send to a follower behind its log, if it holds one. */
  latestSnapshot(): Image | null {
    return this.images.image;
  }

  // ---------------------------------------------------------------- roles

  private becomeFollower(term: number, leaderId: NodeId | null, reason: LeaderChangeReason): void {
    if (term > this.term) {
      this.term = term;
      this.vote = null;
    }
    if (this.role === 'leader') this.leaderReads.failAll(this.term, this.leaderId);
    if (this.leaderId !== leaderId) {
      this.forwardedReads.failAll();
      this.lastLeaderChangeReason = reason;
    }
    this.role = 'follower';
    this.leaderId = leaderId;
    this.resetTimers();
    this.replication.clear();
    this.images.clearWanted();
    this.transferee = null;
  }

  private becomePreCandidate(): void {
    // Pre-vote (Raft thesis §9.6): ask whether we could win before disturbing anyone's term.
    this.role = 'pre-candidate';
    this.leaderId = null;
    this.forwardedReads.failAll();
    this.votesGranted = new Set([this.id]);
    this.votesRejected = new Set();
    this.resetTimers();
    const msg = { lastIndex: this.raftLog.lastIndex(), lastTerm: this.raftLog.lastTerm() };
    for (const voter of this.raftLog.config().voters) {
      if (voter === this.id) continue;
      this.send({ type: 'PreVote', from: this.id, to: voter, term: this.term + 1, ...msg }, 'after');
    }
    this.maybeWinElection();
  }

  private becomeCandidate(transfer: boolean): void {
    this.role = 'candidate';
    this.term += 1;
    this.vote = this.id;
    this.leaderId = null;
    this.forwardedReads.failAll();
    this.votesGranted = new Set([this.id]);
    this.votesRejected = new Set();
    this.resetTimers();
    const msg = { lastIndex: this.raftLog.lastIndex(), lastTerm: this.raftLog.lastTerm(), transfer };
    for (const voter of this.raftLog.config().voters) {
      if (voter === this.id) continue;
      // The self-vote must be durable before any vote request leaves: 'after' persist.
      this.send({ type: 'Vote', from: this.id, to: voter, term: this.term, ...msg }, 'after');
    }
    this.lastLeaderChangeReason = transfer ? 'transfer' : 'election';
    this.maybeWinElection();
  }

  private becomeLeader(): void {
    assert(this.role === 'candidate', 'only a candidate becomes leader');
    this.role = 'leader';
    this.leaderId = this.id;
    this.lease.leaderElected(this.tickNow);
    this.heartbeatElapsed = 0;
    this.transferee = null;
    this.leaderReads.clearPending();
    this.replication.clear();
    for (const member of this.members()) this.replication.track(member);
    // Raft §8: a no-op at the start of the term lets the leader learn its commit index.
    const noop: Entry = { index: this.raftLog.lastIndex() + 1, term: this.term, type: 'noop' };
    this.termStartIndex = noop.index;
    // Any config entry not yet committed counts as pending.
    this.pendingConfigIndex = this.raftLog.configIndex();
    this.appendAsLeader(noop);
  }

  private members(): NodeId[] {
    return membersOf(this.raftLog.config());
  }

  private isVoter(): boolean {
    return this.raftLog.config().voters.includes(this.id);
  }

  /**
   * Whether this member may campaign: it is a voter in the config in force, or it was one in
   * the committed config that a still-uncommitted change removes it from. Without the second
   * case a leader that removed itself and was then deposed before the change committed leaves
   * a cluster where the remaining voters cannot win (they lack the config entry and so are less
   * up-to-date), and nothing may campaign. Votes are still counted in the config in force.
   */
  private isPromotable(): boolean {
    return this.isVoter() || this.raftLog.configAt(this.raftLog.committed).voters.includes(this.id);
  }

  // ---------------------------------------------------------------- ticks

  private tickElection(): void {
    this.electionElapsed++;
    this.forwardedReads.expire(this.tickNow, 2 * this.electionTicks, this.leaderId);
    if (this.electionElapsed >= this.randomizedElectionTicks && this.isPromotable()) {
      this.campaign();
    } else if (this.electionElapsed >= this.randomizedElectionTicks) {
      this.resetTimers();
    }
  }

  private campaign(): void {
    if (this.settings.preVote) this.becomePreCandidate();
    else this.becomeCandidate(false);
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    if (this.heartbeatElapsed >= this.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.needBroadcastHeartbeat = true;
      this.replication.retransmitStalled(this.stamp());
    }
    if (this.transferee !== null && this.tickNow - this.transferStartTick >= this.electionTicks) {
      // The transfer did not complete in an election timeout: abort, but do not trust the lease
      // until a quorum acknowledges heartbeats sent from now on.
      this.transferee = null;
      this.lease.transferAborted(this.tickNow);
    }
    if (this.settings.checkQuorum && this.lease.quorumLost(this.tickNow, this.quorumAckedSentTick())) {
      this.becomeFollower(this.term, null, 'check-quorum');
    }
  }

  private quorumAckedSentTick(): number {
    return this.replication.quorumAckedSentTick(this.raftLog.config().voters, this.tickNow);
  }

  /** This member's standing as a leader now, for the lease. */
  private leadership(): Leadership {
    return {
      now: this.tickNow,
      leading: this.role === 'leader',
      transferring: this.transferee !== null,
      termCommitted: this.raftLog.committed >= this.termStartIndex,
      quorumAckedSentTick: () => this.quorumAckedSentTick(),
    };
  }

  private resetTimers(): void {
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTicks = this.drawElectionTicks();
  }

  private drawElectionTicks(): number {
    return this.electionTicks + this.random.int(this.electionTicks);
  }

  // ---------------------------------------------------------------- step

  private stepInner(m: Message): void {
    if (m.to !== this.id) return;
    if (m.term > this.term) {
      if (m.type === 'PreVote' || m.type === 'Vote') {
        const transfer = m.type === 'Vote' && m.transfer;
        // A voter that heard from a live leader recently helps elect no other (thesis §4.2.3).
        if (!transfer && this.lease.bindsVoter(this.tickNow, this.role === 'leader')) {
          // Ignore: a live leader exists. Do not even raise our term (no disruption).
          if (m.type === 'PreVote') this.respondVote(m.from, 'PreVoteResp', false, this.term);
          return;
        }
      }
      if (m.type === 'PreVote') {
        // Pre-votes never change terms.
      } else if (m.type === 'PreVoteResp' && m.granted) {
        // Granted pre-votes carry our prospective term.
      } else if (m.type === 'Append' || m.type === 'Heartbeat' || m.type === 'Snapshot') {
        this.becomeFollower(m.term, m.from, 'higher-term');
      } else {
        this.becomeFollower(m.term, null, 'higher-term');
      }
    } else if (m.term < this.term) {
      if (m.type === 'Append' || m.type === 'Heartbeat' || m.type === 'Snapshot') {
        // A stale leader: tell it our term so it steps down (needed with check-quorum/pre-vote,
        // where our term may have risen without it hearing).
        this.send({
          type: 'AppendResp', from: this.id, to: m.from, term: this.term, reject: true, index: 0,
          conflictTerm: 0, conflictIndex: 0, seq: m.seq, sentTick: m.sentTick, applied: this.raftLog.applied,
        }, 'after');
      } else if (m.type === 'PreVote') {
        this.respondVote(m.from, 'PreVoteResp', false, this.term);
      } else if (m.type === 'ReadIndex') {
        this.send({ type: 'ReadIndexResp', from: this.id, to: m.from, term: this.term, readId: m.readId, index: -1 }, 'before');
      }
      return;
    }

    switch (m.type) {
      case 'PreVote':
      case 'Vote':
        this.handleVoteRequest(m);
        return;
      case 'PreVoteResp':
      case 'VoteResp':
        this.handleVoteResponse(m);
        return;
      case 'Append':
        this.handleAppend(m);
        return;
      case 'Heartbeat':
        this.handleHeartbeat(m);
        return;
      case 'Snapshot':
        this.handleSnapshotChunk(m);
        return;
      case 'AppendResp':
        this.handleAppendResponse(m);
        return;
      case 'HeartbeatResp':
        this.handleHeartbeatResponse(m.from, m.seq, m.sentTick, m.applied);
        return;
      case 'SnapshotResp':
        this.handleSnapshotResponse(m);
        return;
      case 'TimeoutNow':
        if (this.role !== 'leader' && this.isPromotable()) this.becomeCandidate(true);
        return;
      case 'ReadIndex':
        if (this.role === 'leader') this.leaderRead(m.readId, m.from);
        else this.send({ type: 'ReadIndexResp', from: this.id, to: m.from, term: this.term, readId: m.readId, index: -1 }, 'before');
        return;
      case 'ReadIndexResp':
        this.forwardedReads.answered(m, this.leaderId);
        return;
    }
  }

  private handleVoteRequest(m: Extract<Message, { type: 'PreVote' | 'Vote' }>): void {
    const isPre = m.type === 'PreVote';
    // Raft §5.2/§5.4.1: one vote per term, and only for a log at least as up-to-date as ours.
    const canVote = isPre
      ? m.term > this.term || this.vote === m.from || (this.vote === null && this.leaderId === null)
      : this.vote === m.from || (this.vote === null && this.leaderId === null);
    const upToDate = this.raftLog.isUpToDate(m.lastIndex, m.lastTerm);
    if (canVote && upToDate) {
      if (isPre) {
        this.respondVote(m.from, 'PreVoteResp', true, m.term);
      } else {
        this.vote = m.from;
        this.electionElapsed = 0;
        this.respondVote(m.from, 'VoteResp', true, this.term);
      }
    } else {
      this.respondVote(m.from, isPre ? 'PreVoteResp' : 'VoteResp', false, this.term);
    }
  }

  private respondVote(to: NodeId, type: 'PreVoteResp' | 'VoteResp', granted: boolean, term: number): void {
    // A granted vote must be durable before the reply leaves: 'after' persist.
    this.send({ type, from: this.id, to, term, granted }, 'after');
  }

  private handleVoteResponse(m: VoteResponseMessage): void {
    const expecting = (m.type === 'PreVoteResp' && this.role === 'pre-candidate') || (m.type === 'VoteResp' && this.role === 'candidate');
    if (!expecting) return;
    if (m.granted) this.votesGranted.add(m.from);
    else this.votesRejected.add(m.from);
    this.maybeWinElection();
  }

  private maybeWinElection(): void {
    const outcome = electionOutcome(this.raftLog.config().voters, this.votesGranted, this.votesRejected);
    if (outcome === 'won') {
      if (this.role === 'pre-candidate') this.becomeCandidate(false);
      else if (this.role === 'candidate') this.becomeLeader();
    } else if (outcome === 'lost') {
      this.becomeFollower(this.term, null, 'election');
    }
  }

  private noteLeaderContact(m: { from: NodeId }): void {
    if (this.role !== 'follower') this.becomeFollower(this.term, m.from, 'election');
    if (this.leaderId !== m.from) {
      this.forwardedReads.failAll();
      this.leaderId = m.from;
      this.lastLeaderChangeReason = 'election';
    }
    this.electionElapsed = 0;
    this.lease.leaderHeard(this.tickNow);
  }

  private handleAppend(m: AppendMessage): void {
    this.noteLeaderContact(m);
    const reply = (fields: Pick<AppendResponseMessage, 'reject' | 'index' | 'conflictTerm' | 'conflictIndex'>): void => {
      this.send({ type: 'AppendResp', from: this.id, to: m.from, term: this.term, seq: m.seq, sentTick: m.sentTick, applied: this.raftLog.applied, ...fields }, 'after');
    };
    if (m.prevIndex < this.raftLog.committed) {
      // Everything up to our commit index matches the leader already (Leader Completeness).
      reply({ reject: false, index: this.raftLog.committed, conflictTerm: 0, conflictIndex: 0 });
      return;
    }
    // Raft Figure 2: merge after a matching prevIndex, and commit no further than the append's
    // last entry, the last one known to match this leader.
    const lastNew = this.raftLog.maybeAppend(m.prevIndex, m.prevTerm, m.entries, m.commit);
    if (lastNew !== null) {
      reply({ reject: false, index: lastNew, conflictTerm: 0, conflictIndex: 0 });
      return;
    }
    // Fast back-off: tell the leader our conflicting term and where it starts.
    reply({ reject: true, index: m.prevIndex, ...this.raftLog.conflictHint(m.prevIndex) });
  }

  private handleHeartbeat(m: HeartbeatMessage): void {
    this.noteLeaderContact(m);
    // The leader sends min(match, commit): every entry up to it matches the leader's log.
    if (m.commit > this.raftLog.committed) this.raftLog.commitTo(Math.min(m.commit, this.raftLog.lastIndex()));
    this.send({ type: 'HeartbeatResp', from: this.id, to: m.from, term: this.term, seq: m.seq, sentTick: m.sentTick, applied: this.raftLog.applied }, 'after');
  }

  private handleSnapshotChunk(m: SnapshotChunkMessage): void {
    this.noteLeaderContact(m);
    const answer = this.receiver.receive(m, this.raftLog);
    if (answer === null) return;
    if (answer.installed) this.images.forgetOlderThan(m.meta.index);
    const resp: SnapshotResponseMessage = {
      type: 'SnapshotResp', from: this.id, to: m.from, term: this.term, seq: m.seq, sentTick: m.sentTick,
      snapshotIndex: m.meta.index, nextOffset: answer.nextOffset, done: answer.done, reject: answer.reject,
    };
    this.send(resp, 'after');
  }

  // ---------------------------------------------------------------- leader: replies

  private handleAppendResponse(m: AppendResponseMessage): void {
    if (this.role !== 'leader') return;
    const pr = this.replication.get(m.from);
    if (pr === undefined) return;
    pr.noteAck(m.seq, m.sentTick);
    pr.noteApplied(m.applied);
    this.releaseConfirmedReads();
    if (m.reject) {
      this.replication.appendRejected(m, pr, this.stamp());
      return;
    }
    if (this.replication.appendAccepted(m, pr)) {
      this.maybeCommit();
      if (this.transferee === m.from && pr.match === this.raftLog.lastIndex()) this.sendTimeoutNow(m.from);
    }
    this.replication.sendAppendsWhileOpen(m.from, pr, false, this.stamp());
  }

  private handleHeartbeatResponse(from: NodeId, seq: number, sentTick: number, applied: number): void {
    if (this.role !== 'leader') return;
    const pr = this.replication.get(from);
    if (pr === undefined) return;
    pr.noteAck(seq, sentTick);
    pr.noteApplied(applied);
    this.releaseConfirmedReads();
    this.replication.heartbeatAnswered(from, pr, this.stamp());
  }

  private handleSnapshotResponse(m: SnapshotResponseMessage): void {
    if (this.role !== 'leader') return;
    const pr = this.replication.get(m.from);
    if (pr === undefined) return;
    pr.noteAck(m.seq, m.sentTick);
    this.releaseConfirmedReads();
    if (this.images.answered(m, pr, this.stamp())) {
      this.maybeCommit();
      this.sendAppend(m.from, false);
    }
  }

  // ---------------------------------------------------------------- leader: sending

  private appendAsLeader(entry: Entry): void {
    this.raftLog.appendNew(entry);
    this.needBroadcastAppend = true;
    if (entry.type === 'config') this.replication.trackOnly(this.members());
    // A single-voter cluster commits on its own durable write; handled in advance().
  }

  private refuseProposal(): ProposeResult | null {
    if (this.role !== 'leader') return { kind: 'not-leader', leaderId: this.leaderId };
    if (this.transferee !== null) return { kind: 'dropped', reason: 'transfer-in-progress' };
    if (this.raftLog.lastIndex() - this.raftLog.committed >= this.settings.uncommittedEntriesMax) return { kind: 'busy' };
    return null;
  }

  private flushBroadcasts(): void {
    if (this.role === 'leader' && (this.needBroadcastAppend || this.needBroadcastCommit)) {
      this.replication.broadcastAppends(this.needBroadcastCommit, this.stamp());
    }
    if (this.role === 'leader' && this.needBroadcastHeartbeat) this.broadcastHeartbeat();
    this.needBroadcastAppend = false;
    this.needBroadcastCommit = false;
    this.needBroadcastHeartbeat = false;
  }

  /** Sends one append (or starts an image) to `id`; returns whether something was sent. */
  private sendAppend(id: NodeId, sendIfEmpty: boolean): boolean {
    return this.replication.sendAppend(id, sendIfEmpty, this.stamp());
  }

  private broadcastHeartbeat(): void {
    this.leaderSeq++;
    const leaderCommit = this.lease.commitAttested(this.leadership()) ? this.raftLog.committed : -1;
    this.replication.broadcastHeartbeat(this.stamp(), leaderCommit);
  }

  private sendTimeoutNow(target: NodeId): void {
    this.lease.timeoutNowLeft();
    this.send({ type: 'TimeoutNow', from: this.id, to: target, term: this.term }, 'before');
  }

  private maybeCommit(): void {
    if (this.role !== 'leader') return;
    // The leader counts its own durable index; no voter at all commits nothing.
    const candidate = this.replication.quorumMatch(this.raftLog.config().voters, this.raftLog.persisted);
    // Raft §5.4.2: only an entry of the current term commits by counting replicas.
    if (candidate > this.raftLog.committed && this.raftLog.term(candidate) === this.term) {
      this.raftLog.commitTo(candidate);
      this.needBroadcastCommit = true;
      this.onCommitAdvanced();
    }
  }

  private onCommitAdvanced(): void {
    // Reads that waited for this term's no-op are taken once it committed.
    if (this.leaderReads.commitAdvanced(this.readContext())) this.needBroadcastHeartbeat = true;
    // A leader removed from the voters steps down once its removal is committed.
    if (!this.isVoter() && this.raftLog.committed >= this.raftLog.configIndex()) {
      this.becomeFollower(this.term, null, 'removed');
      return;
    }
  }

  // ---------------------------------------------------------------- reads

  private leaderRead(readId: string, from: NodeId | null): void {
    if (this.leaderReads.request(readId, from, this.readContext())) this.needBroadcastHeartbeat = true;
  }

  private readContext(): LeaderReadContext {
    const voters = this.raftLog.config().voters;
    return {
      term: this.term,
      committed: this.raftLog.committed,
      termStartIndex: this.termStartIndex,
      soleVoter: voters.length === 1 && voters[0] === this.id,
      leaderSeq: this.leaderSeq,
    };
  }

  /** Answers the reads whose heartbeat round a quorum acknowledged (the leader counts itself). */
  private releaseConfirmedReads(): void {
    if (!this.leaderReads.hasPending()) return;
    this.leaderReads.release(this.replication.quorumAckedSeq(this.raftLog.config().voters), this.term);
  }

  // ---------------------------------------------------------------- plumbing

  private send(m: Message, when: 'before' | 'after'): void {
    this.out.send(m, when);
  }

  /** What the leader's messages carry: its term, heartbeat round and tick. */
  private stamp(): LeaderStamp {
    return { term: this.term, seq: this.leaderSeq, tick: this.tickNow };
  }

  private maybeCheck(): void {
    if (this.settings.assertInvariants) this.checkInvariants();
  }

  /** Checks the member's invariants (see invariants.ts); throws InvariantError when one fails. */
  checkInvariants(): void {
    this.invariants ??= new RaftInvariants();
    this.invariants.check({
      id: this.id, log: this.raftLog, term: this.term, vote: this.vote, role: this.role, leaderId: this.leaderId,
      image: this.images.image, progress: this.replication.followers(),
    });
  }
}
