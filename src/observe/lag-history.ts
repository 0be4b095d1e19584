// The leader's recent lag measurements, one sample per follower and second, for the last few
// minutes: the dashboard draws them when it opens, so that its charts show what happened
// before the page was loaded. Bounded: samplesMax per follower, followers of the configuration.
import type { FollowerObservation } from './conditions.ts';

/** [wall-clock ms, entries, bytes, seconds] */
export type LagPoint = readonly [number, number, number, number];

export class LagHistory {
  private readonly series = new Map<string, LagPoint[]>();
  private lastSampleMs = Number.NEGATIVE_INFINITY;

  constructor(readonly samplesMax = 300, readonly intervalMs = 1000) {}

  /** Records the followers' lag, at most once per intervalMs of the monotonic clock `nowMs`. */
  record(followers: readonly FollowerObservation[], nowMs: number, wallMs: number): void {
    if (nowMs - this.lastSampleMs < this.intervalMs) return;
    this.lastSampleMs = nowMs;
    const present = new Set<string>();
    for (const f of followers) {
      present.add(f.id);
      let points = this.series.get(f.id);
      if (points === undefined) {
        points = [];
        this.series.set(f.id, points);
      }
      points.push([wallMs, f.lagEntries, f.lagBytes, f.lagSeconds]);
      if (points.length > this.samplesMax) points.splice(0, points.length - this.samplesMax);
    }
    // A member no longer in the configuration keeps its history until it has aged out.
    const oldestKeptMs = wallMs - this.samplesMax * this.intervalMs;
    for (const [id, points] of this.series) {
      if (!present.has(id) && (points.at(-1)?.[0] ?? 0) < oldestKeptMs) this.series.delete(id);
    }
  }

  /** This member stopped leading: its measurements end here. */
  clear(): void {
    this.series.clear();
    this.lastSampleMs = Number.NEGATIVE_INFINITY;
  }

  toJson(): Record<string, LagPoint[]> {
    return Object.fromEntries([...this.series].map(([id, points]) => [id, [...points]]));
  }
}
