// The Ready contract (see Ready in types.ts): what the driver is handed (entries to write, the
// hard state and whether it must be durable before messages leave, entries to apply, messages,
// reads, image pieces), one ready at a time, and what advance() teaches the log.
import { assert } from './assert.ts';
import type { RaftLog } from './log.ts';
import type { Outbox } from './outbox.ts';
import type { SnapshotReceiver } from './snapshot-receiver.ts';
import type { HardState, Ready } from './types.ts';

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

export class Readies {
  /** The hard state in the last ready (or recovered at boot). */
  private lastHardState: HardState;
  /** The last hard state handed out with hardStateMustSync (or the one recovered at boot): a
   * ready must sync when its term or vote differ from this one. */
  private lastSyncedHardState: HardState;
  /** The ready handed out and not yet advanced. */
  private inFlight: Ready | null = null;
  /** The index the ready in flight applies up to. */
  private applyingTo = 0;

  constructor(
    private readonly log: RaftLog,
    private readonly out: Outbox,
    private readonly receiver: SnapshotReceiver,
    private readonly applyEntriesMax: number,
    bootHardState: HardState,
  ) {
    this.lastHardState = bootHardState;
    this.lastSyncedHardState = bootHardState;
  }

  isInFlight(): boolean {
    return this.inFlight !== null;
  }

  /** Whether a ready would carry something, given the hard state now (messages the leader has
   * yet to build are the caller's to count). */
  pending(hs: HardState): boolean {
    return (
      !this.out.isEmpty() ||
      this.receiver.hasReady() ||
      this.log.unstableFrom <= this.log.lastIndex() ||
      !sameHardState(hs, this.lastHardState) ||
      Math.min(this.log.committed, this.log.persisted) > this.log.applied
    );
  }

  /** Hands out the next ready, with the hard state now. */
  take(hs: HardState): Ready {
    assert(this.inFlight === null, 'ready() called before advance() of the previous ready');
    const hardState = sameHardState(hs, this.lastHardState) ? null : hs;
    const synced = this.lastSyncedHardState;
    const hardStateMustSync = hardState !== null && (synced.term !== hs.term || synced.vote !== hs.vote);
    const entries = this.log.unstableEntries();
    const lastEntry = entries[entries.length - 1];
    if (lastEntry !== undefined) this.log.handedOut(lastEntry.index);
    const committedEntries = this.log.nextToApply(this.log.applied + 1, this.applyEntriesMax);
    const lastApply = committedEntries[committedEntries.length - 1];
    this.applyingTo = lastApply?.index ?? this.log.applied;
    const received = this.receiver.take();
    const out = this.out.take();
    const ready: Ready = {
      hardState,
      hardStateMustSync,
      entries,
      snapshotChunks: received.snapshotChunks,
      snapshot: received.snapshot,
      logAfterSnapshot: received.logAfterSnapshot,
      messagesBeforePersist: out.messagesBeforePersist,
      messages: out.messages,
      committedEntries,
      readStates: out.readStates,
      readFailures: out.readFailures,
    };
    this.lastHardState = hs;
    if (hardStateMustSync) this.lastSyncedHardState = hs;
    this.inFlight = ready;
    return ready;
  }

  /** The driver did everything in `ready`: what it wrote is durable, what it applied is applied.
   * Returns whether the applied index advanced. */
  advance(ready: Ready): boolean {
    assert(this.inFlight === ready, 'advance() of a ready that is not in flight');
    this.inFlight = null;
    if (ready.snapshot !== null) this.log.snapshotPersisted(ready.snapshot.meta.index);
    const last = ready.entries[ready.entries.length - 1];
    if (last !== undefined) this.log.persistedTo(last.index, last.term);
    if (this.applyingTo <= this.log.applied) return false;
    this.log.appliedTo(this.applyingTo);
    return true;
  }
}
