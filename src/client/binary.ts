// A client of the binary protocol (src/shared/binary-protocol.ts, docs/api.md): one TCP connection
// at a time to one member, many requests in flight on it, the requests of one turn of the event
// loop written together. For applications that make many small requests; ChorusClient (HTTP)
// does everything else and follows the leader across endpoints.
//
// Given several endpoints it moves between them as ChorusClient does, retrying only what is safe:
//   - a request not yet sent (waiting for the connection) goes to the next endpoint when the
//     connect fails: round robin, no pause on the first switch, a pause of 50 ms doubling to 1 s
//     before each further round once every endpoint failed in a row; after a full round without
//     a connection it fails with CHORUS_UNAVAILABLE (nothing was sent);
//   - a connection that drops sends the next requests to the next endpoint; the requests that
//     were on it have an unknown outcome (CHORUS_TIMEOUT), and a write is never sent again;
//   - a get that was on it is sent once more, on the next endpoint (ChorusClient retries a read
//     whose connection broke, too), within its deadline.
// A member that answers (any status, 503 included) is not failed over: the answer is returned.
import net from 'node:net';
import { decodeBinaryPayload, encodeBinaryFrame } from '../shared/binary-protocol.ts';
import { FrameDecoder } from '../transport/frame-decoder.ts';
import { ChorusClientError } from './common.ts';
import type { CommitLevel, Consistency, GetResult } from './common.ts';

export interface ChorusBinaryClientOptions {
  /** host:port of one member's --listen-binary. Give this or `endpoints`, not both. */
  readonly endpoint?: string;
  /** host:port of several members' --listen-binary: the client uses one at a time and moves to
   * the next (round robin) when it cannot connect or the connection drops. */
  readonly endpoints?: readonly string[];
  /** Deadline of each request, a resent get included (default 10 s). */
  readonly timeoutMs?: number;
  /** Requests in flight or waiting for a connection at once, over every connection; more are
   * refused with CHORUS_BUSY before being sent (default 1024, as the server's limit per
   * connection). */
  readonly inflightMax?: number;
  /** Largest answer frame accepted (default 65 MiB: a 64 MiB value and its framing). */
  readonly frameBytesMax?: number;
}

export interface BinaryWriteResult {
  readonly revision: number;
  /** false at commit levels off/local: durable (or appended) at the leader only, may be lost. */
  readonly committed: boolean;
}

interface Endpoint {
  /** As given (what `endpoint` and errors show). */
  readonly address: string;
  readonly host: string;
  readonly port: number;
}

interface Connection {
  readonly endpoint: Endpoint;
  readonly socket: net.Socket;
  /** Connected and not ended by either side: new requests may be written to it. */
  usable: boolean;
  corked: boolean;
  /** What the server said (id 0) before closing the connection, if anything. */
  serverReason: string | null;
}

type Op = 'put' | 'get' | 'del';

interface Pending {
  readonly resolve: (answer: readonly [number, Record<string, unknown>]) => void;
  readonly reject: (error: Error) => void;
  readonly deadlineMs: number;
  readonly connection: Connection;
  readonly op: Op;
}

/** The connection a request was written to closed before its answer. */
class ConnectionLost extends Error {
  constructor(readonly error: ChorusClientError) {
    super(error.message);
  }
}

const SWEEP_INTERVAL_MS = 50;
const BACKOFF_MS_MIN = 50;
const BACKOFF_MS_MAX = 1000;
/** A connect attempt that neither succeeds nor fails within this (or timeoutMs) counts as failed. */
const CONNECT_TIMEOUT_MS_MAX = 5000;

function badRequest(message: string): ChorusClientError {
  return new ChorusClientError('CHORUS_BAD_REQUEST', 0, message, null);
}

function parseEndpoint(text: unknown): Endpoint {
  const match = typeof text === 'string' ? /^(.*):(\d{1,5})$/.exec(text.trim().replace(/^tcp:\/\//, '')) : null;
  if (match === null || match[1] === '' || Number(match[2]) > 65535) throw badRequest(`endpoint must be host:port, got ${String(text)}`);
  return { address: (text as string).trim(), host: match[1]!.replace(/^\[|\]$/g, ''), port: Number(match[2]) };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class ChorusBinaryClient {
  private readonly endpoints: readonly Endpoint[];
  private readonly timeoutMs: number;
  private readonly inflightMax: number;
  private readonly frameBytesMax: number;
  /** Index of the endpoint in use (or tried next). */
  private current = 0;
  /** The connection new requests are written to. */
  private connection: Connection | null = null;
  private connecting: Promise<Connection> | null = null;
  /** Every open (or opening) connection, for close(). */
  private readonly sockets = new Set<net.Socket>();
  /** Connect attempts failed since the last success, over every endpoint. */
  private failuresInRow = 0;
  private backoffMs = BACKOFF_MS_MIN;
  /** Sent, by id; ids grow, so the oldest deadline is first (but for resent gets, below). */
  private readonly pending = new Map<number, Pending>();
  /** Ids of resent gets: their deadline is older than their id says. */
  private readonly resent = new Set<number>();
  /** Requests waiting for a connection (not sent yet). */
  private waiting = 0;
  private nextId = 1;
  private sweeper: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(options: ChorusBinaryClientOptions) {
    const hasOne = options.endpoint !== undefined;
    const hasList = options.endpoints !== undefined;
    if (hasOne && hasList) throw badRequest('give endpoint or endpoints, not both');
    if (!hasOne && !hasList) throw badRequest('an endpoint (host:port) or endpoints (a list of host:port) is needed');
    if (hasList && (!Array.isArray(options.endpoints) || options.endpoints.length === 0)) throw badRequest('endpoints must be a non-empty list of host:port');
    this.endpoints = hasOne ? [parseEndpoint(options.endpoint)] : options.endpoints!.map(parseEndpoint);
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.inflightMax = options.inflightMax ?? 1024;
    this.frameBytesMax = options.frameBytesMax ?? 65 * 1024 * 1024;
  }

  /** The endpoint in use: the one connected to, or the one the next connect tries first. */
  get endpoint(): string {
    return this.endpoints[this.current]!.address;
  }

  async put(key: string, value: string | Uint8Array, options: { readonly commit?: CommitLevel } = {}): Promise<BinaryWriteResult> {
    const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
    const body = await this.call([key, bytes, options.commit === undefined ? {} : { commit: options.commit }], 'put');
    return { revision: body['revision'] as number, committed: body['committed'] === true };
  }

  /** The record, or null when the key does not exist. */
  async get(key: string, options: { readonly consistency?: Consistency; readonly minRevision?: number; readonly maxStalenessMs?: number } = {}): Promise<GetResult | null> {
    const wire: Record<string, unknown> = {};
    if (options.consistency !== undefined) wire['consistency'] = options.consistency;
    if (options.minRevision !== undefined) wire['min_revision'] = options.minRevision;
    if (options.maxStalenessMs !== undefined) wire['max_staleness_ms'] = options.maxStalenessMs;
    try {
      const body = await this.call([key, wire], 'get');
      return { value: body['value'] as Uint8Array, revision: body['revision'] as number, createRevision: body['createRevision'] as number, version: body['version'] as number };
    } catch (error) {
      if (error instanceof ChorusClientError && error.code === 'CHORUS_KEY_NOT_FOUND') return null;
      throw error;
    }
  }

  async delete(key: string, options: { readonly commit?: CommitLevel } = {}): Promise<BinaryWriteResult & { readonly deleted: number }> {
    const body = await this.call([key, options.commit === undefined ? {} : { commit: options.commit }], 'del');
    return { revision: body['revision'] as number, deleted: body['deleted'] as number, committed: body['committed'] === true };
  }

  /** Closes the connections; requests in flight fail with CHORUS_TIMEOUT (outcome unknown),
   * requests waiting for a connection with CHORUS_UNAVAILABLE (nothing sent). */
  close(): void {
    this.closed = true;
    this.connection = null;
    for (const socket of this.sockets) socket.destroy();
    const waiters = [...this.pending.values()];
    this.pending.clear();
    this.resent.clear();
    for (const waiter of waiters) {
      waiter.reject(new ChorusClientError('CHORUS_TIMEOUT', 0, 'the client was closed before the answer; the outcome is unknown', waiter.connection.endpoint.address));
    }
  }

  private async call(args: readonly unknown[], op: Op): Promise<Record<string, unknown>> {
    if (this.closed) throw new ChorusClientError('CHORUS_UNAVAILABLE', 0, 'the client is closed', this.endpoint);
    if (this.pending.size + this.waiting >= this.inflightMax) {
      throw new ChorusClientError('CHORUS_BUSY', 0, `${this.pending.size + this.waiting} requests are in flight (inflightMax); nothing was sent`, this.endpoint);
    }
    const deadlineMs = performance.now() + this.timeoutMs;
    let resend = false;
    let ended = 0;
    for (;;) {
      // Written in the caller's turn when connected (the requests of one turn leave together).
      let connection: Connection;
      if (this.connection !== null && this.connection.usable) {
        connection = this.connection;
      } else {
        this.waiting++;
        try {
          connection = await this.acquire(deadlineMs);
        } finally {
          this.waiting--;
        }
      }
      if (this.closed) throw new ChorusClientError('CHORUS_UNAVAILABLE', 0, 'the client was closed; nothing was sent', connection.endpoint.address);
      if (!connection.usable) {
        // It ended while we waited: nothing was written to it; try another, a bounded number of times.
        if (++ended >= this.endpoints.length) throw new ChorusClientError('CHORUS_UNAVAILABLE', 0, `the connection to ${connection.endpoint.address} closed before the request was sent; nothing was sent`, connection.endpoint.address);
        continue;
      }
      let status: number;
      let body: Record<string, unknown>;
      try {
        [status, body] = await this.send(connection, op, args, deadlineMs, resend);
      } catch (error) {
        if (!(error instanceof ConnectionLost)) throw error;
        // A get has no effect: like ChorusClient's reads, it is sent once more elsewhere.
        if (op === 'get' && !resend && this.endpoints.length > 1 && !this.closed && performance.now() < deadlineMs) {
          resend = true;
          continue;
        }
        throw error.error;
      }
      if (status === 200) return body;
      const code = typeof body['code'] === 'string' ? body['code'] : 'CHORUS_INTERNAL';
      throw new ChorusClientError(code, status, typeof body['message'] === 'string' ? body['message'] : `status ${status}`, connection.endpoint.address);
    }
  }

  private send(connection: Connection, op: Op, args: readonly unknown[], deadlineMs: number, resent: boolean): Promise<readonly [number, Record<string, unknown>]> {
    const id = this.nextId++;
    const frame = encodeBinaryFrame([id, op, ...args]);
    return new Promise<readonly [number, Record<string, unknown>]>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, deadlineMs, connection, op });
      if (resent) this.resent.add(id);
      this.armSweeper();
      const { socket } = connection;
      if (!connection.corked) {
        // The requests of this turn leave in one write.
        connection.corked = true;
        socket.cork();
        queueMicrotask(() => {
          connection.corked = false;
          socket.uncork();
        });
      }
      socket.write(frame);
    });
  }

  /** The connection to write to, opened if needed; CHORUS_UNAVAILABLE (nothing sent) when none
   * could be opened in a round over the endpoints or before the deadline. */
  private async acquire(deadlineMs: number): Promise<Connection> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ChorusClientError('CHORUS_UNAVAILABLE', 0, `no connection to ${this.endpoint} within ${this.timeoutMs} ms; nothing was sent`, this.endpoint)), Math.max(0, deadlineMs - performance.now()));
    });
    try {
      return await Promise.race([this.connect(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** One round over the endpoints, from the current one: the first that accepts a connection. */
  private connect(): Promise<Connection> {
    if (this.connecting !== null) return this.connecting;
    this.connecting = (async () => {
      let lastError: ChorusClientError | null = null;
      try {
        for (let tried = 0; tried < this.endpoints.length; tried++) {
          if (this.closed) break;
          if (this.failuresInRow > 0 && this.failuresInRow % this.endpoints.length === 0) {
            // Every endpoint failed in a row: pause before the next round.
            await sleep(this.backoffMs);
            this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MS_MAX);
            if (this.closed) break;
          }
          try {
            const connection = await this.open(this.endpoints[this.current]!);
            this.failuresInRow = 0;
            this.backoffMs = BACKOFF_MS_MIN;
            return connection;
          } catch (error) {
            lastError = error as ChorusClientError;
            this.failuresInRow++;
            this.current = (this.current + 1) % this.endpoints.length;
          }
        }
        if (this.closed) throw new ChorusClientError('CHORUS_UNAVAILABLE', 0, 'the client was closed; nothing was sent', this.endpoint);
        if (this.endpoints.length === 1 || lastError === null) throw lastError!;
        throw new ChorusClientError('CHORUS_UNAVAILABLE', 0, `cannot connect to any of ${this.endpoints.map((e) => e.address).join(', ')} (last: ${lastError.message})`, lastError.endpoint, { cause: lastError });
      } finally {
        this.connecting = null;
      }
    })();
    return this.connecting;
  }

  private open(endpoint: Endpoint): Promise<Connection> {
    return new Promise<Connection>((resolve, reject) => {
      const socket = net.connect({ host: endpoint.host, port: endpoint.port });
      this.sockets.add(socket);
      socket.setNoDelay(true);
      const connection: Connection = { endpoint, socket, usable: false, corked: false, serverReason: null };
      const decoder = new FrameDecoder(this.frameBytesMax, (payload) => this.onAnswer(connection, payload));
      const onConnectError = (error: Error): void => {
        reject(new ChorusClientError('CHORUS_UNAVAILABLE', 0, `cannot connect to ${endpoint.address}: ${error.message}; nothing was sent`, endpoint.address, { cause: error }));
      };
      socket.once('error', onConnectError);
      socket.setTimeout(Math.min(this.timeoutMs, CONNECT_TIMEOUT_MS_MAX), () => socket.destroy(new Error('connect timed out')));
      socket.once('connect', () => {
        socket.off('error', onConnectError);
        socket.setTimeout(0);
        socket.on('error', () => undefined); // 'close' follows
        if (this.closed) {
          socket.destroy();
          reject(new ChorusClientError('CHORUS_UNAVAILABLE', 0, 'the client was closed; nothing was sent', endpoint.address));
          return;
        }
        connection.usable = true;
        this.connection = connection;
        resolve(connection);
      });
      socket.on('data', (chunk: Buffer) => {
        try {
          decoder.push(chunk);
        } catch (error) {
          socket.destroy(error as Error);
        }
      });
      // The server ended its side: nothing more is written to this connection.
      socket.on('end', () => this.retire(connection));
      socket.on('close', () => {
        this.sockets.delete(socket);
        decoder.stop();
        this.retire(connection);
        const reason = connection.serverReason === null ? '' : ` (the server said ${connection.serverReason})`;
        for (const [id, waiter] of this.pending) {
          if (waiter.connection !== connection) continue;
          this.pending.delete(id);
          this.resent.delete(id);
          const effect = waiter.op === 'get' ? '' : ` (the ${waiter.op} may or may not have been applied)`;
          waiter.reject(new ConnectionLost(new ChorusClientError('CHORUS_TIMEOUT', 0, `the connection to ${endpoint.address} closed before the answer${reason}; the outcome is unknown${effect}`, endpoint.address)));
        }
      });
    });
  }

  /** No new request goes to this connection; the next ones go to the next endpoint. */
  private retire(connection: Connection): void {
    connection.usable = false;
    if (this.connection !== connection) return;
    this.connection = null;
    if (!this.closed) this.current = (this.current + 1) % this.endpoints.length;
  }

  private onAnswer(connection: Connection, payload: Uint8Array): void {
    const answer = decodeBinaryPayload(payload);
    if (!Array.isArray(answer) || typeof answer[0] !== 'number' || typeof answer[1] !== 'number' || typeof answer[2] !== 'object' || answer[2] === null) {
      connection.socket.destroy(new Error('a malformed answer'));
      return;
    }
    const [id, status, body] = answer as [number, number, Record<string, unknown>];
    if (id === 0) {
      // The server could not read what we sent (or is full) and closes the connection: the
      // requests still on it have an unknown outcome, reported by the close.
      connection.serverReason = `${String(body['code'])}: ${String(body['message'])}`;
      return;
    }
    const waiter = this.pending.get(id);
    if (waiter === undefined || waiter.connection !== connection) return; // timed out already
    this.pending.delete(id);
    this.resent.delete(id);
    waiter.resolve([status, body]);
  }

  private armSweeper(): void {
    if (this.sweeper !== null) return;
    this.sweeper = setInterval(() => {
      const now = performance.now();
      const expire = (id: number, waiter: Pending): void => {
        this.pending.delete(id);
        this.resent.delete(id);
        waiter.reject(new ChorusClientError('CHORUS_TIMEOUT', 0, `no answer within ${this.timeoutMs} ms; the outcome is unknown`, waiter.connection.endpoint.address));
      };
      for (const id of this.resent) {
        const waiter = this.pending.get(id);
        if (waiter !== undefined && waiter.deadlineMs <= now) expire(id, waiter);
      }
      for (const [id, waiter] of this.pending) {
        if (waiter.deadlineMs > now) break;
        expire(id, waiter);
      }
      if (this.pending.size === 0 && this.sweeper !== null) {
        clearInterval(this.sweeper);
        this.sweeper = null;
      }
    }, SWEEP_INTERVAL_MS);
    this.sweeper.unref();
  }
}
