// The phases of a bench run, each measured the same way on whichever cluster it is given.
// Every write creates a new key (never an overwrite), so both systems hold exactly the keys
// that were acknowledged, and etcd's MVCC history is no bigger than its key count.
import { performance } from 'node:perf_hooks';
import type { BenchCluster } from './cluster.ts';
import { describeFailures, HttpEndpoints, runLoad, throughputPerS } from './load.ts';
import type { HttpAnswer, LoadOptions, LoadResult } from './load.ts';
import { sleep, waitFor } from './processes.ts';
import type { SystemResult } from './report.ts';
import { formatCount, formatMs } from './report.ts';
import { LatencySamples } from './samples.ts';
import { benchKey, benchValue } from './systems.ts';
import type { KvProtocol, PutOptions } from './systems.ts';

export interface BenchSettings {
  readonly quick: boolean;
  /** Length of each measured throughput phase. */
  readonly phaseDurationMs: number;
  /** Load before each measurement, not counted (connections, JIT, caches). */
  readonly warmupMs: number;
  /** Writes (64 clients) right after the cluster starts, before any phase: a Node process
   * runs its first seconds on cold, interpreted code (and tsx compiles modules as they load),
   * which a Go binary does not, and the first phase would measure that. */
  readonly clusterWarmupMs: number;
  readonly writeConcurrencies: readonly number[];
  readonly readConcurrency: number;
  readonly localCommitConcurrency: number;
  /** Keys the cluster holds when memory is read. */
  readonly memoryKeys: number;
  readonly memoryConcurrency: number;
  readonly failoverKills: number;
  readonly failoverConcurrency: number;
  /** Steady load between a member's return and the next kill. */
  readonly failoverSettleMs: number;
  readonly requestTimeoutMs: number;
  /** Clients of the multi-master write phase (Chorus, and Redis beside it). */
  readonly mmWriteConcurrency: number;
  /** Keys written while a member is cut off, which it must then catch up on. */
  readonly repairKeys: number;
  /** The repair phase fails when the members have not converged this long after healing. */
  readonly convergenceTimeoutMs: number;
}

export const QUICK_SETTINGS: BenchSettings = {
  quick: true,
  phaseDurationMs: 2000,
  warmupMs: 500,
  clusterWarmupMs: 3000,
  writeConcurrencies: [1, 16, 64, 256],
  readConcurrency: 64,
  localCommitConcurrency: 64,
  memoryKeys: 20_000,
  memoryConcurrency: 64,
  failoverKills: 3,
  failoverConcurrency: 16,
  failoverSettleMs: 500,
  requestTimeoutMs: 10_000,
  mmWriteConcurrency: 64,
  repairKeys: 2000,
  convergenceTimeoutMs: 120_000,
};

export const FULL_SETTINGS: BenchSettings = {
  ...QUICK_SETTINGS,
  quick: false,
  phaseDurationMs: 15_000,
  warmupMs: 3000,
  clusterWarmupMs: 10_000,
  memoryKeys: 1_000_000,
  failoverKills: 20,
  failoverSettleMs: 2000,
  repairKeys: 10_000,
};

/** One system's run: its cluster, how to talk to it, and the keys written so far. */
export interface SystemRun {
  readonly cluster: BenchCluster;
  readonly protocol: KvProtocol;
  readonly settings: BenchSettings;
  readonly log: (line: string) => void;
  /** Next key number to write. */
  nextKey: number;
  /** Numbers of the acknowledged keys, in acknowledgement order. */
  readonly acked: number[];
}

function label(run: SystemRun): string {
  return run.protocol.name === 'chorus' ? 'Chorus' : 'etcd';
}

export function loadResult(result: LoadResult): SystemResult {
  return {
    status: 'ok',
    throughputPerS: throughputPerS(result),
    latencyMsP50: result.latency.percentile(50),
    latencyMsP99: result.latency.percentile(99),
    latencyMsMax: result.latency.max(),
    requests: result.succeeded + result.failed,
    failedRequests: result.failed,
  };
}

export function failed(error: unknown): SystemResult {
  return { status: 'failed', note: `failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}` };
}

/** A deterministic generator (xorshift32), so that both systems read in the same key order. */
export function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/**
 * Writes new keys to member `endpoint(seq)` for a warm-up, then for the measurement. Keys of
 * both parts are recorded as acknowledged.
 */
async function writeLoad(run: SystemRun, options: {
  concurrency: number;
  endpoint: (seq: number) => number;
  put?: PutOptions;
  durationMs?: number;
  requestsMax?: number;
  progressLabel?: string;
  signal?: AbortSignal;
  failurePauseMs?: number;
  onResult?: (key: number, ok: boolean, startMs: number, endMs: number) => void;
}): Promise<LoadResult> {
  const endpoints = new HttpEndpoints(run.cluster.urls, options.concurrency);
  const base = run.nextKey;
  const { protocol } = run;
  const loadOptions: LoadOptions = {
    endpoints,
    concurrency: options.concurrency,
    requestTimeoutMs: run.settings.requestTimeoutMs,
    request: (seq) => protocol.put(options.endpoint(seq), benchKey(base + seq), benchValue(base + seq), options.put),
    accept: (answer) => protocol.putSucceeded(answer),
    onResult: (seq, ok, startMs, endMs) => {
      if (ok) run.acked.push(base + seq);
      options.onResult?.(base + seq, ok, startMs, endMs);
    },
    ...(options.durationMs === undefined ? {} : { durationMs: options.durationMs }),
    ...(options.requestsMax === undefined ? {} : { requestsMax: options.requestsMax }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.failurePauseMs === undefined ? {} : { failurePauseMs: options.failurePauseMs }),
    ...(options.progressLabel === undefined
      ? {}
      : {
          progressEveryMs: 5000,
          onProgress: (p) => run.log(`  ${options.progressLabel}: ${formatCount(p.succeeded)} written, ${formatCount(p.failed)} failed, ${formatCount((p.succeeded * 1000) / p.elapsedMs)}/s`),
        }),
  };
  try {
    const result = await runLoad(loadOptions);
    run.nextKey = base + result.succeeded + result.failed;
    return result;
  } finally {
    endpoints.close();
  }
}

/** The cluster warm-up: writes to the leader, not measured (the keys count as written). */
export async function warmUp(run: SystemRun): Promise<void> {
  const leader = await run.cluster.leaderIndex();
  const result = await writeLoad(run, { concurrency: 64, endpoint: () => leader, durationMs: run.settings.clusterWarmupMs });
  if (result.failed > 0) run.log(`  ${label(run)} warm-up failures: ${describeFailures(result.failures)}`);
}

/** Runs `load` for the warm-up (not counted), then for the phase, and reports the phase; failed
 * requests are logged as `<what> failures`. */
export async function warmThenMeasure(run: SystemRun, what: string, load: (durationMs: number) => Promise<LoadResult>): Promise<SystemResult> {
  await load(run.settings.warmupMs);
  const result = await load(run.settings.phaseDurationMs);
  if (result.failed > 0) run.log(`  ${what} failures: ${describeFailures(result.failures)}`);
  return loadResult(result);
}

export async function writePhase(run: SystemRun, concurrency: number, put?: PutOptions): Promise<SystemResult> {
  try {
    const leader = await run.cluster.leaderIndex();
    const endpoint = (): number => leader;
    return await warmThenMeasure(run, `${label(run)} write`, (durationMs) => writeLoad(run, { concurrency, endpoint, durationMs, ...(put === undefined ? {} : { put }) }));
  } catch (error) {
    return failed(error);
  }
}

/**
 * Whether Chorus honours ?commit=LEVEL. A member that ignores unknown query parameters would
 * accept ?commit=local and measure a majority commit under the wrong label, so a nonsense level
 * is tried first: it must be refused.
 */
export async function probeCommitLevel(run: SystemRun, level: string): Promise<{ supported: true } | { supported: false; note: string }> {
  const leader = await run.cluster.leaderIndex();
  const url = run.cluster.urls[leader]!;
  const put = async (commit: string): Promise<number> => {
    const n = run.nextKey++;
    const response = await fetch(`${url}/v1/kv/${benchKey(n)}?commit=${encodeURIComponent(commit)}`, {
      method: 'PUT', body: benchValue(n), signal: AbortSignal.timeout(run.settings.requestTimeoutMs),
    });
    await response.arrayBuffer();
    if (response.status === 200) run.acked.push(n);
    return response.status;
  };
  const bogus = await put('no-such-level');
  if (bogus === 200) return { supported: false, note: 'n/a (not supported yet: ?commit= is ignored)' };
  const status = await put(level);
  if (status === 400) return { supported: false, note: 'n/a (not supported yet)' };
  if (status !== 200) return { supported: false, note: `n/a (?commit=${level} answered HTTP ${status})` };
  return { supported: true };
}

/** Reads keys acknowledged earlier, spread over every member (as clients connected to all
 * members would): linearizable, or stale (Chorus) / serializable (etcd). */
export async function readPhase(run: SystemRun, stale: boolean): Promise<SystemResult> {
  if (run.acked.length === 0) return { status: 'failed', note: 'no keys were written to read' };
  const concurrency = run.settings.readConcurrency;
  const endpoints = new HttpEndpoints(run.cluster.urls, concurrency);
  const size = run.cluster.urls.length;
  const { protocol, acked } = run;
  try {
    const measure = async (durationMs: number): Promise<LoadResult> => {
      const next = xorshift(stale ? 2 : 1);
      return runLoad({
        endpoints,
        concurrency,
        durationMs,
        requestTimeoutMs: run.settings.requestTimeoutMs,
        request: (seq) => protocol.get(seq % size, benchKey(acked[next() % acked.length]!), stale),
        accept: (answer) => protocol.valueOf(answer) !== null,
      });
    };
    return await warmThenMeasure(run, `${label(run)} read`, measure);
  } catch (error) {
    return failed(error);
  } finally {
    endpoints.close();
  }
}

/** Writes new keys until the cluster holds `memoryKeys`, then reads each member's VmRSS. */
export async function memoryPhase(run: SystemRun): Promise<SystemResult> {
  const target = run.settings.memoryKeys;
  try {
    const missing = target - run.acked.length;
    if (missing > 0) {
      run.log(`  ${label(run)}: writing ${formatCount(missing)} keys to reach ${formatCount(target)} ...`);
      let leader = await run.cluster.leaderIndex();
      // Batches, so that a failed write is made up for in the next batch.
      while (run.acked.length < target) {
        const result = await writeLoad(run, {
          concurrency: run.settings.memoryConcurrency,
          endpoint: () => leader,
          requestsMax: target - run.acked.length,
          progressLabel: `${label(run)} memory fill`,
        });
        if (result.failed > 0) {
          run.log(`  ${label(run)} fill failures: ${describeFailures(result.failures)}`);
          if (result.succeeded === 0) throw new Error(`no write succeeded while filling (${describeFailures(result.failures)})`);
          leader = await run.cluster.leaderIndex();
        }
      }
    }
    // Let followers apply what they have and background work (snapshots, compaction) settle.
    await sleep(run.settings.quick ? 1000 : 5000);
    const residentBytes = await run.cluster.residentBytes();
    return { status: 'ok', residentBytes, keys: run.acked.length };
  } catch (error) {
    return failed(error);
  }
}

/** Chorus has no way yet to add a member; etcd's is not driven without a Chorus counterpart. */
/** The state a new learner receives in the snapshot phase: at least this many bytes of values. */
const SNAPSHOT_STATE_BYTES = 512 * 1024 * 1024;
const SNAPSHOT_VALUE_BYTES = 64 * 1024;
/** Snapshot-phase keys, apart from the load's. */
const SNAPSHOT_KEY_BASE = 8_000_000_000;

function snapshotValue(n: number): Buffer {
  // Distinct bytes per key, so that nothing along the way can deduplicate or compress them away.
  const value = Buffer.allocUnsafe(SNAPSHOT_VALUE_BYTES);
  for (let i = 0; i < value.length; i += 4) value.writeUInt32LE((Math.imul(n + 1, 2654435761) ^ Math.imul(i, 40503)) >>> 0, i);
  return value;
}

/**
 * Writes SNAPSHOT_STATE_BYTES of 64 KiB values (on top of what earlier phases wrote), then adds
 * a learner on empty data and times it until it has applied everything committed when it was
 * added: MB/s is the state it received (Chorus: the image of its state the leader makes for it;
 * etcd: its bbolt file) over that time. The learner is removed afterwards.
 */
export async function snapshotPhase(run: SystemRun): Promise<SystemResult> {
  if (run.settings.quick) return { status: 'skipped', note: 'skipped in --quick' };
  const { cluster, protocol } = run;
  if (!cluster.owned || cluster.addLearner === undefined || cluster.removeLearner === undefined) {
    return { status: 'skipped', note: 'skipped (the bench does not run these members)' };
  }
  try {
    const leader = await cluster.leaderIndex();
    const writes = Math.ceil(SNAPSHOT_STATE_BYTES / SNAPSHOT_VALUE_BYTES);
    const endpoints = new HttpEndpoints(cluster.urls, 16);
    try {
      let done = 0;
      while (done < writes) {
        const base = done;
        const result = await runLoad({
          endpoints, concurrency: 16, requestsMax: writes - done, requestTimeoutMs: run.settings.requestTimeoutMs, failurePauseMs: 100,
          request: (seq) => protocol.put(leader, benchKey(SNAPSHOT_KEY_BASE + base + seq), snapshotValue(base + seq)),
          accept: (answer) => protocol.putSucceeded(answer),
        });
        done += result.succeeded;
        if (result.succeeded === 0) throw new Error(`the ${(SNAPSHOT_STATE_BYTES / 2 ** 20).toFixed(0)} MiB fill made no progress: ${describeFailures(result.failures)}`);
      }
      run.log(`  ${label(run)}: wrote ${writes.toLocaleString('en-US')} values of ${SNAPSHOT_VALUE_BYTES / 1024} KiB`);
    } finally {
      endpoints.close();
    }
    run.log(`  ${label(run)}: adding a learner ...`);
    const join = await cluster.addLearner();
    await cluster.removeLearner();
    const megabytes = join.snapshotBytes / 1e6;
    run.log(`  ${label(run)}: learner caught up in ${(join.ms / 1000).toFixed(2)} s, ${megabytes.toFixed(0)} MB of state`);
    if (join.snapshotBytes < SNAPSHOT_STATE_BYTES / 2) {
      return { status: 'failed', note: `failed: the learner received ${megabytes.toFixed(0)} MB, not the state (was it sent the log instead of a snapshot?)` };
    }
    return { status: 'ok', megabytesPerS: megabytes / (join.ms / 1000), exchangedBytes: join.snapshotBytes, convergenceMs: join.ms };
  } catch (error) {
    return failed(error);
  }
}


/** A kill after which no write succeeds for this long fails the phase. */
const RECOVERY_TIMEOUT_MS = 60_000;
/** After a kill, a fresh probe write starts this often until one succeeds. */
const PROBE_INTERVAL_MS = 10;
/** Probe writes use key numbers from here up, apart from the load's. */
const PROBE_KEY_BASE = 9_000_000_000;

/**
 * Sends a new write every PROBE_INTERVAL_MS, each to the next member in turn and none waiting
 * for another, until one succeeds; resolves with the end time of the first success. Open-loop
 * on purpose: the steady load's workers may all be stuck in requests that the server holds
 * until its own timeout (etcd: 7 s), which says more about that timeout than about when the
 * cluster took writes again.
 */
async function probeUntilWritable(
  run: SystemRun,
  endpoints: HttpEndpoints,
  probes: { sent: number; readonly acked: number[] },
  deadlineMs: number,
): Promise<number | null> {
  const size = run.cluster.urls.length;
  let firstSuccessMs: number | null = null;
  const inflight: Promise<void>[] = [];
  while (firstSuccessMs === null && performance.now() < deadlineMs) {
    const n = PROBE_KEY_BASE + probes.sent++;
    const spec = run.protocol.put(inflight.length % size, benchKey(n), benchValue(n));
    inflight.push(endpoints.send(spec, run.settings.requestTimeoutMs).then(
      (answer) => {
        if (!run.protocol.putSucceeded(answer)) return;
        probes.acked.push(n);
        if (firstSuccessMs === null) firstSuccessMs = performance.now();
      },
      () => undefined,
    ));
    await sleep(PROBE_INTERVAL_MS);
  }
  // The probes still out are acknowledged or not like any write: wait, so that the read-back
  // checks every acknowledged one.
  await Promise.all(inflight);
  return firstSuccessMs;
}

/**
 * Under a steady write load spread over every member, SIGKILLs the leader `failoverKills`
 * times. Each recovery is the time from the kill to the first acknowledgement of a probe write
 * sent after it (see probeUntilWritable); the steady load's own first success after the kill is
 * reported too. The killed member is restarted and must catch up before the next kill, so every
 * kill meets a whole cluster. At the end every acknowledged write of the phase (load and probes)
 * is read back (linearizable): one missing or different is a lost write.
 */
export async function failoverPhase(run: SystemRun): Promise<SystemResult> {
  const { cluster, settings } = run;
  if (!cluster.owned) return { status: 'skipped', note: 'skipped (the bench does not run these members)' };
  const size = cluster.urls.length;
  const firstKey = run.acked.length;
  const recoveries = new LatencySamples();
  const loadRecoveries = new LatencySamples();
  const returnsMs: number[] = [];
  const probeState = { sent: 0, acked: [] as number[] };
  const probes = new HttpEndpoints(cluster.urls, 256);
  let killAtMs: number | null = null;
  let loadBackAtMs: number | null = null;
  const stop = new AbortController();
  const load = writeLoad(run, {
    concurrency: settings.failoverConcurrency,
    endpoint: (seq) => seq % size,
    requestsMax: Number.MAX_SAFE_INTEGER,
    signal: stop.signal,
    // A dead member refuses at once: pause a little so that the workers do not spin.
    failurePauseMs: 5,
    onResult: (_key, ok, startMs, endMs) => {
      if (ok && killAtMs !== null && startMs >= killAtMs && loadBackAtMs === null) loadBackAtMs = endMs;
    },
  });
  try {
    await sleep(settings.failoverSettleMs);
    for (let k = 1; k <= settings.failoverKills; k++) {
      const leader = await cluster.leaderIndex();
      loadBackAtMs = null;
      killAtMs = performance.now();
      await cluster.kill(leader);
      const endMs = await probeUntilWritable(run, probes, probeState, killAtMs + RECOVERY_TIMEOUT_MS);
      if (endMs === null) throw new Error(`writes did not succeed within ${RECOVERY_TIMEOUT_MS / 1000} s of kill ${k}`);
      recoveries.add(endMs - killAtMs);
      const restartedAtMs = performance.now();
      await cluster.restart(leader);
      await waitFor(`member ${leader + 1} to catch up after kill ${k}`, 120_000, async () => ((await cluster.caughtUp(leader)) ? true : undefined), 200);
      returnsMs.push(performance.now() - restartedAtMs);
      // By now the steady load has long had a success, unless it never recovered.
      const loadBack: number | null = loadBackAtMs;
      if (loadBack !== null) loadRecoveries.add(loadBack - killAtMs);
      run.log(`  ${label(run)} kill ${k}/${settings.failoverKills}: leader was member ${leader + 1}; writes back after ${formatMs(endMs - killAtMs)}`
        + ` (steady load: ${loadBack === null ? 'not yet' : formatMs(loadBack - killAtMs)}); member caught up ${formatMs(returnsMs.at(-1))} after restart`);
      await sleep(settings.failoverSettleMs);
    }
  } catch (error) {
    stop.abort();
    await load.catch(() => undefined);
    probes.close();
    return failed(error);
  }
  stop.abort();
  await load;
  probes.close();
  const keys = [...run.acked.slice(firstKey), ...probeState.acked];
  run.log(`  ${label(run)}: reading back ${formatCount(keys.length)} acknowledged writes ...`);
  await cluster.waitReady(60_000);
  const check = await readBack(run, keys);
  returnsMs.sort((a, b) => a - b);
  const medianReturn = returnsMs[Math.floor(returnsMs.length / 2)];
  return {
    status: 'ok',
    kills: settings.failoverKills,
    latencyMsP50: recoveries.percentile(50),
    latencyMsP99: recoveries.percentile(99),
    latencyMsMax: recoveries.max(),
    ackedWrites: keys.length,
    lostWrites: check.lost,
    unverifiedWrites: check.unread,
    note: `steady load (${settings.failoverConcurrency} clients) back after p50 ${formatMs(loadRecoveries.percentile(50))}, max ${formatMs(loadRecoveries.max())}; `
      + `killed member caught up a median ${formatMs(medianReturn)} after restart`,
  };
}

type Verdict = 'same' | 'lost' | 'error';

/** Reads every key linearizably; a read that fails is retried (three rounds) before it is
 * reported as unread. A key that is missing, or holds another value, is lost. */
async function readBack(run: SystemRun, keys: readonly number[]): Promise<{ lost: number; unread: number }> {
  const { protocol } = run;
  const size = run.cluster.urls.length;
  let pending = keys;
  let lost = 0;
  for (let round = 0; round < 3 && pending.length > 0; round++) {
    const verdicts: Verdict[] = new Array<Verdict>(pending.length).fill('error');
    const endpoints = new HttpEndpoints(run.cluster.urls, run.settings.readConcurrency);
    const current = pending;
    try {
      await runLoad({
        endpoints,
        concurrency: run.settings.readConcurrency,
        requestsMax: current.length,
        requestTimeoutMs: run.settings.requestTimeoutMs,
        request: (seq) => protocol.get(seq % size, benchKey(current[seq]!), false),
        accept: (answer: HttpAnswer, seq) => {
          const notFound = run.protocol.name === 'chorus' ? answer.status === 404 : answer.status === 200 && protocol.valueOf(answer) === null;
          if (notFound) {
            verdicts[seq] = 'lost';
            return true;
          }
          const value = protocol.valueOf(answer);
          if (value === null) return false;
          verdicts[seq] = value.equals(benchValue(current[seq]!)) ? 'same' : 'lost';
          return true;
        },
        failurePauseMs: 20,
      });
    } finally {
      endpoints.close();
    }
    lost += verdicts.filter((v) => v === 'lost').length;
    pending = current.filter((_, i) => verdicts[i] === 'error');
  }
  return { lost, unread: pending.length };
}
