// Latency samples kept exactly. A benchmark records at most a few million requests, so every
// sample fits in memory (8 bytes each) and percentiles need no approximation: they are read from
// the sorted samples by nearest rank.

const INITIAL_CAPACITY = 1024;

export class LatencySamples {
  private values = new Float64Array(INITIAL_CAPACITY);
  private size = 0;
  /** Whether values[0..size) is sorted ascending; sorting is deferred to the first query. */
  private sorted = true;

  get count(): number {
    return this.size;
  }

  add(valueMs: number): void {
    if (!Number.isFinite(valueMs) || valueMs < 0) throw new RangeError(`a latency must be a finite number >= 0, got ${valueMs}`);
    if (this.size === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    if (this.size > 0 && valueMs < this.values[this.size - 1]!) this.sorted = false;
    this.values[this.size++] = valueMs;
  }

  addAll(other: LatencySamples): void {
    for (let i = 0; i < other.size; i++) this.add(other.values[i]!);
  }

  private sort(): void {
    if (this.sorted) return;
    // A typed array sorts numerically (not as strings, unlike Array.prototype.sort).
    this.values.subarray(0, this.size).sort();
    this.sorted = true;
  }

  /**
   * The nearest-rank percentile: the smallest sample such that at least p percent of the samples
   * are less than or equal to it. percentile(100) is the maximum; percentile(0) the minimum.
   * NaN when there are no samples.
   */
  percentile(p: number): number {
    if (!(p >= 0 && p <= 100)) throw new RangeError(`a percentile must be within [0, 100], got ${p}`);
    if (this.size === 0) return Number.NaN;
    this.sort();
    // Rounding guards against p/100*n landing a hair above an integer (99.9/100*1000 = 999.0000000000001).
    const rank = Math.max(1, Math.ceil(Math.round((p / 100) * this.size * 1e9) / 1e9));
    return this.values[Math.min(rank, this.size) - 1]!;
  }

  max(): number {
    return this.percentile(100);
  }

  mean(): number {
    if (this.size === 0) return Number.NaN;
    let sum = 0;
    for (let i = 0; i < this.size; i++) sum += this.values[i]!;
    return sum / this.size;
  }
}
