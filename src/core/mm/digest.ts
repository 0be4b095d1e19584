// Range hashes for anti-entropy. The key space is cut into 2^leafBits leaves by a hash of the
// key; a leaf's hash is the XOR of its records' hashes, kept up to date on every change, so a
// range's hash is the XOR of its leaves. Two members compare a few range hashes, descend into
// the ranges that differ (a Merkle tree whose levels are computed on demand), then compare
// per-key hashes and exchange only the records that differ.
import { hashText, xorHash, ZERO_HASH, type Hash64 } from './codec.ts';
import { MmError } from './errors.ts';

/** Leaves [start, end) of the hash space. */
export interface KeyRange {
  readonly start: number;
  readonly end: number;
}

export interface RangeDigest {
  readonly range: KeyRange;
  /** 16 hex digits; equal ranges have equal hashes. */
  readonly hash: string;
  readonly keys: number;
}

export class DigestLeaves {
  readonly leafCount: number;
  private readonly lanes0: Uint32Array;
  private readonly lanes1: Uint32Array;
  private readonly counts: Uint32Array;
  private readonly keysByLeaf = new Map<number, Set<string>>();

  constructor(readonly leafBits: number) {
    if (!Number.isInteger(leafBits) || leafBits < 0 || leafBits > 16) throw new MmError('CHORUS_BAD_KEYSPACE', 'digestLeafBits must be 0..16');
    this.leafCount = 2 ** leafBits;
    this.lanes0 = new Uint32Array(this.leafCount);
    this.lanes1 = new Uint32Array(this.leafCount);
    this.counts = new Uint32Array(this.leafCount);
  }

  get whole(): KeyRange {
    return { start: 0, end: this.leafCount };
  }

  leafOf(key: string): number {
    return this.leafBits === 0 ? 0 : hashText(key)[0] >>> (32 - this.leafBits);
  }

  add(key: string, hash: Hash64): void {
    const leaf = this.leafOf(key);
    this.lanes0[leaf] = (this.lanes0[leaf]! ^ hash[0]) >>> 0;
    this.lanes1[leaf] = (this.lanes1[leaf]! ^ hash[1]) >>> 0;
    let set = this.keysByLeaf.get(leaf);
    if (set === undefined) this.keysByLeaf.set(leaf, (set = new Set()));
    if (!set.has(key)) {
      set.add(key);
      this.counts[leaf]!++;
    }
  }

  /** Removes a key's hash (the one previously added) and, with `dropKey`, the key itself. */
  remove(key: string, hash: Hash64, dropKey: boolean): void {
    const leaf = this.leafOf(key);
    this.lanes0[leaf] = (this.lanes0[leaf]! ^ hash[0]) >>> 0;
    this.lanes1[leaf] = (this.lanes1[leaf]! ^ hash[1]) >>> 0;
    if (!dropKey) return;
    const set = this.keysByLeaf.get(leaf);
    if (set?.delete(key) === true) {
      this.counts[leaf]!--;
      if (set.size === 0) this.keysByLeaf.delete(leaf);
    }
  }

  checkRange(range: KeyRange): void {
    const ok = Number.isInteger(range.start) && Number.isInteger(range.end) && range.start >= 0 && range.end <= this.leafCount && range.start < range.end;
    if (!ok) throw new MmError('CHORUS_BAD_REPLICATION_MESSAGE', `bad key range [${range.start}, ${range.end}) of ${this.leafCount} leaves`);
  }

  /** The hashes of `rangeCount` equal slices of `range` (fewer when the range has fewer leaves). */
  digest(rangeCount: number, range: KeyRange): RangeDigest[] {
    this.checkRange(range);
    const width = range.end - range.start;
    const n = Math.max(1, Math.min(Math.floor(rangeCount), width));
    const out: RangeDigest[] = [];
    for (let i = 0; i < n; i++) {
      const start = range.start + Math.floor((i * width) / n);
      const end = range.start + Math.floor(((i + 1) * width) / n);
      let h: Hash64 = ZERO_HASH;
      let keys = 0;
      for (let leaf = start; leaf < end; leaf++) {
        h = xorHash(h, [this.lanes0[leaf]!, this.lanes1[leaf]!]);
        keys += this.counts[leaf]!;
      }
      out.push({ range: { start, end }, hash: h[0].toString(16).padStart(8, '0') + h[1].toString(16).padStart(8, '0'), keys });
    }
    return out;
  }

  /** The keys in `range`, sorted. */
  keysIn(range: KeyRange): string[] {
    this.checkRange(range);
    const out: string[] = [];
    for (let leaf = range.start; leaf < range.end; leaf++) {
      const set = this.keysByLeaf.get(leaf);
      if (set !== undefined) for (const key of set) out.push(key);
    }
    return out.sort();
  }
}

/** The ranges whose hashes differ between two digests of the same ranges. */
export function differingRanges(mine: readonly RangeDigest[], theirs: readonly RangeDigest[]): KeyRange[] {
  const theirsByStart = new Map(theirs.map((d) => [`${d.range.start}:${d.range.end}`, d.hash]));
  return mine.filter((d) => theirsByStart.get(`${d.range.start}:${d.range.end}`) !== d.hash).map((d) => d.range);
}

export interface KeyHashes {
  /** Sorted by key. */
  readonly entries: readonly { readonly key: string; readonly hash: string }[];
  /** False when cut short by a count limit: keys after the last entry were not listed. */
  readonly complete: boolean;
}

/** Keys whose records differ, or that only one side holds, within what both lists cover. */
export function differingKeys(mine: KeyHashes, theirs: KeyHashes): string[] {
  const bound = (h: KeyHashes): string | null => (h.complete ? null : (h.entries[h.entries.length - 1]?.key ?? ''));
  const limits = [bound(mine), bound(theirs)].filter((b): b is string => b !== null);
  const limit = limits.length === 0 ? null : limits.sort()[0]!;
  const inScope = (key: string): boolean => limit === null || key <= limit;
  const theirMap = new Map(theirs.entries.map((e) => [e.key, e.hash]));
  const out = new Set<string>();
  for (const e of mine.entries) if (inScope(e.key) && theirMap.get(e.key) !== e.hash) out.add(e.key);
  const myKeys = new Set(mine.entries.map((e) => e.key));
  for (const e of theirs.entries) if (inScope(e.key) && !myKeys.has(e.key)) out.add(e.key);
  return [...out].sort();
}
