// Forwarding of client requests from a follower to the leader's HTTP address, over pooled
// keep-alive connections. A forwarded write either reaches the leader or provably does not:
// a failure to connect means the leader never saw it (503, safe to retry); any failure after
// the request may have been sent leaves its outcome unknown (504).
import http from 'node:http';
import { ChorusError } from '../shared/errors.ts';

/** Hop count of a forwarded request; a member that receives one at the limit does not forward. */
export const HOPS_HEADER = 'chorus-hops';
/** Milliseconds left of the original request's deadline. */
export const TIMEOUT_HEADER = 'chorus-timeout-ms';
/** The client address of the member that served a write (the leader): clients go there next. */
export const LEADER_HEADER = 'chorus-leader-address';
/** The commit level of a write, as an alternative to ?commit= (forwarded with the request). */
export const COMMIT_HEADER = 'chorus-commit';

/** Headers copied from the leader's answer into ours. */
const RELAYED_HEADERS = ['content-type', 'chorus-revision', 'chorus-create-revision', 'chorus-version', LEADER_HEADER, 'chorus-more'];

export interface ForwardRequest {
  readonly method: string;
  /** Path and query, as received. */
  readonly url: string;
  readonly contentType: string | undefined;
  readonly body: Buffer | undefined;
  readonly hops: number;
  readonly timeoutMs: number;
  /** Request headers carried to the leader besides the hop count and deadline. */
  readonly headers?: Readonly<Record<string, string>>;
}

export interface ForwardResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

/** Default bound on a forwarded answer: our largest answers are lists and txn results. */
const RESPONSE_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;

export class Forwarder {
  private readonly agent: http.Agent;
  private readonly pendingMax: number;
  private readonly responseBytesMax: number;
  /** Requests in flight. Invariant: at most pendingMax (the agent's own queue stays bounded). */
  private pending = 0;
  private readonly inflight = new Set<http.ClientRequest>();
  private closed = false;

  constructor(options: { pendingMax: number; responseBytesMax?: number }) {
    this.pendingMax = options.pendingMax;
    this.responseBytesMax = options.responseBytesMax ?? RESPONSE_BYTES_MAX_DEFAULT;
    // Keep-alive pool; sockets idle longer than 30 s are closed by us, well before Fastify's
    // 72 s server-side keep-alive timeout, so a request rarely meets a socket the leader closed.
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 128, maxFreeSockets: 32, timeout: 30_000 });
  }

  get pendingCount(): number {
    return this.pending;
  }

  /** Sends `req` to `address` ("host:port"). Rejects with CHORUS_BUSY (too many in flight),
   * CHORUS_NO_LEADER (could not connect: not delivered) or CHORUS_TIMEOUT (outcome unknown). */
  forward(address: string, req: ForwardRequest): Promise<ForwardResponse> {
    if (this.closed) return Promise.reject(new ChorusError('CHORUS_STOPPING', 'the member is stopping'));
    if (this.pending >= this.pendingMax) {
      return Promise.reject(new ChorusError('CHORUS_BUSY', `${this.pending} requests are being forwarded (forwardsPendingMax)`));
    }
    const split = address.lastIndexOf(':');
    const host = address.slice(0, split).replace(/^\[|\]$/g, '');
    const port = Number(address.slice(split + 1));
    this.pending++;
    return new Promise<ForwardResponse>((resolve, reject) => {
      const headers: Record<string, string | number> = {
        ...req.headers,
        [HOPS_HEADER]: req.hops,
        [TIMEOUT_HEADER]: Math.max(1, Math.floor(req.timeoutMs)),
        'content-length': req.body?.length ?? 0,
      };
      if (req.contentType !== undefined) headers['content-type'] = req.contentType;
      let delivered = false; // the request may have reached the leader
      let settled = false;
      let outgoing: http.ClientRequest;
      try {
        outgoing = http.request({ host, port, method: req.method, path: req.url, headers, agent: this.agent });
      } catch (error) {
        // Refused before anything was sent (e.g. a header with a forbidden character).
        this.pending--;
        reject(new ChorusError('CHORUS_BAD_REQUEST', `the request cannot be forwarded: ${error instanceof Error ? error.message : String(error)}`));
        return;
      }
      this.inflight.add(outgoing);
      const timer = setTimeout(() => outgoing.destroy(new Error('forward deadline passed')), Math.max(1, req.timeoutMs));
      const finish = (error: Error | null, response?: ForwardResponse): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.inflight.delete(outgoing);
        this.pending--;
        if (error === null) resolve(response!);
        else reject(error);
      };
      outgoing.on('socket', (socket) => {
        if (!socket.connecting) delivered = true; // a pooled connection: bytes go out at once
        else socket.once('connect', () => { delivered = true; });
      });
      outgoing.on('error', (error: NodeJS.ErrnoException) => {
        if (!delivered) {
          finish(new ChorusError('CHORUS_NO_LEADER', `the leader at ${address} is unreachable (${error.code ?? error.message}); the request was not delivered`));
        } else {
          finish(new ChorusError('CHORUS_TIMEOUT', `the connection to the leader at ${address} failed (${error.code ?? error.message}); the outcome is unknown`));
        }
      });
      outgoing.on('response', (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > this.responseBytesMax) {
            outgoing.destroy(new Error('the leader answer is too large'));
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', () => {}); // surfaces as the request's error
        res.on('end', () => {
          const relayed: Record<string, string> = {};
          for (const name of RELAYED_HEADERS) {
            const value = res.headers[name];
            if (typeof value === 'string') relayed[name] = value;
          }
          finish(null, { status: res.statusCode ?? 502, headers: relayed, body: Buffer.concat(chunks, bytes) });
        });
      });
      outgoing.end(req.body);
    });
  }

  /** Aborts forwards in flight (their callers get CHORUS_TIMEOUT) and closes pooled sockets. */
  close(): void {
    this.closed = true;
    for (const req of this.inflight) req.destroy(new Error('the member is stopping'));
    this.agent.destroy();
  }
}
