// Linearizable reads without a log entry (ReadIndex, Raft thesis §6.4): a leader confirms with
// one heartbeat round that it still leads, then answers with its commit index; a follower
// forwards its reads to the leader and waits for that answer.
import type { Outbox } from './outbox.ts';
import type { NodeId, ReadFailure, ReadIndexResponseMessage } from './types.ts';

interface PendingRead {
  readonly readId: string;
  readonly index: number;
  /** The heartbeat round that confirms it. */
  readonly seq: number;
  /** The follower that asked, or null for a read of the leader's own driver. */
  readonly from: NodeId | null;
}

interface WaitingRead {
  readonly readId: string;
  readonly from: NodeId | null;
}

/** What the leader knows when it takes a read. */
export interface LeaderReadContext {
  readonly term: number;
  readonly committed: number;
  /** The index of this term's no-op: until it commits the leader does not know the commit
   * index (Raft §8). */
  readonly termStartIndex: number;
  /** The leader is the only voter: it confirms its reads alone. */
  readonly soleVoter: boolean;
  /** The sequence number of the last heartbeat round sent. */
  readonly leaderSeq: number;
}

/** The reads a leader holds until a heartbeat round confirms them. */
export class LeaderReads {
  private pending: PendingRead[] = [];
  /** Reads that arrived before this term's no-op committed. */
  private awaitingTermCommit: WaitingRead[] = [];

  constructor(
    private readonly id: NodeId,
    private readonly readsPendingMax: number,
    private readonly out: Outbox,
  ) {}

  /** Takes a read (from a follower, or null for the driver's own); returns whether a heartbeat
   * round must go out to confirm it. */
  request(readId: string, from: NodeId | null, at: LeaderReadContext): boolean {
    if (at.committed < at.termStartIndex) {
      // A new leader does not know the latest commit index until its no-op commits (§8).
      if (this.awaitingTermCommit.length + this.pending.length >= this.readsPendingMax) {
        this.fail(readId, from, 'dropped', at.term, this.id);
        return false;
      }
      this.awaitingTermCommit.push({ readId, from });
      return false;
    }
    if (at.soleVoter) {
      this.confirm({ readId, index: at.committed, seq: 0, from }, at.term);
      return false;
    }
    if (this.pending.length >= this.readsPendingMax) {
      this.fail(readId, from, 'dropped', at.term, this.id);
      return false;
    }
    // One heartbeat round confirms every read registered before it (ReadIndex batching).
    const last = this.pending[this.pending.length - 1];
    const seq = last !== undefined && last.seq > at.leaderSeq ? last.seq : at.leaderSeq + 1;
    this.pending.push({ readId, index: at.committed, seq, from });
    return true;
  }

  /** The commit index advanced: reads held for the term's no-op are taken once it committed.
   * Returns whether a heartbeat round must go out. */
  commitAdvanced(at: LeaderReadContext): boolean {
    if (at.committed < at.termStartIndex || this.awaitingTermCommit.length === 0) return false;
    const waiting = this.awaitingTermCommit;
    this.awaitingTermCommit = [];
    let round = false;
    for (const read of waiting) round = this.request(read.readId, read.from, at) || round;
    return round;
  }

  hasPending(): boolean {
    return this.pending.length > 0;
  }

  /** A quorum acknowledged the heartbeat rounds up to `confirmedSeq`: their reads are answered. */
  release(confirmedSeq: number, term: number): void {
    let released = 0;
    while (released < this.pending.length && this.pending[released]!.seq <= confirmedSeq) {
      this.confirm(this.pending[released]!, term);
      released++;
    }
    if (released > 0) this.pending = this.pending.slice(released);
  }

  /** This leader steps down: every read it holds fails. */
  failAll(term: number, leaderId: NodeId | null): void {
    for (const read of this.pending) this.fail(read.readId, read.from, 'stepped-down', term, leaderId);
    for (const read of this.awaitingTermCommit) this.fail(read.readId, read.from, 'stepped-down', term, leaderId);
    this.pending = [];
    this.awaitingTermCommit = [];
  }

  /** A new term of leadership starts with no read confirmed by an earlier one. */
  clearPending(): void {
    this.pending = [];
  }

  private confirm(read: PendingRead, term: number): void {
    if (read.from === null) this.out.readConfirmed({ readId: read.readId, index: read.index });
    else this.out.send({ type: 'ReadIndexResp', from: this.id, to: read.from, term, readId: read.readId, index: read.index }, 'before');
  }

  private fail(readId: string, from: NodeId | null, reason: ReadFailure['reason'], term: number, leaderId: NodeId | null): void {
    if (from === null) this.out.readFailed({ readId, reason, leaderId });
    else this.out.send({ type: 'ReadIndexResp', from: this.id, to: from, term, readId, index: -1 }, 'before');
  }
}

/** The reads a follower forwarded to its leader, with the tick each left at (oldest first). A
 * reply may be lost, so they expire and the driver may retry them. */
export class ForwardedReads {
  private readonly reads = new Map<string, number>();

  constructor(
    private readonly id: NodeId,
    private readonly readsPendingMax: number,
    private readonly out: Outbox,
  ) {}

  forward(readId: string, leaderId: NodeId, term: number, tick: number): void {
    if (this.reads.size >= this.readsPendingMax) {
      this.out.readFailed({ readId, reason: 'dropped', leaderId });
      return;
    }
    this.reads.set(readId, tick);
    this.out.send({ type: 'ReadIndex', from: this.id, to: leaderId, term, readId }, 'before');
  }

  /** Fails the reads forwarded `expireTicks` or more ago. */
  expire(now: number, expireTicks: number, leaderId: NodeId | null): void {
    for (const [readId, sentTick] of this.reads) {
      if (now - sentTick < expireTicks) break;
      this.reads.delete(readId);
      this.out.readFailed({ readId, reason: 'expired', leaderId });
    }
  }

  /** The leader's answer; one about a read not (or no longer) forwarded is ignored. */
  answered(m: ReadIndexResponseMessage, leaderId: NodeId | null): void {
    if (!this.reads.delete(m.readId)) return;
    if (m.index >= 0) this.out.readConfirmed({ readId: m.readId, index: m.index });
    else this.out.readFailed({ readId: m.readId, reason: 'not-leader', leaderId });
  }

  /** The leader changed or is unknown: the reads forwarded to it fail. */
  failAll(): void {
    for (const readId of this.reads.keys()) this.out.readFailed({ readId, reason: 'not-leader', leaderId: null });
    this.reads.clear();
  }
}
