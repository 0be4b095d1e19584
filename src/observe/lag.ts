// Replication lag in entries, bytes and seconds. The leader notes when it appended each entry
// and how large it was; a member's lag is then measured against what it has applied (or made
// durable): entries and bytes still to go, and how long ago the oldest entry it lacks was
// appended. Idle clusters show no lag in seconds, however long ago the last write was, and a
// burst shows up in bytes before it shows in seconds: the two are read together.

export interface Lag {
  readonly entries: number;
  readonly bytes: number;
  /** Seconds since the leader appended the oldest entry the member has not applied yet. */
  readonly seconds: number;
}

export class LagTracker {
  // A ring of recent entries: index -> append time and the cumulative bytes through it.
  // Invariant: entries in the ring are contiguous, ending at `lastIndex`.
  private readonly appendedAtMs: Float64Array;
  private readonly cumulativeBytes: Float64Array;
  private readonly entryBytes: Float64Array;
  private lastIndex = 0;
  private firstIndex = 1;
  private totalBytes = 0;

  /** Keeps the last `capacity` entries; older lag is estimated from the oldest one kept. */
  constructor(private readonly capacity = 65_536) {
    this.appendedAtMs = new Float64Array(capacity);
    this.cumulativeBytes = new Float64Array(capacity);
    this.entryBytes = new Float64Array(capacity);
  }

  noteAppended(index: number, bytes: number, timeMs: number): void {
    if (index <= this.lastIndex) {
      // A new leader overwrote a suffix, or entries were re-noted: restart from here.
      this.lastIndex = index - 1;
      if (this.firstIndex > index) this.firstIndex = index;
      this.totalBytes = this.lastIndex >= this.firstIndex ? this.cumulativeBytes[this.slot(this.lastIndex)]! : 0;
    } else if (index !== this.lastIndex + 1) {
      // A gap (we started mid-log, or after a snapshot): start a new window.
      this.firstIndex = index;
      this.totalBytes = 0;
    }
    this.totalBytes += bytes;
    this.lastIndex = index;
    this.appendedAtMs[this.slot(index)] = timeMs;
    this.cumulativeBytes[this.slot(index)] = this.totalBytes;
    this.entryBytes[this.slot(index)] = bytes;
    if (this.lastIndex - this.firstIndex + 1 > this.capacity) this.firstIndex = this.lastIndex - this.capacity + 1;
  }

  /** Lag of a member that has reached `memberIndex`, against `leaderIndex`. */
  lag(memberIndex: number, leaderIndex: number, nowMs: number): Lag {
    const entries = Math.max(0, leaderIndex - memberIndex);
    if (entries === 0 || this.lastIndex < this.firstIndex) return { entries, bytes: 0, seconds: 0 };
    const oldestMissing = Math.max(memberIndex + 1, this.firstIndex);
    if (oldestMissing > this.lastIndex) return { entries, bytes: 0, seconds: 0 };
    const through = Math.min(leaderIndex, this.lastIndex);
    const before = this.cumulativeBytes[this.slot(oldestMissing)]! - this.entryBytes[this.slot(oldestMissing)]!;
    const bytes = Math.max(0, this.cumulativeBytes[this.slot(through)]! - before);
    const seconds = Math.max(0, (nowMs - this.appendedAtMs[this.slot(oldestMissing)]!) / 1000);
    return { entries, bytes, seconds };
  }

  private slot(index: number): number {
    return index % this.capacity;
  }
}

/**
 * Whether a member is making progress: it is caught up, or its index moved within `stallMs`.
 */
export class ProgressWatch {
  private readonly last = new Map<string, { index: number; sinceMs: number }>();

  observe(member: string, index: number, caughtUp: boolean, nowMs: number, stallMs: number): boolean {
    const prev = this.last.get(member);
    if (prev === undefined || index !== prev.index) {
      this.last.set(member, { index, sinceMs: nowMs });
      return true;
    }
    return caughtUp || nowMs - prev.sinceMs < stallMs;
  }

  forget(member: string): void {
    this.last.delete(member);
  }
}
