// Linearizable reads: each waits for a read index confirmed by the leader (ReadIndex, or the
// leader's lease), then for this member to apply it. Reads that arrive between two pumps share
// one ReadIndex request: any index confirmed after all of them started serves them all, which
// spares the leader a heartbeat round and a follower a message per read.
import type { ReadFailure, ReadState } from '../core/raft/types.ts';
import type { ReadMode } from '../shared/operations.ts';
import { ChorusError } from '../shared/errors.ts';
import type { MemberContext } from './member-context.ts';

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

export class Reads {
  /** Reads that arrived since the last pump: they share one ReadIndex request. */
  private toStart: PendingRead[] = [];
  /** Batches of reads waiting for the core to confirm a read index, by readId. */
  private readonly awaitingIndex = new Map<string, PendingRead[]>();
  /** Reads with a confirmed index, waiting for the state machine to apply it. */
  private awaitingApply: PendingRead[] = [];
  /** Reads whose attempt failed (no leader, leader stepped down): retried at the next tick. */
  private toRetry: PendingRead[] = [];
  /** Invariant: the number of reads in the four collections above, at most readsPendingMax
   * when a new one is admitted. */
  private pendingCount = 0;
  private readSeq = 0;

  constructor(private readonly ctx: MemberContext) {}

  get pending(): number {
    return this.pendingCount;
  }

  private admit(): Error | null {
    if (this.pendingCount < this.ctx.config.readsPendingMax) return null;
    this.ctx.observer.noteDropped('reads', 'pending-max');
    return new ChorusError('CHORUS_BUSY', `${this.pendingCount} reads are pending (readsPendingMax)`);
  }

  barrier(deadlineMs: number, mode: ReadMode): Promise<void> {
    const refused = this.admit();
    if (refused !== null) return Promise.reject(refused);
    return new Promise<void>((resolve, reject) => {
      this.toStart.push({ index: -1, confirmedByLeader: false, mode, deadlineMs, resolve, reject });
      this.pendingCount++;
      this.ctx.driver.schedulePump();
    });
  }

  waitForApplied(index: number, deadlineMs: number): Promise<void> {
    if (this.ctx.stateMachine.appliedIndex() >= index) return Promise.resolve();
    const refused = this.admit();
    if (refused !== null) return Promise.reject(refused);
    return new Promise<void>((resolve, reject) => {
      // Expiry of a "confirmed" read is a timeout: this member has not applied the revision.
      this.awaitingApply.push({ index, confirmedByLeader: true, mode: 'quorum', deadlineMs, resolve, reject });
      this.pendingCount++;
    });
  }

  /** Asks the core for one read index on behalf of every read waiting to start (one for the
   * lease reads, one for the others). */
  start(): void {
    if (this.toStart.length === 0) return;
    const lease = this.toStart.filter((r) => r.mode === 'lease');
    const quorum = lease.length === 0 ? this.toStart : this.toStart.filter((r) => r.mode !== 'lease');
    this.toStart = [];
    for (const [batch, mode] of [[quorum, 'quorum'], [lease, 'lease']] as const) {
      if (batch.length === 0) continue;
      const readId = (++this.readSeq).toString(36);
      this.awaitingIndex.set(readId, batch);
      this.ctx.driver.readIndex(readId, mode);
    }
  }

  confirmed(states: readonly ReadState[], failures: readonly ReadFailure[]): void {
    const applied = this.ctx.stateMachine.appliedIndex();
    for (const rs of states) {
      const batch = this.awaitingIndex.get(rs.readId);
      if (batch === undefined) continue;
      this.awaitingIndex.delete(rs.readId);
      for (const read of batch) {
        read.index = rs.index;
        read.confirmedByLeader = true;
        if (applied >= rs.index) this.finish(read, null);
        else this.awaitingApply.push(read);
      }
    }
    for (const rf of failures) {
      const batch = this.awaitingIndex.get(rf.readId);
      if (batch === undefined) continue;
      this.awaitingIndex.delete(rf.readId);
      for (const read of batch) {
        if (rf.reason === 'dropped') {
          this.finish(read, new ChorusError('CHORUS_BUSY', 'too many reads are pending at the leader'));
        } else {
          if (rf.reason === 'stepped-down') read.confirmedByLeader = true;
          // No leader, or it changed: a read is safe to retry until its deadline.
          this.toRetry.push(read);
        }
      }
    }
  }

  /** After an apply: the reads whose index is applied now are served. */
  serveApplied(): void {
    if (this.awaitingApply.length === 0) return;
    const applied = this.ctx.stateMachine.appliedIndex();
    const still: PendingRead[] = [];
    for (const read of this.awaitingApply) {
      if (applied >= read.index) this.finish(read, null);
      else still.push(read);
    }
    this.awaitingApply = still;
  }

  private finish(read: PendingRead, error: Error | null): void {
    this.pendingCount--;
    if (error === null) read.resolve();
    else read.reject(error);
  }

  /** Each tick: failed attempts start again. */
  retry(): void {
    if (this.toRetry.length === 0) return;
    for (const read of this.toRetry) this.toStart.push(read);
    this.toRetry = [];
    this.ctx.driver.schedulePump();
  }

  expire(now: number): void {
    if (this.pendingCount === 0) return;
    const expire = (read: PendingRead): boolean => {
      if (read.deadlineMs > now) return false;
      this.finish(read, read.confirmedByLeader
        ? new ChorusError('CHORUS_TIMEOUT', 'the read did not complete in time')
        : new ChorusError('CHORUS_NO_LEADER', 'no leader confirmed the read before its deadline'));
      return true;
    };
    for (const [readId, batch] of this.awaitingIndex) {
      const left = batch.filter((r) => !expire(r));
      if (left.length === 0) this.awaitingIndex.delete(readId);
      else if (left.length !== batch.length) this.awaitingIndex.set(readId, left);
    }
    this.toStart = this.toStart.filter((r) => !expire(r));
    this.awaitingApply = this.awaitingApply.filter((r) => !expire(r));
    this.toRetry = this.toRetry.filter((r) => !expire(r));
  }

  failAll(error: () => Error): void {
    const reads = [...this.toStart, ...[...this.awaitingIndex.values()].flat(), ...this.awaitingApply, ...this.toRetry];
    this.toStart = [];
    this.awaitingIndex.clear();
    this.awaitingApply = [];
    this.toRetry = [];
    this.pendingCount = 0;
    for (const read of reads) read.reject(error());
  }
}
