// What one seed of the multi-master simulator stands for. Changing configForSeed changes what
// every seed means (replay commands printed before the change stop reproducing).
import type { ConflictMode } from '../../src/core/mm/index.ts';
import { Prng } from '../prng.ts';

export type MmFaultKind = 'partition' | 'link' | 'crash' | 'clock';

export interface MmSimConfig {
  readonly seed: number;
  readonly mode: ConflictMode;
  readonly members: readonly string[];
  /** Clients write to keys k0..k(keys-1). */
  readonly keys: number;
  /** Mean time between two client operations (exponential). */
  readonly opIntervalMs: number;
  /** Fraction of operations that are deletes. */
  readonly deleteRate: number;
  /** versions: fraction of puts and deletes that carry the token of an earlier read. */
  readonly tokenRate: number;
  /** crdt: fraction of map operations that remove a field. */
  readonly fieldRemoveRate: number;
  readonly dropRate: number;
  readonly duplicateRate: number;
  readonly delayMsMin: number;
  readonly delayMsMax: number;
  readonly longDelayRate: number;
  readonly longDelayMsMax: number;
  /** Each member's clock is off by up to this, either way; clock faults jump within it. */
  readonly clockOffsetMsMax: number;
  /** Clock rates are 1 ± this. */
  readonly clockRateSpread: number;
  readonly maxClockDriftMs: number;
  readonly replIntervalMs: number;
  readonly batchCountMax: number;
  readonly batchBytesMax: number;
  readonly aeIntervalMs: number;
  readonly aeFanout: number;
  readonly aeRangesMax: number;
  readonly aeKeysMax: number;
  readonly aeBytesMax: number;
  readonly digestLeafBits: number;
  readonly hintIntervalMs: number;
  readonly hintsMax: number;
  readonly hintsBytesMax: number;
  readonly hintsPolicy: 'drop-oldest' | 'refuse';
  readonly suspectAfterMs: number;
  readonly tickIntervalMs: number;
  readonly clockPersistIntervalMs: number;
  readonly gcCountMax: number;
  readonly siblingsMax: number;
  readonly keysMax: number;
  readonly faults: readonly MmFaultKind[];
  readonly faultIntervalMsMin: number;
  readonly faultIntervalMsMax: number;
  /** Faults and the workload run this long; then they stop and members must converge. */
  readonly faultPhaseMs: number;
  /** The bound on convergence (and tombstone collection) once faults stop. */
  readonly convergeMsMax: number;
}

const MODES: readonly ConflictMode[] = ['lww', 'versions', 'crdt'];

export function configForSeed(seed: number): MmSimConfig {
  const p = new Prng(seed ^ 0x6d6d5eed);
  const memberCount = p.pick([3, 3, 4, 5]);
  const faults = (['partition', 'link', 'crash', 'clock'] as const).filter(() => p.chance(0.7));
  return {
    seed,
    // Modes rotate with the seed so that every small run covers all three.
    mode: MODES[((seed % 3) + 3) % 3]!,
    members: Array.from({ length: memberCount }, (_, i) => `n${i + 1}`),
    keys: p.pick([2, 4, 8]),
    opIntervalMs: p.pick([4, 8, 15]),
    deleteRate: p.pick([0.05, 0.15, 0.3]),
    tokenRate: p.pick([0.3, 0.7, 0.9]),
    fieldRemoveRate: p.pick([0.1, 0.3]),
    dropRate: p.pick([0, 0.02, 0.1]),
    duplicateRate: p.pick([0, 0.02, 0.1]),
    delayMsMin: 0.5,
    delayMsMax: p.pick([2, 5, 15]),
    longDelayRate: p.pick([0, 0.02, 0.05]),
    longDelayMsMax: p.pick([100, 400, 1500]),
    clockOffsetMsMax: p.pick([0, 500, 3000]),
    clockRateSpread: p.pick([0, 0.001, 0.01]),
    maxClockDriftMs: 10_000,
    replIntervalMs: p.pick([10, 25, 50]),
    batchCountMax: p.pick([1, 3, 64]),
    batchBytesMax: p.pick([200, 4096, 65536]),
    aeIntervalMs: p.pick([50, 150, 400]),
    aeFanout: p.pick([4, 16]),
    aeRangesMax: p.pick([2, 8]),
    aeKeysMax: p.pick([2, 16]),
    aeBytesMax: p.pick([300, 65536]),
    digestLeafBits: p.pick([0, 3, 6, 10]),
    hintIntervalMs: p.pick([20, 60]),
    hintsMax: p.pick([2, 8, 1000]),
    hintsBytesMax: p.pick([500, 1 << 20]),
    hintsPolicy: p.chance(0.5) ? 'drop-oldest' : 'refuse',
    suspectAfterMs: p.pick([60, 150]),
    tickIntervalMs: 20,
    clockPersistIntervalMs: p.pick([50, 300]),
    gcCountMax: p.pick([1, 100]),
    siblingsMax: p.pick([3, 8, 64]),
    keysMax: 1000,
    faults,
    faultIntervalMsMin: 20,
    faultIntervalMsMax: p.pick([100, 300, 700]),
    faultPhaseMs: p.pick([800, 1500, 3000]),
    convergeMsMax: 20_000,
  };
}
