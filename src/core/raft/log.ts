// The in-memory Raft log of one member: a snapshot base and entries. The driver makes it
// durable; this class only tracks which part the driver has confirmed durable. Entries may be
// retained below the snapshot's index (wal_keep: lagging followers catch up from the log
// rather than needing the snapshot).
import { assert } from './assert.ts';
import type { Entry, Membership, SnapshotMeta } from './types.ts';

interface ConfigAt {
  readonly index: number;
  readonly config: Membership;
}

/** The log as the rest of the member sees it: positions, terms, entries and configurations,
 * and no way to change them (only the core appends, commits, compacts and installs). */
export interface RaftLogView {
  /** The highest index known to be committed. */
  readonly committed: number;
  /** The highest index the driver reported applied. */
  readonly applied: number;
  /** The highest index the driver reported durable here. */
  readonly persisted: number;
  snapshotIndex(): number;
  snapshotTerm(): number;
  firstIndex(): number;
  lastIndex(): number;
  lastTerm(): number;
  term(index: number): number | undefined;
  entry(index: number): Entry | undefined;
  matchTerm(index: number, term: number): boolean;
  config(): Membership;
  configIndex(): number;
  configAt(index: number): Membership;
}

export class RaftLog implements RaftLogView {
  // Invariant: entries[i].index === baseIndex + 1 + i, baseIndex <= snapshotIndex, and the
  // entries reach at least the snapshot's index when any remain below it.
  private entries: Entry[] = [];
  private baseIndex = 0;
  private snapshotIndexValue = 0;
  private snapshotTermValue = 0;
  /** Membership as of the snapshot (or the bootstrap membership before any snapshot). */
  private baseConfig: ConfigAt;
  /** Config entries still in `entries`, in index order; the last one is in force. */
  private configEntries: ConfigAt[] = [];

  // Invariant: snapshotIndex <= applied <= committed <= lastIndex.
  committed = 0;
  applied = 0;
  // Invariant: persisted <= lastIndex. Entries above `persisted` are not yet known durable here.
  persisted = 0;
  // Invariant: persisted < unstableFrom <= lastIndex + 1. Entries from `unstableFrom` on must be
  // handed to the driver in the next ready (they are new, or overwrote what was handed before).
  unstableFrom = 1;

  constructor(bootConfig: Membership, snapshot: SnapshotMeta | null, entries: readonly Entry[]) {
    this.baseConfig = { index: 0, config: bootConfig };
    if (snapshot !== null) {
      this.snapshotIndexValue = snapshot.index;
      this.snapshotTermValue = snapshot.term;
      this.baseConfig = { index: snapshot.index, config: snapshot.config };
      this.committed = snapshot.index;
      this.applied = snapshot.index;
    }
    this.baseIndex = this.snapshotIndexValue;
    // Entries retained below the snapshot count only when they run contiguously into it and
    // agree with it at its index.
    const first = entries[0];
    const atSnapshot = entries.find((e) => e.index === this.snapshotIndexValue);
    if (first !== undefined && first.index <= this.snapshotIndexValue && atSnapshot?.term === this.snapshotTermValue) {
      this.baseIndex = first.index - 1;
    }
    for (const entry of entries) {
      if (entry.index <= this.baseIndex) continue;
      assert(entry.index === this.baseIndex + this.entries.length + 1, `boot entries not contiguous at ${entry.index}`);
      this.pushEntry(entry);
    }
    assert(this.baseIndex === this.snapshotIndexValue || this.baseIndex + this.entries.length >= this.snapshotIndexValue, 'retained entries stop short of the snapshot');
    this.persisted = this.lastIndex();
    this.unstableFrom = this.lastIndex() + 1;
  }

  snapshotIndex(): number {
    return this.snapshotIndexValue;
  }

  snapshotTerm(): number {
    return this.snapshotTermValue;
  }

  /** The first index whose entry this log holds (it may be at or below the snapshot's index). */
  firstIndex(): number {
    return this.baseIndex + 1;
  }

  lastIndex(): number {
    return Math.max(this.snapshotIndexValue, this.baseIndex + this.entries.length);
  }

  lastTerm(): number {
    const last = this.entries[this.entries.length - 1];
    return last === undefined ? this.snapshotTermValue : last.term;
  }

  /** The term at `index`, or undefined when the index is compacted away or beyond the log. */
  term(index: number): number | undefined {
    if (index === this.snapshotIndexValue) return this.snapshotTermValue;
    if (index <= this.baseIndex || index > this.lastIndex()) return index === 0 ? 0 : undefined;
    return this.entries[index - this.baseIndex - 1]?.term;
  }

  entry(index: number): Entry | undefined {
    if (index <= this.baseIndex) return undefined;
    return this.entries[index - this.baseIndex - 1];
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: a candidate's log is at least as up-to-date as ours. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /** Entries in [lo, hi], at most `countMax` of them and about `bytesMax` of payload (at least one). */
  slice(lo: number, hi: number, countMax: number, bytesMax: number): Entry[] {
    assert(lo > this.baseIndex, `slice below the first entry: ${lo} <= ${this.baseIndex}`);
    const out: Entry[] = [];
    let bytes = 0;
    for (let index = lo; index <= hi && index <= this.lastIndex() && out.length < countMax; index++) {
      const entry = this.entries[index - this.baseIndex - 1];
      assert(entry !== undefined, `missing entry ${index}`);
      const size = entry.data?.byteLength ?? 0;
      if (out.length > 0 && bytes + size > bytesMax) break;
      bytes += size;
      out.push(entry);
    }
    return out;
  }

  /** Appends a new entry at the end (leader path). */
  appendNew(entry: Entry): void {
    assert(entry.index === this.lastIndex() + 1, `appendNew at ${entry.index}, last ${this.lastIndex()}`);
    this.pushEntry(entry);
  }

  /**
   * Follower path: merges entries that follow a matched prevIndex. Entries already present with
   * the same term are skipped; the first conflicting one truncates the log from there (Raft §5.3).
   * Returns the index of the first truncated entry, or null when nothing was truncated.
   */
  merge(entries: readonly Entry[]): number | null {
    let truncatedFrom: number | null = null;
    for (const entry of entries) {
      const existing = this.term(entry.index);
      if (existing === entry.term && entry.index <= this.lastIndex()) continue;
      if (entry.index <= this.snapshotIndexValue) continue;
      if (entry.index <= this.lastIndex()) {
        // Raft §5.3 / Figure 2: never truncate committed entries; the leader would be broken.
        assert(entry.index > this.committed, `truncating committed entry ${entry.index} (commit ${this.committed})`);
        this.truncateFrom(entry.index);
        truncatedFrom ??= entry.index;
      }
      assert(entry.index === this.lastIndex() + 1, `merge gap at ${entry.index}, last ${this.lastIndex()}`);
      this.pushEntry(entry);
    }
    return truncatedFrom;
  }

  /**
   * A follower's AppendEntries rules 2-5 (Raft Figure 2) for entries that follow `prevIndex`:
   * unless the log holds `prevTerm` there, nothing changes and the answer is null. Otherwise the
   * entries are merged (the first conflicting one truncates the log, §5.3) and the commit index
   * moves to min(leaderCommit, the index of the append's last entry), never further: entries
   * beyond it may be a stale tail of another leader, which this append did not prove. Returns
   * that last index.
   */
  maybeAppend(prevIndex: number, prevTerm: number, entries: readonly Entry[], leaderCommit: number): number | null {
    if (!this.matchTerm(prevIndex, prevTerm)) return null;
    this.merge(entries);
    const lastNew = prevIndex + entries.length;
    this.commitTo(Math.min(leaderCommit, lastNew));
    return lastNew;
  }

  /**
   * Where a refused append's prevIndex went wrong, for the leader to skip a whole term per round
   * trip (Raft §5.3, "optimization"): the term of the entry there and the first index of its run
   * above the commit index; or term 0 and the index after the log when it is shorter.
   */
  conflictHint(prevIndex: number): { conflictTerm: number; conflictIndex: number } {
    if (prevIndex > this.lastIndex()) return { conflictTerm: 0, conflictIndex: this.lastIndex() + 1 };
    const conflictTerm = this.term(prevIndex) ?? 0;
    let conflictIndex = prevIndex;
    while (conflictIndex - 1 > this.committed && this.term(conflictIndex - 1) === conflictTerm) conflictIndex--;
    return { conflictTerm, conflictIndex };
  }

  private pushEntry(entry: Entry): void {
    this.entries.push(entry);
    if (entry.type === 'config') {
      assert(entry.config !== undefined, `config entry ${entry.index} without config`);
      this.configEntries.push({ index: entry.index, config: entry.config });
    }
  }

  private truncateFrom(index: number): void {
    this.entries.length = index - this.baseIndex - 1;
    while (this.configEntries.length > 0 && this.configEntries[this.configEntries.length - 1]!.index >= index) {
      this.configEntries.pop();
    }
    this.unstableFrom = Math.min(this.unstableFrom, index);
    this.persisted = Math.min(this.persisted, index - 1);
  }

  /** The membership in force: the last config entry in the log, appended or not (single-server
   * changes take effect on append, Raft thesis §4.1). */
  config(): Membership {
    return this.configAt(this.lastIndex());
  }

  configIndex(): number {
    const last = this.configEntries[this.configEntries.length - 1];
    return last === undefined ? this.baseConfig.index : last.index;
  }

  configAt(index: number): Membership {
    for (let i = this.configEntries.length - 1; i >= 0; i--) {
      const candidate = this.configEntries[i]!;
      if (candidate.index <= index) return candidate.config;
    }
    return this.baseConfig.config;
  }

  /** The driver applied the entries up to `index` (handed out by nextToApply). */
  appliedTo(index: number): void {
    if (index > this.applied) this.applied = index;
  }

  commitTo(index: number): boolean {
    if (index <= this.committed) return false;
    assert(index <= this.lastIndex(), `commit ${index} beyond last index ${this.lastIndex()}`);
    this.committed = index;
    return true;
  }

  /** Entries that are committed and durable here but not yet handed out for applying. */
  nextToApply(fromIndex: number, countMax: number): Entry[] {
    const hi = Math.min(this.committed, this.persisted);
    if (fromIndex > hi) return [];
    return this.slice(fromIndex, Math.min(hi, fromIndex + countMax - 1), countMax, Number.MAX_SAFE_INTEGER);
  }

  /** Entries that must be written in the next ready. */
  unstableEntries(): Entry[] {
    if (this.unstableFrom > this.lastIndex()) return [];
    return this.entries.slice(this.unstableFrom - this.baseIndex - 1);
  }

  /** The driver took the unstable entries up to `lastIndex` into a ready. */
  handedOut(lastIndex: number): void {
    this.unstableFrom = Math.max(this.unstableFrom, lastIndex + 1);
  }

  /** The driver made a ready's entries durable, up to `lastIndex`, unless overwritten since. */
  persistedTo(lastIndex: number, lastTerm: number): void {
    // Only the prefix that was not overwritten after the ready was handed out counts.
    const upTo = Math.min(lastIndex, this.unstableFrom - 1);
    if (upTo > this.persisted && (upTo < lastIndex || this.matchTerm(lastIndex, lastTerm))) {
      this.persisted = upTo;
    }
  }

  /**
   * The application saved its state up to `meta.index` (<= applied) as a snapshot; entries from
   * `retainFromIndex` on stay in the log (retainFromIndex <= meta.index + 1), the rest go.
   */
  compact(meta: SnapshotMeta, retainFromIndex = meta.index + 1): void {
    assert(meta.index <= this.applied, `compact ${meta.index} beyond applied ${this.applied}`);
    if (meta.index < this.snapshotIndexValue) return;
    assert(this.term(meta.index) === meta.term, `compact term mismatch at ${meta.index}`);
    const keepFrom = Math.min(meta.index + 1, Math.max(retainFromIndex, this.baseIndex + 1));
    this.entries = this.entries.slice(keepFrom - this.baseIndex - 1);
    this.baseIndex = keepFrom - 1;
    this.snapshotIndexValue = meta.index;
    this.snapshotTermValue = meta.term;
    this.baseConfig = { index: meta.index, config: meta.config };
    this.configEntries = this.configEntries.filter((c) => c.index > meta.index);
  }

  /**
   * Installs a snapshot received from the leader (Raft Figure 13): when the log holds an entry
   * at the snapshot's index with the snapshot's term, the entries after it are kept; otherwise
   * the whole log is discarded. Returns whether the log after the snapshot was kept.
   */
  installSnapshot(meta: SnapshotMeta): boolean {
    const keep = this.matchTerm(meta.index, meta.term) && meta.index <= this.lastIndex();
    if (keep) {
      this.entries = this.entries.slice(meta.index - this.baseIndex);
      this.configEntries = this.configEntries.filter((c) => c.index > meta.index);
      this.unstableFrom = Math.max(this.unstableFrom, meta.index + 1);
    } else {
      this.entries = [];
      this.configEntries = [];
      this.persisted = Math.min(this.persisted, meta.index);
      this.unstableFrom = meta.index + 1;
    }
    this.baseIndex = meta.index;
    this.snapshotIndexValue = meta.index;
    this.snapshotTermValue = meta.term;
    this.baseConfig = { index: meta.index, config: meta.config };
    this.committed = Math.max(this.committed, meta.index);
    this.applied = Math.max(this.applied, meta.index);
    return keep;
  }

  /** A snapshot install was made durable by the driver. */
  snapshotPersisted(index: number): void {
    if (index === this.snapshotIndexValue && this.persisted < index) this.persisted = index;
  }

  checkInvariants(): void {
    assert(this.snapshotIndexValue <= this.applied, `snapshot ${this.snapshotIndexValue} > applied ${this.applied}`);
    assert(this.applied <= this.committed, `applied ${this.applied} > committed ${this.committed}`);
    assert(this.committed <= this.lastIndex(), `committed ${this.committed} > last ${this.lastIndex()}`);
    assert(this.persisted <= this.lastIndex(), `persisted ${this.persisted} > last ${this.lastIndex()}`);
    assert(this.unstableFrom > this.persisted, `unstableFrom ${this.unstableFrom} <= persisted ${this.persisted}`);
    assert(this.baseIndex <= this.snapshotIndexValue, `first entry ${this.baseIndex + 1} past the snapshot ${this.snapshotIndexValue}`);
    const first = this.entries[0];
    if (first !== undefined) {
      assert(first.index === this.baseIndex + 1, `first entry ${first.index}, expected ${this.baseIndex + 1}`);
      assert(this.baseIndex + this.entries.length >= this.snapshotIndexValue, 'retained entries stop short of the snapshot');
    }
  }
}
