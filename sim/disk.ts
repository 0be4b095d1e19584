// The simulated disk of one member. Writes are not durable until synced; a crash loses what
// was not synced, except that a random prefix of the unsynced writes may have reached the
// platter (with the last entry possibly torn, which recovery cuts off, as the real WAL does).
import type { Entry, HardState, Snapshot } from '../src/core/raft/index.ts';
import type { Prng } from './prng.ts';

export type DiskOp =
  | { readonly kind: 'hardState'; readonly hardState: HardState }
  | { readonly kind: 'append'; readonly entries: readonly Entry[] }
  | { readonly kind: 'snapshot'; readonly snapshot: Snapshot; readonly keepLog: boolean; readonly retainFromIndex?: number }
  | { readonly kind: 'compact'; readonly index: number };

export interface DurableImage {
  hardState: HardState | null;
  snapshot: Snapshot | null;
  /** Invariant: contiguous; entries[0].index === firstIndex. */
  entries: Entry[];
  firstIndex: number;
}

export class SimDisk {
  readonly image: DurableImage = { hardState: null, snapshot: null, entries: [], firstIndex: 1 };
  private pending: DiskOp[] = [];
  /** Bytes written and syncs done, for reports. */
  syncs = 0;

  write(ops: readonly DiskOp[]): void {
    this.pending.push(...ops);
  }

  hasPending(): boolean {
    return this.pending.length > 0;
  }

  sync(): void {
    for (const op of this.pending) applyOp(this.image, op);
    this.pending = [];
    this.syncs++;
  }

  /** Writes and syncs at once (snapshots taken by the application are saved this way). */
  writeDurable(ops: readonly DiskOp[]): void {
    this.write(ops);
    this.sync();
  }

  /** Power loss: returns a description of what survived, for the trace. */
  crash(prng: Prng): string {
    if (this.pending.length === 0) return 'nothing pending';
    const survivors = prng.int(this.pending.length + 1);
    for (let i = 0; i < survivors; i++) applyOp(this.image, this.pending[i]!);
    let torn = '';
    const next = this.pending[survivors];
    if (next !== undefined && next.kind === 'append' && next.entries.length > 1 && prng.chance(0.5)) {
      // Part of a batch reached the disk; the record after it was torn and is cut at recovery.
      const kept = prng.int(next.entries.length);
      if (kept > 0) applyOp(this.image, { kind: 'append', entries: next.entries.slice(0, kept) });
      torn = ` torn after ${kept} of ${next.entries.length} entries`;
    }
    const lost = this.pending.length - survivors;
    this.pending = [];
    return `${survivors} unsynced writes survived, ${lost} lost${torn}`;
  }

  lastIndex(): number {
    return this.image.firstIndex + this.image.entries.length - 1;
  }
}

function applyOp(image: DurableImage, op: DiskOp): void {
  switch (op.kind) {
    case 'hardState':
      image.hardState = op.hardState;
      return;
    case 'append': {
      const first = op.entries[0];
      if (first === undefined) return;
      const last = image.firstIndex + image.entries.length - 1;
      if (first.index > last + 1) throw new Error(`sim disk: append gap at ${first.index}, last ${last}`);
      if (first.index < image.firstIndex) throw new Error(`sim disk: append ${first.index} below first ${image.firstIndex}`);
      image.entries.length = first.index - image.firstIndex;
      image.entries.push(...op.entries);
      return;
    }
    case 'snapshot': {
      const meta = op.snapshot.meta;
      image.snapshot = op.snapshot;
      const keepFrom = op.keepLog ? Math.max(image.firstIndex, Math.min(op.retainFromIndex ?? meta.index + 1, meta.index + 1)) : meta.index + 1;
      if (op.keepLog && meta.index >= image.firstIndex - 1) {
        image.entries = image.entries.slice(keepFrom - image.firstIndex);
        image.firstIndex = keepFrom;
      } else {
        image.entries = [];
        image.firstIndex = meta.index + 1;
      }
      return;
    }
    case 'compact': {
      if (op.index < image.firstIndex) return;
      image.entries = image.entries.slice(op.index - image.firstIndex + 1);
      image.firstIndex = op.index + 1;
      return;
    }
  }
}
