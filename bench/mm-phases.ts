// The multi-master phases (issue 6): writes at local acknowledgement on an lww keyspace, beside
// a Redis primary with two asynchronous replicas; and the repair of a member that was cut off
// while 10,000 keys were written elsewhere (time and bytes until every member holds the same
// records), beside a Redis replica's resync. Both systems get the same keys and 100-byte values
// and go through the same load generator (bench/load.ts) as every other phase.
import { performance } from 'node:perf_hooks';
import { ChorusProcessCluster } from './chorus-cluster.ts';
import { describeFailures, HttpEndpoints, runLoad } from './load.ts';
import type { HttpAnswer, HttpRequestSpec, LoadOptions, LoadResult, LoadTarget } from './load.ts';
import { failed, loadResult } from './phases.ts';
import type { BenchSettings, SystemRun } from './phases.ts';
import { requestJson, sleep, waitFor } from './processes.ts';
import { sumSamples } from './prometheus.ts';
import type { RedisProcessCluster } from './redis-cluster.ts';
import { RespEndpoints } from './resp.ts';
import type { RespRequest, RespValue } from './resp.ts';
import type { SystemResult } from './report.ts';
import { formatCount, formatMs } from './report.ts';
import { benchKey, benchValue } from './systems.ts';

/** The keyspace of the write phase, and a fresh one for the repair (so that it holds exactly the
 * keys written during the partition). */
export const MM_WRITE_KEYSPACE = 'bench-mm';
export const MM_REPAIR_KEYSPACE = 'bench-mm-repair';

/** One Redis run: the cluster, and the next key number to write. */
export interface RedisRun {
  readonly cluster: RedisProcessCluster;
  readonly settings: BenchSettings;
  readonly log: (line: string) => void;
  nextKey: number;
}

/** How often convergence is checked after healing, on both systems: the resolution of the time
 * measured. A check is cheap (Chorus: the cut-off member's /metrics; Redis: INFO and DBSIZE). */
const CONVERGENCE_POLL_MS = 20;
/** After a failed full comparison, the next one waits at least this long (each reads every key). */
const FULL_CHECK_INTERVAL_MS = 1000;
/** A member's list is read by prefix, this many digits at the end of the key: 10,000 keys a page,
 * the most one GET /v1/ks/{ks}/kv answers. */
const PAGE_DIGITS = 4;
const PAGE_KEYS = 10 ** PAGE_DIGITS;
/** Writes that failed are sent again, at most this many rounds. */
const FILL_ROUNDS_MAX = 5;
const KEYSPACE_TIMEOUT_MS = 30_000;

/** The warm-up (not counted), then the measurement, of the same load; keys continue from one to
 * the other. */
async function warmThenMeasure<Spec, Answer>(
  settings: BenchSettings,
  firstKey: number,
  build: (durationMs: number, firstKey: number) => LoadOptions<Spec, Answer>,
): Promise<{ result: LoadResult; nextKey: number }> {
  const warm = await runLoad(build(settings.warmupMs, firstKey));
  const measuredFirstKey = firstKey + warm.succeeded + warm.failed;
  const result = await runLoad(build(settings.phaseDurationMs, measuredFirstKey));
  return { result, nextKey: measuredFirstKey + result.succeeded + result.failed };
}

/**
 * Writes keys 0..count-1, `send(seq, key)` building request `seq` for key number `key`, and sends
 * the failed ones again (in rounds) until every one is acknowledged.
 */
async function fillKeys<Spec, Answer>(
  target: LoadTarget<Spec, Answer>,
  settings: BenchSettings,
  count: number,
  send: (seq: number, key: number) => Spec,
  accept: (answer: Answer) => boolean,
  log: (line: string) => void,
): Promise<void> {
  let pending = Array.from({ length: count }, (_, i) => i);
  for (let round = 1; pending.length > 0; round++) {
    if (round > FILL_ROUNDS_MAX) throw new Error(`${formatCount(pending.length)} writes still failed after ${FILL_ROUNDS_MAX} rounds`);
    const current = pending;
    const again: number[] = [];
    const result = await runLoad({
      endpoints: target,
      concurrency: settings.mmWriteConcurrency,
      requestsMax: current.length,
      requestTimeoutMs: settings.requestTimeoutMs,
      request: (seq) => send(seq, current[seq]!),
      accept,
      onResult: (seq, ok) => {
        if (!ok) again.push(current[seq]!);
      },
      failurePauseMs: 20,
    });
    if (result.failed > 0) log(`  fill round ${round}: ${describeFailures(result.failures)}`);
    pending = again;
  }
}

// ------------------------------------------------------------------------------------ Chorus

/** Creates an lww multi-master keyspace (any member forwards to the leader) and waits until the
 * catalog has reached every member. False when this Chorus has no keyspaces. */
async function createKeyspace(urls: readonly string[], name: string, timeoutMs: number): Promise<boolean> {
  const { status, doc } = await requestJson(`${urls[0]}/v1/keyspaces`, { method: 'POST', body: { name, mode: 'multi-master', conflicts: 'lww' }, timeoutMs });
  if (status === 404) return false;
  if (status !== 200 && status !== 201) throw new Error(`POST /v1/keyspaces answered ${status}: ${JSON.stringify(doc).slice(0, 200)}`);
  for (const url of urls) {
    await waitFor(`keyspace ${name} at ${url}`, KEYSPACE_TIMEOUT_MS, async () => ((await requestJson(`${url}/v1/keyspaces/${name}`)).status === 200 ? true : undefined));
  }
  return true;
}

const NO_KEYSPACES: SystemResult = { status: 'na', note: 'n/a (this Chorus has no multi-master keyspaces)' };

/** 64 clients spread over every member (any member takes writes), PUT ?w=1: acknowledged once
 * the member that took the write has fsynced it; replication to the others is asynchronous. */
export async function mmWritePhase(run: SystemRun): Promise<SystemResult> {
  const { cluster, settings, protocol } = run;
  if (protocol.name !== 'chorus') return { status: 'na', note: 'no equivalent' };
  const concurrency = settings.mmWriteConcurrency;
  const size = cluster.urls.length;
  const endpoints = new HttpEndpoints(cluster.urls, concurrency);
  try {
    if (!(await createKeyspace(cluster.urls, MM_WRITE_KEYSPACE, settings.requestTimeoutMs))) return NO_KEYSPACES;
    const { result } = await warmThenMeasure<HttpRequestSpec, HttpAnswer>(settings, 0, (durationMs, firstKey) => ({
      endpoints,
      concurrency,
      durationMs,
      requestTimeoutMs: settings.requestTimeoutMs,
      request: (seq) => protocol.put(seq % size, benchKey(firstKey + seq), benchValue(firstKey + seq), { keyspace: MM_WRITE_KEYSPACE, w: 1 }),
      accept: (answer) => protocol.putSucceeded(answer),
    }));
    if (result.failed > 0) run.log(`  Chorus multi-master write failures: ${describeFailures(result.failures)}`);
    return loadResult(result);
  } catch (error) {
    return failed(error);
  } finally {
    endpoints.close();
  }
}

async function scrape(url: string): Promise<string> {
  const response = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`GET ${url}/metrics answered ${response.status}`);
  return text;
}

/** Bytes every member has handed to its peers' sockets so far (Raft and multi-master). */
async function sentBytesTotal(urls: readonly string[]): Promise<number> {
  const texts = await Promise.all(urls.map(scrape));
  return texts.reduce((sum, text) => sum + sumSamples(text, 'chorus_transport_sent_bytes_total'), 0);
}

async function setFaults(url: string, faults: object): Promise<void> {
  const { status, doc } = await requestJson(`${url}/v1/test/faults`, { method: 'POST', body: faults });
  if (status !== 200) throw new Error(`POST ${url}/v1/test/faults answered ${status}: ${JSON.stringify(doc).slice(0, 200)}`);
}

/** Every record of keys 0..count-1 on one member, as "key value stamp" lines in key order. */
async function listRecords(url: string, keyspace: string, count: number): Promise<string[]> {
  const lines: string[] = [];
  for (let first = 0; first < count; first += PAGE_KEYS) {
    // The keys first..first+9,999 are exactly those with this prefix.
    const prefix = benchKey(first).slice(0, -PAGE_DIGITS);
    const response = await fetch(`${url}/v1/ks/${keyspace}/kv?prefix=${prefix}&limit=${PAGE_KEYS}`, { signal: AbortSignal.timeout(30_000) });
    if (response.status !== 200) throw new Error(`listing ${keyspace} at ${url} answered ${response.status}`);
    const items = (await response.json()) as { key: string; valueBase64?: string; stamp?: string }[];
    for (const item of items) lines.push(`${item.key} ${item.valueBase64 ?? '-'} ${item.stamp ?? '-'}`);
  }
  return lines;
}

/** Whether every member holds keys 0..count-1 with the values written and the same stamps. */
async function allHoldTheSame(urls: readonly string[], keyspace: string, count: number): Promise<boolean> {
  const lists = await Promise.all(urls.map((url) => listRecords(url, keyspace, count)));
  const reference = lists[0]!;
  if (reference.length !== count) return false;
  for (let n = 0; n < count; n++) {
    const [key, value] = reference[n]!.split(' ');
    if (key !== benchKey(n) || value !== benchValue(n).toString('base64')) return false;
  }
  return lists.every((list) => list.length === count && list.every((line, i) => line === reference[i]));
}

/**
 * Cuts one member off (a follower, so that Raft keeps its leader), writes `repairKeys` new keys
 * to the two others (w=1, 64 clients), waits until those two hold them all, then heals and
 * measures the time until the cut-off member holds every key with the same value and stamp as
 * the others, and the bytes all members sent each other meanwhile (Raft's heartbeats included;
 * the idle rate is measured afterwards and reported in the note).
 */
export async function mmRepairPhase(run: SystemRun): Promise<SystemResult> {
  const { cluster, settings, protocol, log } = run;
  if (protocol.name !== 'chorus') return { status: 'na', note: 'no equivalent' };
  if (!(cluster instanceof ChorusProcessCluster) || !cluster.testFaults) return { status: 'skipped', note: 'skipped (needs members started with --enable-test-faults)' };
  const keys = settings.repairKeys;
  const urls = cluster.urls;
  const leader = await cluster.leaderIndex();
  const cut = (leader + 1) % urls.length;
  const cutId = cluster.memberId(cut);
  const cutUrl = urls[cut]!;
  const others = urls.map((_, i) => i).filter((i) => i !== cut);
  const endpoints = new HttpEndpoints(urls, settings.mmWriteConcurrency);
  const keyCount = async (url: string): Promise<number> => sumSamples(await scrape(url), 'chorus_mm_keys', { keyspace: MM_REPAIR_KEYSPACE });
  let healed = false;
  const heal = async (): Promise<void> => {
    healed = true;
    await Promise.all(urls.map((url) => setFaults(url, {})));
  };
  try {
    if (!(await createKeyspace(urls, MM_REPAIR_KEYSPACE, settings.requestTimeoutMs))) return NO_KEYSPACES;
    await setFaults(cutUrl, { isolate: true });
    for (const i of others) await setFaults(urls[i]!, { dropTo: [cutId], dropFrom: [cutId] });
    log(`  Chorus: member ${cut + 1} (${cutId}) cut off; writing ${formatCount(keys)} keys to the others ...`);
    const fillStartMs = performance.now();
    await fillKeys(endpoints, settings, keys,
      (seq, n) => protocol.put(others[seq % others.length]!, benchKey(n), benchValue(n), { keyspace: MM_REPAIR_KEYSPACE, w: 1 }),
      (answer) => protocol.putSucceeded(answer), log);
    // What is measured is the cut-off member's repair alone: the two others converge first.
    await waitFor('the connected members to hold every key', settings.convergenceTimeoutMs, async () => {
      const counts = await Promise.all(others.map((i) => keyCount(urls[i]!)));
      return counts.every((c) => c === keys) ? true : undefined;
    });
    const heldBefore = await keyCount(cutUrl);
    log(`  Chorus: written in ${formatMs(performance.now() - fillStartMs)}; the cut-off member holds ${formatCount(heldBefore)} of them; healing ...`);

    const cutMetricsBefore = await scrape(cutUrl);
    const bytesBefore = await sentBytesTotal(urls);
    const healedAtMs = performance.now();
    await heal();
    let convergedAtMs: number | null = null;
    let bytesAfter = 0;
    let fullCheckAtMs = 0;
    while (convergedAtMs === null) {
      if (performance.now() - healedAtMs > settings.convergenceTimeoutMs) {
        throw new Error(`not converged ${formatMs(settings.convergenceTimeoutMs)} after healing (the cut-off member holds ${formatCount(await keyCount(cutUrl))} of ${formatCount(keys)} keys)`);
      }
      // Cheap first: the cut-off member's key count; then every record of every member.
      if ((await keyCount(cutUrl)) === keys && performance.now() - fullCheckAtMs >= FULL_CHECK_INTERVAL_MS) {
        const seenAtMs = performance.now();
        const bytes = await sentBytesTotal(urls);
        fullCheckAtMs = performance.now();
        if (await allHoldTheSame(urls, MM_REPAIR_KEYSPACE, keys)) {
          convergedAtMs = seenAtMs;
          bytesAfter = bytes;
          break;
        }
      }
      await sleep(CONVERGENCE_POLL_MS);
    }
    const convergenceMs = convergedAtMs - healedAtMs;
    const exchangedBytes = bytesAfter - bytesBefore;
    const cutMetricsAfter = await scrape(cutUrl);
    const delta = (name: string): number => sumSamples(cutMetricsAfter, name, { keyspace: MM_REPAIR_KEYSPACE }) - sumSamples(cutMetricsBefore, name, { keyspace: MM_REPAIR_KEYSPACE });
    // The traffic of a quiet cluster (heartbeats, replication bookkeeping), for scale.
    const idleStartMs = performance.now();
    const idleBefore = await sentBytesTotal(urls);
    await sleep(1000);
    const idleBytesPerS = ((await sentBytesTotal(urls)) - idleBefore) * 1000 / (performance.now() - idleStartMs);
    return {
      status: 'ok',
      keys,
      convergenceMs,
      exchangedBytes,
      note: `${formatCount(delta('chorus_mm_repairs_total'))} records repaired by anti-entropy, ${formatCount(delta('chorus_mm_hints_applied_total'))} by hints, the rest by the stream; `
        + `idle traffic afterwards ${formatCount(idleBytesPerS)} B/s (${formatCount((idleBytesPerS * convergenceMs) / 1000)} B over the same time)`,
    };
  } catch (error) {
    return failed(error);
  } finally {
    endpoints.close();
    if (!healed) await heal().catch(() => undefined);
  }
}

// ------------------------------------------------------------------------------------- Redis

/** The sum of an INFO stats field over every member. */
async function redisStat(cluster: RedisProcessCluster, field: string, members: readonly number[]): Promise<number> {
  const stats = await Promise.all(members.map((i) => cluster.info(i, 'stats')));
  return stats.reduce((sum, s) => sum + Number(s.get(field) ?? Number.NaN), 0);
}

async function dbSize(cluster: RedisProcessCluster, index: number): Promise<number> {
  return Number(await cluster.admin.call(index, ['DBSIZE']));
}

/** SET at the primary (replicas are read-only), the same keys, values and clients as Chorus. */
export async function redisWritePhase(run: RedisRun): Promise<SystemResult> {
  const { settings } = run;
  const endpoints = new RespEndpoints([run.cluster.addresses[0]!]);
  try {
    const { result, nextKey } = await warmThenMeasure(settings, run.nextKey, (durationMs, firstKey) => ({
      endpoints,
      concurrency: settings.mmWriteConcurrency,
      durationMs,
      requestTimeoutMs: settings.requestTimeoutMs,
      request: (seq): RespRequest => ({ endpoint: 0, args: ['SET', benchKey(firstKey + seq), benchValue(firstKey + seq)] }),
      accept: (answer: RespValue) => answer === 'OK',
    }));
    run.nextKey = nextKey;
    if (result.failed > 0) run.log(`  Redis write failures: ${describeFailures(result.failures)}`);
    return loadResult(result);
  } catch (error) {
    return failed(error);
  } finally {
    endpoints.close();
  }
}

/**
 * Redis's counterpart of the repair: the dataset is emptied (FLUSHALL, replicated), the last
 * replica is detached (REPLICAOF NO ONE), `repairKeys` keys are written to the primary, and the
 * replica is attached again. Measured: the time from REPLICAOF until the replica is in sync and
 * holds every key, and the replication bytes the primary sent meanwhile. Detaching gives the
 * replica a new replication id, so Redis resyncs it in full (an RDB of the whole dataset: here
 * exactly the keys written while it was away).
 */
export async function redisResyncPhase(run: RedisRun): Promise<SystemResult> {
  const { cluster, settings, log } = run;
  const keys = settings.repairKeys;
  const cut = cluster.size - 1;
  const primary = cluster.addresses[0]!;
  const members = cluster.addresses.map((_, i) => i);
  const endpoints = new RespEndpoints([primary]);
  let detached = false;
  const attach = async (): Promise<void> => {
    detached = false;
    await cluster.admin.call(cut, ['REPLICAOF', primary.host, String(primary.port)]);
  };
  try {
    await cluster.admin.call(0, ['FLUSHALL']);
    await waitFor('the Redis replicas to apply FLUSHALL', settings.convergenceTimeoutMs, async () => {
      for (const i of members) if ((await dbSize(cluster, i)) !== 0) return undefined;
      return true;
    });
    await cluster.admin.call(cut, ['REPLICAOF', 'NO', 'ONE']);
    detached = true;
    log(`  Redis: replica ${cut + 1} detached; writing ${formatCount(keys)} keys to the primary ...`);
    await fillKeys(endpoints, settings, keys, (_seq, n): RespRequest => ({ endpoint: 0, args: ['SET', benchKey(n), benchValue(n)] }), (answer) => answer === 'OK', log);
    await waitFor('the primary and the attached replica to hold every key', settings.convergenceTimeoutMs, async () => {
      for (const i of members) {
        if (i === cut) continue;
        if ((await dbSize(cluster, i)) !== keys) return undefined;
        if (i !== 0 && !(await cluster.replicaInSync(i))) return undefined;
      }
      return true;
    });
    const bytesBefore = await redisStat(cluster, 'total_net_repl_output_bytes', members);
    const fullBefore = await redisStat(cluster, 'sync_full', [0]);
    const startMs = performance.now();
    await attach();
    let doneAtMs: number | null = null;
    while (doneAtMs === null) {
      if (performance.now() - startMs > settings.convergenceTimeoutMs) throw new Error(`the Redis replica was not in sync ${formatMs(settings.convergenceTimeoutMs)} after REPLICAOF`);
      if ((await cluster.replicaInSync(cut)) && (await dbSize(cluster, cut)) === keys) doneAtMs = performance.now();
      else await sleep(CONVERGENCE_POLL_MS);
    }
    const exchangedBytes = (await redisStat(cluster, 'total_net_repl_output_bytes', members)) - bytesBefore;
    const fullResyncs = (await redisStat(cluster, 'sync_full', [0])) - fullBefore;
    // Every value, as the Chorus side checks them.
    for (let first = 0; first < keys; first += PAGE_KEYS) {
      const batch = Array.from({ length: Math.min(PAGE_KEYS, keys - first) }, (_, i) => first + i);
      const values = await cluster.admin.call(cut, ['MGET', ...batch.map((n) => benchKey(n))], 30_000);
      if (!Array.isArray(values) || batch.some((n, i) => !Buffer.isBuffer(values[i]) || !(values[i] as Buffer).equals(benchValue(n)))) {
        throw new Error('the resynced replica does not hold every value written');
      }
    }
    return {
      status: 'ok',
      keys,
      convergenceMs: doneAtMs - startMs,
      exchangedBytes,
      note: `${fullResyncs > 0 ? 'full' : 'partial'} resync (replication bytes sent by the primary; the replica's acknowledgements are not counted)`,
    };
  } catch (error) {
    return failed(error);
  } finally {
    endpoints.close();
    if (detached) await attach().catch(() => undefined);
  }
}
