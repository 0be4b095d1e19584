// Public option, fault, logging and statistics types of the TCP transport.
import type { Message, NodeId } from '../core/raft/types.ts';

/** A message of a multi-master keyspace (src/mm-node): the transport checks only the envelope;
 * the body is validated by the multi-master layer and its core. `term` is always 0. */
export interface MultiMasterMessage {
  readonly type: 'MultiMaster';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  readonly keyspace: string;
  readonly body: Readonly<Record<string, unknown>>;
}

/** Everything that travels between members: Raft messages and multi-master messages. */
export type WireMessage = Message | MultiMasterMessage;

export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

/** Looks a member's address up on demand: called on the first send to an unknown member and
 * again before every dial, so a changed address is picked up at the next reconnect. */
export type PeerResolver = (id: NodeId) => PeerAddress | undefined;

export type LogFields = Record<string, unknown>;

/** Structured logging. Every warning or error about a connection carries a stable `code`. */
export interface TransportLogger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

export interface TcpTransportOptions {
  /** Connections from members of another cluster are refused. */
  readonly clusterId: string;
  readonly selfId: NodeId;
  /** Port 0 picks an ephemeral port; read it back with `address()`. */
  readonly listen: PeerAddress;
  /** Known peers. An entry for selfId is ignored. */
  readonly peers?: ReadonlyMap<NodeId, PeerAddress> | PeerResolver;
  /** Largest payload accepted in either direction (header excluded). Default 16 MiB. */
  readonly frameBytesMax?: number;
  /** Per peer: frames held while the socket is not writable (delayed ones included). Default 4096. */
  readonly queueMessagesMax?: number;
  /** Per peer: bytes held while the socket is not writable (delayed ones included). Default 64 MiB. */
  readonly queueBytesMax?: number;
  /** First reconnect delay (before jitter). Default 50 ms. */
  readonly backoffMsMin?: number;
  /** Cap on reconnect delays; also the delay after a refused handshake. Default 5000 ms. */
  readonly backoffMsMax?: number;
  /** Time allowed to connect and complete the handshake, on both sides. Default 5000 ms. */
  readonly handshakeTimeoutMs?: number;
  /** A socket that stays unwritable this long is presumed dead and replaced. Default 30000 ms. */
  readonly writeStallMsMax?: number;
  /** Bytes Node may buffer in an outbound socket before `write` reports backpressure; beyond
   * it frames wait in the bounded queue. Default 1 MiB. */
  readonly socketBufferBytes?: number;
  /** Uniform in [0, 1); used for reconnect jitter. Default Math.random. */
  readonly random?: () => number;
  /** Default: silent. */
  readonly logger?: TransportLogger;
  /** This member's client (HTTP) address, "host:port", sent in every handshake so that peers
   * learn where to forward client requests; see `peerClientAddress`. */
  readonly clientAddress?: string;
  /** Most members whose advertised client address is remembered (default 1024); addresses of
   * further members are not learned. Bounds what handshakes can make us store. */
  readonly clientAddressesMax?: number;
}

/** Fault injection for tests, applied in `send` before queueing. */
export interface TransportFaults {
  /** True: the message is lost as if by the network (`send` still returns true). */
  readonly drop?: (message: WireMessage) => boolean;
  /** Milliseconds to hold the message before queueing it; <= 0 means no delay. Held messages
   * count against the queue limits, so a delay cannot grow memory without bound. */
  readonly delayMs?: (message: WireMessage) => number;
}

export type LinkState = 'dialing' | 'open' | 'backoff' | 'closed';

export interface PeerStats {
  readonly address: string;
  readonly state: LinkState;
  /** Handshake completed and the connection is up. */
  readonly connected: boolean;
  /** Frames held for this peer (delayed ones included); the queue limits apply to these. */
  readonly queuedMessages: number;
  readonly queuedBytes: number;
  /** Of the queued frames, those still held by the delay fault. */
  readonly delayedMessages: number;
  /** Frames handed to the socket (not a delivery guarantee). */
  readonly sentMessages: number;
  readonly sentBytes: number;
  /** `send` returned false: queue full, message too large or unencodable. */
  readonly droppedMessages: number;
  /** Lost on purpose by the drop fault. */
  readonly faultDroppedMessages: number;
  /** Dial attempts after the first one. */
  readonly reconnects: number;
  /** Completed handshakes. */
  readonly connects: number;
  /** Handshakes the peer refused (or answered as the wrong member). */
  readonly refusals: number;
}

export interface InboundStats {
  /** Open inbound connections, authenticated or not. */
  readonly connections: number;
  /** Messages accepted and passed on to the handler (or dropped for lack of one). */
  readonly received: number;
  readonly receivedBytes: number;
  /** Inbound connections whose handshake failed: refused, undecodable, oversized or timed out. */
  readonly rejectedHandshakes: number;
  /** Messages whose `from` is not the handshake's member or whose `to` is not this member. */
  readonly droppedMisaddressed: number;
  /** Messages received before any handler was registered. */
  readonly droppedNoHandler: number;
  /** Frames that could not be decoded into a valid handshake or message (connection closed). */
  readonly malformedFrames: number;
  /** Frame headers over the limit (connection closed). */
  readonly oversizedFrames: number;
}

export interface TransportStats {
  readonly peers: Readonly<Record<NodeId, PeerStats>>;
  readonly inbound: InboundStats;
  /** `send` to a member with no known address (or to self). */
  readonly droppedUnknownPeer: number;
}
