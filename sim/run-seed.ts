// One simulator run from one seed: the seed picks the cluster shape, the Raft options, the
// network and disk faults and the workload; a safety phase under faults is followed by a
// liveness phase without them, then the end-of-run checkers.
import { SimViolation, Simulation, type FaultKind, type SimConfig, type SimStats } from './cluster.ts';
import { Prng } from './prng.ts';

export interface SeedResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly violation: string | null;
  readonly stats: SimStats;
  readonly config: SimConfig;
}

const allFaults: readonly FaultKind[] = [
  'partition', 'crash', 'crash-during-fsync', 'pause', 'clock', 'slow-fsync', 'membership', 'transfer', 'crash-voter', 'crash-new-leader', 'isolate-new-leader',
];

/** The configuration a seed stands for. Changing this function changes what seeds mean. */
export function configForSeed(seed: number): SimConfig {
  const p = new Prng(seed ^ 0x5eed);
  // A third of the seeds are a leader-churn profile: five voters, one entry per append and one
  // append in flight, leaders crashed or isolated right after their election.
  const churn = p.chance(0.33);
  const voterCount = churn ? 5 : p.pick([1, 3, 3, 3, 5, 5]);
  const spares = p.pick([0, 0, 1, 2]);
  const nodeIds = Array.from({ length: voterCount + spares }, (_, i) => `n${i + 1}`);
  const electionTicks = 10;
  const checkQuorum = p.chance(0.75);
  const preVote = p.chance(0.8);
  const leaseTicks = checkQuorum && p.chance(0.5) ? 6 : 0;
  const faults = churn
    ? (['crash-new-leader', 'isolate-new-leader', 'crash', 'partition', 'crash-voter'] as FaultKind[]).filter(() => p.chance(0.8))
    : allFaults.filter(() => p.chance(0.65));
  const learnerAtStart = p.chance(0.5);
  const delayMsMax = p.pick([1, 3, 8]);
  const longDelayRate = p.pick([0, 0.01, 0.03]);
  const longDelayMsMax = p.pick([30, 80, 200]);
  return {
    seed,
    nodeIds,
    // Some clusters start with a learner (a read replica): it receives the log and never votes.
    initialConfig: { voters: nodeIds.slice(0, voterCount), learners: spares > 0 && learnerAtStart ? [nodeIds[voterCount]!] : [] },
    electionTicks,
    heartbeatTicks: p.pick([1, 2, 3]),
    preVote,
    checkQuorum,
    leaseTicks,
    tickMs: 10,
    dropRate: p.pick([0, 0.01, 0.05, 0.1]),
    duplicateRate: p.pick([0, 0.01, 0.05]),
    delayMsMin: 0.2,
    delayMsMax,
    longDelayRate,
    longDelayMsMax,
    fsyncMsMin: 0.2,
    fsyncMsMax: p.pick([1, 3, 6]),
    slowFsyncMs: p.pick([15, 40]),
    compactAfterEntries: p.pick([8, 20, 60, 1_000_000]),
    snapshotChunkBytes: p.pick([64, 256, 4096]),
    appendEntriesMax: churn ? 1 : p.pick([1, 2, 64]),
    inflightMsgsMax: churn ? 1 : p.pick([1, 4, 64]),
    clients: p.range(2, 5),
    keys: p.range(1, 4),
    opTimeoutMs: 600,
    // A clock may run up to 8% fast or slow: inside the lease margin (leaseTicks 6 of 10).
    clockRateMin: 0.92,
    clockRateMax: 1.08,
    safetyPhaseMs: p.pick([3000, 5000, 8000]),
    livenessPhaseMsMax: 8000,
    faultIntervalMsMin: 30,
    faultIntervalMsMax: p.pick([150, 300, 600]),
    faults: faults.length > 0 ? faults : ['partition', 'crash'],
    commitLevels: p.pick([['on'], ['on'], ['off', 'local', 'on', 'remote_apply'], ['on', 'remote_apply'], ['local', 'on']] as const),
    standbyNames: voterCount >= 3 && p.chance(0.4) ? p.pick(['FIRST 1 (n2, n3)', 'ANY 1 (n2, n3)', 'FIRST 2 (n3, n2, n1)', 'n2', 'ANY 2 (*)']) : '',
    followerReadRate: p.pick([0, 0.3]),
    // Members bound staleness assuming this one-way delay; the network never exceeds it.
    assumedDelayMsMax: longDelayRate > 0 ? longDelayMsMax : delayMsMax,
    walKeepEntries: p.pick([0, 0, 16, 100]),
    imagesOnDemand: p.chance(0.5),
    imageDelayTicksMax: p.pick([0, 3, 20]),
    snapshotChunksInflightMax: p.pick([1, 4, 16]),
  };
}

export function runSeed(seed: number, options: { trace?: (line: string) => void; config?: SimConfig } = {}): SeedResult {
  const config = options.config ?? configForSeed(seed);
  const sim = new Simulation(config, options.trace ?? null);
  try {
    sim.startWorkload();
    sim.startNemesis();
    sim.runFor(config.safetyPhaseMs);

    // Liveness: once the faults stop, a leader is elected and writes complete within a bound.
    sim.stopNemesis();
    if (!sim.probeWrite('liveness', `after-heal-${seed}`, config.livenessPhaseMsMax)) {
      throw new SimViolation('liveness', `no write succeeded within ${config.livenessPhaseMsMax}ms after the faults stopped`);
    }
    sim.runFor(500);
    sim.stopWorkload();
    // Outstanding client operations finish or time out.
    sim.runFor(config.opTimeoutMs + 50);
    // Final reads of every key join the history: acknowledged writes must show through them.
    for (let k = 0; k < config.keys; k++) {
      const read = sim.probeRead(`k${k}`, config.livenessPhaseMsMax);
      if (!read.ok) throw new SimViolation('liveness', `final read of k${k} did not complete`);
    }
    sim.checkConvergence(config.livenessPhaseMsMax);
    sim.checkAcknowledgedWrites();
    sim.checkFollowerReads();
    sim.checkHistory();
    return { seed, ok: true, violation: null, stats: sim.statsNow(), config };
  } catch (error) {
    if (error instanceof SimViolation) return { seed, ok: false, violation: error.message, stats: sim.statsNow(), config };
    // An invariant assertion or any other exception is a bug found by this seed too.
    const text = error instanceof Error ? `${error.name}: ${error.message}\n${(error.stack ?? '').split('\n').slice(1, 6).join('\n')}` : String(error);
    return { seed, ok: false, violation: `crash: ${text}`, stats: sim.statsNow(), config };
  }
}
