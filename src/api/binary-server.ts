// The binary client protocol's server (see binary-protocol.ts and docs/api.md): put, get and
// del with the HTTP API's semantics, many requests in flight per connection, and the answers of
// one turn of the event loop written together. A write that reaches a follower is forwarded to
// the leader through the HTTP API, as HTTP writes are.
import net from 'node:net';
import type { SynchronousCommit } from '../core/policy/replication-policy.ts';
import { validateCommand, validateKey } from '../kv/commands.ts';
import type { Command } from '../kv/commands.ts';
import { ChorusError, NotLeaderError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { parseCommitLevel } from '../node/replication.ts';
import { TransportError } from '../transport/errors.ts';
import { FrameDecoder } from '../transport/frame-decoder.ts';
import { BinaryRequestError, decodeBinaryPayload, encodeBinaryFrame, parseBinaryRequest } from '../shared/binary-protocol.ts';
import type { BinaryRequest } from '../shared/binary-protocol.ts';
import { encodeKeyPath, rejectReservedKey } from './codec.ts';
import { errorResponse } from './errors.ts';
import { COMMIT_HEADER, Forwarder } from './forward.ts';
import { prepareRead, readOptions } from './reads.ts';
import type { MemberService } from '../node/service.ts';

export interface BinaryServerOptions {
  readonly requestTimeoutMs: number;
  /** Connections open at once; more are answered CHORUS_BUSY and closed. */
  readonly connectionsMax: number;
  /** Requests in flight on one connection. Reading pauses there; requests that arrived in the
   * same read beyond it are answered 503 CHORUS_BUSY (nothing done). */
  readonly inflightPerConnectionMax: number;
  /** Writes forwarded to the leader at once (over HTTP). */
  readonly forwardsPendingMax: number;
  readonly logger: Logger;
}

export const BINARY_SERVER_DEFAULTS = {
  // Each connection may hold one frame being received (up to valueBytesMax + keyBytesMax + 1 KiB)
  // and its queued answers: with 1 MiB values, 256 connections bound that to a few hundred MiB.
  connectionsMax: 256,
  inflightPerConnectionMax: 1024,
  forwardsPendingMax: 1024,
} as const;

/** Bytes of answers queued for a connection before it stops reading more requests (its client
 * is not reading them). */
const WRITE_BUFFER_BYTES_MAX = 8 * 1024 * 1024;
/** Past this many bytes of queued answers (or two of the largest answer, if more), a client that
 * has not read them down to WRITE_BUFFER_BYTES_MAX within SLOW_CLIENT_GRACE_MS is disconnected,
 * as Redis does past its client output buffer limits: the requests already accepted would
 * otherwise queue up to inflightPerConnectionMax answers of valueBytesMax each for it. */
const WRITE_BUFFER_BYTES_HARD_MAX = 32 * 1024 * 1024;
const SLOW_CLIENT_GRACE_MS = 5000;
/** A connection with nothing in flight and no traffic for this long is closed. */
const IDLE_MS = 5 * 60 * 1000;
/** How long a connection refused for connectionsMax may take to close after its answer. */
const REJECTED_LINGER_MS = 5000;
/** Besides the key and the value, a request frame holds a few dozen bytes of framing and options. */
const FRAME_OVERHEAD_BYTES = 1024;

class Connection {
  private inflight = 0;
  private corked = false;
  private readPaused = false;
  private closed = false;
  /** Set while more than writeBufferBytesHardMax of answers wait: the client's grace period. */
  private slowTimer: NodeJS.Timeout | null = null;
  private readonly decoder: FrameDecoder;

  constructor(private readonly server: BinaryServer, private readonly socket: net.Socket, frameBytesMax: number) {
    this.decoder = new FrameDecoder(frameBytesMax, (payload) => this.onFrame(payload));
    socket.setNoDelay(true);
    socket.setTimeout(IDLE_MS, () => {
      if (this.inflight === 0) socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        this.decoder.push(chunk);
      } catch (error) {
        // An oversized frame header (onFrame catches its own errors): the stream cannot be
        // followed past it.
        const tooLarge = error instanceof TransportError && error.code === 'CHORUS_FRAME_TOO_LARGE';
        if (!tooLarge) server.options.logger.error('binary-read-failed', { error });
        this.fail(tooLarge ? 'CHORUS_REQUEST_TOO_LARGE' : 'CHORUS_INTERNAL', tooLarge ? 413 : 500, error instanceof Error ? error.message : String(error));
      }
    });
    socket.on('drain', () => this.updateReading());
    socket.on('error', () => undefined); // 'close' follows
    socket.on('close', () => {
      this.closed = true;
      if (this.slowTimer !== null) clearTimeout(this.slowTimer);
      this.decoder.stop();
      server.forget(this);
    });
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onFrame(payload: Uint8Array): void {
    let request: BinaryRequest;
    try {
      request = parseBinaryRequest(decodeBinaryPayload(payload), payload);
    } catch (error) {
      if (error instanceof BinaryRequestError && error.id !== 0) {
        this.respond(error.id, 400, { code: error.code, message: error.message });
        return;
      }
      this.fail('CHORUS_BAD_REQUEST', 400, error instanceof BinaryRequestError ? error.message : 'the frame is not valid msgpack');
      return;
    }
    if (this.inflight >= this.server.options.inflightPerConnectionMax) {
      this.respond(request.id, 503, { code: 'CHORUS_BUSY', message: `${this.inflight} requests are in flight on this connection (inflightPerConnectionMax); nothing was done` });
      return;
    }
    this.inflight++;
    this.updateReading();
    this.server.handle(request).then(
      ([status, body]) => this.finish(request.id, status, body),
      (error: unknown) => {
        const mapped = errorResponse(error, request.op === 'get' ? 'GET' : 'PUT');
        if (mapped.internal) this.server.options.logger.error('binary-request-failed', { op: request.op, error });
        this.finish(request.id, mapped.status, mapped.body);
      },
    );
  }

  private finish(id: number, status: number, body: Record<string, unknown>): void {
    this.inflight--;
    this.respond(id, status, body);
    this.updateReading();
  }

  private respond(id: number, status: number, body: Record<string, unknown>): void {
    if (this.closed) return;
    if (!this.corked) {
      // Answers settled in the same batch of microtasks (the proposals of one apply) leave in
      // one write.
      this.corked = true;
      this.socket.cork();
      queueMicrotask(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(encodeBinaryFrame([id, status, body]));
    if (this.socket.writableLength > this.server.writeBufferBytesHardMax && this.slowTimer === null) {
      // A burst of large answers to a client that reads them drains in well under the grace
      // period; one that does not read is dropped.
      this.slowTimer = setTimeout(() => {
        this.slowTimer = null;
        if (this.closed || this.socket.writableLength <= WRITE_BUFFER_BYTES_MAX) return;
        this.server.options.logger.warn('binary-client-dropped', {
          remote: this.socket.remoteAddress, queuedBytes: this.socket.writableLength,
          reason: 'the client does not read its answers (output buffer limit)',
        });
        this.closed = true;
        this.socket.destroy();
      }, SLOW_CLIENT_GRACE_MS);
    }
  }

  /** Reads while there is room for more requests and the client reads its answers. */
  private updateReading(): void {
    if (this.closed) return;
    const full = this.inflight >= this.server.options.inflightPerConnectionMax || this.socket.writableLength > WRITE_BUFFER_BYTES_MAX;
    if (full && !this.readPaused) {
      this.readPaused = true;
      this.socket.pause();
    } else if (!full && this.readPaused && this.inflight <= this.server.options.inflightPerConnectionMax / 2) {
      this.readPaused = false;
      this.socket.resume();
    }
  }

  /** The stream cannot be trusted any further: say why (id 0) and close. */
  private fail(code: string, status: number, message: string): void {
    this.decoder.stop();
    if (this.closed) return;
    this.socket.end(encodeBinaryFrame([0, status, { code, message }]));
    this.closed = true;
    // Read on (the decoder drops everything) so that the client's end is seen even if reading
    // was paused for a limit; a client that never closes is dropped after a while.
    this.socket.resume();
    this.socket.setTimeout(REJECTED_LINGER_MS, () => this.socket.destroy());
  }
}

export class BinaryServer {
  private readonly server: net.Server;
  private readonly connections = new Set<Connection>();
  private readonly forwarder: Forwarder;
  private readonly frameBytesMax: number;
  readonly writeBufferBytesHardMax: number;
  /** Connections refused for connectionsMax, until they close (close() destroys them). */
  private readonly refused = new Set<net.Socket>();

  constructor(private readonly service: MemberService, readonly options: BinaryServerOptions) {
    this.frameBytesMax = service.limits.valueBytesMax + service.limits.keyBytesMax + FRAME_OVERHEAD_BYTES;
    this.writeBufferBytesHardMax = Math.max(WRITE_BUFFER_BYTES_HARD_MAX, 2 * this.frameBytesMax);
    this.forwarder = new Forwarder({ pendingMax: options.forwardsPendingMax });
    this.server = net.createServer((socket) => this.accept(socket));
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port }, () => {
        this.server.off('error', reject);
        const address = this.server.address() as net.AddressInfo;
        resolve({ host: address.address, port: address.port });
      });
    });
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const connection of this.connections) connection.destroy();
    for (const socket of this.refused) socket.destroy();
    this.forwarder.close();
    await closed;
  }

  forget(connection: Connection): void {
    this.connections.delete(connection);
  }

  private accept(socket: net.Socket): void {
    if (this.connections.size >= this.options.connectionsMax) {
      socket.on('error', () => undefined);
      socket.end(encodeBinaryFrame([0, 503, { code: 'CHORUS_BUSY', message: `${this.connections.size} binary connections are open (connectionsMax)` }]));
      // Read (and drop) what the client sends until its end: a socket that is never read does
      // not see the client go away, and would keep close() waiting for ever. A client that
      // neither reads nor closes is dropped after a while.
      socket.resume();
      socket.setTimeout(REJECTED_LINGER_MS, () => socket.destroy());
      this.refused.add(socket);
      socket.once('close', () => this.refused.delete(socket));
      return;
    }
    this.connections.add(new Connection(this, socket, this.frameBytesMax));
  }

  /** Serves one request: its answer's status and body (errors are thrown, and mapped by the caller). */
  async handle(request: BinaryRequest): Promise<[number, Record<string, unknown>]> {
    const deadlineMs = this.service.nowMs() + this.options.requestTimeoutMs;
    const key = rejectReservedKey(request.key);
    if (request.op === 'get') {
      validateKey(key, this.service.limits);
      const { consistency, min_revision: minRevision, max_staleness_ms: maxStalenessMs } = request.options;
      await prepareRead(this.service, readOptions(consistency, maxStalenessMs, minRevision), deadlineMs);
      const record = this.service.get(key);
      if (record === undefined) throw new ChorusError('CHORUS_KEY_NOT_FOUND', `key not found: ${key.length > 200 ? `${key.slice(0, 200)}...` : key}`);
      return [200, { value: record.value, revision: record.modRevision, createRevision: record.createRevision, version: record.version }];
    }
    const command: Command = request.op === 'put' ? { kind: 'put', key, value: request.value ?? new Uint8Array(0) } : { kind: 'delete', key };
    validateCommand(command, this.service.limits);
    const level: SynchronousCommit | undefined = request.options.commit === undefined ? undefined : parseCommitLevel(request.options.commit);
    let ack;
    try {
      ack = await this.service.propose(command, deadlineMs, level === undefined ? {} : { level });
    } catch (error) {
      if (!(error instanceof NotLeaderError)) throw error;
      return this.forward(request, level, error.leaderId, deadlineMs);
    }
    if (!ack.committed) return [200, { revision: ack.revision, committed: false }];
    const result = ack.result;
    if (request.op === 'put') return [200, { revision: result.revision, committed: true }];
    return [200, { revision: result.revision, deleted: result.kind === 'delete' ? result.deleted : 0, committed: true }];
  }

  /** A write on a follower: sent to the leader's HTTP API, its answer relayed. */
  private async forward(request: BinaryRequest, level: SynchronousCommit | undefined, leaderId: string | null, deadlineMs: number): Promise<[number, Record<string, unknown>]> {
    if (leaderId === null) throw new ChorusError('CHORUS_NO_LEADER', 'no leader is known; retry later');
    const address = this.service.leader().clientAddress;
    if (address === null) throw new ChorusError('CHORUS_NO_LEADER', `the client address of leader ${leaderId} is not known yet; retry later`);
    const answer = await this.forwarder.forward(address, {
      method: request.op === 'put' ? 'PUT' : 'DELETE',
      url: `/v1/kv/${encodeKeyPath(request.key)}`,
      contentType: 'application/octet-stream',
      body: request.value === undefined ? undefined : Buffer.from(request.value.buffer, request.value.byteOffset, request.value.byteLength),
      hops: 1,
      timeoutMs: Math.max(1, deadlineMs - this.service.nowMs()),
      // The level as parsed here (canonical), not the text as sent.
      ...(level === undefined ? {} : { headers: { [COMMIT_HEADER]: level } }),
    });
    let body: unknown;
    try {
      body = JSON.parse(answer.body.toString('utf8'));
    } catch {
      body = null;
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new ChorusError('CHORUS_TIMEOUT', `the leader's answer to a forwarded write could not be read (HTTP ${answer.status}); the write may or may not have happened`);
    }
    return [answer.status, body as Record<string, unknown>];
  }
}
