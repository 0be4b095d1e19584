// One multi-master simulator run from one seed: a phase with client writes under faults,
// then faults stop and every member must converge (and collect its tombstones) within a
// bound; then the converged state is checked against the model of acknowledged writes.
import { configForSeed, type MmSimConfig } from './config.ts';
import { MmSimulation, MmViolation, type MmSimStats } from './cluster.ts';

export interface MmSeedResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly violation: string | null;
  readonly stats: MmSimStats;
  readonly config: MmSimConfig;
}

export function runMmSeed(seed: number, options: { trace?: (line: string) => void; config?: MmSimConfig } = {}): MmSeedResult {
  const config = options.config ?? configForSeed(seed);
  let sim: MmSimulation | null = null;
  try {
    sim = new MmSimulation(config, options.trace ?? null);
    sim.startWorkload();
    sim.startNemesis();
    sim.runFor(config.faultPhaseMs);
    sim.stopWorkload();
    sim.stopNemesis();
    sim.checkConvergence(config.convergeMsMax);
    sim.checkModel();
    return { seed, ok: true, violation: null, stats: sim.statsNow(), config };
  } catch (error) {
    const stats = sim?.statsNow() ?? ({} as MmSimStats);
    if (error instanceof MmViolation) return { seed, ok: false, violation: error.message, stats, config };
    // Any exception out of the core (an invariant, a type error) is a bug this seed found.
    const text = error instanceof Error ? `${error.name}: ${error.message}\n${(error.stack ?? '').split('\n').slice(1, 6).join('\n')}` : String(error);
    return { seed, ok: false, violation: `crash: ${text}`, stats, config };
  }
}
