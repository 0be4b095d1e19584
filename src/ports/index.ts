// Ports: the narrow interfaces between the pure core and the outside world. Each has a real
// implementation (src/storage, src/transport, the node runtime) and a simulated one (sim/).
import type { Entry, HardState, Message, Snapshot } from '../core/raft/types.ts';

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
  readAll(): Promise<Entry[]>;
  /** Writes entries. If entries[0].index <= lastIndex(), the log is first truncated so that
   * entries[0].index becomes the next index. Entries must be contiguous. */
  append(entries: readonly Entry[]): Promise<void>;
  /** Makes every completed append durable. */
  sync(): Promise<void>;
  /** Discards entries with index <= index; a snapshot covers them. Durable when it resolves. */
  compact(index: number): Promise<void>;
  /** Discards every entry; the next append starts at nextIndex (a snapshot replaced the log). */
  reset(nextIndex: number): Promise<void>;
  /** The first stored index, or lastIndex()+1 when empty. */
  firstIndex(): number;
  /** The last stored index, or firstIndex()-1 when empty. */
  lastIndex(): number;
  close(): Promise<void>;
}

/** Term, vote and commit: saved atomically and durably. */
export interface StableStore {
  load(): Promise<HardState | null>;
  save(state: HardState): Promise<void>;
  close(): Promise<void>;
}

/** The latest snapshot, saved under a temporary name, checksummed, then renamed. */
export interface SnapshotStore {
  load(): Promise<Snapshot | null>;
  save(snapshot: Snapshot): Promise<void>;
  close(): Promise<void>;
}

/** Node-to-node messages: best effort, bounded queues, never blocks the caller. */
export interface Transport<M = Message> {
  /** Queues a message; returns false when it was dropped (queue full, peer unknown, closed). */
  send(message: M): boolean;
  onMessage(handler: (message: M) => void): void;
  close(): Promise<void>;
}
