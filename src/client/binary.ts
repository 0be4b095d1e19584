// A client of the binary protocol (src/api/binary-protocol.ts, docs/api.md): one TCP connection
// to one member, many requests in flight on it, the requests of one turn of the event loop
// written together. For applications that make many small requests; ChorusClient (HTTP) does
// everything else and follows the leader across endpoints.
import net from 'node:net';
import { decodeBinaryPayload, encodeBinaryFrame } from '../api/binary-protocol.ts';
import { FrameDecoder } from '../transport/frame-decoder.ts';
import { ChorusClientError } from './index.ts';
import type { CommitLevel, Consistency, GetResult } from './index.ts';

export interface ChorusBinaryClientOptions {
  /** host:port of a member's --listen-binary. */
  readonly endpoint: string;
  /** Deadline of each request (default 10 s). */
  readonly timeoutMs?: number;
  /** Requests in flight at once; more are refused with CHORUS_BUSY before being sent (default 1024,
   * as the server's limit per connection). */
  readonly inflightMax?: number;
  /** Largest answer frame accepted (default 65 MiB: a 64 MiB value and its framing). */
  readonly frameBytesMax?: number;
}

export interface BinaryWriteResult {
  readonly revision: number;
  /** false at commit levels off/local: durable (or appended) at the leader only, may be lost. */
  readonly committed: boolean;
}

interface Pending {
  readonly resolve: (answer: readonly [number, Record<string, unknown>]) => void;
  readonly reject: (error: Error) => void;
  readonly deadlineMs: number;
}

const SWEEP_INTERVAL_MS = 50;

export class ChorusBinaryClient {
  readonly endpoint: string;
  private readonly host: string;
  private readonly port: number;
  private readonly timeoutMs: number;
  private readonly inflightMax: number;
  private readonly frameBytesMax: number;
  private socket: net.Socket | null = null;
  private connecting: Promise<net.Socket> | null = null;
  /** By id; ids grow, so the oldest deadline is first. */
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private corked = false;
  private sweeper: NodeJS.Timeout | null = null;
  private closed = false;
  /** What the server said (id 0) before closing the connection, if anything. */
  private serverReason: string | null = null;

  constructor(options: ChorusBinaryClientOptions) {
    const match = /^(.*):(\d{1,5})$/.exec(options.endpoint.replace(/^tcp:\/\//, ''));
    if (match === null) throw new ChorusClientError('CHORUS_BAD_REQUEST', 0, `endpoint must be host:port, got ${options.endpoint}`, null);
    this.endpoint = options.endpoint;
    this.host = match[1]!.replace(/^\[|\]$/g, '');
    this.port = Number(match[2]);
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.inflightMax = options.inflightMax ?? 1024;
    this.frameBytesMax = options.frameBytesMax ?? 65 * 1024 * 1024;
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

  /** Closes the connection; requests in flight fail with CHORUS_TIMEOUT (outcome unknown). */
  close(): void {
    this.closed = true;
    this.socket?.destroy();
    this.failAll(new ChorusClientError('CHORUS_TIMEOUT', 0, 'the client was closed before the answer; the outcome is unknown', this.endpoint));
  }

  private async call(args: readonly unknown[], op: 'put' | 'get' | 'del'): Promise<Record<string, unknown>> {
    if (this.closed) throw new ChorusClientError('CHORUS_UNAVAILABLE', 0, 'the client is closed', this.endpoint);
    if (this.pending.size >= this.inflightMax) {
      throw new ChorusClientError('CHORUS_BUSY', 0, `${this.pending.size} requests are in flight (inflightMax); nothing was sent`, this.endpoint);
    }
    const socket = this.socket ?? (await this.connect());
    const id = this.nextId++;
    const frame = encodeBinaryFrame([id, op, ...args]);
    const [status, body] = await new Promise<readonly [number, Record<string, unknown>]>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, deadlineMs: performance.now() + this.timeoutMs });
      this.armSweeper();
      if (!this.corked) {
        // The requests of this turn leave in one write.
        this.corked = true;
        socket.cork();
        queueMicrotask(() => {
          this.corked = false;
          socket.uncork();
        });
      }
      socket.write(frame);
    });
    if (status === 200) return body;
    const code = typeof body['code'] === 'string' ? body['code'] : 'CHORUS_INTERNAL';
    throw new ChorusClientError(code, status, typeof body['message'] === 'string' ? body['message'] : `status ${status}`, this.endpoint);
  }

  private connect(): Promise<net.Socket> {
    if (this.connecting !== null) return this.connecting;
    this.connecting = new Promise<net.Socket>((resolve, reject) => {
      const socket = net.connect({ host: this.host, port: this.port });
      socket.setNoDelay(true);
      const decoder = new FrameDecoder(this.frameBytesMax, (payload) => this.onAnswer(payload));
      const onConnectError = (error: Error): void => {
        this.connecting = null;
        reject(new ChorusClientError('CHORUS_UNAVAILABLE', 0, `cannot connect to ${this.endpoint}: ${error.message}; nothing was sent`, this.endpoint, { cause: error }));
      };
      socket.once('error', onConnectError);
      socket.once('connect', () => {
        socket.off('error', onConnectError);
        this.socket = socket;
        this.connecting = null;
        socket.on('error', () => undefined); // 'close' follows
        resolve(socket);
      });
      socket.on('data', (chunk: Buffer) => {
        try {
          decoder.push(chunk);
        } catch (error) {
          socket.destroy(error as Error);
        }
      });
      socket.on('close', () => {
        decoder.stop();
        if (this.socket === socket) this.socket = null;
        const reason = this.serverReason === null ? '' : ` (the server said ${this.serverReason})`;
        this.serverReason = null;
        this.failAll(new ChorusClientError('CHORUS_TIMEOUT', 0, `the connection to ${this.endpoint} closed before the answer${reason}; the outcome is unknown`, this.endpoint));
      });
    });
    return this.connecting;
  }

  private onAnswer(payload: Uint8Array): void {
    const answer = decodeBinaryPayload(payload);
    if (!Array.isArray(answer) || typeof answer[0] !== 'number' || typeof answer[1] !== 'number' || typeof answer[2] !== 'object' || answer[2] === null) {
      this.socket?.destroy(new Error('a malformed answer'));
      return;
    }
    const [id, status, body] = answer as [number, number, Record<string, unknown>];
    if (id === 0) {
      // The server could not read what we sent (or is full) and closes the connection: the
      // requests still on it have an unknown outcome, reported by the close.
      this.serverReason = `${String(body['code'])}: ${String(body['message'])}`;
      return;
    }
    const waiter = this.pending.get(id);
    if (waiter === undefined) return; // timed out already
    this.pending.delete(id);
    waiter.resolve([status, body]);
  }

  private armSweeper(): void {
    if (this.sweeper !== null) return;
    this.sweeper = setInterval(() => {
      const now = performance.now();
      for (const [id, waiter] of this.pending) {
        if (waiter.deadlineMs > now) break;
        this.pending.delete(id);
        waiter.reject(new ChorusClientError('CHORUS_TIMEOUT', 0, `no answer within ${this.timeoutMs} ms; the outcome is unknown`, this.endpoint));
      }
      if (this.pending.size === 0 && this.sweeper !== null) {
        clearInterval(this.sweeper);
        this.sweeper = null;
      }
    }, SWEEP_INTERVAL_MS);
    this.sweeper.unref();
  }

  private failAll(error: ChorusClientError): void {
    const waiters = [...this.pending.values()];
    this.pending.clear();
    for (const waiter of waiters) waiter.reject(error);
  }
}
