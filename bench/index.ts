// runBench: starts a three-member Chorus cluster, then a three-member etcd cluster, then a Redis
// primary with two replicas (one after the other, so that each has the machine to itself), drives
// them with the same load generator and returns one report. Each row compares Chorus with one
// peer: etcd for the consensus phases, Redis for the multi-master ones. With `endpoints` it
// measures an existing Chorus cluster instead (`chorus bench --endpoints`): only the
// load phases, which need no process of its own.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { binaryReadPhase, binaryWritePhase } from './binary-phases.ts';
import { ChorusProcessCluster, ChorusRemoteCluster } from './chorus-cluster.ts';
import type { BenchCluster } from './cluster.ts';
import { ensureEtcd, EtcdProcessCluster } from './etcd-cluster.ts';
import { mmRepairPhase, mmWritePhase, redisResyncPhase, redisWritePhase } from './mm-phases.ts';
import type { RedisRun } from './mm-phases.ts';
import {
  failoverPhase, FULL_SETTINGS, memoryPhase, probeCommitLevel, QUICK_SETTINGS, readPhase, snapshotPhase, warmUp, writePhase,
} from './phases.ts';
import type { BenchSettings, SystemRun } from './phases.ts';
import type { BenchReport, BenchRow, RowKind, SystemResult } from './report.ts';
import { releaseDir, removeOnExit } from './processes.ts';
import { ensureRedis, RedisProcessCluster } from './redis-cluster.ts';
import { protocolOf } from './systems.ts';
import type { HttpSystemName, PeerName, SystemName } from './systems.ts';

export type { BenchReport, BenchRow, SystemResult } from './report.ts';
export { formatMarkdownTable, formatTable } from './report.ts';

export interface BenchOptions {
  /** Seconds instead of minutes: short phases, 20,000 keys, 3 kills, no snapshot transfer. */
  readonly quick?: boolean;
  /** Client URLs of a running Chorus cluster to measure instead of starting one; etcd,
   * memory and failover are then not run. */
  readonly endpoints?: readonly string[];
  /** Also run etcd (default: true without endpoints). */
  readonly etcd?: boolean;
  /** Also run Redis for the multi-master rows (default: true without endpoints). */
  readonly redis?: boolean;
  /** Keep the temporary data directories (and member logs) instead of removing them. */
  readonly keepData?: boolean;
  /** Progress lines (default: stderr). */
  readonly log?: (line: string) => void;
  /** Run only these phases (ids: write-1, write-16, write-64, write-256, write-local,
   * read-linearizable, read-stale, write-1-binary, write-64-binary, write-256-binary,
   * read-linearizable-binary, memory, snapshot, failover, mm-write-64, mm-repair). */
  readonly only?: readonly string[];
  /** Overrides of the mode's settings (tests, experiments). */
  readonly settings?: Partial<BenchSettings>;
}

interface PhaseSpec {
  readonly id: string;
  readonly label: string;
  readonly kind: RowKind;
  /** The system Chorus is compared with in this row. */
  readonly peer: PeerName;
  /** Whether it needs the bench to run the members itself. */
  readonly needsOwned: boolean;
  /** Whether it needs the Chorus members' test fault hooks (--enable-test-faults). */
  readonly needsTestFaults?: boolean;
  /** A Chorus-only variant of another row (the binary protocol): etcd's figure is that row's,
   * measured once. */
  readonly etcdFrom?: string;
  /** Chorus, and etcd in the rows whose peer is etcd. */
  readonly run: (run: SystemRun) => Promise<SystemResult>;
  /** Redis, in the rows whose peer is Redis (none: the row has no Redis figure). */
  readonly redis?: (run: RedisRun) => Promise<SystemResult>;
}

const CLUSTER_SIZE = 3;
const READY_TIMEOUT_MS = 60_000;

function phases(settings: BenchSettings): PhaseSpec[] {
  const list: PhaseSpec[] = settings.writeConcurrencies.map((c) => ({
    id: `write-${c}`,
    label: `writes, ${c} client${c === 1 ? '' : 's'}`,
    kind: 'throughput',
    peer: 'etcd',
    needsOwned: false,
    run: (run) => writePhase(run, c),
  }));
  list.push({
    id: 'write-local',
    label: `writes, ${settings.localCommitConcurrency} clients, commit=local`,
    kind: 'throughput',
    peer: 'etcd',
    needsOwned: false,
    run: async (run) => {
      if (run.protocol.name !== 'chorus') return { status: 'na', note: 'no equivalent' };
      const probe = await probeCommitLevel(run, 'local');
      if (!probe.supported) return { status: 'na', note: probe.note };
      return writePhase(run, settings.localCommitConcurrency, { commit: 'local' });
    },
  });
  list.push(
    { id: 'read-linearizable', label: `linearizable reads, ${settings.readConcurrency} clients`, kind: 'throughput', peer: 'etcd', needsOwned: false, run: (run) => readPhase(run, false) },
    { id: 'read-stale', label: `stale reads, ${settings.readConcurrency} clients`, kind: 'throughput', peer: 'etcd', needsOwned: false, run: (run) => readPhase(run, true) },
    { id: 'memory', label: `memory after ${settings.memoryKeys.toLocaleString('en-US')} keys`, kind: 'memory', peer: 'etcd', needsOwned: true, run: memoryPhase },
    { id: 'snapshot', label: 'snapshot to a new learner (500 MB)', kind: 'snapshot', peer: 'etcd', needsOwned: true, run: snapshotPhase },
    { id: 'failover', label: `failover, ${settings.failoverKills} leader kills`, kind: 'failover', peer: 'etcd', needsOwned: true, run: failoverPhase },
    {
      id: `mm-write-${settings.mmWriteConcurrency}`,
      label: `multi-master writes, ${settings.mmWriteConcurrency} clients, local ack`,
      kind: 'throughput',
      peer: 'redis',
      needsOwned: false,
      run: mmWritePhase,
      redis: redisWritePhase,
    },
    {
      id: 'mm-repair',
      label: `multi-master repair of ${settings.repairKeys.toLocaleString('en-US')} divergent keys`,
      kind: 'convergence',
      peer: 'redis',
      needsOwned: true,
      needsTestFaults: true,
      run: mmRepairPhase,
      redis: redisResyncPhase,
    },
  );
  // The same rows over Chorus's binary protocol, beside etcd's HTTP figures (etcd's own gRPC
  // protocol is not what its HTTP gateway rows measure), after the HTTP reads.
  const binaryRows: PhaseSpec[] = [];
  for (const c of settings.writeConcurrencies.filter((n) => n === 1 || n === 64 || n === 256)) {
    binaryRows.push({
      id: `write-${c}-binary`,
      label: `writes, ${c} client${c === 1 ? '' : 's'}, binary protocol`,
      kind: 'throughput',
      peer: 'etcd',
      needsOwned: false,
      etcdFrom: `write-${c}`,
      run: (run) => binaryWritePhase(run, c),
    });
  }
  binaryRows.push({
    id: 'read-linearizable-binary',
    label: `linearizable reads, ${settings.readConcurrency} clients, binary protocol`,
    kind: 'throughput',
    peer: 'etcd',
    needsOwned: false,
    etcdFrom: 'read-linearizable',
    run: (run) => binaryReadPhase(run, false),
  });
  list.splice(list.findIndex((spec) => spec.id === 'read-stale') + 1, 0, ...binaryRows);
  return list;
}

/** Which Chorus was measured: the commit, "-dirty" with uncommitted changes. */
function chorusRevision(): string | null {
  try {
    const cwd = join(dirname(fileURLToPath(import.meta.url)), '..');
    return execFileSync('git', ['describe', '--always', '--dirty'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

function stderrLog(line: string): void {
  process.stderr.write(`${line}\n`);
}

async function runSystem(system: HttpSystemName, cluster: BenchCluster, specs: readonly PhaseSpec[], settings: BenchSettings, log: (line: string) => void): Promise<Map<string, SystemResult>> {
  const results = new Map<string, SystemResult>();
  const run: SystemRun = { cluster, protocol: protocolOf(system), settings, log, nextKey: 0, acked: [] };
  if (settings.clusterWarmupMs > 0) {
    log(`${system}: warming up (${settings.clusterWarmupMs / 1000} s of writes, not measured) ...`);
    try {
      await cluster.waitReady(READY_TIMEOUT_MS);
      await warmUp(run);
    } catch (error) {
      // The phases check readiness again and report their own failures.
      log(`${system}: warm-up failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
    }
  }
  for (const spec of specs) {
    if (spec.needsOwned && !cluster.owned) {
      results.set(spec.id, { status: 'skipped', note: 'skipped (not our processes)' });
      continue;
    }
    log(`${system}: ${spec.label} ...`);
    const startedMs = performance.now();
    let result: SystemResult;
    try {
      // A phase that broke the cluster leaves it to the next phase in a known state, or fails it.
      await cluster.waitReady(READY_TIMEOUT_MS);
      result = await spec.run(run);
    } catch (error) {
      result = { status: 'failed', note: `failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}` };
    }
    results.set(spec.id, result);
    log(`${system}: ${spec.label}: ${result.status}${result.note === undefined ? '' : ` (${result.note})`} in ${((performance.now() - startedMs) / 1000).toFixed(1)} s`);
  }
  return results;
}

/** The rows whose peer is Redis, on a Redis primary and two replicas (no warm-up: a C server has
 * no cold code to warm; each phase has its own). */
async function runRedis(cluster: RedisProcessCluster, specs: readonly PhaseSpec[], settings: BenchSettings, log: (line: string) => void): Promise<Map<string, SystemResult>> {
  const results = new Map<string, SystemResult>();
  const run: RedisRun = { cluster, settings, log, nextKey: 0 };
  for (const spec of specs) {
    if (spec.redis === undefined) continue;
    log(`redis: ${spec.label} ...`);
    const startedMs = performance.now();
    let result: SystemResult;
    try {
      await cluster.waitReady(READY_TIMEOUT_MS);
      result = await spec.redis(run);
    } catch (error) {
      result = { status: 'failed', note: `failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}` };
    }
    results.set(spec.id, result);
    log(`redis: ${spec.label}: ${result.status}${result.note === undefined ? '' : ` (${result.note})`} in ${((performance.now() - startedMs) / 1000).toFixed(1)} s`);
  }
  return results;
}

export async function runBench(options: BenchOptions = {}): Promise<BenchReport> {
  const log = options.log ?? stderrLog;
  const quick = options.quick ?? false;
  const settings: BenchSettings = { ...(quick ? QUICK_SETTINGS : FULL_SETTINGS), ...options.settings };
  const startedAt = new Date().toISOString();
  const startedMs = performance.now();
  const all = phases(settings);
  const unknown = (options.only ?? []).filter((id) => !all.some((spec) => spec.id === id));
  if (unknown.length > 0) throw new Error(`unknown phase(s) ${unknown.join(', ')}; phases: ${all.map((spec) => spec.id).join(', ')}`);
  const specs = options.only === undefined || options.only.length === 0 ? all : all.filter((spec) => options.only!.includes(spec.id));
  const remote = options.endpoints !== undefined && options.endpoints.length > 0;
  // etcd runs the selected rows, and the HTTP rows whose figures the binary rows show.
  const etcdIds = new Set(specs.flatMap((spec) => (spec.peer !== 'etcd' ? [] : [spec.etcdFrom ?? spec.id])));
  const etcdSpecs = all.filter((spec) => etcdIds.has(spec.id));
  const redisSpecs = specs.filter((spec) => spec.redis !== undefined);
  const wantEtcd = options.etcd ?? !remote;
  const wantRedis = options.redis ?? !remote;
  const keepData = options.keepData ?? false;
  const loadAverage = os.loadavg().map((l) => Math.round(l * 100) / 100);
  const root = mkdtempSync(join(os.tmpdir(), 'chorus-bench-'));
  if (keepData) log(`data and logs under ${root}`);
  else removeOnExit(root); // also when interrupted
  const bySystem = new Map<SystemName, Map<string, SystemResult>>();
  let etcdVersion: string | null = null;
  let etcdSkipped: string | null = null;
  let redisVersion: string | null = null;
  let redisSkipped: string | null = null;
  try {
    // Chorus
    let chorus: BenchCluster;
    if (remote) {
      chorus = new ChorusRemoteCluster(options.endpoints!.map((e) => (/^https?:\/\//.test(e) ? e : `http://${e}`).replace(/\/+$/, '')));
    } else {
      const testFaults = specs.some((spec) => spec.needsTestFaults === true);
      log(`starting a 3-member Chorus cluster${testFaults ? ' (with --enable-test-faults, for the repair phase)' : ''} ...`);
      chorus = await ChorusProcessCluster.start({ dir: join(root, 'chorus'), size: CLUSTER_SIZE, keepData, extraArgs: testFaults ? ['--enable-test-faults'] : [] });
    }
    try {
      bySystem.set('chorus', await runSystem('chorus', chorus, specs, settings, log));
    } finally {
      await chorus.stop();
    }

    // etcd
    if (etcdSpecs.length === 0) {
      etcdSkipped = 'no phase compared with etcd was selected';
    } else if (wantEtcd) {
      const etcd = ensureEtcd(log);
      if (!etcd.available) {
        etcdSkipped = etcd.reason;
        log(`etcd skipped: ${etcd.reason}`);
      } else {
        etcdVersion = etcd.version;
        log(`starting a 3-member etcd ${etcd.version} cluster ...`);
        const cluster = await EtcdProcessCluster.start({ dir: join(root, 'etcd'), etcdPath: etcd.path, size: CLUSTER_SIZE, keepData });
        try {
          bySystem.set('etcd', await runSystem('etcd', cluster, etcdSpecs, settings, log));
        } finally {
          await cluster.stop();
        }
      }
    } else {
      etcdSkipped = 'not requested';
    }

    // Redis
    if (redisSpecs.length === 0) {
      redisSkipped = 'no phase compared with Redis was selected';
    } else if (wantRedis) {
      const redis = ensureRedis(log);
      if (!redis.available) {
        redisSkipped = redis.reason;
        log(`Redis skipped: ${redis.reason}`);
      } else {
        redisVersion = redis.version;
        log(`starting Redis ${redis.version}: a primary and ${CLUSTER_SIZE - 1} replicas ...`);
        const cluster = await RedisProcessCluster.start({ dir: join(root, 'redis'), redisPath: redis.path, size: CLUSTER_SIZE, keepData });
        try {
          bySystem.set('redis', await runRedis(cluster, redisSpecs, settings, log));
        } finally {
          await cluster.stop();
        }
      }
    } else {
      redisSkipped = 'not requested';
    }
  } finally {
    if (!keepData) {
      rmSync(root, { recursive: true, force: true });
      releaseDir(root);
    }
  }

  const rows: BenchRow[] = specs.map((spec) => {
    const results: Partial<Record<SystemName, SystemResult>> = {};
    for (const [system, map] of bySystem) {
      const result = map.get(system === 'etcd' ? (spec.etcdFrom ?? spec.id) : spec.id);
      if (result !== undefined) results[system] = result;
    }
    // A Redis row without Redis says why in the Redis column, rather than losing the column.
    if (spec.redis !== undefined && results.redis === undefined && redisSkipped !== null) {
      results.redis = { status: 'skipped', note: `not run (${redisSkipped})` };
    }
    return { id: spec.id, label: spec.label, kind: spec.kind, peer: spec.peer, results };
  });
  return {
    mode: quick ? 'quick' : 'full',
    startedAt,
    durationMs: performance.now() - startedMs,
    machine: {
      cpus: os.cpus().length,
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      loadAverage,
    },
    chorusRevision: remote ? null : chorusRevision(),
    etcdVersion,
    etcdSkipped,
    redisVersion,
    redisSkipped,
    rows,
  };
}
