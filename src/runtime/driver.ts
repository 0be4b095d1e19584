// The one driver: turns the pure core's Ready into I/O through ports only. The member wires real
// ports (WAL, SQLite, TCP, performance.now, setTimeout); the simulator wires simulated ones, so
// the loop that real processes run is the loop the simulator's seeds break. `raft.ready()` is
// called here and nowhere else.
//
// The loop (one ready at a time, never two overlapping):
//   inputs (messages, proposals, reads, ticks) step the core synchronously, each after the ticks
//   that fell due were fed to it; a pump scheduled for the end of the turn then takes one Ready:
//     1. sends messagesBeforePersist (the leader's appends: replicate while writing our disk),
//        except entry-less appends of a ready that writes nothing: they only carry a commit
//        index and leave after the apply, so that client answers go first;
//     2. stages received image chunks; installs a complete image (state machine, then its
//        position, then the log fix: 'keep' compacts, 'discard' resets);
//     3. appends the entries and syncs the log once (group commit);
//     4. saves the hard state after the log sync (never ahead of the entries), at once when the
//        core says it must (term or vote changed), else at most every commitSaveIntervalMs;
//     5. sends messages (votes and acknowledgements: only once durable);
//     6. applies committedEntries, hands out read states, advance().
//   While a ready is on disk the core keeps taking inputs; the next ready collects them.
//
// The driver never awaits: it continues in `then` callbacks, so that a simulated port can
// complete inside one simulator event, deterministically, with no microtask queue in between.
import type { ConfigChange, Random } from '../core/raft/raft.ts';
import { Raft } from '../core/raft/raft.ts';
import type { Entry, HardState, Message, ProposeResult, ReadFailure, ReadState, Ready, SnapshotMeta } from '../core/raft/types.ts';
import type { Clock, LogStore, SnapshotStore, StableStore, Transport } from '../ports/index.ts';
import type { MadeImage, Scheduler, StateMachine } from '../ports/runtime.ts';

/** The data of a snapshot saved by compaction or an install: its position only; the state
 * machine holds the state itself, durably, at or past it. */
export const POSITION_ONLY: Uint8Array = new Uint8Array(0);

export interface DriverOptions {
  readonly tickMs: number;
  readonly electionTicks: number;
  /** Applied entries past the last compaction that start the next one (plus up to a quarter,
   * drawn per member, so that members do not all compact at once). */
  readonly snapshotEntries: number;
  /** wal_keep: entries kept behind a compaction for followers this far behind (0: none). */
  readonly walKeepEntries: number;
  /** A hard state whose only change is the commit index is saved at most this often. */
  readonly commitSaveIntervalMs: number;
  /** After an image failed or was of no use, the next attempt waits this long. */
  readonly imageRetryMs: number;
}

export const DRIVER_DEFAULTS = { commitSaveIntervalMs: 1000, imageRetryMs: 1000 } as const;

export interface DriverPorts<R> {
  readonly log: LogStore;
  readonly stable: StableStore;
  readonly snapshots: SnapshotStore;
  readonly stateMachine: StateMachine<R>;
  readonly transport: Pick<Transport<Message>, 'send'> & { flush?(): void };
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  readonly random: Random;
}

/** What the driver tells its owner (the member's proposals and reads, observers, checkers). */
export interface DriverHooks<R> {
  /** A broken invariant or a failed write: the driver has stopped; the owner fails too. */
  fatal(error: Error): void;
  /** Committed entries were applied: one result per entry. */
  applied(entries: readonly Entry[], results: readonly R[], committedAtMs: number): void;
  readStates(states: readonly ReadState[], failures: readonly ReadFailure[]): void;
  /** Each pump, before a ready may be taken. */
  beforeReady?(): void;
  readyTaken?(ready: Ready): void;
  /** After advance(): the durable and applied indexes moved. */
  advanced?(ready: Ready): void;
  /** Every tick of the timer, after the core caught up. */
  ticked?(nowMs: number): void;
  sentBeforePersist?(messages: readonly Message[], nowMs: number): void;
  logSynced?(entries: readonly Entry[], durationMs: number): void;
  /** A received image is the state machine's state now (its position is saved next). */
  imageRestored?(meta: SnapshotMeta, totalBytes: number): void;
  imageInstalled?(meta: SnapshotMeta, totalBytes: number, timing: { restoreMs: number; saveMs: number }): void;
  compacted?(meta: SnapshotMeta, logFirstIndex: number, durationMs: number): void;
  imageOffered?(image: MadeImage, durationMs: number): void;
  imageDiscarded?(image: MadeImage, reason: string): void;
  imageFailed?(error: unknown): void;
}

type DriverState = 'created' | 'running' | 'stopping' | 'stopped' | 'failed';

export class Driver<R> {
  private state: DriverState = 'created';
  /** The ready being persisted and applied. Invariant: at most one; ready() is never called
   * while it is set. */
  private inflight: Ready | null = null;
  private pumpScheduled = false;
  private cancelTick: (() => void) | null = null;
  /** When the next tick falls due, on this member's clock. Invariant: every tick before it was
   * fed to the core (or skipped past the replay bound). */
  private nextTickAtMs = 0;

  /** The hard state on disk, as far as this driver knows. */
  private savedHardState: HardState | null;
  /** The latest hard state handed out and not yet saved (only its commit differs from saved). */
  private unsavedHardState: HardState | null = null;
  private hardStateSavedAtMs = Number.NEGATIVE_INFINITY;

  /** A compaction is running (state machine sync, position save, log compaction). */
  private compacting = false;
  /** raft.compact() deferred until no ready is in flight. */
  private deferredCompact: { index: number; retainFromIndex: number } | null = null;
  /** Applied entries past the last compaction that start the next one (0: to be drawn). */
  private compactThresholdEntries = 0;
  /** An image is being made for a follower (raft.snapshotWanted()). */
  private imaging = false;
  private imageRetryAtMs = Number.NEGATIVE_INFINITY;
  /** Images offered to the core; each is released once the core no longer holds it. */
  private readonly images = new Set<MadeImage>();
  /** Run once no ready, compaction or image is in progress. */
  private quietWaiters: (() => void)[] = [];

  constructor(
    readonly raft: Raft,
    private readonly ports: DriverPorts<R>,
    private readonly hooks: DriverHooks<R>,
    private readonly options: DriverOptions,
    bootHardState: HardState | null,
  ) {
    this.savedHardState = bootHardState;
  }

  get running(): boolean {
    return this.state === 'running';
  }

  get failed(): boolean {
    return this.state === 'failed';
  }

  start(): void {
    if (this.state !== 'created') throw new Error(`driver: start() when ${this.state}`);
    this.state = 'running';
    this.nextTickAtMs = this.ports.clock.nowMs() + this.options.tickMs;
    this.armTick();
    this.schedulePump();
  }

  // ------------------------------------------------------------------ inputs

  /**
   * Feeds the core every tick that fell due by now: the timer does, and so does every input
   * whose answer depends on time. After a stall (GC, SIGSTOP, a long apply) the event loop runs
   * the socket input that piled up before its timers; a leader that slept through its lease
   * would otherwise confirm a lease read (a client's, or a follower's ReadIndex) on a lease it
   * no longer holds. Other input is stepped first, as the event loop delivers it: a follower
   * reads the heartbeats that piled up before its election timer runs, and a leader's quorum
   * checks count acknowledgements by the tick they answer, not by when they are read.
   * Replaying is bounded: past a few election timeouts more ticks change nothing.
   */
  catchUpTicks(): void {
    const now = this.ports.clock.nowMs();
    if (this.nextTickAtMs > now || this.state === 'created') return;
    const tickMs = this.options.tickMs;
    const due = Math.floor((now - this.nextTickAtMs) / tickMs) + 1;
    this.nextTickAtMs += due * tickMs;
    const replay = Math.min(due, 4 * this.options.electionTicks);
    for (let i = 0; i < replay; i++) this.raft.tick();
  }

  step(message: Message): void {
    if (this.state !== 'running') return;
    this.guard(() => {
      if (message.type === 'ReadIndex') this.catchUpTicks();
      this.raft.step(message);
    });
    this.schedulePump();
  }

  propose(data: Uint8Array): ProposeResult {
    const result = this.raft.propose(data);
    if (result.kind === 'accepted') this.schedulePump();
    return result;
  }

  proposeConfigChange(change: ConfigChange): ProposeResult {
    const result = this.raft.proposeConfigChange(change);
    if (result.kind === 'accepted') this.schedulePump();
    return result;
  }

  readIndex(readId: string, mode: 'quorum' | 'lease'): void {
    this.catchUpTicks();
    this.raft.readIndex(readId, mode);
    this.schedulePump();
  }

  transferLeadership(target: string): ReturnType<Raft['transferLeadership']> {
    const result = this.raft.transferLeadership(target);
    this.schedulePump();
    return result;
  }

  // ------------------------------------------------------------------ ticks and pump

  private armTick(): void {
    const delayMs = Math.max(0, this.nextTickAtMs - this.ports.clock.nowMs());
    this.cancelTick = this.ports.scheduler.after(delayMs, () => this.onTick());
  }

  private onTick(): void {
    this.cancelTick = null;
    if (this.state !== 'running') return;
    if (!this.guard(() => this.catchUpTicks())) return;
    this.hooks.ticked?.(this.ports.clock.nowMs());
    this.schedulePump();
    if (this.state === 'running') this.armTick();
  }

  schedulePump(): void {
    if (this.pumpScheduled || (this.state !== 'running' && this.state !== 'stopping')) return;
    this.pumpScheduled = true;
    this.ports.scheduler.soon(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.state !== 'running' && this.state !== 'stopping') return;
    let ready: Ready | null = null;
    const ok = this.guard(() => {
      if (this.state === 'running') this.hooks.beforeReady?.();
      this.releaseImages();
      this.maybeMakeImage();
      if (this.inflight !== null) return;
      if (this.deferredCompact !== null) {
        const { index, retainFromIndex } = this.deferredCompact;
        this.deferredCompact = null;
        this.raft.compact(index, null, retainFromIndex);
      }
      if (this.state !== 'running' || !this.raft.hasReady()) return;
      ready = this.raft.ready();
    });
    if (!ok || ready === null) {
      this.wakeIfQuiet();
      return;
    }
    this.inflight = ready;
    this.handleReady(ready);
  }

  // ------------------------------------------------------------------ one ready

  private handleReady(ready: Ready): void {
    const { transport, stateMachine, clock } = this.ports;
    this.hooks.readyTaken?.(ready);
    // A ready with nothing to write is mostly a commit: its entry-less appends only carry the
    // new commit index. They leave after the apply, queued, so that the answers it settles are
    // not behind socket writes that each wake a follower. Everything else leaves at once.
    const deferCommitNotices = ready.entries.length === 0 && ready.snapshot === null;
    const deferred: Message[] = [];
    for (const m of ready.messagesBeforePersist) {
      if (deferCommitNotices && m.type === 'Append' && m.entries.length === 0) deferred.push(m);
      else transport.send(m);
    }
    // On the wire before our own log write: the followers' fsyncs overlap ours.
    if (ready.messagesBeforePersist.length > deferred.length) transport.flush?.();
    if (ready.messagesBeforePersist.length > 0) this.hooks.sentBeforePersist?.(ready.messagesBeforePersist, clock.nowMs());
    // An image being received goes to the state machine's staging piece by piece: neither the
    // core nor the driver holds it whole.
    for (const chunk of ready.snapshotChunks) stateMachine.stageImage(chunk.offset, chunk.data);
    const afterInstall = (): void => this.persistEntries(ready, deferred);
    if (ready.snapshot === null) {
      afterInstall();
      return;
    }
    // A compaction or an image in progress reads or replaces what the install replaces: wait.
    this.whenNoStateWork(() => this.installImage(ready, afterInstall));
  }

  private installImage(ready: Ready, then: () => void): void {
    const snapshot = ready.snapshot!;
    const { stateMachine, snapshots, log, clock } = this.ports;
    const restoreStartedMs = clock.nowMs();
    const restored = this.guard(() => {
      stateMachine.restoreStaged(snapshot.totalBytes, snapshot.meta.index);
      this.hooks.imageRestored?.(snapshot.meta, snapshot.totalBytes);
    });
    if (!restored) return;
    const restoredMs = clock.nowMs();
    // The state is durable at the image's index before anything claims it; then its position,
    // then the log fix. A crash in between boots with the old log and a state machine ahead of
    // it: replay skips what it holds.
    this.continueWith(snapshots.save({ meta: snapshot.meta, data: POSITION_ONLY }), () => {
      const fix = ready.logAfterSnapshot === 'keep' ? log.compact(snapshot.meta.index) : log.reset(snapshot.meta.index + 1);
      this.continueWith(fix, () => {
        this.hooks.imageInstalled?.(snapshot.meta, snapshot.totalBytes, { restoreMs: restoredMs - restoreStartedMs, saveMs: clock.nowMs() - restoredMs });
        then();
      });
    });
  }

  private persistEntries(ready: Ready, deferred: readonly Message[]): void {
    if (ready.entries.length === 0) {
      this.persistHardState(ready, deferred);
      return;
    }
    const { log, clock } = this.ports;
    const startedMs = clock.nowMs();
    // One write of the whole batch and one sync (the store runs them in call order).
    let appended: PromiseLike<void>;
    let synced: PromiseLike<void>;
    try {
      appended = log.append(ready.entries);
      synced = log.sync();
    } catch (error) {
      this.fail(error);
      return;
    }
    this.continueWith(appended, () =>
      this.continueWith(synced, () => {
        this.hooks.logSynced?.(ready.entries, clock.nowMs() - startedMs);
        this.persistHardState(ready, deferred);
      }),
    );
  }

  private persistHardState(ready: Ready, deferred: readonly Message[]): void {
    if (ready.hardState !== null) this.unsavedHardState = ready.hardState;
    const hs = this.unsavedHardState;
    const commitDue = this.ports.clock.nowMs() - this.hardStateSavedAtMs >= this.options.commitSaveIntervalMs;
    if (hs === null || !(ready.hardStateMustSync || this.savedHardState === null || commitDue)) {
      this.complete(ready, deferred);
      return;
    }
    // After the log sync above: the hard state is never ahead of the entries it covers.
    this.continueWith(this.ports.stable.save(hs), () => {
      this.savedHardState = hs;
      this.hardStateSavedAtMs = this.ports.clock.nowMs();
      if (this.unsavedHardState === hs) this.unsavedHardState = null;
      this.complete(ready, deferred);
    });
  }

  /** Everything after the durable writes of a ready: send, apply, serve, advance. */
  private complete(ready: Ready, deferred: readonly Message[]): void {
    if (this.state !== 'running' && this.state !== 'stopping') return;
    const { transport, stateMachine, clock } = this.ports;
    const ok = this.guard(() => {
      for (const m of ready.messages) transport.send(m);
      // Acknowledgements are on the leader's commit path: out before the apply below.
      if (ready.messages.length > 0) transport.flush?.();
      if (ready.committedEntries.length > 0) {
        const committedAtMs = clock.nowMs();
        const results = stateMachine.applyBatch(ready.committedEntries);
        this.hooks.applied(ready.committedEntries, results, committedAtMs);
      }
      for (const m of deferred) transport.send(m); // not flushed: see deferCommitNotices
      if (ready.readStates.length > 0 || ready.readFailures.length > 0) this.hooks.readStates(ready.readStates, ready.readFailures);
      this.raft.advance(ready);
      this.inflight = null;
      this.hooks.advanced?.(ready);
    });
    if (!ok) return;
    this.maybeCompact();
    this.pump();
  }

  // ------------------------------------------------------------------ compaction and images

  /**
   * Log compaction, the way etcd does it: the state machine keeps the applied state durably once
   * synced, so the log below the applied index can go without copying the state anywhere. Only
   * the position is saved; an image is made only when a follower needs one (maybeMakeImage).
   */
  private maybeCompact(): void {
    if (this.compacting || this.state !== 'running') return;
    const log = this.raft.log;
    const applied = log.applied;
    if (this.compactThresholdEntries === 0) {
      const entries = this.options.snapshotEntries;
      this.compactThresholdEntries = entries + this.ports.random.int(Math.floor(entries / 4) + 1);
    }
    // A compaction done but not yet handed to the core counts already.
    const covered = Math.max(log.snapshotIndex(), this.deferredCompact?.index ?? 0);
    if (applied - covered <= this.compactThresholdEntries) return;
    // At boot the state machine may be ahead of the core (replayed entries are skipped): wait
    // until the two agree, so that the position saved is one the core has applied.
    if (this.ports.stateMachine.appliedIndex() !== applied) return;
    const { clock, stateMachine, snapshots } = this.ports;
    const startedMs = clock.nowMs();
    this.compacting = true;
    const done = (): void => {
      this.compacting = false;
      this.compactThresholdEntries = 0;
      this.wakeIfQuiet();
    };
    this.continueWith(stateMachine.syncDurable(), (index) => {
      const term = log.term(index);
      const coveredNow = Math.max(log.snapshotIndex(), this.deferredCompact?.index ?? 0);
      // Meanwhile an image from the leader may have replaced the log below it, or the member
      // may have begun to stop: nothing to do then.
      if (this.state !== 'running' || term === undefined || index <= coveredNow) {
        done();
        return;
      }
      const meta: SnapshotMeta = { index, term, config: log.configAt(index) };
      const retainFromIndex = this.retainFrom(index);
      this.continueWith(snapshots.save({ meta, data: POSITION_ONLY }), () => {
        // Saved: the core may drop the log prefix (it keeps what a follower receiving an image
        // still needs), then the store may.
        if (this.inflight === null) {
          if (!this.guard(() => this.raft.compact(index, null, retainFromIndex))) return;
        } else {
          this.deferredCompact = { index, retainFromIndex };
        }
        this.continueWith(this.ports.log.compact(retainFromIndex - 1), () => {
          this.hooks.compacted?.(meta, retainFromIndex, clock.nowMs() - startedMs);
          done();
        }, done);
      }, done);
    }, done);
  }

  /** wal_keep: entries that followers up to walKeepEntries behind still need stay in the log.
   * A follower at `match` needs the entries after it and the one at it (the append's prevTerm). */
  private retainFrom(index: number): number {
    if (this.options.walKeepEntries <= 0) return index + 1;
    let neededFrom = index + 1;
    for (const pr of this.raft.status().progress.values()) neededFrom = Math.min(neededFrom, Math.max(1, pr.match));
    return Math.max(neededFrom, index + 1 - this.options.walKeepEntries, this.raft.log.firstIndex());
  }

  /** Releases the images the core no longer holds (a compaction or a newer image dropped them). */
  private releaseImages(): void {
    if (this.images.size === 0) return;
    const held = this.raft.latestSnapshot()?.data;
    for (const image of this.images) {
      if (image.bytes === held) continue;
      image.release();
      this.images.delete(image);
    }
  }

  /** A follower needs the state and the log no longer has what it lacks: the state machine makes
   * an image (the loop goes on), offered to the core, which sends it in chunks. */
  private maybeMakeImage(): void {
    const { clock } = this.ports;
    if (this.imaging || this.state !== 'running' || !this.raft.snapshotWanted()) return;
    if (clock.nowMs() < this.imageRetryAtMs) return;
    const startedMs = clock.nowMs();
    this.imaging = true;
    const finish = (): void => {
      this.imaging = false;
      this.wakeIfQuiet();
    };
    let making: PromiseLike<MadeImage>;
    try {
      making = this.ports.stateMachine.makeImage();
    } catch (error) {
      this.imageFailed(error);
      finish();
      return;
    }
    making.then(
      (image) => {
        try {
          const log = this.raft.log;
          // The core must still have the entries after it, and have applied it (at boot the
          // state machine can be ahead of the core).
          if (this.state !== 'running' || image.index > log.applied || image.index < log.firstIndex() - 1 || log.term(image.index) === undefined) {
            image.release();
            this.hooks.imageDiscarded?.(image, this.state !== 'running' ? 'stopping' : 'the log moved');
            this.imageRetryAtMs = clock.nowMs() + this.options.imageRetryMs;
          } else {
            this.raft.offerSnapshot(image.index, image.bytes);
            this.images.add(image);
            this.releaseImages(); // the one it replaces (or this one, if the core kept a newer one)
            this.hooks.imageOffered?.(image, clock.nowMs() - startedMs);
            this.schedulePump();
          }
        } catch (error) {
          if (!this.images.has(image)) image.release();
          this.imageFailed(error);
        }
        finish();
      },
      (error: unknown) => {
        this.imageFailed(error);
        finish();
      },
    );
  }

  /** Not fatal: the follower waits; a new attempt follows after imageRetryMs. */
  private imageFailed(error: unknown): void {
    this.imageRetryAtMs = this.ports.clock.nowMs() + this.options.imageRetryMs;
    if (this.state === 'running') this.hooks.imageFailed?.(error);
  }

  // ------------------------------------------------------------------ plumbing

  /** Runs `run` once neither a compaction nor an image is in progress. */
  private whenNoStateWork(run: () => void): void {
    if (!this.compacting && !this.imaging) {
      run();
      return;
    }
    this.quietWaiters.push(() => this.whenNoStateWork(run));
  }

  private wakeIfQuiet(): void {
    if (this.compacting || this.imaging || this.quietWaiters.length === 0) return;
    const waiters = this.quietWaiters;
    this.quietWaiters = [];
    for (const wake of waiters) wake();
  }

  /** Continues with `next` once `work` succeeds; a failure is fatal (the disk cannot be
   * trusted), after `onError` tidied up. */
  private continueWith<T>(work: PromiseLike<T>, next: (value: T) => void, onError?: () => void): void {
    work.then(
      (value) => {
        this.guard(() => next(value));
      },
      (error: unknown) => {
        onError?.();
        this.fail(error);
      },
    );
  }

  /** Runs `run`; an exception is a broken invariant or a failed write: the driver fails rather
   * than act on a state it cannot trust. Returns whether `run` completed. */
  private guard(run: () => void): boolean {
    try {
      run();
      return true;
    } catch (error) {
      this.fail(error);
      return false;
    }
  }

  fail(error: unknown): void {
    if (this.state === 'failed' || this.state === 'stopped') return;
    this.state = 'failed';
    this.cancelTick?.();
    this.cancelTick = null;
    this.inflight = null;
    this.hooks.fatal(error instanceof Error ? error : new Error(String(error)));
  }

  /** Takes no new ready; the one in flight finishes. `done` runs once nothing is in flight. */
  stop(done: () => void): void {
    if (this.state === 'running' || this.state === 'created') this.state = 'stopping';
    this.cancelTick?.();
    this.cancelTick = null;
    const check = (): void => {
      if (this.inflight === null && !this.compacting && !this.imaging) {
        if (this.state === 'stopping') this.state = 'stopped';
        done();
        return;
      }
      this.ports.scheduler.after(1, check);
    };
    check();
  }

  /** The latest commit index handed out but not saved (saved at a clean stop), or null. */
  get hardStateToSave(): HardState | null {
    return this.unsavedHardState;
  }

  /** Releases every image (at stop). */
  releaseAllImages(): void {
    for (const image of this.images) image.release();
    this.images.clear();
  }

  /** A read-only look for tests and diagnostics. */
  get busy(): { readyInFlight: boolean; compacting: boolean; imaging: boolean } {
    return { readyInFlight: this.inflight !== null, compacting: this.compacting, imaging: this.imaging };
  }
}
