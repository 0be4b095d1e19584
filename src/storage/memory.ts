// In-memory stores with the semantics of the file stores, for tests and for an embedded member
// that needs no durability. The state lives in a "medium" object outside the store, so that a
// store can be closed and opened again on the same medium, as the file stores are on the same
// directory. Everything is copied in and out: callers never share memory with the medium, as
// they never share it with a file.
//
// There is no crash model here: every completed call is "durable". The simulator's stores are
// the place for lost writes and torn tails.
import type { Entry, HardState, Snapshot } from '../core/raft/types.ts';
import type { LogStore, SnapshotStore, StableStore } from '../ports/index.ts';
import { checkEntry, checkHardState, checkSnapshot, cloneEntry, copySnapshotMeta } from './codec.ts';
import { LogNotContiguousError, StoreClosedError } from './errors.ts';

/** What a MemoryLogStore keeps. Invariant: entries[i].index === firstIndex + i. */
export class MemoryLogMedium {
  firstIndex = 1;
  entries: Entry[] = [];
}

export class MemoryStableMedium {
  state: HardState | null = null;
}

export class MemorySnapshotMedium {
  snapshot: Snapshot | null = null;
}

function checkIndexArgument(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`${name} must be a safe integer >= ${min}, got ${value}`);
  }
}

export class MemoryLogStore implements LogStore {
  private readonly medium: MemoryLogMedium;
  private closed = false;

  private constructor(medium: MemoryLogMedium) {
    this.medium = medium;
  }

  /** Opens a store on `medium` (a fresh one by default). */
  static async open(medium: MemoryLogMedium = new MemoryLogMedium()): Promise<MemoryLogStore> {
    return new MemoryLogStore(medium);
  }

  firstIndex(): number {
    return this.medium.firstIndex;
  }

  lastIndex(): number {
    return this.medium.firstIndex + this.medium.entries.length - 1;
  }

  async readAll(): Promise<Entry[]> {
    this.checkOpen();
    return this.medium.entries.map(cloneEntry);
  }

  async append(entries: readonly Entry[]): Promise<void> {
    this.checkOpen();
    const first = entries[0];
    if (first === undefined) return;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      checkEntry(entry);
      if (entry.index !== first.index + i) {
        throw new LogNotContiguousError(`entries of one append must be contiguous: index ${entry.index} follows ${first.index + i - 1}`);
      }
    }
    const medium = this.medium;
    if (first.index < medium.firstIndex) {
      throw new LogNotContiguousError(`append at index ${first.index} is below the first index ${medium.firstIndex} (compacted)`);
    }
    if (first.index > this.lastIndex() + 1) {
      throw new LogNotContiguousError(`append at index ${first.index} would leave a gap after the last index ${this.lastIndex()}`);
    }
    medium.entries.length = first.index - medium.firstIndex; // drops an overwritten suffix
    for (const entry of entries) medium.entries.push(cloneEntry(entry));
  }

  async sync(): Promise<void> {
    this.checkOpen();
  }

  async compact(index: number): Promise<void> {
    this.checkOpen();
    checkIndexArgument('compact index', index, 0);
    const medium = this.medium;
    if (index < medium.firstIndex) return;
    medium.entries.splice(0, Math.min(medium.entries.length, index + 1 - medium.firstIndex));
    medium.firstIndex = index + 1;
  }

  async reset(nextIndex: number): Promise<void> {
    this.checkOpen();
    checkIndexArgument('reset nextIndex', nextIndex, 1);
    this.medium.entries = [];
    this.medium.firstIndex = nextIndex;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private checkOpen(): void {
    if (this.closed) throw new StoreClosedError('MemoryLogStore');
  }
}

export class MemoryStableStore implements StableStore {
  private readonly medium: MemoryStableMedium;
  private closed = false;

  private constructor(medium: MemoryStableMedium) {
    this.medium = medium;
  }

  static async open(medium: MemoryStableMedium = new MemoryStableMedium()): Promise<MemoryStableStore> {
    return new MemoryStableStore(medium);
  }

  async load(): Promise<HardState | null> {
    this.checkOpen();
    const state = this.medium.state;
    return state === null ? null : { ...state };
  }

  async save(state: HardState): Promise<void> {
    this.checkOpen();
    checkHardState(state);
    this.medium.state = { term: state.term, vote: state.vote, commit: state.commit };
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private checkOpen(): void {
    if (this.closed) throw new StoreClosedError('MemoryStableStore');
  }
}

export class MemorySnapshotStore implements SnapshotStore {
  private readonly medium: MemorySnapshotMedium;
  private closed = false;

  private constructor(medium: MemorySnapshotMedium) {
    this.medium = medium;
  }

  static async open(medium: MemorySnapshotMedium = new MemorySnapshotMedium()): Promise<MemorySnapshotStore> {
    return new MemorySnapshotStore(medium);
  }

  async load(): Promise<Snapshot | null> {
    this.checkOpen();
    const snapshot = this.medium.snapshot;
    return snapshot === null ? null : { meta: copySnapshotMeta(snapshot.meta), data: new Uint8Array(snapshot.data) };
  }

  async save(snapshot: Snapshot): Promise<void> {
    this.checkOpen();
    checkSnapshot(snapshot);
    this.medium.snapshot = { meta: copySnapshotMeta(snapshot.meta), data: new Uint8Array(snapshot.data) };
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private checkOpen(): void {
    if (this.closed) throw new StoreClosedError('MemorySnapshotStore');
  }
}
