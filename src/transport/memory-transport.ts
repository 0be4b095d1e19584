// An in-memory Transport: the endpoints of one MemoryNetwork exchange messages without sockets,
// with the semantics of the TCP transport where they matter to a member:
//
// - Best effort with bounded queues: each link (sender to receiver) holds at most
//   queueMessagesMax undelivered messages; `send` returns false when the queue is full, the
//   receiver is unknown (no open endpoint of that id, or the sender itself) or the sender is
//   closed.
// - Asynchronous: `send` only queues. Each message is delivered by a task given to the network's
//   scheduler (default setImmediate), so a handler never runs inside `send`, and a handler that
//   sends does not recurse. A simulator injects its own scheduler to decide when, and in which
//   order across links, messages arrive; on each link they arrive in the order sent (FIFO).
// - Copied at send: the receiver gets a deep copy made when `send` is called, so a sender that
//   mutates a message (or a payload buffer) afterwards does not change what is delivered, as
//   with the TCP transport, which encodes at send. Byte fields (Uint8Array, Buffer) arrive as
//   plain Uint8Array holding only the bytes of the view, never the rest of its ArrayBuffer (which
//   structuredClone would copy). Only plain data is carried: objects, arrays, Uint8Array,
//   strings, numbers, booleans, bigints, null and undefined; anything else makes `send` return
//   false, as an unencodable message does on TCP.
// - close() stops delivery both ways: what the endpoint still queued to others and what others
//   queued to it is discarded, and its handler is not called again. Its id is then free: the
//   network can open a new endpoint under it (a member restarting); messages queued for the old
//   endpoint never reach the new one.
//
// Beyond the port it offers flush (a no-op, see there), the drop fault hook and statistics. It
// has no peer directory: every open endpoint of the network is a known peer. holdLink and
// releaseLink on the network make a peer unreachable from one sender without losing messages,
// like a TCP peer that cannot be dialed: the link's queue fills up, then `send` returns false.
import type { NodeId } from '../core/raft/types.ts';
import type {
  FaultInjectable,
  FlushableTransport,
  Transport,
  TransportFaultHooks,
  TransportPeerCounters,
  TransportStatsSource,
  TransportStatsView,
} from '../ports/index.ts';
import { TransportError } from './errors.ts';
import type { TransportLogger, WireMessage } from './types.ts';

/** What the memory transport needs of a message: who sends it and to whom. */
export interface AddressedMessage {
  readonly from: NodeId;
  readonly to: NodeId;
}

/** The link a delivery task belongs to (so that a simulator can give links their own latency). */
export interface LinkRef {
  readonly from: NodeId;
  readonly to: NodeId;
}

/** Runs `task` later: on a later turn of the event loop, or whenever a simulator decides, but
 * never before returning. Each task delivers at most one message. */
export type DeliveryScheduler = (task: () => void, link: LinkRef) => void;

export interface MemoryNetworkOptions {
  /** Default: setImmediate. Running a task synchronously is an error (CHORUS_INVALID_OPTION is
   * thrown from `send`): delivery must never be re-entrant. */
  readonly schedule?: DeliveryScheduler;
  /** Per link: messages accepted by `send` and not yet delivered. Default 4096 (as TCP). */
  readonly queueMessagesMax?: number;
  /** Handler failures and uncopyable messages are reported here. Default: silent. */
  readonly logger?: TransportLogger;
}

export interface MemoryPeerStats extends TransportPeerCounters {
  /** `sentMessages` here means handed to the receiving endpoint. */
  readonly sentMessages: number;
  /** The link is held (holdLink): messages wait in the queue. */
  readonly held: boolean;
}

export interface MemoryInboundStats {
  /** Messages delivered to this endpoint (passed to the handler, or dropped for lack of one). */
  readonly received: number;
  /** Messages that arrived before any handler was registered. */
  readonly droppedNoHandler: number;
  /** Messages whose handler threw (each such message is lost; delivery goes on). */
  readonly handlerErrors: number;
}

export interface MemoryTransportStats extends TransportStatsView {
  readonly peers: Readonly<Record<NodeId, MemoryPeerStats>>;
  readonly inbound: MemoryInboundStats;
  readonly droppedUnknownPeer: number;
  /** `send` of a message whose `from` is not this endpoint. */
  readonly droppedMisaddressed: number;
}

const DEFAULT_QUEUE_MESSAGES_MAX = 4096;
/** Deeper nesting than any message has: a cycle, or not a message. */
const COPY_DEPTH_MAX = 64;

const silentLogger: TransportLogger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};

const defaultScheduler: DeliveryScheduler = (task) => {
  setImmediate(task);
};

/** The outbound queue of one endpoint towards one peer id. */
class Link<M extends AddressedMessage> {
  readonly to: NodeId;
  /** The endpoint queued messages are for; null once it closed (the queue is then empty). */
  target: MemoryTransport<M> | null = null;
  private items: M[] = [];
  /** Index of the oldest queued message. */
  private head = 0;
  /** Bumped by clear(): delivery tasks of an earlier epoch do nothing. */
  epoch = 0;
  /** Delivery tasks of this epoch not yet run. Invariant: at most `length`, and equal to it
   * while the link is not held, so each queued message has exactly one task to come. */
  pendingTasks = 0;
  sent = 0;
  dropped = 0;
  faultDropped = 0;

  constructor(to: NodeId) {
    this.to = to;
  }

  get length(): number {
    return this.items.length - this.head;
  }

  push(message: M): void {
    this.items.push(message);
  }

  shift(): M | undefined {
    if (this.head >= this.items.length) return undefined;
    const message = this.items[this.head];
    this.head += 1;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return message;
  }

  /** Discards the queue and forgets the target (it closed, or the sender did). */
  clear(): void {
    this.items = [];
    this.head = 0;
    this.target = null;
    this.epoch += 1;
    this.pendingTasks = 0;
  }
}

/**
 * A set of in-memory endpoints that can reach each other. One network per simulated cluster
 * (or per test); endpoints are opened by member id.
 */
export class MemoryNetwork<M extends AddressedMessage = WireMessage> {
  readonly queueMessagesMax: number;
  readonly logger: TransportLogger;
  private readonly scheduler: DeliveryScheduler;
  /** The open endpoint of each member. */
  private readonly endpoints = new Map<NodeId, MemoryTransport<M>>();
  /** Held links: sender id to the receiver ids it cannot reach for now. */
  private readonly held = new Map<NodeId, Set<NodeId>>();
  /** Set while the scheduler is being called, to catch a scheduler that runs tasks at once. */
  private scheduling = false;

  constructor(options: MemoryNetworkOptions = {}) {
    const max = options.queueMessagesMax ?? DEFAULT_QUEUE_MESSAGES_MAX;
    if (!Number.isSafeInteger(max) || max <= 0) {
      throw new TransportError('CHORUS_INVALID_OPTION', 'queueMessagesMax must be a positive integer');
    }
    this.queueMessagesMax = max;
    this.scheduler = options.schedule ?? defaultScheduler;
    this.logger = options.logger ?? silentLogger;
  }

  /** Opens the endpoint of member `id`. Throws if an endpoint of that id is open. */
  open(id: NodeId): MemoryTransport<M> {
    if (id === '') throw new TransportError('CHORUS_INVALID_OPTION', 'a member id must not be empty');
    if (this.endpoints.has(id)) throw new TransportError('CHORUS_INVALID_OPTION', `member ${id} already has an open endpoint`);
    const endpoint = new MemoryTransport<M>(this, id);
    this.endpoints.set(id, endpoint);
    return endpoint;
  }

  /** The open endpoint of member `id`, if any. */
  endpoint(id: NodeId): MemoryTransport<M> | undefined {
    return this.endpoints.get(id);
  }

  /** Ids of the members with an open endpoint. */
  members(): NodeId[] {
    return [...this.endpoints.keys()];
  }

  /** Makes `to` unreachable from `from` without losing messages: what `from` sends to `to` stays
   * in the link's queue (so the queue limit applies) until releaseLink. One direction only. */
  holdLink(from: NodeId, to: NodeId): void {
    let targets = this.held.get(from);
    if (targets === undefined) {
      targets = new Set();
      this.held.set(from, targets);
    }
    targets.add(to);
  }

  /** Ends holdLink: the queued messages are delivered, in order. */
  releaseLink(from: NodeId, to: NodeId): void {
    const targets = this.held.get(from);
    if (targets === undefined || !targets.delete(to)) return;
    if (targets.size === 0) this.held.delete(from);
    this.endpoints.get(from)?.resumeLink(to);
  }

  isHeld(from: NodeId, to: NodeId): boolean {
    return this.held.get(from)?.has(to) === true;
  }

  /** Closes every open endpoint. */
  async close(): Promise<void> {
    await Promise.all([...this.endpoints.values()].map((endpoint) => endpoint.close()));
  }

  /** @internal The open endpoint a message to `to` from `from` goes to. */
  receiverFor(from: NodeId, to: NodeId): MemoryTransport<M> | undefined {
    return from === to ? undefined : this.endpoints.get(to);
  }

  /** @internal */
  schedule(task: () => void, link: LinkRef): void {
    const guarded = (): void => {
      if (this.scheduling) {
        throw new TransportError('CHORUS_INVALID_OPTION', 'the delivery scheduler ran a task synchronously; it must run tasks later');
      }
      task();
    };
    this.scheduling = true;
    try {
      this.scheduler(guarded, link);
    } finally {
      this.scheduling = false;
    }
  }

  /** @internal Called once by a closing endpoint. */
  detach(endpoint: MemoryTransport<M>): void {
    if (this.endpoints.get(endpoint.selfId) === endpoint) this.endpoints.delete(endpoint.selfId);
    for (const other of this.endpoints.values()) other.forgetTarget(endpoint);
  }
}

/** One member's endpoint on a MemoryNetwork. Open it with `network.open(id)`. */
export class MemoryTransport<M extends AddressedMessage = WireMessage>
implements Transport<M>, FlushableTransport, FaultInjectable<M>, TransportStatsSource {
  readonly selfId: NodeId;
  private readonly network: MemoryNetwork<M>;
  private readonly links = new Map<NodeId, Link<M>>();
  private handler: ((message: M) => void) | null = null;
  private faults: TransportFaultHooks<M> = {};
  private closed = false;
  private droppedUnknownPeer = 0;
  private droppedMisaddressed = 0;
  private received = 0;
  private droppedNoHandler = 0;
  private handlerErrors = 0;

  /** @internal Use MemoryNetwork.open. */
  constructor(network: MemoryNetwork<M>, selfId: NodeId) {
    this.network = network;
    this.selfId = selfId;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  // ---- Transport port ----

  send(message: M): boolean {
    if (this.closed) return false;
    if (message.from !== this.selfId) {
      this.droppedMisaddressed += 1;
      return false;
    }
    const target = this.network.receiverFor(this.selfId, message.to);
    if (target === undefined) {
      this.droppedUnknownPeer += 1;
      return false;
    }
    const link = this.linkTo(message.to);
    // A link whose receiver closed was cleared; a new endpoint of that id starts afresh.
    link.target = target;
    if (this.faults.drop?.(message) === true) {
      link.faultDropped += 1;
      return true;
    }
    if (link.length >= this.network.queueMessagesMax) {
      link.dropped += 1;
      return false;
    }
    let copy: M;
    try {
      copy = copyMessage(message) as M;
    } catch (err) {
      link.dropped += 1;
      this.network.logger.error('cannot copy message', { code: 'CHORUS_ENCODE_FAILED', peer: message.to, error: String(err) });
      return false;
    }
    link.push(copy);
    if (!this.network.isHeld(this.selfId, link.to)) this.scheduleDelivery(link);
    return true;
  }

  /** Registers the handler for delivered messages (replacing any previous one). It is called
   * from a delivery task, never from `send`; a throwing handler loses that message only. */
  onMessage(handler: (message: M) => void): void {
    this.handler = handler;
  }

  /** Stops delivery both ways and frees the id on the network. Idempotent. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    this.handler = null;
    for (const link of this.links.values()) link.clear();
    this.network.detach(this);
    return Promise.resolve();
  }

  // ---- capabilities ----

  /** A no-op: `send` has already given every message its delivery task, and delivering here
   * would run handlers inside the caller. Present so that code which flushes works unchanged. */
  flush(): void {}

  /** Installs fault hooks (tests); `setFaults({})` removes them. Dropped messages count as
   * faultDroppedMessages and `send` returns true for them. */
  setFaults(faults: TransportFaultHooks<M>): void {
    this.faults = { ...faults };
  }

  stats(): MemoryTransportStats {
    const peers: Record<NodeId, MemoryPeerStats> = Object.create(null) as Record<NodeId, MemoryPeerStats>;
    for (const [id, link] of this.links) {
      peers[id] = {
        queuedMessages: link.length,
        sentMessages: link.sent,
        droppedMessages: link.dropped,
        faultDroppedMessages: link.faultDropped,
        held: this.network.isHeld(this.selfId, id),
      };
    }
    return {
      peers,
      inbound: { received: this.received, droppedNoHandler: this.droppedNoHandler, handlerErrors: this.handlerErrors },
      droppedUnknownPeer: this.droppedUnknownPeer,
      droppedMisaddressed: this.droppedMisaddressed,
    };
  }

  // ---- network side ----

  /** @internal A held link was released: every queued message without a delivery task to come
   * (those whose task ran while held) gets one. */
  resumeLink(to: NodeId): void {
    const link = this.links.get(to);
    if (this.closed || link === undefined) return;
    for (let i = link.length - link.pendingTasks; i > 0; i -= 1) this.scheduleDelivery(link);
  }

  /** @internal `endpoint` closed: what was queued for it is discarded. */
  forgetTarget(endpoint: MemoryTransport<M>): void {
    const link = this.links.get(endpoint.selfId);
    if (link !== undefined && link.target === endpoint) link.clear();
  }

  private linkTo(to: NodeId): Link<M> {
    let link = this.links.get(to);
    if (link === undefined) {
      link = new Link(to);
      this.links.set(to, link);
    }
    return link;
  }

  private scheduleDelivery(link: Link<M>): void {
    const epoch = link.epoch;
    link.pendingTasks += 1;
    this.network.schedule(() => {
      if (link.epoch !== epoch) return;
      link.pendingTasks -= 1;
      this.deliverNext(link);
    }, { from: this.selfId, to: link.to });
  }

  /** One delivery task: hands the oldest queued message of the link to its receiver. Each queued
   * message has one task to come, so a scheduler may run tasks in any order: taking the oldest
   * keeps every link FIFO. A task finds nothing to do when the link is held (releaseLink then
   * schedules a new one) or was cleared by a close (its epoch is over). */
  private deliverNext(link: Link<M>): void {
    const target = link.target;
    if (this.closed || target === null || target.closed || this.network.isHeld(this.selfId, link.to)) return;
    const message = link.shift();
    if (message === undefined) return;
    link.sent += 1;
    target.receive(message);
  }

  private receive(message: M): void {
    this.received += 1;
    const handler = this.handler;
    if (handler === null) {
      this.droppedNoHandler += 1;
      return;
    }
    try {
      handler(message);
    } catch (err) {
      this.handlerErrors += 1;
      this.network.logger.error('message handler threw', {
        code: 'CHORUS_HANDLER_FAILED',
        from: message.from,
        error: String(err),
      });
    }
  }
}

/** A deep copy of plain message data (see the file comment); throws on anything else. */
export function copyMessage(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'function' || typeof value === 'symbol') throw new TypeError(`cannot copy a ${typeof value}`);
    return value;
  }
  if (depth >= COPY_DEPTH_MAX) throw new TypeError(`message nested deeper than ${COPY_DEPTH_MAX} levels (a cycle?)`);
  if (value instanceof Uint8Array) return new Uint8Array(value);
  if (Array.isArray(value)) return value.map((item: unknown) => copyMessage(item, depth + 1));
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    throw new TypeError(`cannot copy an instance of ${(value as { constructor?: { name?: string } }).constructor?.name ?? 'a class'}`);
  }
  const copy: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    const field = copyMessage(item, depth + 1);
    // An own "__proto__" key (decoded data can have one) must stay a field, not a prototype.
    if (key === '__proto__') Object.defineProperty(copy, key, { value: field, enumerable: true, writable: true, configurable: true });
    else copy[key] = field;
  }
  return copy;
}
