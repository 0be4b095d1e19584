// The node-to-node Transport over TCP. Each member accepts connections (inbound: messages to
// us) and dials one connection per peer (outbound: messages from us), so every connection
// carries traffic in one direction only and per-link ordering is simply TCP's.
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import type { NodeId } from '../core/raft/types.ts';
import type { Transport } from '../ports/index.ts';
import {
  PROTOCOL_VERSION,
  SUPPORTED_PROTOCOL_VERSIONS,
  advertisedClientAddress,
  decodeOwnedPayload,
  decodePayload,
  encodeFrame,
  parseHello,
  validateMessage,
} from './codec.ts';
import type { RefusalCode, RefuseFrame, WelcomeFrame } from './codec.ts';
import { TransportError } from './errors.ts';
import { FRAME_HEADER_BYTES, FrameDecoder } from './frame-decoder.ts';
import { HANDSHAKE_BYTES_MAX, KEEPALIVE_INITIAL_DELAY_MS, PeerLink } from './peer-link.ts';
import type { LinkContext } from './peer-link.ts';
import type {
  PeerAddress,
  PeerResolver,
  PeerStats,
  TcpTransportOptions,
  TransportFaults,
  TransportLogger,
  TransportStats,
  WireMessage,
} from './types.ts';

const MiB = 1024 * 1024;
const DEFAULTS = {
  frameBytesMax: 16 * MiB,
  queueMessagesMax: 4096,
  queueBytesMax: 64 * MiB,
  backoffMsMin: 50,
  backoffMsMax: 5000,
  handshakeTimeoutMs: 5000,
  writeStallMsMax: 30_000,
  socketBufferBytes: 1 * MiB,
  clientAddressesMax: 1024,
} as const;
/** After refusing a handshake we half-close so the refusal reaches the dialer; a dialer that does
 * not close its side within this time is cut off. */
const REFUSAL_LINGER_MS = 1000;
const TIMER_MS_MAX = 2 ** 31 - 1;
/** The u32 length prefix cannot express more. */
const FRAME_BYTES_LIMIT = 0xffff_ffff;

const silentLogger: TransportLogger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};

/** One accepted connection. Until `memberId` is set only a Hello is accepted, in a small frame. */
class InboundConnection {
  readonly socket: Socket;
  readonly remote: string;
  readonly decoder: FrameDecoder;
  /** Set by a valid handshake; messages are delivered only from then on. */
  memberId: NodeId | null = null;
  /** Handshake deadline, then (after a refusal) the linger deadline. */
  timer: NodeJS.Timeout | null = null;

  constructor(socket: Socket, onFrame: (conn: InboundConnection, payload: Uint8Array, owned: boolean) => void) {
    this.socket = socket;
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.decoder = new FrameDecoder(HANDSHAKE_BYTES_MAX, (payload, owned) => onFrame(this, payload, owned));
  }

  clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}

interface InboundCounters {
  received: number;
  receivedBytes: number;
  rejectedHandshakes: number;
  droppedMisaddressed: number;
  droppedNoHandler: number;
  malformedFrames: number;
  oversizedFrames: number;
}

export class TcpTransport implements Transport<WireMessage> {
  readonly clusterId: string;
  readonly selfId: NodeId;
  private readonly frameBytesMax: number;
  private readonly handshakeTimeoutMs: number;
  private readonly logger: TransportLogger;
  private readonly resolver: PeerResolver | null;
  private readonly linkContext: LinkContext;
  private readonly server: Server;

  /** Outbound links by peer. Invariant: never contains selfId. */
  private readonly links = new Map<NodeId, PeerLink>();
  private readonly inbound = new Set<InboundConnection>();
  /** The authenticated inbound connection of each member; a newer one replaces an older one. */
  private readonly inboundByMember = new Map<NodeId, InboundConnection>();

  private handler: ((message: WireMessage) => void) | null = null;
  private faults: TransportFaults = {};
  /** Links with frames waiting for the coalescing flush at the next turn of the event loop. */
  private readonly dirty = new Set<PeerLink>();
  private flushImmediate: NodeJS.Immediate | null = null;
  private closed = false;
  private closing: Promise<void> | null = null;
  /** Set once listening (start() awaits it before handing the transport out). */
  private boundAddress: PeerAddress = { host: '', port: 0 };

  private readonly counters: InboundCounters = {
    received: 0,
    receivedBytes: 0,
    rejectedHandshakes: 0,
    droppedMisaddressed: 0,
    droppedNoHandler: 0,
    malformedFrames: 0,
    oversizedFrames: 0,
  };
  private droppedUnknownPeer = 0;
  private readonly clientAddress: string | undefined;
  private readonly clientAddressesMax: number;
  /** Client addresses advertised in handshakes, by member. Invariant: at most
   * clientAddressesMax entries (a member already known may always update its own). */
  private readonly clientAddresses = new Map<NodeId, string>();

  /** Starts listening and dialing the configured peers. Rejects if the address cannot be bound. */
  static async start(options: TcpTransportOptions): Promise<TcpTransport> {
    const transport = new TcpTransport(options);
    await transport.listen(options.listen);
    const peers = options.peers;
    if (peers !== undefined && typeof peers !== 'function') {
      for (const [id, address] of peers) transport.setPeer(id, address);
    }
    return transport;
  }

  private constructor(options: TcpTransportOptions) {
    const frameBytesMax = positiveInt(options, 'frameBytesMax', DEFAULTS.frameBytesMax);
    if (frameBytesMax > FRAME_BYTES_LIMIT) {
      throw new TransportError('CHORUS_INVALID_OPTION', `frameBytesMax must be at most ${FRAME_BYTES_LIMIT}`);
    }
    const backoffMsMin = positiveInt(options, 'backoffMsMin', DEFAULTS.backoffMsMin);
    const backoffMsMax = positiveInt(options, 'backoffMsMax', DEFAULTS.backoffMsMax);
    if (backoffMsMin > backoffMsMax) {
      throw new TransportError('CHORUS_INVALID_OPTION', 'backoffMsMin must not exceed backoffMsMax');
    }
    if (options.selfId === '') throw new TransportError('CHORUS_INVALID_OPTION', 'selfId must not be empty');
    this.clusterId = options.clusterId;
    this.selfId = options.selfId;
    this.frameBytesMax = frameBytesMax;
    this.handshakeTimeoutMs = positiveInt(options, 'handshakeTimeoutMs', DEFAULTS.handshakeTimeoutMs);
    this.logger = options.logger ?? silentLogger;
    this.resolver = typeof options.peers === 'function' ? options.peers : null;
    const resolver = this.resolver;
    this.clientAddress = options.clientAddress;
    this.clientAddressesMax = positiveInt(options, 'clientAddressesMax', DEFAULTS.clientAddressesMax);
    this.linkContext = {
      clusterId: options.clusterId,
      selfId: options.selfId,
      queueMessagesMax: positiveInt(options, 'queueMessagesMax', DEFAULTS.queueMessagesMax),
      queueBytesMax: positiveInt(options, 'queueBytesMax', DEFAULTS.queueBytesMax),
      backoffMsMin,
      backoffMsMax,
      handshakeTimeoutMs: this.handshakeTimeoutMs,
      writeStallMsMax: positiveInt(options, 'writeStallMsMax', DEFAULTS.writeStallMsMax),
      socketBufferBytes: positiveInt(options, 'socketBufferBytes', DEFAULTS.socketBufferBytes),
      random: options.random ?? Math.random,
      logger: this.logger,
      lookup: (id) => (resolver === null ? undefined : resolver(id)),
      scheduleFlush: (link) => this.scheduleFlush(link),
      clientAddress: options.clientAddress,
      learnClientAddress: (id, address) => this.learnClientAddress(id, address),
    };
    this.server = createServer((socket) => this.onConnection(socket));
    this.server.on('error', (err) => {
      if (this.closed) return;
      this.logger.error('transport server error', { error: err.message });
    });
  }

  /** The bound listening address (the actual port when 0 was requested). */
  address(): PeerAddress {
    return this.boundAddress;
  }

  // ---- Transport port ----

  send(message: WireMessage): boolean {
    if (this.closed) return false;
    const link = this.linkFor(message.to);
    if (link === undefined) {
      this.droppedUnknownPeer += 1;
      return false;
    }
    const faults = this.faults;
    if (faults.drop?.(message) === true) {
      link.countFaultDrop();
      return true;
    }
    // Cheap check first, so a full queue does not pay for encoding.
    if (!link.hasRoom(0)) {
      link.countDrop();
      return false;
    }
    let frame: Buffer;
    try {
      frame = encodeFrame(message);
    } catch (err) {
      link.countDrop();
      this.logger.error('cannot encode message', { code: 'CHORUS_ENCODE_FAILED', peer: message.to, type: message.type, error: String(err) });
      return false;
    }
    const payloadBytes = frame.length - FRAME_HEADER_BYTES;
    if (payloadBytes > this.frameBytesMax) {
      link.countDrop();
      this.logger.warn('message exceeds the frame limit, dropped', {
        code: 'CHORUS_FRAME_TOO_LARGE',
        peer: message.to,
        type: message.type,
        bytes: payloadBytes,
        frameBytesMax: this.frameBytesMax,
      });
      return false;
    }
    const delayMs = faults.delayMs?.(message) ?? 0;
    // Node timers cannot wait longer than TIMER_MS_MAX (they would fire at once instead).
    return link.offer(frame, Number.isNaN(delayMs) ? 0 : Math.min(delayMs, TIMER_MS_MAX));
  }

  /** Registers the handler for delivered messages (replacing any previous one). It is called
   * synchronously, in arrival order per sender; a throwing handler loses that message only. */
  onMessage(handler: (message: WireMessage) => void): void {
    this.handler = handler;
  }

  /** Closes the listener and every connection, discards queues and clears all timers. */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.closed = true;
    if (this.flushImmediate !== null) clearImmediate(this.flushImmediate);
    this.flushImmediate = null;
    this.dirty.clear();
    for (const link of this.links.values()) link.close();
    this.links.clear();
    for (const conn of this.inbound) this.dropInbound(conn);
    this.closing = new Promise((resolve) => {
      // The callback's error only says the server was not listening; closed either way.
      this.server.close(() => resolve());
    });
    return this.closing;
  }

  // ---- membership ----

  /** Adds a peer or changes its address (an existing connection is then replaced). An address
   * given here takes precedence over the resolver until removePeer. */
  setPeer(id: NodeId, address: PeerAddress): void {
    if (this.closed || id === this.selfId) return;
    const existing = this.links.get(id);
    if (existing !== undefined) existing.setAddress(address);
    else this.addLink(id, address, true);
  }

  /** Forgets a peer: closes its connection and discards what was queued for it. With a resolver,
   * a later send to it looks the address up again. */
  removePeer(id: NodeId): void {
    const link = this.links.get(id);
    if (link === undefined) return;
    link.close();
    this.links.delete(id);
    this.dirty.delete(link);
  }

  /** The client (HTTP) address `id` advertised in its last handshake with us, if any. */
  peerClientAddress(id: NodeId): string | undefined {
    return this.clientAddresses.get(id);
  }

  /** Every client address learned from handshakes, by member. */
  peerClientAddresses(): ReadonlyMap<NodeId, string> {
    return this.clientAddresses;
  }

  /** Installs fault hooks (tests only); `setFaults({})` removes them. */
  setFaults(faults: TransportFaults): void {
    this.faults = { ...faults };
  }

  stats(): TransportStats {
    const peers: Record<NodeId, PeerStats> = Object.create(null) as Record<NodeId, PeerStats>;
    for (const [id, link] of this.links) peers[id] = link.stats();
    return {
      peers,
      inbound: { connections: this.inbound.size, ...this.counters },
      droppedUnknownPeer: this.droppedUnknownPeer,
    };
  }

  // ---- outbound ----

  private linkFor(id: NodeId): PeerLink | undefined {
    const link = this.links.get(id);
    if (link !== undefined || this.resolver === null || id === this.selfId) return link;
    if (this.closed) return undefined;
    const address = this.resolver(id);
    if (address === undefined) return undefined;
    return this.addLink(id, address, false);
  }

  private addLink(id: NodeId, address: PeerAddress, pinned: boolean): PeerLink {
    const link = new PeerLink(this.linkContext, id, address, pinned);
    this.links.set(id, link);
    link.start();
    return link;
  }

  private learnClientAddress(id: NodeId, address: string): void {
    if (id === this.selfId) return;
    if (!this.clientAddresses.has(id) && this.clientAddresses.size >= this.clientAddressesMax) {
      this.logger.warn('too many members to remember their client addresses', { member: id, clientAddressesMax: this.clientAddressesMax });
      return;
    }
    if (this.clientAddresses.get(id) !== address) this.logger.info('learned client address of member', { member: id, clientAddress: address });
    this.clientAddresses.set(id, address);
  }

  private scheduleFlush(link: PeerLink): void {
    if (this.closed) return;
    this.dirty.add(link);
    if (this.flushImmediate !== null) return;
    this.flushImmediate = setImmediate(() => {
      this.flushImmediate = null;
      this.flushDirty();
    });
  }

  /**
   * Writes what send() queued now instead of at the end of this turn of the event loop. A
   * caller that has sent everything it has for the moment calls it: a Raft member after the
   * appends of a ready, before its own fsync, so that followers start writing at once. Left to
   * setImmediate, a flush queued from a setImmediate callback waits a whole turn of the loop
   * (the poll phase first: measured at 100-350 µs per hop on a busy member).
   */
  flush(): void {
    if (this.flushImmediate !== null) {
      clearImmediate(this.flushImmediate);
      this.flushImmediate = null;
    }
    this.flushDirty();
  }

  private flushDirty(): void {
    if (this.dirty.size === 0) return;
    const links = [...this.dirty];
    this.dirty.clear();
    for (const dirtyLink of links) dirtyLink.flush();
  }

  // ---- inbound ----

  private listen(address: PeerAddress): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen({ host: address.host, port: address.port }, () => {
        this.server.off('error', onError);
        const bound = this.server.address() as AddressInfo;
        this.boundAddress = { host: bound.address, port: bound.port };
        resolve();
      });
    });
  }

  private onConnection(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_INITIAL_DELAY_MS);
    const conn = new InboundConnection(socket, (c, payload, owned) => this.onInboundFrame(c, payload, owned));
    this.inbound.add(conn);
    conn.timer = setTimeout(() => {
      conn.timer = null;
      this.counters.rejectedHandshakes += 1;
      this.logger.warn('no handshake in time, closing inbound connection', {
        code: 'CHORUS_HANDSHAKE_TIMEOUT',
        remote: conn.remote,
      });
      this.dropInbound(conn);
    }, this.handshakeTimeoutMs);
    socket.on('data', (chunk: Buffer) => {
      try {
        conn.decoder.push(chunk);
      } catch (err) {
        this.onInboundError(conn, err);
      }
    });
    socket.on('error', (err) => {
      this.logger.debug('inbound connection error', { remote: conn.remote, member: conn.memberId, error: err.message });
    });
    socket.on('close', () => {
      conn.clearTimer();
      conn.decoder.stop();
      this.inbound.delete(conn);
      if (conn.memberId !== null && this.inboundByMember.get(conn.memberId) === conn) {
        this.inboundByMember.delete(conn.memberId);
      }
    });
  }

  private onInboundFrame(conn: InboundConnection, payload: Uint8Array, owned: boolean): void {
    if (conn.memberId === null) {
      this.onHello(conn, payload);
      return;
    }
    const message = validateMessage(owned ? decodeOwnedPayload(payload) : decodePayload(payload));
    if (message === null) {
      throw new TransportError('CHORUS_FRAME_MALFORMED', `frame of ${payload.length} bytes is not a valid message`);
    }
    if (message.from !== conn.memberId || message.to !== this.selfId) {
      this.counters.droppedMisaddressed += 1;
      this.logger.debug('misaddressed message dropped', {
        member: conn.memberId,
        from: message.from,
        to: message.to,
        type: message.type,
      });
      return;
    }
    this.counters.received += 1;
    this.counters.receivedBytes += payload.length + FRAME_HEADER_BYTES;
    const handler = this.handler;
    if (handler === null) {
      this.counters.droppedNoHandler += 1;
      return;
    }
    try {
      handler(message);
    } catch (err) {
      this.logger.error('message handler threw', {
        code: 'CHORUS_HANDLER_FAILED',
        from: message.from,
        type: message.type,
        error: String(err),
      });
    }
  }

  private onHello(conn: InboundConnection, payload: Uint8Array): void {
    const hello = parseHello(decodePayload(payload));
    if (hello === null) {
      this.refuse(conn, 'CHORUS_HANDSHAKE_INVALID', 'the first frame is not a valid hello');
      return;
    }
    if (hello.clusterId !== this.clusterId) {
      this.refuse(conn, 'CHORUS_CLUSTER_MISMATCH', `member ${hello.memberId} belongs to cluster ${hello.clusterId}`, hello.memberId);
      return;
    }
    if (!SUPPORTED_PROTOCOL_VERSIONS.has(hello.protocolVersion)) {
      this.refuse(conn, 'CHORUS_PROTOCOL_UNSUPPORTED', `protocol version ${hello.protocolVersion} is not supported`, hello.memberId);
      return;
    }
    if (hello.memberId === this.selfId) {
      this.refuse(conn, 'CHORUS_HANDSHAKE_INVALID', `the dialer claims our own member id ${this.selfId}`, hello.memberId);
      return;
    }
    conn.clearTimer();
    conn.memberId = hello.memberId;
    conn.decoder.setFrameBytesMax(this.frameBytesMax);
    const previous = this.inboundByMember.get(hello.memberId);
    // The member dialed again, so its older connection is dead or dying: drop it now rather than
    // wait for keepalive to notice.
    if (previous !== undefined) this.dropInbound(previous);
    this.inboundByMember.set(hello.memberId, conn);
    const clientAddress = advertisedClientAddress(hello);
    if (clientAddress !== undefined) this.learnClientAddress(hello.memberId, clientAddress);
    const welcome: WelcomeFrame = {
      kind: 'welcome',
      clusterId: this.clusterId,
      memberId: this.selfId,
      protocolVersion: PROTOCOL_VERSION,
      ...(this.clientAddress === undefined ? {} : { clientAddress: this.clientAddress }),
    };
    conn.socket.write(encodeFrame(welcome));
    this.logger.info('accepted connection from member', { member: hello.memberId, remote: conn.remote });
  }

  private refuse(conn: InboundConnection, refusal: RefusalCode, reason: string, member?: NodeId): void {
    this.counters.rejectedHandshakes += 1;
    this.logger.warn('handshake refused', { code: 'CHORUS_HANDSHAKE_REFUSED', refusal, reason, member, remote: conn.remote });
    conn.decoder.stop();
    conn.clearTimer();
    const frame: RefuseFrame = { kind: 'refuse', code: refusal, reason };
    conn.socket.end(encodeFrame(frame));
    conn.timer = setTimeout(() => {
      conn.timer = null;
      conn.socket.destroy();
    }, REFUSAL_LINGER_MS);
  }

  private onInboundError(conn: InboundConnection, err: unknown): void {
    const code = err instanceof TransportError ? err.code : undefined;
    if (code === 'CHORUS_FRAME_TOO_LARGE') this.counters.oversizedFrames += 1;
    else if (code === 'CHORUS_FRAME_MALFORMED') this.counters.malformedFrames += 1;
    if (conn.memberId === null) this.counters.rejectedHandshakes += 1;
    const fields = { code, remote: conn.remote, member: conn.memberId, error: err instanceof Error ? err.message : String(err) };
    if (code === undefined) this.logger.error('unexpected error on inbound connection, closing it', fields);
    else this.logger.warn('closing inbound connection', fields);
    this.dropInbound(conn);
  }

  private dropInbound(conn: InboundConnection): void {
    conn.decoder.stop();
    conn.clearTimer();
    conn.socket.destroy();
  }
}

function positiveInt<K extends keyof TcpTransportOptions>(options: TcpTransportOptions, key: K, fallback: number): number {
  const value = options[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new TransportError('CHORUS_INVALID_OPTION', `${String(key)} must be a positive integer`);
  }
  return value;
}
