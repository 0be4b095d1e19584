// Ports of the member runtime beside the stores and the transport: time, timers, randomness and
// the state machine. The member wires real ones (performance.now, setTimeout, node:crypto,
// SQLite); the simulator wires simulated ones driven by its event heap from one seed.
import type { Entry, ImageBytes } from '../core/raft/types.ts';

/**
 * Timers of one process. Callbacks never run inside the call that scheduled them. The order of
 * a real event loop is kept: callbacks of I/O (a socket read, a completed write) that became
 * due while the process was stalled run before its timers.
 */
export interface Scheduler {
  /** Runs `run` once the current turn is over (setImmediate). */
  soon(run: () => void): void;
  /** Runs `run` after `delayMs` of this process's clock; returns a function that cancels it. */
  after(delayMs: number, run: () => void): () => void;
}

/** An image of the state machine made for a follower (see Raft.offerSnapshot). */
export interface MadeImage {
  /** The applied index the image holds. */
  readonly index: number;
  readonly bytes: ImageBytes;
  /** Frees what holds the bytes (a file) once the core no longer holds the image. */
  release(): void;
}

/**
 * The replicated state machine as the driver needs it. `R` is the result of one applied entry.
 * The state machine is durable on its own (SQLite): `syncDurable` makes what it applied
 * durable, so the log below that index may go; at boot it may be ahead of the log's position,
 * and `applyBatch` then skips the entries it already holds.
 */
export interface StateMachine<R> {
  /** Invariant: only grows, except when restoreStaged replaces the whole state. */
  appliedIndex(): number;
  /** Applies committed entries in order, atomically; entries at or below appliedIndex() are
   * skipped (their result says so). One result per entry. */
  applyBatch(entries: readonly Entry[]): R[];
  /** Writes a piece of an image being received; offset 0 starts a new one. */
  stageImage(offset: number, chunk: Uint8Array): void;
  /** Checks the staged image (totalBytes, holding `index`) and makes it the durable state. */
  restoreStaged(totalBytes: number, index: number): void;
  /** Makes the applied state durable; resolves with the index it holds. */
  syncDurable(): PromiseLike<number>;
  /** Makes an image of the applied state, without stopping the loop (a worker). */
  makeImage(): PromiseLike<MadeImage>;
}
