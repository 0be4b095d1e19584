// A leader's replication to its followers: one Progress per follower (probe, replicate or
// snapshot), the appends and heartbeats it sends them, what their answers teach it, the
// retransmission of what went unanswered, and the majorities over their acknowledgements.
import type { RaftLog } from './log.ts';
import type { Outbox } from './outbox.ts';
import { Progress } from './progress.ts';
import { votersQuorumValue } from './quorum.ts';
import type { LeaderStamp, SnapshotSender } from './snapshot-sender.ts';
import type { ProgressStatus } from './status.ts';
import type { AppendMessage, AppendResponseMessage, Membership, NodeId } from './types.ts';

export interface ReplicationSettings {
  readonly electionTicks: number;
  readonly appendEntriesMax: number;
  readonly appendBytesMax: number;
  readonly inflightMsgsMax: number;
}

export class Replication {
  private readonly progress = new Map<NodeId, Progress>();

  constructor(
    private readonly id: NodeId,
    private readonly log: RaftLog,
    private readonly images: SnapshotSender,
    private readonly out: Outbox,
    private readonly settings: ReplicationSettings,
  ) {}

  /** Every follower's progress (voters and learners, never the leader itself). */
  followers(): ReadonlyMap<NodeId, Progress> {
    return this.progress;
  }

  get(id: NodeId): Progress | undefined {
    return this.progress.get(id);
  }

  /** Not leading: no follower is tracked. */
  clear(): void {
    this.progress.clear();
  }

  /** Tracks `member` from the leader's next index on, unless it is tracked already. */
  track(member: NodeId): void {
    if (member === this.id || this.progress.has(member)) return;
    this.progress.set(member, new Progress(this.log.lastIndex() + 1, this.settings.inflightMsgsMax));
  }

  /** The membership changed: newcomers are tracked, those who left are not. */
  trackOnly(members: readonly NodeId[]): void {
    const wanted = new Set(members);
    for (const member of wanted) this.track(member);
    for (const id of [...this.progress.keys()]) if (!wanted.has(id)) this.progress.delete(id);
  }

  /** Whether the follower acknowledged a message sent within the last election timeout. */
  recentlyActive(pr: Progress, now: number): boolean {
    return now - pr.ackedSentTick <= this.settings.electionTicks;
  }

  // ---------------------------------------------------------------- quorums

  /** The highest index a quorum of voters holds; the leader counts its own durable index. */
  quorumMatch(voters: readonly NodeId[], selfPersisted: number): number {
    return votersQuorumValue(voters, (v) => (v === this.id ? selfPersisted : this.progress.get(v)?.match ?? 0));
  }

  /** The latest heartbeat round a quorum of voters acknowledged (the leader its own, always). */
  quorumAckedSeq(voters: readonly NodeId[]): number {
    return votersQuorumValue(voters, (v) => (v === this.id ? Number.MAX_SAFE_INTEGER : this.progress.get(v)?.ackedSeq ?? 0));
  }

  /** The latest send tick of a message a quorum of voters acknowledged (the leader: now). */
  quorumAckedSentTick(voters: readonly NodeId[], now: number): number {
    return votersQuorumValue(voters, (v) => (v === this.id ? now : this.progress.get(v)?.ackedSentTick ?? Number.NEGATIVE_INFINITY));
  }

  // ---------------------------------------------------------------- sending

  /** Sends one append (or starts an image) to `id`; returns whether something was sent. */
  sendAppend(id: NodeId, sendIfEmpty: boolean, stamp: LeaderStamp): boolean {
    const pr = this.progress.get(id);
    if (pr === undefined || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    // Right after an image the log may no longer hold the entry at its index (compaction keeps
    // only the ones after it), but the image says its term.
    const prevTerm = this.log.term(prevIndex) ?? this.images.termAt(prevIndex);
    if (prevTerm === undefined || pr.next < this.log.firstIndex()) {
      // The entries it needs are compacted away: send an image, once the driver made one (for
      // a follower that answers: an image is costly, and it may be down for good).
      if (this.images.image === null) {
        if (this.recentlyActive(pr, stamp.tick)) this.images.want();
        // Probe meanwhile: heartbeat replies retry this, and an offered image sends it.
        if (pr.state === 'replicate') pr.becomeProbe();
        return false;
      }
      this.images.start(id, pr, stamp);
      return true;
    }
    const entries = this.log.slice(pr.next, this.log.lastIndex(), this.settings.appendEntriesMax, this.settings.appendBytesMax);
    if (entries.length === 0 && !sendIfEmpty && pr.state === 'replicate') return false;
    const lastIndex = prevIndex + entries.length;
    const msg: AppendMessage = {
      type: 'Append', from: this.id, to: id, term: stamp.term, seq: stamp.seq, sentTick: stamp.tick,
      prevIndex, prevTerm, entries, commit: this.log.committed,
    };
    // Raft thesis §10.2.1: appends may leave before the leader's own write is durable.
    this.out.send(msg, 'before');
    pr.sentAppend(lastIndex, entries.length, stamp.tick);
    return true;
  }

  /** Sends `id` what it lacks while its window is open; with `commitChanged`, a follower that
   * lacks nothing still learns the new commit index. */
  sendAppendsWhileOpen(id: NodeId, pr: Progress, commitChanged: boolean, stamp: LeaderStamp): void {
    // Pipelining: in replicate state keep sending batches until the in-flight window is full.
    let sent = false;
    for (let guard = this.settings.inflightMsgsMax + 1; guard > 0 && !pr.isPaused() && pr.next <= this.log.lastIndex(); guard--) {
      if (!this.sendAppend(id, false, stamp)) break;
      sent = true;
    }
    if (!sent && commitChanged && pr.state === 'replicate' && !pr.isPaused()) {
      // Nothing new to send, but the follower should learn the new commit index now.
      this.sendAppend(id, true, stamp);
    }
  }

  broadcastAppends(commitChanged: boolean, stamp: LeaderStamp): void {
    for (const [id, pr] of this.progress) this.sendAppendsWhileOpen(id, pr, commitChanged, stamp);
  }

  /** A heartbeat to every follower, of round `stamp.seq`. It carries no position, so the commit
   * it lets a follower reach is what that follower is known to hold. */
  broadcastHeartbeat(stamp: LeaderStamp, leaderCommit: number): void {
    for (const [id, pr] of this.progress) {
      this.out.send({
        type: 'Heartbeat', from: this.id, to: id, term: stamp.term, seq: stamp.seq, sentTick: stamp.tick,
        commit: Math.min(pr.match, this.log.committed), leaderCommit,
      }, 'before');
    }
  }

  /** An image is held now: the followers whose next entry is compacted away are probed at once,
   * and get it. */
  imageOffered(stamp: LeaderStamp): void {
    for (const [id, pr] of this.progress) {
      if (pr.state !== 'snapshot' && pr.next < this.log.firstIndex()) {
        if (pr.state === 'replicate') pr.becomeProbe();
        pr.retryProbe();
        this.sendAppend(id, false, stamp);
      }
    }
  }

  /** Resends appends or image chunks that have gone unanswered for too long (lost messages). */
  retransmitStalled(stamp: LeaderStamp): void {
    const stallTicks = Math.max(2, Math.floor(this.settings.electionTicks / 2));
    for (const [id, pr] of this.progress) {
      if (pr.state === 'replicate') {
        const oldest = pr.oldestInflightTick();
        if (oldest !== null && stamp.tick - oldest >= stallTicks) {
          pr.becomeProbe();
          this.sendAppend(id, false, stamp);
        }
      } else if (pr.state === 'snapshot' && stamp.tick - pr.snapshotSentTick >= stallTicks) {
        this.images.stalled(id, pr, stamp, this.recentlyActive(pr, stamp.tick));
      } else if (pr.state === 'probe' && pr.probeSent) {
        pr.retryProbe();
        this.sendAppend(id, false, stamp);
      }
    }
  }

  // ---------------------------------------------------------------- answers

  /** A refused append: probe again from where the follower's hint says the logs agree. */
  appendRejected(m: AppendResponseMessage, pr: Progress, stamp: LeaderStamp): void {
    // Stale rejections: of an append already superseded (replicate) or not the probe in flight.
    if (pr.state === 'snapshot') return;
    if (pr.state === 'replicate' && m.index <= pr.match) return;
    if (pr.state === 'probe' && m.index !== pr.next - 1) return;
    if (m.conflictTerm === 0 && m.conflictIndex <= pr.match) {
      // The follower's log ends before what it acknowledged: it lost durable entries (a disk
      // that lied about fsync, files cut by hand). Raft assumes this never happens; repair it
      // anyway by forgetting the match, rather than probing the same index forever.
      pr.lostEntriesAfter(m.conflictIndex - 1);
    }
    // Fast back-off (Raft §5.3): past the leader's last entry of the follower's conflicting
    // term, or to where that term starts in the follower's log when the leader has none of it.
    let next = m.conflictIndex;
    if (m.conflictTerm > 0) {
      const lastOfTerm = this.lastIndexOfTerm(m.conflictTerm, Math.min(m.index, this.log.lastIndex()));
      if (lastOfTerm !== null) next = lastOfTerm + 1;
    }
    pr.probeFrom(Math.max(Math.min(next, m.index), pr.match + 1));
    this.sendAppend(m.from, false, stamp);
  }

  /** An accepted append up to `m.index`; returns whether it proved a new position (the match
   * advanced, or a probe was answered at the match), so that the commit index may move. */
  appendAccepted(m: AppendResponseMessage, pr: Progress): boolean {
    const advanced = pr.maybeUpdate(m.index);
    // A probe answered at exactly the known match (after a snapshot, say) also proves the
    // position: resume pipelining rather than wait for the next heartbeat.
    if (!advanced && !(pr.state === 'probe' && m.index === pr.match)) return false;
    if (pr.state === 'probe') pr.becomeReplicate();
    else if (pr.state === 'snapshot' && pr.match >= pr.snapshotIndex) {
      pr.becomeProbe();
      pr.becomeReplicate();
    }
    return true;
  }

  /** A heartbeat answer: a follower being probed and still behind gets the next probe now. */
  heartbeatAnswered(id: NodeId, pr: Progress, stamp: LeaderStamp): void {
    if (pr.match < this.log.lastIndex() && pr.state === 'probe') {
      pr.retryProbe();
      this.sendAppend(id, false, stamp);
    }
  }

  private lastIndexOfTerm(term: number, from: number): number | null {
    for (let index = from; index >= this.log.firstIndex(); index--) {
      const t = this.log.term(index);
      if (t === term) return index;
      if (t !== undefined && t < term) return null;
    }
    return null;
  }

  // ---------------------------------------------------------------- status

  statuses(config: Membership, now: number): Map<NodeId, ProgressStatus> {
    const statuses = new Map<NodeId, ProgressStatus>();
    for (const [id, pr] of this.progress) {
      statuses.set(id, {
        match: pr.match,
        next: pr.next,
        state: pr.state,
        voter: config.voters.includes(id),
        applied: pr.applied,
        ackAgeTicks: Number.isFinite(pr.ackedSentTick) ? now - pr.ackedSentTick : null,
      });
    }
    return statuses;
  }
}
