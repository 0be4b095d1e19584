// The load generator shared by every system under test: `concurrency` workers each keeping one
// request in flight, and the latency of every successful request timed with performance.now().
// Requests go through a LoadTarget: HTTP/1.1 keep-alive over node:http agents (HttpEndpoints,
// one agent per endpoint, maxSockets = concurrency) for Chorus and etcd, RESP over node:net
// (bench/resp.ts) for Redis. Nothing here knows which system it talks to: the caller builds the
// requests and judges the answers, so every system is driven and timed by exactly the same code.
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { LatencySamples } from './samples.ts';

export interface HttpRequestSpec {
  /** Index into the endpoints the requests are sent to. */
  readonly endpoint: number;
  readonly method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  /** Path and query. */
  readonly path: string;
  readonly body?: Buffer;
  readonly contentType?: string;
}

export interface HttpAnswer {
  readonly status: number;
  readonly body: Buffer;
}

/** An error of a request that got no answer; `code` is the socket error code or TIMEOUT. */
export class RequestFailure extends Error {
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.name = 'RequestFailure';
    this.code = code;
  }
}

interface Target {
  readonly host: string;
  readonly port: number;
  readonly agent: http.Agent;
}

/** Where the load generator sends its requests: one request in flight per worker, answered or
 * rejected with a RequestFailure (no answer: socket error, TIMEOUT). */
export interface LoadTarget<Spec, Answer> {
  send(spec: Spec, timeoutMs: number): Promise<Answer>;
  /** How a refused answer is counted: "HTTP 503 CHORUS_BUSY", "RESP READONLY", ... */
  failureKind(answer: Answer): string;
}

/** Keep-alive connection pools to a fixed list of base URLs ("http://host:port"). */
export class HttpEndpoints implements LoadTarget<HttpRequestSpec, HttpAnswer> {
  readonly urls: readonly string[];
  private readonly targets: readonly Target[];

  constructor(urls: readonly string[], socketsMax: number) {
    if (urls.length === 0) throw new Error('at least one endpoint is needed');
    this.urls = urls;
    this.targets = urls.map((url) => {
      const parsed = new URL(url);
      if (parsed.protocol !== 'http:') throw new Error(`only http:// endpoints are supported, got ${url}`);
      return {
        host: parsed.hostname.replace(/^\[|\]$/g, ''),
        port: Number(parsed.port || 80),
        // No Nagle: small requests must leave at once, as in any latency-minded client.
        agent: new http.Agent({ keepAlive: true, maxSockets: socketsMax, maxFreeSockets: socketsMax, noDelay: true }),
      };
    });
  }

  send(spec: HttpRequestSpec, timeoutMs: number): Promise<HttpAnswer> {
    const target = this.targets[spec.endpoint];
    if (target === undefined) return Promise.reject(new Error(`no endpoint ${spec.endpoint}`));
    return new Promise<HttpAnswer>((resolve, reject) => {
      const headers: Record<string, string | number> = { 'content-length': spec.body?.length ?? 0 };
      if (spec.contentType !== undefined) headers['content-type'] = spec.contentType;
      const request = http.request({ host: target.host, port: target.port, method: spec.method, path: spec.path, headers, agent: target.agent });
      let settled = false;
      const fail = (error: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        const code = (error as NodeJS.ErrnoException).code;
        reject(error instanceof RequestFailure ? error : new RequestFailure(code ?? 'ERROR', error.message));
      };
      const timer = setTimeout(() => request.destroy(new RequestFailure('TIMEOUT', `no answer within ${timeoutMs} ms`)), timeoutMs);
      request.on('error', fail);
      request.on('response', (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', fail);
        response.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve({ status: response.statusCode ?? 0, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) });
        });
      });
      request.end(spec.body);
    });
  }

  failureKind(answer: HttpAnswer): string {
    return failureKind(answer);
  }

  /** Closes every pooled connection. */
  close(): void {
    for (const target of this.targets) target.agent.destroy();
  }
}

export interface LoadProgress {
  readonly succeeded: number;
  readonly failed: number;
  readonly elapsedMs: number;
}

export interface LoadOptions<Spec = HttpRequestSpec, Answer = HttpAnswer> {
  readonly endpoints: LoadTarget<Spec, Answer>;
  /** Workers, each with one request in flight. */
  readonly concurrency: number;
  /** Stop starting requests this long after the start (at least one of durationMs, requestsMax). */
  readonly durationMs?: number;
  /** Stop after starting this many requests. */
  readonly requestsMax?: number;
  /** A request without an answer by then fails with TIMEOUT (default 10,000 ms). */
  readonly requestTimeoutMs?: number;
  /** The request with sequence number `seq` (0, 1, 2, ... in the order they start). */
  readonly request: (seq: number) => Spec;
  /** Whether an answer is a success. Only successes are timed and counted as throughput. */
  readonly accept: (answer: Answer, seq: number) => boolean;
  /** Told of every finished request, with its start and end on performance.now()'s clock. */
  readonly onResult?: (seq: number, ok: boolean, startMs: number, endMs: number) => void;
  /** A worker pauses this long after a failure, so that a dead endpoint, which refuses at once,
   * does not turn the worker into a busy loop (default 0). */
  readonly failurePauseMs?: number;
  /** Ends the run early: no new request starts once aborted. */
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: LoadProgress) => void;
  readonly progressEveryMs?: number;
}

export interface LoadResult {
  readonly succeeded: number;
  readonly failed: number;
  /** Failures by kind: "HTTP 503", "ECONNREFUSED", "TIMEOUT", ... */
  readonly failures: ReadonlyMap<string, number>;
  /** From the first request's start to the last one's end. */
  readonly durationMs: number;
  /** Latencies of the successful requests, in milliseconds. */
  readonly latency: LatencySamples;
}

export function throughputPerS(result: LoadResult): number {
  return result.durationMs > 0 ? (result.succeeded * 1000) / result.durationMs : 0;
}

/** Error bodies this small are parsed for the server's error code. */
const ERROR_BODY_BYTES_MAX = 2048;

/** "HTTP 503 CHORUS_BUSY" (Chorus's {code}), "HTTP 503 etcdserver: request timed out" (the etcd
 * gateway's {error}), or just the status: failures are told apart by why the server refused. */
export function failureKind(answer: HttpAnswer): string {
  const status = `HTTP ${answer.status}`;
  if (answer.body.length === 0 || answer.body.length > ERROR_BODY_BYTES_MAX || answer.body[0] !== 0x7b) return status;
  try {
    const doc = JSON.parse(answer.body.toString('utf8')) as { code?: unknown; error?: unknown };
    if (typeof doc.code === 'string') return `${status} ${doc.code}`;
    if (typeof doc.error === 'string') return `${status} ${doc.error.slice(0, 80)}`;
  } catch {
    // not JSON after all
  }
  return status;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// HTTP first, without type parameters: the requests built inline are then typed as
// HttpRequestSpec as they are written (`method: 'PUT'` stays a literal).
export function runLoad(options: LoadOptions): Promise<LoadResult>;
export function runLoad<Spec, Answer>(options: LoadOptions<Spec, Answer>): Promise<LoadResult>;
export async function runLoad<Spec, Answer>(options: LoadOptions<Spec, Answer>): Promise<LoadResult> {
  const { endpoints, concurrency } = options;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
  if (options.durationMs === undefined && options.requestsMax === undefined) throw new RangeError('give durationMs or requestsMax');
  const timeoutMs = options.requestTimeoutMs ?? 10_000;
  const failurePauseMs = options.failurePauseMs ?? 0;
  const latency = new LatencySamples();
  const failures = new Map<string, number>();
  let succeeded = 0;
  let failed = 0;
  let nextSeq = 0;
  const startMs = performance.now();
  let lastEndMs = startMs;
  const stopAtMs = options.durationMs === undefined ? Number.POSITIVE_INFINITY : startMs + options.durationMs;
  const requestsMax = options.requestsMax ?? Number.POSITIVE_INFINITY;

  const progressTimer = options.onProgress === undefined
    ? null
    : setInterval(() => options.onProgress?.({ succeeded, failed, elapsedMs: performance.now() - startMs }), options.progressEveryMs ?? 1000);

  const worker = async (): Promise<void> => {
    while (options.signal?.aborted !== true && nextSeq < requestsMax && performance.now() < stopAtMs) {
      const seq = nextSeq++;
      const spec = options.request(seq);
      const requestStartMs = performance.now();
      let failure: string | null = null;
      try {
        const answer = await endpoints.send(spec, timeoutMs);
        if (!options.accept(answer, seq)) failure = endpoints.failureKind(answer);
      } catch (error) {
        failure = error instanceof RequestFailure ? error.code : 'ERROR';
      }
      const requestEndMs = performance.now();
      if (requestEndMs > lastEndMs) lastEndMs = requestEndMs;
      if (failure === null) {
        succeeded++;
        latency.add(requestEndMs - requestStartMs);
      } else {
        failed++;
        failures.set(failure, (failures.get(failure) ?? 0) + 1);
      }
      options.onResult?.(seq, failure === null, requestStartMs, requestEndMs);
      if (failure !== null && failurePauseMs > 0) await sleep(failurePauseMs);
    }
  };

  try {
    await Promise.all(Array.from({ length: concurrency }, () => worker()));
  } finally {
    if (progressTimer !== null) clearInterval(progressTimer);
  }
  return { succeeded, failed, failures, durationMs: lastEndMs - startMs, latency };
}

/** "HTTP 503 x12, ECONNREFUSED x3" */
export function describeFailures(failures: ReadonlyMap<string, number>): string {
  return [...failures].sort((a, b) => b[1] - a[1]).map(([kind, n]) => `${kind} x${n}`).join(', ');
}
