// Promises in time, all measured in this member's own ticks from when acknowledged messages
// were sent: check-quorum (a leader that has not heard from a quorum steps down), the voters'
// lease (a voter that heard from a leader recently helps elect no other, Raft thesis §4.2.3),
// and what a leader may build on them: lease reads and an attested commit index.

export interface LeaseSettings {
  readonly checkQuorum: boolean;
  /** 0: no lease reads. */
  readonly leaseTicks: number;
  readonly electionTicks: number;
}

/** A leader's standing now. `quorumAckedSentTick` is asked only when needed (it sorts). */
export interface Leadership {
  readonly now: number;
  readonly leading: boolean;
  /** A transfer is under way. */
  readonly transferring: boolean;
  /** An entry of this term committed, so the leader knows the commit index (Raft §8). */
  readonly termCommitted: boolean;
  readonly quorumAckedSentTick: () => number;
}

export class Lease {
  private becameLeaderTick = 0;
  /** Lease reads need acknowledgements of heartbeats sent at or after this tick (raised when a
   * transfer is aborted, since the transferee may have been elected meanwhile). */
  private floorTick = 0;
  /** A TimeoutNow left in this term: the lease and commit attestation are off until the next. */
  private timeoutNowSent = false;
  /** When this member last heard from a leader of its term (or started). */
  private lastLeaderContactTick = 0;

  constructor(private readonly settings: LeaseSettings) {}

  leaderElected(now: number): void {
    this.becameLeaderTick = now;
    this.floorTick = now;
    this.timeoutNowSent = false;
  }

  /** The transfer did not complete: the transferee may have been elected meanwhile, so the lease
   * counts only acknowledgements of messages sent from now on. */
  transferAborted(now: number): void {
    this.floorTick = now;
  }

  /** The target may win an election with a TimeoutNow even after the transfer is abandoned (it
   * can arrive late, and voters ignore their lease for it): never trust the lease again in this
   * term. */
  timeoutNowLeft(): void {
    this.timeoutNowSent = true;
  }

  leaderHeard(now: number): void {
    this.lastLeaderContactTick = now;
  }

  /** Check-quorum: a quorum acknowledged nothing sent within the window. With lease reads on,
   * the window is the lease itself, so that the lease never outlives the leadership. */
  quorumLost(now: number, quorumAckedSentTick: number): boolean {
    const windowTicks = this.settings.leaseTicks > 0 ? this.settings.leaseTicks : this.settings.electionTicks;
    const since = Math.max(this.becameLeaderTick, quorumAckedSentTick);
    return now - since > windowTicks;
  }

  /** Whether the leader may answer reads from its lease. Leadership is the lease: check-quorum
   * steps the leader down as soon as a quorum has not acknowledged a message sent within
   * leaseTicks. The floor covers aborted transfers. */
  valid(l: Leadership): boolean {
    if (this.settings.leaseTicks === 0 || !l.leading || l.transferring || this.timeoutNowSent) return false;
    if (!l.termCommitted) return false;
    return l.quorumAckedSentTick() >= this.floorTick;
  }

  /**
   * Whether this leader can vouch that its commit index is the cluster's latest: it committed an
   * entry of its term (so it knows the commit index, §8) and a quorum acknowledged messages it
   * sent within the lease window (leaseTicks, or half an election timeout without lease reads):
   * those voters refuse to elect anyone else for an election timeout, so no other leader can
   * have committed more. Without check-quorum voters give no such promise, and it never vouches.
   */
  commitAttested(l: Leadership): boolean {
    if (!this.settings.checkQuorum || !l.leading || l.transferring || this.timeoutNowSent) return false;
    if (!l.termCommitted) return false;
    const windowTicks = this.settings.leaseTicks > 0 ? this.settings.leaseTicks : Math.floor(this.settings.electionTicks / 2);
    return l.quorumAckedSentTick() >= Math.max(this.floorTick, l.now - windowTicks);
  }

  /** Whether this member heard from a live leader recently (or leads): then it refuses to help
   * elect another, unless the leader itself asked for a transfer. */
  bindsVoter(now: number, leading: boolean): boolean {
    if (!this.settings.checkQuorum) return false;
    if (leading) return true;
    return now - this.lastLeaderContactTick < this.settings.electionTicks;
  }
}
