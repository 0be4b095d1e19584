// The outbound half of the transport: one connection per peer, carrying messages from this
// member to that peer only. The peer replies over its own outbound connection to us.
import { connect } from 'node:net';
import type { NetConnectOpts, Socket } from 'node:net';
import type { NodeId } from '../core/raft/types.ts';
import { backoffDelayMs, jitterMs } from './backoff.ts';
import {
  PROTOCOL_VERSION,
  SUPPORTED_PROTOCOL_VERSIONS,
  advertisedClientAddress,
  decodePayload,
  encodeFrame,
  parseHandshakeReply,
} from './codec.ts';
import type { HelloFrame } from './codec.ts';
import { TransportError } from './errors.ts';
import { FrameDecoder } from './frame-decoder.ts';
import { FrameQueue } from './frame-queue.ts';
import type { LinkState, PeerAddress, PeerStats, TransportLogger } from './types.ts';

/** Handshake replies are tiny; an unauthenticated stream never gets a big buffer from us. */
export const HANDSHAKE_BYTES_MAX = 4096;
/** TCP keepalive, so a silently vanished peer is eventually noticed on idle connections. */
export const KEEPALIVE_INITIAL_DELAY_MS = 10_000;

/** Frames smaller than this are copied into one batch buffer per write; larger ones are written
 * as they are (copying a 1 MiB snapshot chunk would buy nothing). */
const COPY_FRAME_BYTES_MAX = 16 * 1024;
/** Upper bound of one coalesced batch buffer. */
const BATCH_BYTES_MAX = 64 * 1024;
/** While writable, a queue this long is written at once rather than at the next turn of the
 * event loop, so a synchronous burst streams out instead of piling up against the limits. */
const EAGER_FLUSH_MESSAGES = 512;
const EAGER_FLUSH_BYTES = 64 * 1024;

export interface LinkContext {
  readonly clusterId: string;
  readonly selfId: NodeId;
  readonly queueMessagesMax: number;
  readonly queueBytesMax: number;
  readonly backoffMsMin: number;
  readonly backoffMsMax: number;
  readonly handshakeTimeoutMs: number;
  readonly writeStallMsMax: number;
  readonly socketBufferBytes: number;
  readonly random: () => number;
  readonly logger: TransportLogger;
  /** A fresh address before each dial (resolver-configured peers), or undefined to keep ours. */
  lookup(id: NodeId): PeerAddress | undefined;
  /** Asks for `flush()` at the next turn of the event loop. */
  scheduleFlush(link: PeerLink): void;
  /** Our client address, advertised in the hello (omitted when undefined). */
  readonly clientAddress: string | undefined;
  /** The peer advertised its client address in its welcome. */
  learnClientAddress(id: NodeId, address: string): void;
}

export class PeerLink {
  readonly id: NodeId;
  private address: PeerAddress;
  private readonly ctx: LinkContext;
  /** Set when the address was given explicitly (setPeer): a resolver is then not consulted. */
  private pinned: boolean;
  private linkState: LinkState = 'backoff';

  /** The current connection attempt or connection; null in backoff and once closed. Events from
   * any other (older) socket are ignored. */
  private socket: Socket | null = null;
  private decoder: FrameDecoder | null = null;

  /** Frames ready to write, oldest first. */
  private readonly queue = new FrameQueue();
  /** Frames held by the delay fault; counted against the limits together with `queue`. */
  private readonly delayTimers = new Set<NodeJS.Timeout>();
  private delayedMessages = 0;
  private delayedBytes = 0;

  private retryTimer: NodeJS.Timeout | null = null;
  private handshakeTimer: NodeJS.Timeout | null = null;
  private stallTimer: NodeJS.Timeout | null = null;
  /** Consecutive failed attempts; reset by a completed handshake. */
  private attempt = 0;
  /** The last attempt was refused by the peer: the next retry waits the maximum delay. */
  private refused = false;
  private lastError: Error | null = null;

  private sentMessages = 0;
  private sentBytes = 0;
  private droppedMessages = 0;
  private faultDroppedMessages = 0;
  private reconnects = 0;
  private connects = 0;
  private refusals = 0;

  constructor(ctx: LinkContext, id: NodeId, address: PeerAddress, pinned: boolean) {
    this.ctx = ctx;
    this.id = id;
    this.address = address;
    this.pinned = pinned;
  }

  get state(): LinkState {
    return this.linkState;
  }

  get queuedMessages(): number {
    return this.queue.length + this.delayedMessages;
  }

  get queuedBytes(): number {
    return this.queue.bytes + this.delayedBytes;
  }

  start(): void {
    this.dial();
  }

  /** True when one more frame of `frameBytes` fits within the queue limits. */
  hasRoom(frameBytes: number): boolean {
    return this.queuedMessages < this.ctx.queueMessagesMax && this.queuedBytes + frameBytes <= this.ctx.queueBytesMax;
  }

  countDrop(): void {
    this.droppedMessages += 1;
  }

  countFaultDrop(): void {
    this.faultDroppedMessages += 1;
  }

  /** Queues an encoded frame, or holds it for `delayMs` first. Returns false (and counts the
   * drop) when the queue limits would be exceeded. */
  offer(frame: Buffer, delayMs: number): boolean {
    if (this.linkState === 'closed' || !this.hasRoom(frame.length)) {
      this.droppedMessages += 1;
      return false;
    }
    if (delayMs > 0) {
      this.delayedMessages += 1;
      this.delayedBytes += frame.length;
      const timer = setTimeout(() => {
        this.delayTimers.delete(timer);
        this.delayedMessages -= 1;
        this.delayedBytes -= frame.length;
        this.enqueue(frame);
      }, delayMs);
      this.delayTimers.add(timer);
      return true;
    }
    this.enqueue(frame);
    return true;
  }

  private enqueue(frame: Buffer): void {
    this.queue.push(frame);
    if (this.linkState !== 'open' || this.socket === null || this.socket.writableNeedDrain) return;
    if (this.queue.length >= EAGER_FLUSH_MESSAGES || this.queue.bytes >= EAGER_FLUSH_BYTES) this.flush();
    else this.ctx.scheduleFlush(this);
  }

  /** Writes queued frames until the queue is empty or the socket reports backpressure. */
  flush(): void {
    const socket = this.socket;
    if (this.linkState !== 'open' || socket === null || this.queue.length === 0 || socket.writableNeedDrain) return;
    socket.cork();
    try {
      while (this.queue.length > 0) {
        const first = this.queue.peek(0);
        if (first === undefined) break;
        let writable: boolean;
        if (first.length >= COPY_FRAME_BYTES_MAX) {
          this.queue.discard(1);
          this.sentMessages += 1;
          this.sentBytes += first.length;
          writable = socket.write(first);
        } else {
          let count = 0;
          let bytes = 0;
          for (;;) {
            const frame = this.queue.peek(count);
            if (frame === undefined || frame.length >= COPY_FRAME_BYTES_MAX || bytes + frame.length > BATCH_BYTES_MAX) break;
            bytes += frame.length;
            count += 1;
          }
          let batch: Buffer;
          if (count === 1) batch = first;
          else {
            batch = Buffer.allocUnsafe(bytes);
            let at = 0;
            for (let i = 0; i < count; i += 1) {
              const frame = this.queue.peek(i);
              if (frame === undefined) break;
              frame.copy(batch, at);
              at += frame.length;
            }
          }
          this.queue.discard(count);
          this.sentMessages += count;
          this.sentBytes += bytes;
          writable = socket.write(batch);
        }
        if (!writable) {
          this.armStallTimer(socket);
          break;
        }
      }
    } finally {
      socket.uncork();
    }
  }

  /** Changes the peer's address; an existing connection to the old address is replaced at once. */
  setAddress(address: PeerAddress): void {
    this.pinned = true;
    if (address.host === this.address.host && address.port === this.address.port) return;
    this.address = address;
    if (this.linkState === 'closed') return;
    this.ctx.logger.info('peer address changed, reconnecting', { peer: this.id, address: formatAddress(address) });
    this.detachSocket();
    this.clearRetryTimer();
    this.attempt = 0;
    this.dial();
  }

  /** Closes the connection and discards queued and delayed frames; the link is not reusable. */
  close(): void {
    if (this.linkState === 'closed') return;
    this.linkState = 'closed';
    this.clearRetryTimer();
    for (const timer of this.delayTimers) clearTimeout(timer);
    this.delayTimers.clear();
    this.delayedMessages = 0;
    this.delayedBytes = 0;
    this.queue.clear();
    this.detachSocket();
  }

  stats(): PeerStats {
    return {
      address: formatAddress(this.address),
      state: this.linkState,
      connected: this.linkState === 'open',
      queuedMessages: this.queuedMessages,
      queuedBytes: this.queuedBytes,
      delayedMessages: this.delayedMessages,
      sentMessages: this.sentMessages,
      sentBytes: this.sentBytes,
      droppedMessages: this.droppedMessages,
      faultDroppedMessages: this.faultDroppedMessages,
      reconnects: this.reconnects,
      connects: this.connects,
      refusals: this.refusals,
    };
  }

  private dial(): void {
    if (this.linkState === 'closed') return;
    if (!this.pinned) {
      const fresh = this.ctx.lookup(this.id);
      if (fresh !== undefined) this.address = fresh;
    }
    this.linkState = 'dialing';
    this.refused = false;
    this.lastError = null;
    // net.connect passes stream options through to the Socket; @types/node omits
    // writableHighWaterMark from NetConnectOpts, hence the widened type.
    const connectOptions: NetConnectOpts & { writableHighWaterMark: number } = {
      host: this.address.host,
      port: this.address.port,
      noDelay: true,
      keepAlive: true,
      keepAliveInitialDelay: KEEPALIVE_INITIAL_DELAY_MS,
      writableHighWaterMark: this.ctx.socketBufferBytes,
    };
    const socket = connect(connectOptions);
    const decoder = new FrameDecoder(HANDSHAKE_BYTES_MAX, (payload) => this.onFrame(socket, payload));
    this.socket = socket;
    this.decoder = decoder;
    this.handshakeTimer = setTimeout(() => {
      this.fail(socket, new TransportError('CHORUS_HANDSHAKE_TIMEOUT', `no handshake with ${this.id} within ${this.ctx.handshakeTimeoutMs} ms`));
    }, this.ctx.handshakeTimeoutMs);

    socket.on('connect', () => {
      if (this.socket !== socket) return;
      const hello: HelloFrame = {
        kind: 'hello',
        clusterId: this.ctx.clusterId,
        memberId: this.ctx.selfId,
        protocolVersion: PROTOCOL_VERSION,
        ...(this.ctx.clientAddress === undefined ? {} : { clientAddress: this.ctx.clientAddress }),
      };
      socket.write(encodeFrame(hello));
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk);
      } catch (err) {
        this.fail(socket, err);
      }
    });
    socket.on('drain', () => {
      if (this.socket !== socket) return;
      this.clearStallTimer();
      this.flush();
    });
    socket.on('error', (err) => {
      if (this.socket === socket) this.lastError = err;
    });
    socket.on('close', () => this.onClose(socket));
  }

  private onFrame(socket: Socket, payload: Uint8Array): void {
    if (this.socket !== socket) return;
    if (this.linkState === 'open') {
      throw new TransportError('CHORUS_PROTOCOL_VIOLATION', `${this.id} sent a frame on our outbound connection`);
    }
    const reply = parseHandshakeReply(decodePayload(payload));
    if (reply === null) throw new TransportError('CHORUS_FRAME_MALFORMED', `invalid handshake reply from ${this.id}`);
    if (reply.kind === 'refuse') {
      this.onRefused(socket, reply.code, reply.reason);
      return;
    }
    if (reply.clusterId !== this.ctx.clusterId || reply.memberId !== this.id ||
      !SUPPORTED_PROTOCOL_VERSIONS.has(reply.protocolVersion)) {
      // Most likely a stale address now used by another member: talking to it would misroute.
      this.onRefused(socket, 'CHORUS_HANDSHAKE_INVALID',
        `expected member ${this.id} of cluster ${this.ctx.clusterId}, found member ${reply.memberId} of cluster ${reply.clusterId} (protocol ${reply.protocolVersion})`);
      return;
    }
    const clientAddress = advertisedClientAddress(reply);
    if (clientAddress !== undefined) this.ctx.learnClientAddress(this.id, clientAddress);
    this.clearHandshakeTimer();
    this.linkState = 'open';
    this.attempt = 0;
    this.connects += 1;
    this.ctx.logger.info('connected to peer', { peer: this.id, address: formatAddress(this.address) });
    this.flush();
  }

  private onRefused(socket: Socket, refusal: string, reason: string): void {
    this.refused = true;
    this.refusals += 1;
    this.ctx.logger.warn('peer refused our handshake', {
      code: 'CHORUS_HANDSHAKE_REFUSED',
      refusal,
      reason,
      peer: this.id,
      address: formatAddress(this.address),
    });
    this.decoder?.stop();
    socket.destroy();
  }

  /** Tears the current connection down after a local error; 'close' then schedules the retry. */
  private fail(socket: Socket, err: unknown): void {
    if (this.socket !== socket) return;
    const code = err instanceof TransportError ? err.code : undefined;
    if (code === undefined) {
      this.ctx.logger.error('unexpected error on peer connection', { peer: this.id, error: String(err) });
    } else {
      this.ctx.logger.warn('closing peer connection', { code, peer: this.id, error: (err as Error).message });
    }
    this.decoder?.stop();
    socket.destroy();
  }

  private onClose(socket: Socket): void {
    if (this.socket !== socket) return;
    const wasOpen = this.linkState === 'open';
    this.socket = null;
    this.decoder = null;
    this.clearHandshakeTimer();
    this.clearStallTimer();
    if (this.linkState === 'closed') return;
    const fields = { peer: this.id, address: formatAddress(this.address), error: this.lastError?.message };
    if (wasOpen) this.ctx.logger.info('connection to peer lost', fields);
    else if (this.attempt === 0 && !this.refused) this.ctx.logger.info('cannot reach peer, will retry', fields);
    else this.ctx.logger.debug('cannot reach peer, will retry', fields);
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    this.linkState = 'backoff';
    let delayMs: number;
    if (this.refused) {
      // A refusal will not go away by itself (wrong cluster, wrong version): retry rarely.
      delayMs = jitterMs(this.ctx.backoffMsMax, this.ctx.random);
    } else {
      delayMs = backoffDelayMs(this.attempt, this.ctx.backoffMsMin, this.ctx.backoffMsMax, this.ctx.random);
      this.attempt += 1;
    }
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.reconnects += 1;
      this.dial();
    }, delayMs);
  }

  private armStallTimer(socket: Socket): void {
    if (this.stallTimer !== null) return;
    this.stallTimer = setTimeout(() => {
      this.stallTimer = null;
      this.fail(socket, new TransportError('CHORUS_WRITE_STALLED', `socket to ${this.id} unwritable for ${this.ctx.writeStallMsMax} ms`));
    }, this.ctx.writeStallMsMax);
  }

  /** Drops the current socket without going through backoff (its 'close' event is ignored). */
  private detachSocket(): void {
    const socket = this.socket;
    this.socket = null;
    this.decoder?.stop();
    this.decoder = null;
    this.clearHandshakeTimer();
    this.clearStallTimer();
    socket?.destroy();
  }

  private clearRetryTimer(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private clearHandshakeTimer(): void {
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
  }

  private clearStallTimer(): void {
    if (this.stallTimer !== null) clearTimeout(this.stallTimer);
    this.stallTimer = null;
  }
}

export function formatAddress(address: PeerAddress): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
