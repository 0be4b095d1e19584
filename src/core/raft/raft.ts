// The Raft consensus core: a pure, synchronous state machine. It is driven by tick(), step()
// and propose(); it hands the driver a Ready (what to persist, send, apply) and learns through
// advance() that the driver did it. No I/O, no clocks, no randomness of its own.
import { assert } from './assert.ts';
import { RaftLog } from './log.ts';
import { Progress } from './progress.ts';
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
  ReadFailure,
  ReadState,
  Ready,
  Role,
  Snapshot,
  SnapshotChunk,
  SnapshotChunkMessage,
  SnapshotInstall,
  SnapshotMeta,
  SnapshotResponseMessage,
  VoteResponseMessage,
} from './types.ts';

export interface Random {
  int(maxExclusive: number): number;
}

export interface RaftOptions {
  readonly id: NodeId;
  readonly random: Random;
  /** A follower that hears no leader for a randomized [electionTicks, 2*electionTicks) campaigns. */
  readonly electionTicks?: number;
  readonly heartbeatTicks?: number;
  readonly preVote?: boolean;
  /** A leader that has not heard from a quorum within the window steps down; voters that heard
   * from a leader within electionTicks ignore vote requests (the leader lease). */
  readonly checkQuorum?: boolean;
  /** Lease reads: 0 disables them. Requires checkQuorum and must be below electionTicks, leaving
   * room for clock drift between members (documented in docs/guarantees.md). */
  readonly leaseTicks?: number;
  readonly appendEntriesMax?: number;
  readonly appendBytesMax?: number;
  readonly inflightMsgsMax?: number;
  readonly snapshotChunkBytes?: number;
  /** Snapshot chunks sent to one follower and not yet acknowledged, at most (default 4): the
   * transfer streams instead of waiting a round trip per chunk. */
  readonly snapshotChunksInflightMax?: number;
  /** Proposals beyond this many uncommitted entries are answered `busy`. */
  readonly uncommittedEntriesMax?: number;
  readonly readsPendingMax?: number;
  readonly applyEntriesMax?: number;
  /** Test-only: run checkInvariants() after every input. */
  readonly assertInvariants?: boolean;
}

export interface RaftBootState {
  /** The membership the cluster was bootstrapped with; empty for a member that joins later. */
  readonly initialConfig: Membership;
  readonly hardState?: HardState | null;
  /** The stored snapshot with its image. */
  readonly snapshot?: Snapshot | null;
  /** Or only the stored snapshot's position, when the driver's state machine is durable on its
   * own and keeps no image (it makes one when snapshotWanted() asks). Ignored with `snapshot`. */
  readonly snapshotMeta?: SnapshotMeta | null;
  readonly entries?: readonly Entry[];
}

export type ConfigChange =
  | { readonly kind: 'add-voter'; readonly id: NodeId }
  | { readonly kind: 'add-learner'; readonly id: NodeId }
  | { readonly kind: 'promote'; readonly id: NodeId }
  | { readonly kind: 'remove'; readonly id: NodeId };

export type LeaderChangeReason = 'election' | 'transfer' | 'check-quorum' | 'higher-term' | 'removed' | 'boot';

export interface ProgressStatus {
  readonly match: number;
  readonly next: number;
  readonly state: Progress['state'];
  readonly voter: boolean;
  /** The follower's applied index as last reported. */
  readonly applied: number;
  /** Ticks since this follower last acknowledged the leader (null: never in this term). */
  readonly ackAgeTicks: number | null;
}

export interface RaftStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly vote: NodeId | null;
  readonly leaderId: NodeId | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  readonly persistedIndex: number;
  readonly snapshotIndex: number;
  readonly config: Membership;
  readonly progress: ReadonlyMap<NodeId, ProgressStatus>;
  readonly leaseValid: boolean;
  /** This leader can vouch that its commit index is the cluster's latest (bounded-staleness reads
   * on the leader itself are then fresh). */
  readonly commitAttested: boolean;
  readonly transferee: NodeId | null;
  readonly tick: number;
  readonly lastLeaderChangeReason: LeaderChangeReason;
}

interface PendingRead {
  readonly readId: string;
  readonly index: number;
  readonly seq: number;
  /** The follower that asked, or null for a read of the leader's own driver. */
  readonly from: NodeId | null;
}

interface IncomingSnapshot {
  readonly meta: Snapshot['meta'];
  /** The term of the leader sending it: another leader's image of the same index may differ. */
  readonly leaderTerm: number;
  readonly totalBytes: number;
  /** Bytes accepted so far (handed to the driver in Ready.snapshotChunks). */
  received: number;
}

const emptyMembership: Membership = { voters: [], learners: [] };

/** A follower receiving an image may be silent this many election timeouts (restoring a large
 * image blocks it for seconds) before the leader stops keeping the log after the image for it. */
const IMAGE_HOLD_ELECTIONS = 20;

export class Raft {
  readonly id: NodeId;
  private readonly random: Random;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  readonly leaseTicks: number;
  private readonly appendEntriesMax: number;
  private readonly appendBytesMax: number;
  private readonly inflightMsgsMax: number;
  private readonly snapshotChunkBytes: number;
  private readonly snapshotChunksInflightMax: number;
  private readonly uncommittedEntriesMax: number;
  private readonly readsPendingMax: number;
  private readonly applyEntriesMax: number;
  private readonly assertInvariants: boolean;

  private role: Role = 'follower';
  // Invariant: term never decreases; at most one vote per term (vote only changes from null).
  private term = 0;
  private vote: NodeId | null = null;
  private leaderId: NodeId | null = null;
  readonly log: RaftLog;
  /**
   * An image of the state to send to followers whose next entry was compacted away (made by the
   * driver, or received from a leader). It need not sit at the log's snapshot index: any image
   * from which the log continues will do. Invariant: null, or the log holds the entry after it
   * (image.meta.index >= log.firstIndex() - 1). compact() drops an image the log no longer
   * continues, except one being sent, whose next entries it keeps.
   */
  private image: Image | null;
  /** A follower needs an image and none is held: the driver should make one and offerSnapshot()
   * it. Cleared by the offer and when this member stops leading. */
  private imageWanted = false;

  /** This member's own tick count since it started: its local, monotonic notion of time. */
  private tickNow = 0;
  private electionElapsed = 0;
  private randomizedElectionTicks: number;
  private heartbeatElapsed = 0;
  /** When this member last heard from a leader of its term (or started): the lease voters honour. */
  private lastLeaderContactTick = 0;

  // Candidate state.
  private votesGranted = new Set<NodeId>();
  private votesRejected = new Set<NodeId>();

  // Leader state.
  private progress = new Map<NodeId, Progress>();
  private becameLeaderTick = 0;
  /** The index of this term's no-op; reads and config changes wait until it commits (§8). */
  private termStartIndex = 0;
  /** Config changes are one at a time: a new one waits until this index is committed. */
  private pendingConfigIndex = 0;
  private transferee: NodeId | null = null;
  private transferStartTick = 0;
  /** Lease reads need acknowledgements of heartbeats sent at or after this tick (raised when a
   * transfer is aborted, since the transferee may have been elected meanwhile). */
  private leaseFloorTick = 0;
  /** A TimeoutNow left in this term: the lease and commit attestation are off until the next. */
  private timeoutNowSent = false;
  private leaderSeq = 0;
  private pendingReads: PendingRead[] = [];
  /** Reads that arrived before this term's no-op committed (a new leader does not yet know the
   * commit index, Raft §8). */
  private readsAwaitingTermCommit: { readId: string; from: NodeId | null }[] = [];
  private needBroadcastAppend = false;
  private needBroadcastCommit = false;
  private needBroadcastHeartbeat = false;

  // Follower state.
  private incomingSnapshot: IncomingSnapshot | null = null;
  /** Reads forwarded to the leader, with the tick they left at (oldest first). A reply may be
   * lost, so they expire after two election timeouts and the driver may retry them. */
  private forwardedReads = new Map<string, number>();
  private snapshotToInstall: SnapshotInstall | null = null;
  /** Chunks of the image being received, for the next ready (in arrival order). */
  private snapshotChunksOut: SnapshotChunk[] = [];
  private snapshotKeepsLog = false;

  // Outbox, drained by ready().
  private msgsBeforePersist: Message[] = [];
  private msgsAfterPersist: Message[] = [];
  private readStates: ReadState[] = [];
  private readFailures: ReadFailure[] = [];
  private lastHardState: HardState;
  /** The last hard state handed out with hardStateMustSync (or the one recovered at boot): a
   * ready must sync when its term or vote differ from this one. */
  private lastSyncedHardState: HardState;
  private lastLeaderChangeReason: LeaderChangeReason = 'boot';

  // The ready handed out and not yet advanced.
  private readyInFlight: Ready | null = null;
  /** Followers report each advance of their applied index at once (for remote_apply). */
  private eagerAppliedReports = false;
  private applyingTo = 0;

  constructor(options: RaftOptions, boot: RaftBootState) {
    this.id = options.id;
    this.random = options.random;
    this.electionTicks = options.electionTicks ?? 10;
    this.heartbeatTicks = options.heartbeatTicks ?? 1;
    this.preVote = options.preVote ?? true;
    this.checkQuorum = options.checkQuorum ?? true;
    this.leaseTicks = options.leaseTicks ?? 0;
    this.appendEntriesMax = options.appendEntriesMax ?? 512;
    this.appendBytesMax = options.appendBytesMax ?? 1024 * 1024;
    this.inflightMsgsMax = options.inflightMsgsMax ?? 64;
    this.snapshotChunkBytes = options.snapshotChunkBytes ?? 1024 * 1024;
    this.snapshotChunksInflightMax = options.snapshotChunksInflightMax ?? 4;
    assert(this.snapshotChunksInflightMax >= 1, 'snapshotChunksInflightMax must be at least 1');
    this.uncommittedEntriesMax = options.uncommittedEntriesMax ?? 50_000;
    this.readsPendingMax = options.readsPendingMax ?? 50_000;
    this.applyEntriesMax = options.applyEntriesMax ?? 4096;
    this.assertInvariants = options.assertInvariants ?? false;
    assert(this.electionTicks > this.heartbeatTicks, 'electionTicks must exceed heartbeatTicks');
    assert(this.heartbeatTicks >= 1, 'heartbeatTicks must be at least 1');
    if (this.leaseTicks > 0) {
      assert(this.checkQuorum, 'lease reads require checkQuorum');
      assert(this.leaseTicks < this.electionTicks, 'leaseTicks must be below electionTicks');
    }

    const snapshot = boot.snapshot ?? null;
    this.image = snapshot;
    this.log = new RaftLog(boot.initialConfig, snapshot?.meta ?? boot.snapshotMeta ?? null, boot.entries ?? []);
    const hs = boot.hardState ?? null;
    if (hs !== null) {
      this.term = hs.term;
      this.vote = hs.vote;
      // The stored commit may exceed what survived in the log only if storage broke its contract.
      assert(hs.commit <= this.log.lastIndex(), `stored commit ${hs.commit} beyond log ${this.log.lastIndex()}`);
      this.log.commitTo(hs.commit);
    }
    // Entries are made durable before the hard state that follows them, so a crash between the
    // two can leave entries of a term the hard state never reached. Adopt that term without a
    // vote: any vote cast in it was never sent, since votes leave only once durable.
    if (this.log.lastTerm() > this.term) {
      this.term = this.log.lastTerm();
      this.vote = null;
    }
    this.lastHardState = this.hardState();
    this.lastSyncedHardState = this.lastHardState;
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
    const entry: Entry = { index: this.log.lastIndex() + 1, term: this.term, type: 'normal', data };
    this.appendAsLeader(entry);
    this.maybeCheck();
    return { kind: 'accepted', index: entry.index, term: entry.term };
  }

  proposeConfigChange(change: ConfigChange): ProposeResult {
    const refusal = this.refuseProposal();
    if (refusal !== null) return refusal;
    // Single-server changes, one at a time, only after an entry of this term committed
    // (Raft thesis §4.1 and the 2015 fix on raft-dev): otherwise two configs can diverge.
    if (this.pendingConfigIndex > this.log.committed || this.log.committed < this.termStartIndex) {
      return { kind: 'dropped', reason: 'config-change-pending' };
    }
    const next = applyConfigChange(this.log.config(), change);
    if (next === null) return { kind: 'dropped', reason: 'invalid-config' };
    const entry: Entry = { index: this.log.lastIndex() + 1, term: this.term, type: 'config', config: next };
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
      if (mode === 'lease' && this.leaseValid()) {
        this.readStates.push({ readId, index: this.log.committed });
      } else {
        this.leaderRead(readId, null);
      }
    } else if (this.leaderId !== null && this.role === 'follower') {
      if (this.forwardedReads.size >= this.readsPendingMax) {
        this.readFailures.push({ readId, reason: 'dropped', leaderId: this.leaderId });
      } else {
        this.forwardedReads.set(readId, this.tickNow);
        this.send({ type: 'ReadIndex', from: this.id, to: this.leaderId, term: this.term, readId }, 'before');
      }
    } else {
      this.readFailures.push({ readId, reason: 'not-leader', leaderId: this.leaderId });
    }
    this.maybeCheck();
  }

  /** Planned switchover: hand leadership to `target` once it has caught up. */
  transferLeadership(target: NodeId): { ok: true } | { ok: false; reason: 'not-leader' | 'not-a-voter' | 'already-leader' } {
    if (this.role !== 'leader') return { ok: false, reason: 'not-leader' };
    if (target === this.id) return { ok: false, reason: 'already-leader' };
    if (!this.log.config().voters.includes(target)) return { ok: false, reason: 'not-a-voter' };
    this.transferee = target;
    this.transferStartTick = this.tickNow;
    const pr = this.progress.get(target);
    if (pr !== undefined && pr.match === this.log.lastIndex()) this.sendTimeoutNow(target);
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
    assert(index <= this.log.applied, `compact ${index} beyond applied ${this.log.applied}`);
    if (data !== null) this.offerSnapshot(index, data);
    if (index <= this.log.snapshotIndex()) return this.log.firstIndex();
    const term = this.log.term(index);
    assert(term !== undefined, `compact: no term at ${index}`);
    const meta = { index, term, config: this.log.configAt(index) };
    let retainFrom = retainFromIndex;
    const image = this.image;
    for (const pr of image === null ? [] : this.progress.values()) {
      // The follower receiving the image (it may be silent a while, restoring a large one) or
      // that just installed it continues from the entries after it. Not forever: a follower
      // silent for imageHoldTicks does not hold the log back (memory would grow while it is
      // down); once back it gets a new image.
      const receiving = pr.state === 'snapshot' && pr.snapshotIndex === image!.meta.index && this.tickNow - pr.snapshotAckTick <= this.imageHoldTicks();
      const installed = pr.state !== 'snapshot' && pr.match === image!.meta.index && this.recentlyActive(pr);
      if (receiving || installed) retainFrom = Math.min(retainFrom, image!.meta.index + 1);
    }
    this.log.compact(meta, Math.max(retainFrom, this.log.firstIndex()));
    if (this.image !== null && this.image.meta.index < this.log.firstIndex() - 1) this.image = null;
    this.maybeCheck();
    return this.log.firstIndex();
  }

  /**
   * An image of the state at `index` (the log's snapshot index <= index <= applied), for the
   * followers that need one. Those waiting for it get it now.
   */
  offerSnapshot(index: number, data: ImageBytes): void {
    assert(index <= this.log.applied, `offerSnapshot ${index} beyond applied ${this.log.applied}`);
    assert(index >= this.log.firstIndex() - 1, `offerSnapshot ${index} below the log's start ${this.log.firstIndex()}`);
    if (this.image !== null && this.image.meta.index >= index) return;
    const term = this.log.term(index);
    assert(term !== undefined, `offerSnapshot: no term at ${index}`);
    this.image = { meta: { index, term, config: this.log.configAt(index) }, data };
    this.imageWanted = false;
    if (this.role === 'leader') {
      for (const [id, pr] of this.progress) {
        if (pr.state !== 'snapshot' && pr.next < this.log.firstIndex()) {
          if (pr.state === 'replicate') pr.becomeProbe();
          pr.probeSent = false;
          this.sendAppend(id, false);
        }
      }
    }
    this.maybeCheck();
  }

  /** Whether a follower waits for an image this member does not hold (see offerSnapshot). */
  snapshotWanted(): boolean {
    return this.imageWanted;
  }

  /** With remote_apply in force every member reports applies at once, not at the next heartbeat. */
  setEagerAppliedReports(on: boolean): void {
    this.eagerAppliedReports = on;
  }

  // ---------------------------------------------------------------- ready / advance

  hasReady(): boolean {
    if (this.readyInFlight !== null) return false;
    return (
      this.needBroadcastAppend ||
      this.needBroadcastCommit ||
      this.needBroadcastHeartbeat ||
      this.msgsBeforePersist.length > 0 ||
      this.msgsAfterPersist.length > 0 ||
      this.readStates.length > 0 ||
      this.readFailures.length > 0 ||
      this.snapshotToInstall !== null ||
      this.snapshotChunksOut.length > 0 ||
      this.log.unstableFrom <= this.log.lastIndex() ||
      !sameHardState(this.hardState(), this.lastHardState) ||
      Math.min(this.log.committed, this.log.persisted) > this.log.applied
    );
  }

  /** Collects what the driver must do now. Only one ready is handed out at a time. */
  ready(): Ready {
    assert(this.readyInFlight === null, 'ready() called before advance() of the previous ready');
    this.flushBroadcasts();
    const hs = this.hardState();
    const hardState = sameHardState(hs, this.lastHardState) ? null : hs;
    const synced = this.lastSyncedHardState;
    const hardStateMustSync = hardState !== null && (synced.term !== hs.term || synced.vote !== hs.vote);
    const entries = this.log.unstableEntries();
    const lastEntry = entries[entries.length - 1];
    if (lastEntry !== undefined) this.log.handedOut(lastEntry.index);
    const committedEntries = this.log.nextToApply(this.log.applied + 1, this.applyEntriesMax);
    const lastApply = committedEntries[committedEntries.length - 1];
    this.applyingTo = lastApply?.index ?? this.log.applied;
    const ready: Ready = {
      hardState,
      hardStateMustSync,
      entries,
      snapshotChunks: this.snapshotChunksOut,
      snapshot: this.snapshotToInstall,
      logAfterSnapshot: this.snapshotKeepsLog ? 'keep' : 'discard',
      messagesBeforePersist: this.msgsBeforePersist,
      messages: this.msgsAfterPersist,
      committedEntries,
      readStates: this.readStates,
      readFailures: this.readFailures,
    };
    this.lastHardState = hs;
    if (hardStateMustSync) this.lastSyncedHardState = hs;
    this.snapshotToInstall = null;
    this.snapshotChunksOut = [];
    this.msgsBeforePersist = [];
    this.msgsAfterPersist = [];
    this.readStates = [];
    this.readFailures = [];
    this.readyInFlight = ready;
    return ready;
  }

  /** The driver persisted, sent and applied everything in `ready`. */
  advance(ready: Ready): void {
    assert(this.readyInFlight === ready, 'advance() of a ready that is not in flight');
    this.readyInFlight = null;
    if (ready.snapshot !== null) this.log.snapshotPersisted(ready.snapshot.meta.index);
    const last = ready.entries[ready.entries.length - 1];
    if (last !== undefined) this.log.persistedTo(last.index, last.term);
    if (this.applyingTo > this.log.applied) {
      this.log.applied = this.applyingTo;
      if (this.eagerAppliedReports && this.role === 'follower' && this.leaderId !== null) {
        this.send({ type: 'HeartbeatResp', from: this.id, to: this.leaderId, term: this.term, seq: 0, sentTick: 0, applied: this.log.applied }, 'after');
      }
    }
    if (this.role === 'leader') {
      // Raft thesis §10.2.1: the leader counts itself only once its own write is durable.
      this.maybeCommit();
    }
    this.maybeCheck();
  }

  // ---------------------------------------------------------------- queries

  status(): RaftStatus {
    const progress = new Map<NodeId, ProgressStatus>();
    const config = this.log.config();
    for (const [id, pr] of this.progress) {
      progress.set(id, {
        match: pr.match,
        next: pr.next,
        state: pr.state,
        voter: config.voters.includes(id),
        applied: pr.applied,
        ackAgeTicks: Number.isFinite(pr.ackedSentTick) ? this.tickNow - pr.ackedSentTick : null,
      });
    }
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leaderId: this.leaderId,
      commitIndex: this.log.committed,
      appliedIndex: this.log.applied,
      lastIndex: this.log.lastIndex(),
      persistedIndex: this.log.persisted,
      snapshotIndex: this.log.snapshotIndex(),
      config,
      progress,
      leaseValid: this.role === 'leader' && this.leaseValid(),
      commitAttested: this.commitAttested(),
      transferee: this.transferee,
      tick: this.tickNow,
      lastLeaderChangeReason: this.lastLeaderChangeReason,
    };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
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
    return this.image;
  }

  // ---------------------------------------------------------------- roles

  private becomeFollower(term: number, leaderId: NodeId | null, reason: LeaderChangeReason): void {
    if (term > this.term) {
      this.term = term;
      this.vote = null;
    }
    if (this.role === 'leader') this.failLeaderReads();
    if (this.leaderId !== leaderId) {
      this.failForwardedReads();
      this.lastLeaderChangeReason = reason;
    }
    this.role = 'follower';
    this.leaderId = leaderId;
    this.resetTimers();
    this.progress.clear();
    this.imageWanted = false;
    this.transferee = null;
  }

  private becomePreCandidate(): void {
    // Pre-vote (Raft thesis §9.6): ask whether we could win before disturbing anyone's term.
    this.role = 'pre-candidate';
    this.leaderId = null;
    this.failForwardedReads();
    this.votesGranted = new Set([this.id]);
    this.votesRejected = new Set();
    this.resetTimers();
    const msg = { lastIndex: this.log.lastIndex(), lastTerm: this.log.lastTerm() };
    for (const voter of this.log.config().voters) {
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
    this.failForwardedReads();
    this.votesGranted = new Set([this.id]);
    this.votesRejected = new Set();
    this.resetTimers();
    const msg = { lastIndex: this.log.lastIndex(), lastTerm: this.log.lastTerm(), transfer };
    for (const voter of this.log.config().voters) {
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
    this.becameLeaderTick = this.tickNow;
    this.leaseFloorTick = this.tickNow;
    this.timeoutNowSent = false;
    this.heartbeatElapsed = 0;
    this.transferee = null;
    this.pendingReads = [];
    this.progress.clear();
    for (const member of this.members()) this.ensureProgress(member);
    // Raft §8: a no-op at the start of the term lets the leader learn its commit index.
    const noop: Entry = { index: this.log.lastIndex() + 1, term: this.term, type: 'noop' };
    this.termStartIndex = noop.index;
    // Any config entry not yet committed counts as pending.
    this.pendingConfigIndex = this.log.configIndex();
    this.appendAsLeader(noop);
  }

  private members(): NodeId[] {
    const config = this.log.config();
    return [...config.voters, ...config.learners];
  }

  private ensureProgress(member: NodeId): void {
    if (member === this.id || this.progress.has(member)) return;
    this.progress.set(member, new Progress(this.log.lastIndex() + 1, this.inflightMsgsMax));
  }

  private isVoter(): boolean {
    return this.log.config().voters.includes(this.id);
  }

  /**
   * Whether this member may campaign: it is a voter in the config in force, or it was one in
   * the committed config that a still-uncommitted change removes it from. Without the second
   * case a leader that removed itself and was then deposed before the change committed leaves
   * a cluster where the remaining voters cannot win (they lack the config entry and so are less
   * up-to-date), and nothing may campaign. Votes are still counted in the config in force.
   */
  private isPromotable(): boolean {
    return this.isVoter() || this.log.configAt(this.log.committed).voters.includes(this.id);
  }

  // ---------------------------------------------------------------- ticks

  private tickElection(): void {
    this.electionElapsed++;
    for (const [readId, sentTick] of this.forwardedReads) {
      if (this.tickNow - sentTick < 2 * this.electionTicks) break;
      this.forwardedReads.delete(readId);
      this.readFailures.push({ readId, reason: 'expired', leaderId: this.leaderId });
    }
    if (this.electionElapsed >= this.randomizedElectionTicks && this.isPromotable()) {
      this.campaign();
    } else if (this.electionElapsed >= this.randomizedElectionTicks) {
      this.resetTimers();
    }
  }

  private campaign(): void {
    if (this.preVote) this.becomePreCandidate();
    else this.becomeCandidate(false);
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    if (this.heartbeatElapsed >= this.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.needBroadcastHeartbeat = true;
      this.retransmitStalled();
    }
    if (this.transferee !== null && this.tickNow - this.transferStartTick >= this.electionTicks) {
      // The transfer did not complete in an election timeout: abort, but do not trust the lease
      // until a quorum acknowledges heartbeats sent from now on.
      this.transferee = null;
      this.leaseFloorTick = this.tickNow;
    }
    if (this.checkQuorum) {
      // Check-quorum, measured from when the acknowledged messages were sent. With lease reads
      // on, the window is the lease itself, so that the lease never outlives the leadership.
      const windowTicks = this.leaseTicks > 0 ? this.leaseTicks : this.electionTicks;
      const since = Math.max(this.becameLeaderTick, this.quorumAckedSentTick());
      if (this.tickNow - since > windowTicks) { // MUTANT:no-step-down
        this.becomeFollower(this.term, null, 'check-quorum');
      }
    }
  }

  /** Resends appends or snapshot chunks that have gone unanswered for too long (lost messages). */
  private retransmitStalled(): void {
    const stallTicks = Math.max(2, Math.floor(this.electionTicks / 2));
    for (const [id, pr] of this.progress) {
      if (pr.state === 'replicate') {
        const oldest = pr.oldestInflightTick();
        if (oldest !== null && this.tickNow - oldest >= stallTicks) {
          pr.becomeProbe();
          this.sendAppend(id, false);
        }
      } else if (pr.state === 'snapshot' && this.tickNow - pr.snapshotSentTick >= stallTicks) {
        pr.snapshotSentTick = this.tickNow;
        if (this.tickNow - pr.snapshotAckTick > this.imageHoldTicks()) {
          // Silent too long: give up (compact() no longer keeps the log for it). Once it answers
          // a heartbeat it is probed, and the image restarts where it got to (it keeps what
          // arrived) or a new one is made.
          pr.abandonSnapshot();
        } else if (this.recentlyActive(pr)) {
          // No progress though it answers (a chunk lost): resend from what it acknowledged, one
          // chunk; its answer reopens the window. A silent follower (restoring) is left alone.
          pr.snapshotOffset = pr.snapshotAckedOffset;
          this.sendSnapshotChunks(id, pr, false);
        }
      } else if (pr.state === 'probe' && pr.probeSent) {
        pr.probeSent = false;
        this.sendAppend(id, false);
      }
    }
  }

  /** How long a follower receiving an image may stay silent before the leader gives up on it. */
  private imageHoldTicks(): number {
    return IMAGE_HOLD_ELECTIONS * this.electionTicks;
  }

  /** Whether the follower acknowledged a message sent within the last election timeout. */
  private recentlyActive(pr: Progress): boolean {
    return this.tickNow - pr.ackedSentTick <= this.electionTicks;
  }

  private quorumAckedSentTick(): number {
    const voters = this.log.config().voters;
    const ticks = voters.map((v) => (v === this.id ? this.tickNow : this.progress.get(v)?.ackedSentTick ?? Number.NEGATIVE_INFINITY));
    return quorumValue(ticks);
  }

  private leaseValid(): boolean {
    if (this.leaseTicks === 0 || this.role !== 'leader' || this.transferee !== null || this.timeoutNowSent) return false;
    if (this.log.committed < this.termStartIndex) return false;
    // Leadership is the lease: check-quorum steps this leader down as soon as a quorum has not
    // acknowledged a message sent within leaseTicks. The floor covers aborted transfers.
    return this.quorumAckedSentTick() >= this.leaseFloorTick;
  }

  /**
   * Whether this leader can vouch that its commit index is the cluster's latest: it committed an
   * entry of its term (so it knows the commit index, §8) and a quorum acknowledged messages it
   * sent within the lease window (leaseTicks, or half an election timeout without lease reads):
   * those voters refuse to elect anyone else for an election timeout, so no other leader can
   * have committed more. Without check-quorum voters give no such promise, and it never vouches.
   */
  private commitAttested(): boolean {
    if (!this.checkQuorum || this.role !== 'leader' || this.transferee !== null || this.timeoutNowSent) return false;
    if (this.log.committed < this.termStartIndex) return false;
    const windowTicks = this.leaseTicks > 0 ? this.leaseTicks : Math.floor(this.electionTicks / 2);
    return this.quorumAckedSentTick() >= Math.max(this.leaseFloorTick, this.tickNow - windowTicks);
  }

  private resetTimers(): void {
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTicks = this.drawElectionTicks();
  }

  private drawElectionTicks(): number {
    return this.electionTicks + this.random.int(this.electionTicks);
  }

  /** Whether this member heard from a live leader recently: then it refuses to help elect
   * another (Raft thesis §4.2.3), unless the leader itself asked for a transfer. */
  private inLease(): boolean {
    if (!this.checkQuorum) return false;
    if (this.role === 'leader') return true;
    return this.tickNow - this.lastLeaderContactTick < this.electionTicks;
  }

  // ---------------------------------------------------------------- step

  private stepInner(m: Message): void {
    if (m.to !== this.id) return;
    if (m.term > this.term) {
      if (m.type === 'PreVote' || m.type === 'Vote') {
        const transfer = m.type === 'Vote' && m.transfer;
        if (!transfer && this.inLease()) {
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
          conflictTerm: 0, conflictIndex: 0, seq: m.seq, sentTick: m.sentTick, applied: this.log.applied,
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
        if (!this.forwardedReads.delete(m.readId)) return;
        if (m.index >= 0) this.readStates.push({ readId: m.readId, index: m.index });
        else this.readFailures.push({ readId: m.readId, reason: 'not-leader', leaderId: this.leaderId });
        return;
    }
  }

  private handleVoteRequest(m: Extract<Message, { type: 'PreVote' | 'Vote' }>): void {
    const isPre = m.type === 'PreVote';
    // Raft §5.2/§5.4.1: one vote per term, and only for a log at least as up-to-date as ours.
    const canVote = isPre
      ? m.term > this.term || this.vote === m.from || (this.vote === null && this.leaderId === null)
      : this.vote === m.from || (this.vote === null && this.leaderId === null);
    const upToDate = this.log.isUpToDate(m.lastIndex, m.lastTerm); // MUTANT:vote-no-log-check
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
    this.send({ type, from: this.id, to, term, granted }, 'after'); // MUTANT:vote-before-persist
  }

  private handleVoteResponse(m: VoteResponseMessage): void {
    const expecting = (m.type === 'PreVoteResp' && this.role === 'pre-candidate') || (m.type === 'VoteResp' && this.role === 'candidate');
    if (!expecting) return;
    if (m.granted) this.votesGranted.add(m.from);
    else this.votesRejected.add(m.from);
    this.maybeWinElection();
  }

  private maybeWinElection(): void {
    const voters = this.log.config().voters;
    const quorum = Math.floor(voters.length / 2) + 1;
    const granted = voters.filter((v) => this.votesGranted.has(v)).length;
    const rejected = voters.filter((v) => this.votesRejected.has(v)).length;
    if (granted >= quorum) {
      if (this.role === 'pre-candidate') this.becomeCandidate(false);
      else if (this.role === 'candidate') this.becomeLeader();
    } else if (rejected >= quorum) {
      this.becomeFollower(this.term, null, 'election');
    }
  }

  private noteLeaderContact(m: { from: NodeId }): void {
    if (this.role !== 'follower') this.becomeFollower(this.term, m.from, 'election');
    if (this.leaderId !== m.from) {
      this.failForwardedReads();
      this.leaderId = m.from;
      this.lastLeaderChangeReason = 'election';
    }
    this.electionElapsed = 0;
    this.lastLeaderContactTick = this.tickNow;
  }

  private handleAppend(m: AppendMessage): void {
    this.noteLeaderContact(m);
    const reply = (fields: Pick<AppendResponseMessage, 'reject' | 'index' | 'conflictTerm' | 'conflictIndex'>): void => {
      this.send({ type: 'AppendResp', from: this.id, to: m.from, term: this.term, seq: m.seq, sentTick: m.sentTick, applied: this.log.applied, ...fields }, 'after');
    };
    if (m.prevIndex < this.log.committed) {
      // Everything up to our commit index matches the leader already (Leader Completeness).
      reply({ reject: false, index: this.log.committed, conflictTerm: 0, conflictIndex: 0 });
      return;
    }
    if (this.log.matchTerm(m.prevIndex, m.prevTerm)) {
      this.log.merge(m.entries);
      const lastNew = m.prevIndex + m.entries.length;
      // Raft Figure 2: commit no further than the last entry known to match this leader.
      this.log.commitTo(Math.min(m.commit, lastNew));
      reply({ reject: false, index: lastNew, conflictTerm: 0, conflictIndex: 0 });
      return;
    }
    // Fast back-off (Raft §5.3, "optimization"): tell the leader our conflicting term and where
    // it starts, so it skips a whole term per round trip.
    let conflictTerm = 0;
    let conflictIndex = this.log.lastIndex() + 1;
    if (m.prevIndex <= this.log.lastIndex()) {
      conflictTerm = this.log.term(m.prevIndex) ?? 0;
      conflictIndex = m.prevIndex;
      while (conflictIndex - 1 > this.log.committed && this.log.term(conflictIndex - 1) === conflictTerm) conflictIndex--;
    }
    reply({ reject: true, index: m.prevIndex, conflictTerm, conflictIndex });
  }

  private handleHeartbeat(m: HeartbeatMessage): void {
    this.noteLeaderContact(m);
    // The leader sends min(match, commit): every entry up to it matches the leader's log.
    if (m.commit > this.log.committed) this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.send({ type: 'HeartbeatResp', from: this.id, to: m.from, term: this.term, seq: m.seq, sentTick: m.sentTick, applied: this.log.applied }, 'after');
  }

  private handleSnapshotChunk(m: SnapshotChunkMessage): void {
    this.noteLeaderContact(m);
    const reply = (nextOffset: number, done: boolean, reject: boolean): void => {
      const resp: SnapshotResponseMessage = {
        type: 'SnapshotResp', from: this.id, to: m.from, term: this.term, seq: m.seq, sentTick: m.sentTick,
        snapshotIndex: m.meta.index, nextOffset, done, reject,
      };
      this.send(resp, 'after');
    };
    if (m.meta.index <= this.log.committed) {
      // Stale: we already have everything it covers, committed (so matching the leader).
      this.incomingSnapshot = null;
      reply(m.totalBytes, true, false);
      return;
    }
    if (this.snapshotToInstall !== null) {
      // An image completed and its install is not handed out yet: this chunk is of a newer one.
      // A ready's chunks and install must be of one image (the driver stages them in one file),
      // so it waits: dropped, the leader sends it again when the transfer stalls.
      return;
    }
    let incoming = this.incomingSnapshot;
    if (incoming === null || incoming.meta.index !== m.meta.index || incoming.meta.term !== m.meta.term || incoming.leaderTerm !== m.term) {
      // Another image: it starts at offset 0. A chunk of the same image at offset 0 again (a
      // duplicate, or the leader starting over) does not discard what arrived: the answer
      // below tells the leader where to go on.
      if (m.offset !== 0) {
        reply(0, false, true);
        return;
      }
      incoming = { meta: m.meta, leaderTerm: m.term, totalBytes: m.totalBytes, received: 0 };
      this.incomingSnapshot = incoming;
    }
    if (m.offset !== incoming.received) {
      reply(incoming.received, false, false);
      return;
    }
    if (incoming.received + m.chunk.byteLength > incoming.totalBytes) {
      // A leader that breaks the protocol: drop the image rather than install a wrong one.
      this.incomingSnapshot = null;
      reply(0, false, true);
      return;
    }
    // The driver writes the bytes where it will restore from; the core keeps none of them.
    this.snapshotChunksOut.push({ meta: incoming.meta, offset: m.offset, totalBytes: incoming.totalBytes, data: m.chunk });
    incoming.received += m.chunk.byteLength;
    if (incoming.received < incoming.totalBytes) {
      reply(incoming.received, false, false);
      return;
    }
    this.incomingSnapshot = null;
    this.snapshotKeepsLog = this.log.installSnapshot(incoming.meta);
    // No image to forward: as a leader, this member makes one on demand like after compact().
    if (this.image !== null && this.image.meta.index < incoming.meta.index) this.image = null;
    this.snapshotToInstall = { meta: incoming.meta, totalBytes: incoming.totalBytes };
    reply(incoming.totalBytes, true, false);
  }

  // ---------------------------------------------------------------- leader: replies

  private handleAppendResponse(m: AppendResponseMessage): void {
    if (this.role !== 'leader') return;
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.noteAck(m.seq, m.sentTick);
    pr.noteApplied(m.applied);
    this.releaseConfirmedReads();
    if (m.reject) {
      // Stale rejections: of an append already superseded (replicate) or not the probe in flight.
      if (pr.state === 'snapshot') return;
      if (pr.state === 'replicate' && m.index <= pr.match) return;
      if (pr.state === 'probe' && m.index !== pr.next - 1) return;
      if (m.conflictTerm === 0 && m.conflictIndex <= pr.match) {
        // The follower's log ends before what it acknowledged: it lost durable entries (a disk
        // that lied about fsync, files cut by hand). Raft assumes this never happens; repair it
        // anyway by forgetting the match, rather than probing the same index forever.
        pr.match = m.conflictIndex - 1;
      }
      let next = m.conflictIndex;
      if (m.conflictTerm > 0) {
        const lastOfTerm = this.lastIndexOfTerm(m.conflictTerm, Math.min(m.index, this.log.lastIndex()));
        if (lastOfTerm !== null) next = lastOfTerm + 1;
      }
      next = Math.max(Math.min(next, m.index), pr.match + 1);
      pr.becomeProbe();
      pr.next = next;
      this.sendAppend(m.from, false);
      return;
    }
    const advanced = pr.maybeUpdate(m.index);
    // A probe answered at exactly the known match (after a snapshot, say) also proves the
    // position: resume pipelining rather than wait for the next heartbeat.
    if (advanced || (pr.state === 'probe' && m.index === pr.match)) {
      if (pr.state === 'probe') pr.becomeReplicate();
      else if (pr.state === 'snapshot' && pr.match >= pr.snapshotIndex) {
        pr.becomeProbe();
        pr.becomeReplicate();
      }
      this.maybeCommit();
      if (this.transferee === m.from && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
    }
    this.sendAppendsWhileOpen(m.from, pr, false);
  }

  private handleHeartbeatResponse(from: NodeId, seq: number, sentTick: number, applied: number): void {
    if (this.role !== 'leader') return;
    const pr = this.progress.get(from);
    if (pr === undefined) return;
    pr.noteAck(seq, sentTick);
    pr.noteApplied(applied);
    this.releaseConfirmedReads();
    if (pr.match < this.log.lastIndex() && pr.state === 'probe') {
      pr.probeSent = false;
      this.sendAppend(from, false);
    }
  }

  private handleSnapshotResponse(m: SnapshotResponseMessage): void {
    if (this.role !== 'leader') return;
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.noteAck(m.seq, m.sentTick);
    this.releaseConfirmedReads();
    if (pr.state !== 'snapshot' || m.snapshotIndex !== pr.snapshotIndex) {
      // About another image (an older one, or one the leader gave up on): only a completed
      // install teaches something, where the follower's log now is.
      if (m.done && m.snapshotIndex > pr.match) {
        pr.match = m.snapshotIndex;
        if (pr.state === 'snapshot') pr.abandonSnapshot();
        else pr.becomeProbe();
        this.maybeCommit();
        this.sendAppend(m.from, false);
      }
      return;
    }
    if (m.done) {
      if (m.snapshotIndex > pr.match) pr.match = m.snapshotIndex;
      pr.becomeProbe();
      this.maybeCommit();
      this.sendAppend(m.from, false);
      return;
    }
    if (m.reject) {
      pr.snapshotOffset = 0;
      pr.snapshotAckedOffset = 0;
    } else if (m.nextOffset > pr.snapshotAckedOffset) {
      pr.snapshotAckedOffset = m.nextOffset;
      pr.snapshotOffset = Math.max(pr.snapshotOffset, m.nextOffset);
      pr.snapshotAckTick = this.tickNow;
    } else {
      // A duplicate, or the follower still waits for a chunk that was lost: the stall timer
      // goes back to the acknowledged offset (retransmitStalled), once, not per answer.
      return;
    }
    pr.snapshotSentTick = this.tickNow;
    this.sendSnapshotChunks(m.from, pr);
  }

  private lastIndexOfTerm(term: number, from: number): number | null {
    for (let index = from; index >= this.log.firstIndex(); index--) {
      const t = this.log.term(index);
      if (t === term) return index;
      if (t !== undefined && t < term) return null;
    }
    return null;
  }

  // ---------------------------------------------------------------- leader: sending

  private appendAsLeader(entry: Entry): void {
    this.log.appendNew(entry);
    this.needBroadcastAppend = true;
    if (entry.type === 'config') this.syncProgressWithConfig();
    // A single-voter cluster commits on its own durable write; handled in advance().
  }

  private refuseProposal(): ProposeResult | null {
    if (this.role !== 'leader') return { kind: 'not-leader', leaderId: this.leaderId };
    if (this.transferee !== null) return { kind: 'dropped', reason: 'transfer-in-progress' };
    if (this.log.lastIndex() - this.log.committed >= this.uncommittedEntriesMax) return { kind: 'busy' };
    return null;
  }

  private flushBroadcasts(): void {
    if (this.role === 'leader' && (this.needBroadcastAppend || this.needBroadcastCommit)) {
      for (const [id, pr] of this.progress) this.sendAppendsWhileOpen(id, pr, this.needBroadcastCommit);
    }
    if (this.role === 'leader' && this.needBroadcastHeartbeat) this.broadcastHeartbeat();
    this.needBroadcastAppend = false;
    this.needBroadcastCommit = false;
    this.needBroadcastHeartbeat = false;
  }

  private sendAppendsWhileOpen(id: NodeId, pr: Progress, commitChanged: boolean): void {
    // Pipelining: in replicate state keep sending batches until the in-flight window is full.
    let sent = false;
    for (let guard = this.inflightMsgsMax + 1; guard > 0 && !pr.isPaused() && pr.next <= this.log.lastIndex(); guard--) {
      if (!this.sendAppend(id, false)) break;
      sent = true;
    }
    if (!sent && commitChanged && pr.state === 'replicate' && !pr.isPaused()) {
      // Nothing new to send, but the follower should learn the new commit index now.
      this.sendAppend(id, true);
    }
  }

  /** Sends one append (or starts a snapshot) to `id`; returns whether something was sent. */
  private sendAppend(id: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.progress.get(id);
    if (pr === undefined || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    // Right after an image the log may no longer hold the entry at its index (compact() keeps
    // only the ones after it), but the image says its term.
    const prevTerm = this.log.term(prevIndex) ?? (this.image?.meta.index === prevIndex ? this.image.meta.term : undefined);
    if (prevTerm === undefined || pr.next < this.log.firstIndex()) {
      // The entries it needs are compacted away: send an image, once the driver made one (for
      // a follower that answers: an image is costly, and it may be down for good).
      if (this.image === null) {
        if (this.recentlyActive(pr)) this.imageWanted = true;
        // Probe meanwhile: heartbeat replies retry this, and offerSnapshot() sends it.
        if (pr.state === 'replicate') pr.becomeProbe();
        return false;
      }
      pr.becomeSnapshot(this.image.meta.index, this.tickNow);
      this.sendSnapshotChunks(id, pr);
      return true;
    }
    const entries = this.log.slice(pr.next, this.log.lastIndex(), this.appendEntriesMax, this.appendBytesMax);
    if (entries.length === 0 && !sendIfEmpty && pr.state === 'replicate') return false;
    const lastIndex = prevIndex + entries.length;
    const msg: AppendMessage = {
      type: 'Append', from: this.id, to: id, term: this.term, seq: this.leaderSeq, sentTick: this.tickNow,
      prevIndex, prevTerm, entries, commit: this.log.committed,
    };
    // Raft thesis §10.2.1: appends may leave before the leader's own write is durable.
    this.send(msg, 'before');
    pr.sentAppend(lastIndex, entries.length, this.tickNow);
    return true;
  }

  /** Sends the image's next chunks to `id`: at least one when none is unacknowledged, and more
   * while fewer than snapshotChunksInflightMax are (only one when not `windowed`). */
  private sendSnapshotChunks(id: NodeId, pr: Progress, windowed = true): void {
    const snapshot = this.image;
    if (snapshot === null) {
      // compact() dropped it while the follower did not answer: probe again, and once it
      // answers a new image is made.
      pr.abandonSnapshot();
      return;
    }
    if (snapshot.meta.index !== pr.snapshotIndex) {
      // A newer image replaced the one being sent: start over with it.
      pr.becomeSnapshot(snapshot.meta.index, this.tickNow);
    }
    const totalBytes = snapshot.data.byteLength;
    const windowBytes = this.snapshotChunksInflightMax * this.snapshotChunkBytes;
    // An empty image still takes one (empty) chunk.
    let idle = pr.snapshotOffset <= pr.snapshotAckedOffset;
    while (idle || (windowed && pr.snapshotOffset < totalBytes && pr.snapshotOffset - pr.snapshotAckedOffset < windowBytes)) {
      idle = false;
      const offset = Math.min(pr.snapshotOffset, totalBytes);
      const end = Math.min(totalBytes, offset + this.snapshotChunkBytes);
      this.send({
        type: 'Snapshot', from: this.id, to: id, term: this.term, seq: this.leaderSeq, sentTick: this.tickNow,
        meta: snapshot.meta, offset, totalBytes, chunk: snapshot.data.subarray(offset, end),
      }, 'before');
      pr.snapshotOffset = end;
    }
  }

  private broadcastHeartbeat(): void {
    this.leaderSeq++;
    const leaderCommit = this.commitAttested() ? this.log.committed : -1;
    for (const [id, pr] of this.progress) {
      this.send({
        type: 'Heartbeat', from: this.id, to: id, term: this.term, seq: this.leaderSeq, sentTick: this.tickNow,
        commit: Math.min(pr.match, this.log.committed), leaderCommit,
      }, 'before');
    }
  }

  private sendTimeoutNow(target: NodeId): void {
    // The target may win an election with this message even after the transfer is abandoned
    // (it can arrive late, and voters ignore their lease for it): never trust the lease again in
    // this term.
    this.timeoutNowSent = true;
    this.send({ type: 'TimeoutNow', from: this.id, to: target, term: this.term }, 'before');
  }

  private maybeCommit(): void {
    if (this.role !== 'leader') return;
    const voters = this.log.config().voters;
    const matches = voters.map((v) => (v === this.id ? this.log.persisted : this.progress.get(v)?.match ?? 0));
    if (matches.length === 0) return;
    const candidate = quorumValue(matches);
    // Raft §5.4.2: only an entry of the current term commits by counting replicas.
    if (candidate > this.log.committed && this.log.term(candidate) === this.term) { // MUTANT:commit-old-term
      this.log.commitTo(candidate);
      this.needBroadcastCommit = true;
      this.onCommitAdvanced();
    }
  }

  private onCommitAdvanced(): void {
    if (this.log.committed >= this.termStartIndex && this.readsAwaitingTermCommit.length > 0) {
      const waiting = this.readsAwaitingTermCommit;
      this.readsAwaitingTermCommit = [];
      for (const read of waiting) this.leaderRead(read.readId, read.from);
    }
    // A leader removed from the voters steps down once its removal is committed.
    if (!this.isVoter() && this.log.committed >= this.log.configIndex()) {
      this.becomeFollower(this.term, null, 'removed');
      return;
    }
  }

  private syncProgressWithConfig(): void {
    const members = new Set(this.members());
    for (const member of members) this.ensureProgress(member);
    for (const id of [...this.progress.keys()]) if (!members.has(id)) this.progress.delete(id);
  }

  // ---------------------------------------------------------------- reads

  private leaderRead(readId: string, from: NodeId | null): void {
    if (this.log.committed < this.termStartIndex) {
      // A new leader does not know the latest commit index until its no-op commits (§8).
      if (this.readsAwaitingTermCommit.length + this.pendingReads.length >= this.readsPendingMax) {
        this.failRead(readId, from, 'dropped');
        return;
      }
      this.readsAwaitingTermCommit.push({ readId, from });
      return;
    }
    const voters = this.log.config().voters;
    if (voters.length === 1 && voters[0] === this.id) {
      this.confirmRead({ readId, index: this.log.committed, seq: 0, from });
      return;
    }
    if (this.pendingReads.length >= this.readsPendingMax) {
      this.failRead(readId, from, 'dropped');
      return;
    }
    // One heartbeat round confirms every read registered before it (ReadIndex batching).
    const lastPending = this.pendingReads[this.pendingReads.length - 1];
    const seq = lastPending !== undefined && lastPending.seq > this.leaderSeq ? lastPending.seq : this.leaderSeq + 1;
    this.pendingReads.push({ readId, index: this.log.committed, seq, from });
    this.needBroadcastHeartbeat = true;
  }

  private releaseConfirmedReads(): void {
    if (this.pendingReads.length === 0) return;
    const voters = this.log.config().voters;
    const acked = voters.map((v) => (v === this.id ? Number.MAX_SAFE_INTEGER : this.progress.get(v)?.ackedSeq ?? 0));
    const confirmedSeq = quorumValue(acked);
    let released = 0;
    while (released < this.pendingReads.length && this.pendingReads[released]!.seq <= confirmedSeq) {
      this.confirmRead(this.pendingReads[released]!);
      released++;
    }
    if (released > 0) this.pendingReads = this.pendingReads.slice(released);
  }

  private confirmRead(read: PendingRead): void {
    if (read.from === null) this.readStates.push({ readId: read.readId, index: read.index });
    else this.send({ type: 'ReadIndexResp', from: this.id, to: read.from, term: this.term, readId: read.readId, index: read.index }, 'before');
  }

  private failRead(readId: string, from: NodeId | null, reason: ReadFailure['reason']): void {
    if (from === null) this.readFailures.push({ readId, reason, leaderId: this.leaderId });
    else this.send({ type: 'ReadIndexResp', from: this.id, to: from, term: this.term, readId, index: -1 }, 'before');
  }

  private failLeaderReads(): void {
    for (const read of this.pendingReads) this.failRead(read.readId, read.from, 'stepped-down');
    for (const read of this.readsAwaitingTermCommit) this.failRead(read.readId, read.from, 'stepped-down');
    this.pendingReads = [];
    this.readsAwaitingTermCommit = [];
  }

  private failForwardedReads(): void {
    for (const readId of this.forwardedReads.keys()) this.readFailures.push({ readId, reason: 'not-leader', leaderId: null });
    this.forwardedReads.clear();
  }

  // ---------------------------------------------------------------- plumbing

  private send(m: Message, when: 'before' | 'after'): void {
    if (when === 'before') this.msgsBeforePersist.push(m);
    else this.msgsAfterPersist.push(m);
  }

  private maybeCheck(): void {
    if (this.assertInvariants) this.checkInvariants();
  }

  private votedTermSeen = 0;
  private voteSeen: NodeId | null = null;

  checkInvariants(): void {
    this.log.checkInvariants();
    assert(this.log.lastTerm() <= this.term, `last log term ${this.log.lastTerm()} above current term ${this.term}`);
    if (this.image !== null) {
      assert(this.image.meta.index >= this.log.firstIndex() - 1, `the image at ${this.image.meta.index} is below the log's start ${this.log.firstIndex()}`);
    }
    if (this.role === 'leader') {
      assert(this.leaderId === this.id, 'a leader must name itself as leader');
      for (const member of this.members()) {
        if (member !== this.id) assert(this.progress.has(member), `leader lacks progress for ${member}`);
      }
      for (const pr of this.progress.values()) pr.checkInvariants();
    }
    // At most one vote per term.
    if (this.term === this.votedTermSeen && this.voteSeen !== null) {
      assert(this.vote === this.voteSeen, `vote changed within term ${this.term}: ${this.voteSeen} -> ${this.vote}`);
    }
    this.votedTermSeen = this.term;
    this.voteSeen = this.vote;
  }
}

/** The largest value that a quorum (majority) of the given values reaches. */
export function quorumValue(values: readonly number[]): number {
  if (values.length === 0) return Number.NEGATIVE_INFINITY;
  const sorted = [...values].sort((a, b) => b - a);
  return sorted[Math.floor(values.length / 2)]!;
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/** The membership after a single-server change, or null when the change is not valid. */
export function applyConfigChange(config: Membership, change: ConfigChange): Membership | null {
  const voters = config.voters.filter((v) => v !== change.id);
  const learners = config.learners.filter((l) => l !== change.id);
  const isVoter = config.voters.includes(change.id);
  const isLearner = config.learners.includes(change.id);
  switch (change.kind) {
    case 'add-voter':
      if (isVoter) return null;
      return { voters: [...voters, change.id], learners };
    case 'add-learner':
      if (isVoter || isLearner) return null;
      return { voters, learners: [...learners, change.id] };
    case 'promote':
      if (!isLearner) return null;
      return { voters: [...voters, change.id], learners };
    case 'remove':
      if (!isVoter && !isLearner) return null;
      if (isVoter && voters.length === 0) return null;
      return { voters, learners };
  }
}

export { emptyMembership };
