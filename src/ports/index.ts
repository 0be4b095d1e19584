// Ports: the narrow interfaces between the pure core and the outside world. Each has a real
// implementation (src/storage, src/transport, the node runtime) and a simulated one (sim/).
import type { Entry, HardState, Message, NodeId, Snapshot } from '../core/raft/types.ts';

/** Randomness, injected so that the simulator can seed it (defined by the core). */
export type { Random } from '../core/raft/raft.ts';

/** A monotonic clock in milliseconds (not wall time). */
export interface Clock {
  nowMs(): number;
}

/**
 * The write-ahead log. Appends are not durable until `sync()` resolves; many appends may share
 * one sync (group commit). Recovery happens at open: a torn last record is cut off, a bad
 * checksum in the middle fails with CHORUS_WAL_CORRUPT.
 */
export interface LogStore {
  /** Every stored entry, in index order, as recovered at open. */
  readAll(): PromiseLike<Entry[]>;
  /** Writes entries. If entries[0].index <= lastIndex(), the log is first truncated so that
   * entries[0].index becomes the next index. Entries must be contiguous. */
  append(entries: readonly Entry[]): PromiseLike<void>;
  /** Makes every completed append durable. */
  sync(): PromiseLike<void>;
  /** Discards entries with index <= index; a snapshot covers them. Durable when it resolves. */
  compact(index: number): PromiseLike<void>;
  /** Discards every entry; the next append starts at nextIndex (a snapshot replaced the log). */
  reset(nextIndex: number): PromiseLike<void>;
  /** The first stored index, or lastIndex()+1 when empty. */
  firstIndex(): number;
  /** The last stored index, or firstIndex()-1 when empty. */
  lastIndex(): number;
  close(): PromiseLike<void>;
}

/** Term, vote and commit: saved atomically and durably. */
export interface StableStore {
  load(): PromiseLike<HardState | null>;
  save(state: HardState): PromiseLike<void>;
  close(): PromiseLike<void>;
}

/** The latest snapshot, saved under a temporary name, checksummed, then renamed. */
export interface SnapshotStore {
  load(): PromiseLike<Snapshot | null>;
  save(snapshot: Snapshot): PromiseLike<void>;
  close(): PromiseLike<void>;
}

/** Node-to-node messages: best effort, bounded queues, never blocks the caller. */
export interface Transport<M = Message> {
  /** Queues a message; returns false when it was dropped (queue full, peer unknown, closed). */
  send(message: M): boolean;
  onMessage(handler: (message: M) => void): void;
  close(): Promise<void>;
}

// ---- Optional transport capabilities ----
//
// Beyond the Transport port, a transport may offer any of the capabilities below. Each is an
// interface of its own with a type guard, so that code written against Transport<M> can use a
// capability where the implementation has it (the TCP transport has all four, structurally)
// and do without where it has not.

/** A network address. The TCP transport's PeerAddress has this shape. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** A transport that holds sent messages back briefly (to coalesce writes) and can be told to
 * hand them to the network at once. */
export interface FlushableTransport {
  /** Hands queued messages to the network now rather than later in this turn of the event
   * loop. Never delivers to a handler synchronously. */
  flush(): void;
}

/** A transport that must be told where its peers are. */
export interface PeerDirectory {
  /** Adds a peer or changes its address. */
  setPeer(id: NodeId, address: HostPort): void;
  /** Forgets a peer and discards what was queued for it. */
  removePeer(id: NodeId): void;
  /** The client (HTTP) address, "host:port", the peer advertised, if known. */
  peerClientAddress(id: NodeId): string | undefined;
}

/** Fault hooks, for tests. Every fault-injectable transport supports at least these. */
export interface TransportFaultHooks<M> {
  /** True: the message is lost as if by the network (`send` still returns true). */
  readonly drop?: (message: M) => boolean;
}

export interface FaultInjectable<M> {
  /** Installs fault hooks, replacing earlier ones; `setFaults({})` removes them. */
  setFaults(faults: TransportFaultHooks<M>): void;
}

/** Per-peer outbound counters that every transport with statistics keeps. */
export interface TransportPeerCounters {
  /** Messages waiting in the queue for this peer. */
  readonly queuedMessages: number;
  /** Messages that left the queue towards the peer (not a delivery guarantee). */
  readonly sentMessages: number;
  /** `send` returned false: the queue was full or the message could not be sent. */
  readonly droppedMessages: number;
  /** Lost on purpose by the drop fault hook. */
  readonly faultDroppedMessages: number;
}

export interface TransportStatsView {
  /** By peer, for each peer this transport has a queue for. */
  readonly peers: Readonly<Record<NodeId, TransportPeerCounters>>;
  /** `send` to a member that is not known (or to self). */
  readonly droppedUnknownPeer: number;
}

export interface TransportStatsSource {
  stats(): TransportStatsView;
}

function hasMethods(value: unknown, names: readonly string[]): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const record = value as Record<string, unknown>;
  return names.every((name) => typeof record[name] === 'function');
}

export function isFlushable<T>(transport: T): transport is T & FlushableTransport {
  return hasMethods(transport, ['flush']);
}

export function hasPeerDirectory<T>(transport: T): transport is T & PeerDirectory {
  return hasMethods(transport, ['setPeer', 'removePeer', 'peerClientAddress']);
}

/** The message type is taken from the transport, so the hooks get the messages it carries. */
export function isFaultInjectable<M>(transport: Transport<M>): transport is Transport<M> & FaultInjectable<M> {
  return hasMethods(transport, ['setFaults']);
}

export function hasTransportStats<T>(transport: T): transport is T & TransportStatsSource {
  return hasMethods(transport, ['stats']);
}
