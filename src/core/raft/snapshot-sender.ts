// A leader's images for followers whose next entries are compacted away: the image it holds (or
// asks the driver for), the chunks it streams to each such follower within a window, and what
// it learns from their answers.
import type { Outbox } from './outbox.ts';
import type { Progress } from './progress.ts';
import type { Image, NodeId, SnapshotResponseMessage } from './types.ts';

/** A follower receiving an image may be silent this many election timeouts (restoring a large
 * image blocks it for seconds) before the leader stops keeping the log after the image for it. */
const IMAGE_HOLD_ELECTIONS = 20;

/** The leader's term, heartbeat sequence number and tick, which its messages carry. */
export interface LeaderStamp {
  readonly term: number;
  readonly seq: number;
  readonly tick: number;
}

export class SnapshotSender {
  /**
   * An image of the state to send to followers whose next entry was compacted away (made by the
   * driver, or received from a leader). It need not sit at the log's snapshot index: any image
   * from which the log continues will do. Invariant: null, or the log holds the entry after it
   * (image.meta.index >= log.firstIndex() - 1). Compaction drops an image the log no longer
   * continues, except one being sent, whose next entries it keeps.
   */
  private held: Image | null;
  /** A follower needs an image and none is held: the driver should make one and offer it.
   * Cleared by the offer and when this member stops leading. */
  private wanted = false;

  constructor(
    private readonly id: NodeId,
    image: Image | null,
    private readonly chunkBytes: number,
    private readonly chunksInflightMax: number,
    private readonly electionTicks: number,
    private readonly out: Outbox,
  ) {
    this.held = image;
  }

  get image(): Image | null {
    return this.held;
  }

  /** The term at `index` when the image ends there (right after an image the log may no longer
   * hold that entry, but the image says its term). */
  termAt(index: number): number | undefined {
    return this.held?.meta.index === index ? this.held.meta.term : undefined;
  }

  isWanted(): boolean {
    return this.wanted;
  }

  want(): void {
    this.wanted = true;
  }

  /** This member stopped leading: nobody waits for an image from it. */
  clearWanted(): void {
    this.wanted = false;
  }

  /** Whether the image held is at `index` or later. */
  holdsFrom(index: number): boolean {
    return this.held !== null && this.held.meta.index >= index;
  }

  /** Holds `image` (more recent than the one held) for the followers that need one. */
  offer(image: Image): void {
    this.held = image;
    this.wanted = false;
  }

  /** After compaction: an image the log no longer continues from is of no use. */
  forgetBelow(firstIndex: number): void {
    if (this.held !== null && this.held.meta.index < firstIndex - 1) this.held = null;
  }

  /** After installing a received image at `index`: an older one held is dropped (as a leader,
   * this member makes one on demand, as after a compaction). */
  forgetOlderThan(index: number): void {
    if (this.held !== null && this.held.meta.index < index) this.held = null;
  }

  /** How long a follower receiving an image may stay silent before the leader gives up on it. */
  holdTicks(): number {
    return IMAGE_HOLD_ELECTIONS * this.electionTicks;
  }

  /**
   * Where compaction may cut the log, at most `retainFrom`: the follower receiving the image (it
   * may be silent a while, restoring a large one) or that just installed it continues from the
   * entries after it. Not forever: a follower silent for holdTicks does not hold the log back
   * (memory would grow while it is down); once back it gets a new image.
   */
  retainFrom(retainFrom: number, progress: Iterable<Progress>, now: number, recentlyActive: (pr: Progress) => boolean): number {
    const image = this.held;
    if (image === null) return retainFrom;
    let from = retainFrom;
    for (const pr of progress) {
      const receiving = pr.state === 'snapshot' && pr.snapshotIndex === image.meta.index && now - pr.snapshotAckTick <= this.holdTicks();
      const installed = pr.state !== 'snapshot' && pr.match === image.meta.index && recentlyActive(pr);
      if (receiving || installed) from = Math.min(from, image.meta.index + 1);
    }
    return from;
  }

  /** Starts sending the held image to `to` (there must be one). */
  start(to: NodeId, pr: Progress, stamp: LeaderStamp): void {
    pr.becomeSnapshot(this.held!.meta.index, stamp.tick);
    this.sendChunks(to, pr, stamp);
  }

  /** Sends the image's next chunks to `to`: at least one when none is unacknowledged, and more
   * while fewer than chunksInflightMax are (only one when not `windowed`). */
  sendChunks(to: NodeId, pr: Progress, stamp: LeaderStamp, windowed = true): void {
    const image = this.held;
    if (image === null) {
      // Compaction dropped it while the follower did not answer: probe again, and once it
      // answers a new image is made.
      pr.abandonSnapshot();
      return;
    }
    if (image.meta.index !== pr.snapshotIndex) {
      // A newer image replaced the one being sent: start over with it.
      pr.becomeSnapshot(image.meta.index, stamp.tick);
    }
    const totalBytes = image.data.byteLength;
    const windowBytes = this.chunksInflightMax * this.chunkBytes;
    // An empty image still takes one (empty) chunk.
    let idle = pr.snapshotOffset <= pr.snapshotAckedOffset;
    while (idle || (windowed && pr.snapshotOffset < totalBytes && pr.snapshotOffset - pr.snapshotAckedOffset < windowBytes)) {
      idle = false;
      const offset = Math.min(pr.snapshotOffset, totalBytes);
      const end = Math.min(totalBytes, offset + this.chunkBytes);
      this.out.send({
        type: 'Snapshot', from: this.id, to, term: stamp.term, seq: stamp.seq, sentTick: stamp.tick,
        meta: image.meta, offset, totalBytes, chunk: image.data.subarray(offset, end),
      }, 'before');
      pr.sentSnapshotChunk(end);
    }
  }

  /** The transfer to `to` went unanswered for a while (checked every stall interval). */
  stalled(to: NodeId, pr: Progress, stamp: LeaderStamp, recentlyActive: boolean): void {
    pr.snapshotSentAt(stamp.tick);
    if (stamp.tick - pr.snapshotAckTick > this.holdTicks()) {
      // Silent too long: give up (compaction no longer keeps the log for it). Once it answers a
      // heartbeat it is probed, and the image restarts where it got to (it keeps what arrived)
      // or a new one is made.
      pr.abandonSnapshot();
    } else if (recentlyActive) {
      // No progress though it answers (a chunk lost): resend from what it acknowledged, one
      // chunk; its answer reopens the window. A silent follower (restoring) is left alone.
      pr.resendSnapshotFromAcked();
      this.sendChunks(to, pr, stamp, false);
    }
  }

  /** A follower's answer about an image; returns whether it installed one, so that its log now
   * continues after it (the leader then probes it). */
  answered(m: SnapshotResponseMessage, pr: Progress, stamp: LeaderStamp): boolean {
    if (pr.state !== 'snapshot' || m.snapshotIndex !== pr.snapshotIndex) {
      // About another image (an older one, or one the leader gave up on): only a completed
      // install teaches something, where the follower's log now is.
      if (m.done && m.snapshotIndex > pr.match) {
        pr.otherSnapshotInstalled(m.snapshotIndex);
        return true;
      }
      return false;
    }
    if (m.done) {
      pr.snapshotInstalled();
      return true;
    }
    if (m.reject) {
      pr.snapshotRestarted();
    } else if (!pr.snapshotAcked(m.nextOffset, stamp.tick)) {
      // A duplicate, or the follower still waits for a chunk that was lost: the stall timer
      // goes back to the acknowledged offset, once, not per answer.
      return false;
    }
    pr.snapshotSentAt(stamp.tick);
    this.sendChunks(m.from, pr, stamp);
    return false;
  }
}
