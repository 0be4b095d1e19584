// A member's own change log, compacted per key: for every key this member changed, the seq of
// its latest change, in seq order. Shipping a key ships its current record, which includes
// every earlier change, so one entry per key is enough; the log holds at most one entry per
// key of the keyspace (bounded by keysMax), whatever a lagging peer's cursor.
import { invariant } from './errors.ts';

export class ChangeIndex {
  private seqs: number[] = [];
  private keys: (string | null)[] = [];
  private readonly positions = new Map<string, number>();
  private holes = 0;

  get size(): number {
    return this.positions.size;
  }

  /** Records `key`'s latest change at `seq`; seqs must grow. */
  set(key: string, seq: number): void {
    const last = this.seqs[this.seqs.length - 1];
    invariant(last === undefined || seq > last, `change log seq ${seq} after ${String(last)}`);
    this.remove(key);
    this.positions.set(key, this.seqs.length);
    this.seqs.push(seq);
    this.keys.push(key);
  }

  remove(key: string): void {
    const at = this.positions.get(key);
    if (at === undefined) return;
    this.keys[at] = null;
    this.positions.delete(key);
    this.holes++;
    // Compact once holes outnumber entries, so memory stays proportional to live entries.
    if (this.holes > 64 && this.holes > this.positions.size) this.compact();
  }

  /** Entries with seq > `afterSeq`, in seq order. Do not mutate while iterating. */
  *after(afterSeq: number): IterableIterator<readonly [number, string]> {
    let lo = 0;
    let hi = this.seqs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.seqs[mid]! <= afterSeq) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.seqs.length; i++) {
      const key = this.keys[i];
      if (key !== null && key !== undefined) yield [this.seqs[i]!, key];
    }
  }

  private compact(): void {
    const seqs: number[] = [];
    const keys: string[] = [];
    for (let i = 0; i < this.seqs.length; i++) {
      const key = this.keys[i];
      if (key === null || key === undefined) continue;
      this.positions.set(key, keys.length);
      seqs.push(this.seqs[i]!);
      keys.push(key);
    }
    this.seqs = seqs;
    this.keys = keys;
    this.holes = 0;
  }
}
