// The leader's view of one follower's replication (etcd calls it Progress). Its fields are read
// from outside; they change only through the methods below, each named for what happened.
import { assert } from './assert.ts';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

interface Inflight {
  readonly lastIndex: number;
  readonly sentTick: number;
}

export class Progress {
  // Invariant: match < next.
  private matchIndex = 0;
  private nextIndex: number;
  private current: ProgressState = 'probe';
  /** In probe state, one append is outstanding; the next waits for a reply or a heartbeat reply. */
  private probeOutstanding = false;
  /** Appends sent in replicate state and not yet acknowledged, oldest first.
   * Invariant: inflight.length <= inflightMsgsMax. */
  private inflight: Inflight[] = [];
  // The snapshot being sent in snapshot state, the next byte offset to send, the offset the
  // follower acknowledged holding, when chunks were last sent, and when the follower last
  // acknowledged more of the image (or the transfer started).
  // Invariant: imageAckedOffset <= imageOffset.
  private imageIndex = 0;
  private imageOffset = 0;
  private imageAckedOffset = 0;
  private imageSentTick = 0;
  private imageAckTick = 0;
  // The highest leader sequence number and leader send tick this follower acknowledged in this
  // term: they confirm ReadIndex rounds and measure check-quorum and the lease.
  private ackedSeqValue = 0;
  private ackedSentTickValue = Number.NEGATIVE_INFINITY;
  /** The follower's applied index, as it last reported it. */
  private appliedValue = 0;

  constructor(nextIndex: number, private readonly inflightMsgsMax: number) {
    this.nextIndex = nextIndex;
  }

  /** The highest index known to match the leader's log. */
  get match(): number {
    return this.matchIndex;
  }

  /** The next index to send. */
  get next(): number {
    return this.nextIndex;
  }

  get state(): ProgressState {
    return this.current;
  }

  /** In probe state: an append is outstanding. */
  get probeSent(): boolean {
    return this.probeOutstanding;
  }

  /** In snapshot state: the index of the image being sent. */
  get snapshotIndex(): number {
    return this.imageIndex;
  }

  /** The next byte of the image to send. */
  get snapshotOffset(): number {
    return this.imageOffset;
  }

  /** The bytes of the image the follower acknowledged holding. */
  get snapshotAckedOffset(): number {
    return this.imageAckedOffset;
  }

  /** When chunks of the image were last sent. */
  get snapshotSentTick(): number {
    return this.imageSentTick;
  }

  /** When the follower last acknowledged more of the image (or the transfer started). */
  get snapshotAckTick(): number {
    return this.imageAckTick;
  }

  get ackedSeq(): number {
    return this.ackedSeqValue;
  }

  get ackedSentTick(): number {
    return this.ackedSentTickValue;
  }

  get applied(): number {
    return this.appliedValue;
  }

  // ---------------------------------------------------------------- state changes

  becomeProbe(): void {
    // After a snapshot, resume from the snapshot; otherwise from the last known match.
    this.nextIndex = this.current === 'snapshot' ? Math.max(this.matchIndex, this.imageIndex) + 1 : this.matchIndex + 1;
    this.current = 'probe';
    this.probeOutstanding = false;
    this.inflight = [];
  }

  /** A rejected append: probe again from `next` (the follower's hint, never below match + 1). */
  probeFrom(next: number): void {
    this.becomeProbe();
    this.nextIndex = next;
  }

  /** The snapshot being sent cannot be finished: probe again from the last known match. */
  abandonSnapshot(): void {
    this.current = 'probe';
    this.nextIndex = this.matchIndex + 1;
    this.probeOutstanding = false;
  }

  becomeReplicate(): void {
    this.current = 'replicate';
    this.nextIndex = this.matchIndex + 1;
    this.inflight = [];
  }

  becomeSnapshot(snapshotIndex: number, tick: number): void {
    this.current = 'snapshot';
    this.imageIndex = snapshotIndex;
    this.imageOffset = 0;
    this.imageAckedOffset = 0;
    this.imageSentTick = tick;
    this.imageAckTick = tick;
    this.inflight = [];
  }

  /** Whether the leader must hold further appends to this follower for now. */
  isPaused(): boolean {
    switch (this.current) {
      case 'probe':
        return this.probeOutstanding;
      case 'replicate':
        return this.inflight.length >= this.inflightMsgsMax;
      case 'snapshot':
        return true;
    }
  }

  /** In probe state, the next append may leave without waiting for the outstanding one. */
  retryProbe(): void {
    this.probeOutstanding = false;
  }

  // ---------------------------------------------------------------- appends

  /** Records that an append ending at `lastIndex` was sent. */
  sentAppend(lastIndex: number, entryCount: number, tick: number): void {
    if (this.current === 'replicate') {
      if (entryCount > 0) {
        this.nextIndex = lastIndex + 1;
        this.inflight.push({ lastIndex, sentTick: tick });
        assert(this.inflight.length <= this.inflightMsgsMax, 'inflight window overflow');
      }
    } else if (this.current === 'probe') {
      this.probeOutstanding = true;
    }
  }

  /** A successful append reply up to `index`; returns whether the match advanced. */
  maybeUpdate(index: number): boolean {
    let advanced = false;
    if (index > this.matchIndex) {
      this.matchIndex = index;
      advanced = true;
      this.probeOutstanding = false;
    }
    this.nextIndex = Math.max(this.nextIndex, index + 1);
    while (this.inflight.length > 0 && this.inflight[0]!.lastIndex <= index) this.inflight.shift();
    return advanced;
  }

  /** The follower's log ends at `lastIndex`, before what it acknowledged: it lost durable
   * entries. The match goes back to what it still holds. */
  lostEntriesAfter(lastIndex: number): void {
    this.matchIndex = lastIndex;
  }

  /** The oldest unacknowledged append was sent at this tick (or null when none is pending). */
  oldestInflightTick(): number | null {
    return this.inflight[0]?.sentTick ?? null;
  }

  // ---------------------------------------------------------------- images

  /** A chunk ending at byte `end` of the image was sent. */
  sentSnapshotChunk(end: number): void {
    this.imageOffset = end;
  }

  /** Chunks of the image were (re)sent, or a stall was noticed, at `tick`. */
  snapshotSentAt(tick: number): void {
    this.imageSentTick = tick;
  }

  /** The follower acknowledged the image up to `nextOffset`; returns whether that is news. */
  snapshotAcked(nextOffset: number, tick: number): boolean {
    if (nextOffset <= this.imageAckedOffset) return false;
    this.imageAckedOffset = nextOffset;
    this.imageOffset = Math.max(this.imageOffset, nextOffset);
    this.imageAckTick = tick;
    return true;
  }

  /** The follower refused the chunk (it lost what it had): the image starts over. */
  snapshotRestarted(): void {
    this.imageOffset = 0;
    this.imageAckedOffset = 0;
  }

  /** The transfer stalled: send again from what the follower acknowledged. */
  resendSnapshotFromAcked(): void {
    this.imageOffset = this.imageAckedOffset;
  }

  /** The follower installed the image being sent: probe from after it. */
  snapshotInstalled(): void {
    if (this.imageIndex > this.matchIndex) this.matchIndex = this.imageIndex;
    this.becomeProbe();
  }

  /** The follower installed another image (an older one, or one the leader gave up on), at
   * `index` above the match: its log continues from there. */
  otherSnapshotInstalled(index: number): void {
    this.matchIndex = index;
    if (this.current === 'snapshot') this.abandonSnapshot();
    else this.becomeProbe();
  }

  // ---------------------------------------------------------------- acknowledgements

  noteApplied(applied: number): void {
    if (applied > this.appliedValue) this.appliedValue = applied;
  }

  noteAck(seq: number, sentTick: number): void {
    if (seq > this.ackedSeqValue) this.ackedSeqValue = seq;
    if (sentTick > this.ackedSentTickValue) this.ackedSentTickValue = sentTick;
  }

  checkInvariants(): void {
    assert(this.matchIndex < this.nextIndex, `progress match ${this.matchIndex} >= next ${this.nextIndex}`);
    assert(this.imageAckedOffset <= this.imageOffset, `snapshot acknowledged to ${this.imageAckedOffset} past the sent ${this.imageOffset}`);
  }
}
