// Evidence of freshness for bounded-staleness reads (?max_staleness_ms=M).
//
// A leader puts its commit index in a heartbeat (`leaderCommit`) only when it can vouch that no
// other leader has committed more (Raft.commitAttested: a quorum acknowledged it within the
// lease window, so no other leader can exist). Such a heartbeat that left the leader at time s
// therefore proves: every write acknowledged before s is at an index <= leaderCommit. A member
// that has applied leaderCommit holds every write acknowledged before s. It cannot read s (the
// leader's clock), only when the heartbeat arrived, a; it assumes s >= a - heartbeatDelayMaxMs.
// Its staleness bound is then now - a + heartbeatDelayMaxMs, taken over the latest heartbeat
// whose leaderCommit it has applied. What the bound rests on is written up in
// docs/replication.md.

export interface FreshnessRecord {
  readonly leaderCommit: number;
  /** Arrival time on the member's monotonic clock. */
  readonly arrivedMs: number;
}

export class FreshnessTracker {
  // A ring of the latest records, oldest first. Invariant: at most `capacity` records, with
  // non-decreasing arrival times.
  private readonly records: FreshnessRecord[] = [];

  /** Keeps the last `capacity` heartbeats: with one heartbeat a tick, a few seconds of history,
   * beyond which a member is too far behind for any useful bound anyway. */
  constructor(readonly capacity = 64) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError('capacity must be a positive integer');
  }

  /** Notes an attested heartbeat (leaderCommit >= 0, of the member's current term). */
  note(leaderCommit: number, arrivedMs: number): void {
    if (leaderCommit < 0) return;
    this.records.push({ leaderCommit, arrivedMs });
    if (this.records.length > this.capacity) this.records.shift();
  }

  get size(): number {
    return this.records.length;
  }

  /** The latest attested heartbeat, or null. */
  latest(): FreshnessRecord | null {
    return this.records[this.records.length - 1] ?? null;
  }

  /**
   * How stale, in ms, the state of a member that has applied `appliedIndex` may be at `nowMs`:
   * now - arrival of the latest heartbeat whose leaderCommit it has applied, plus the assumed
   * largest delay. +Infinity when no record proves anything.
   */
  boundMs(appliedIndex: number, nowMs: number, delayMaxMs: number): number {
    for (let i = this.records.length - 1; i >= 0; i--) {
      const r = this.records[i]!;
      if (r.leaderCommit <= appliedIndex) return Math.max(0, nowMs - r.arrivedMs) + delayMaxMs;
    }
    return Number.POSITIVE_INFINITY;
  }
}
