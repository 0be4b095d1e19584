// Chorus's rows over its binary protocol (src/shared/binary-protocol.ts): the same workers, keys,
// values and accounting as the HTTP rows (runLoad), sent through ChorusBinaryClient connections
// instead of HTTP/1.1 keep-alive pools. The workers share one connection per 64 of them (a
// pipeline: many requests in flight on it), as an application with one client per process would.
import { ChorusBinaryClient, ChorusClientError } from '../src/client/index.ts';
import { RequestFailure, runLoad } from './load.ts';
import type { LoadResult, LoadTarget } from './load.ts';
import { failed, warmThenMeasure, xorshift } from './phases.ts';
import type { SystemRun } from './phases.ts';
import type { SystemResult } from './report.ts';
import { benchKey, benchValue } from './systems.ts';

/** Workers per connection. */
const WORKERS_PER_CONNECTION = 64;

export interface BinarySpec {
  readonly endpoint: number;
  readonly op: 'put' | 'get';
  readonly key: string;
  readonly value?: Buffer;
  readonly stale?: boolean;
}

export interface BinaryAnswer {
  readonly status: number;
  readonly code: string | null;
}

/** Connections to each member's binary address; requests to one member are spread over its
 * connections. */
export class BinaryEndpoints implements LoadTarget<BinarySpec, BinaryAnswer> {
  private readonly clients: ChorusBinaryClient[][];
  private next = 0;

  constructor(addresses: readonly string[], connectionsPerEndpoint: number, timeoutMs: number) {
    this.clients = addresses.map((endpoint) => Array.from({ length: connectionsPerEndpoint }, () => new ChorusBinaryClient({ endpoint, timeoutMs, inflightMax: 1 << 20 })));
  }

  async send(spec: BinarySpec): Promise<BinaryAnswer> {
    const pool = this.clients[spec.endpoint];
    if (pool === undefined) throw new Error(`no endpoint ${spec.endpoint}`);
    const client = pool[this.next++ % pool.length]!;
    try {
      if (spec.op === 'put') await client.put(spec.key, spec.value!);
      else if ((await client.get(spec.key, spec.stale === true ? { consistency: 'stale' } : {})) === null) return { status: 404, code: 'CHORUS_KEY_NOT_FOUND' };
      return { status: 200, code: null };
    } catch (error) {
      if (error instanceof ChorusClientError && error.status > 0) return { status: error.status, code: error.code };
      const code = error instanceof ChorusClientError ? error.code : 'ERROR';
      throw new RequestFailure(code, error instanceof Error ? error.message : String(error));
    }
  }

  failureKind(answer: BinaryAnswer): string {
    return `status ${answer.status}${answer.code === null ? '' : ` ${answer.code}`}`;
  }

  close(): void {
    for (const pool of this.clients) for (const client of pool) client.close();
  }
}

function binaryEndpoints(run: SystemRun, concurrency: number): BinaryEndpoints | null {
  const addresses = run.cluster.binaryAddresses;
  if (addresses === undefined) return null;
  return new BinaryEndpoints(addresses, Math.ceil(concurrency / WORKERS_PER_CONNECTION), run.settings.requestTimeoutMs);
}

const NOT_SERVED: SystemResult = { status: 'skipped', note: 'skipped (no binary protocol addresses for this cluster)' };

/** New-key writes to the leader at `concurrency`, as writePhase over HTTP. */
export async function binaryWritePhase(run: SystemRun, concurrency: number): Promise<SystemResult> {
  const endpoints = binaryEndpoints(run, concurrency);
  if (endpoints === null) return NOT_SERVED;
  try {
    const leader = await run.cluster.leaderIndex();
    const measure = async (durationMs: number): Promise<LoadResult> => {
      const base = run.nextKey;
      const result = await runLoad({
        endpoints,
        concurrency,
        durationMs,
        requestTimeoutMs: run.settings.requestTimeoutMs,
        request: (seq): BinarySpec => ({ endpoint: leader, op: 'put', key: benchKey(base + seq), value: benchValue(base + seq) }),
        accept: (answer) => answer.status === 200,
        onResult: (seq, ok) => {
          if (ok) run.acked.push(base + seq);
        },
      });
      run.nextKey = base + result.succeeded + result.failed;
      return result;
    };
    return await warmThenMeasure(run, 'Chorus binary write', measure);
  } catch (error) {
    return failed(error);
  } finally {
    endpoints.close();
  }
}

/** Reads of keys written earlier, spread over all members, as readPhase over HTTP. */
export async function binaryReadPhase(run: SystemRun, stale: boolean): Promise<SystemResult> {
  if (run.acked.length === 0) return { status: 'failed', note: 'no keys were written to read' };
  const concurrency = run.settings.readConcurrency;
  const endpoints = binaryEndpoints(run, concurrency);
  if (endpoints === null) return NOT_SERVED;
  const size = run.cluster.urls.length;
  const { acked } = run;
  try {
    const measure = async (durationMs: number): Promise<LoadResult> => {
      const next = xorshift(stale ? 4 : 3); // the same kind of fixed sequence as the HTTP reads
      return runLoad({
        endpoints,
        concurrency,
        durationMs,
        requestTimeoutMs: run.settings.requestTimeoutMs,
        request: (seq): BinarySpec => ({ endpoint: seq % size, op: 'get', key: benchKey(acked[next() % acked.length]!), stale }),
        accept: (answer) => answer.status === 200,
      });
    };
    return await warmThenMeasure(run, 'Chorus binary read', measure);
  } catch (error) {
    return failed(error);
  } finally {
    endpoints.close();
  }
}
