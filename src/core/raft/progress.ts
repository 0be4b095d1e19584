// The leader's view of one follower's replication (etcd calls it Progress).
import { assert } from './assert.ts';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

interface Inflight {
  readonly lastIndex: number;
  readonly sentTick: number;
}

export class Progress {
  // Invariant: match < next.
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** In probe state, one append is outstanding; the next waits for a reply or a heartbeat reply. */
  probeSent = false;
  /** Appends sent in replicate state and not yet acknowledged, oldest first.
   * Invariant: inflight.length <= inflightMsgsMax. */
  inflight: Inflight[] = [];
  /** The snapshot being sent in snapshot state, the next byte offset to send, the offset the
   * follower acknowledged holding, and when chunks were last sent.
   * Invariant: snapshotAckedOffset <= snapshotOffset. */
  snapshotIndex = 0;
  snapshotOffset = 0;
  snapshotAckedOffset = 0;
  snapshotSentTick = 0;
  /** When the follower last acknowledged more of the image (or the transfer started). */
  snapshotAckTick = 0;
  /** The highest leader sequence number and leader send tick this follower acknowledged in
   * this term: they confirm ReadIndex rounds and measure check-quorum and the lease. */
  ackedSeq = 0;
  /** The follower's applied index, as it last reported it. */
  applied = 0;
  ackedSentTick = Number.NEGATIVE_INFINITY;

  constructor(nextIndex: number, private readonly inflightMsgsMax: number) {
    this.next = nextIndex;
  }

  becomeProbe(): void {
    // After a snapshot, resume from the snapshot; otherwise from the last known match.
    this.next = this.state === 'snapshot' ? Math.max(this.match, this.snapshotIndex) + 1 : this.match + 1;
    this.state = 'probe';
    this.probeSent = false;
    this.inflight = [];
  }

  /** The snapshot being sent cannot be finished: probe again from the last known match. */
  abandonSnapshot(): void {
    this.state = 'probe';
    this.next = this.match + 1;
    this.probeSent = false;
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.next = this.match + 1;
    this.inflight = [];
  }

  becomeSnapshot(snapshotIndex: number, tick: number): void {
    this.state = 'snapshot';
    this.snapshotIndex = snapshotIndex;
    this.snapshotOffset = 0;
    this.snapshotAckedOffset = 0;
    this.snapshotSentTick = tick;
    this.snapshotAckTick = tick;
    this.inflight = [];
  }

  /** Whether the leader must hold further appends to this follower for now. */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflight.length >= this.inflightMsgsMax;
      case 'snapshot':
        return true;
    }
  }

  /** Records that an append ending at `lastIndex` was sent. */
  sentAppend(lastIndex: number, entryCount: number, tick: number): void {
    if (this.state === 'replicate') {
      if (entryCount > 0) {
        this.next = lastIndex + 1;
        this.inflight.push({ lastIndex, sentTick: tick });
        assert(this.inflight.length <= this.inflightMsgsMax, 'inflight window overflow');
      }
    } else if (this.state === 'probe') {
      this.probeSent = true;
    }
  }

  /** A successful append reply up to `index`; returns whether the match advanced. */
  maybeUpdate(index: number): boolean {
    let advanced = false;
    if (index > this.match) {
      this.match = index;
      advanced = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    while (this.inflight.length > 0 && this.inflight[0]!.lastIndex <= index) this.inflight.shift();
    return advanced;
  }

  /** The oldest unacknowledged append was sent at this tick (or null when none is pending). */
  oldestInflightTick(): number | null {
    return this.inflight[0]?.sentTick ?? null;
  }

  noteApplied(applied: number): void {
    if (applied > this.applied) this.applied = applied;
  }

  noteAck(seq: number, sentTick: number): void {
    if (seq > this.ackedSeq) this.ackedSeq = seq;
    if (sentTick > this.ackedSentTick) this.ackedSentTick = sentTick;
  }

  checkInvariants(): void {
    assert(this.match < this.next, `progress match ${this.match} >= next ${this.next}`);
    assert(this.snapshotAckedOffset <= this.snapshotOffset, `snapshot acknowledged to ${this.snapshotAckedOffset} past the sent ${this.snapshotOffset}`);
  }
}
