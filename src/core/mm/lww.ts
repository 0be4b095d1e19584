// Last-writer-wins records. Every write carries an HLC stamp; the greatest stamp wins on every
// member, whatever order records arrive in. The dot breaks ties between equal stamps (which a
// correct clock never issues), so merge is the maximum of a total order: commutative,
// associative and idempotent.
//
// A write also records what its writer had seen of the key (`seen`): the record it replaced
// and that record's own `seen`. When a member's own write is replaced by a record whose writer
// had not seen it, the write was lost to a concurrent write; the replica counts that
// (lww_overwrites) instead of losing it silently.
import { bytesEqual } from './codec.ts';
import { invariant } from './errors.ts';
import { compareStamps, encodeStamp, type HlcStamp } from './hlc.ts';
import { compareDots, vvCovers, vvWithDot, type Dot, type VersionVector } from './types.ts';

export interface LwwRecord {
  readonly mode: 'lww';
  readonly stamp: HlcStamp;
  readonly dot: Dot;
  /** The value; null for a tombstone (a delete is a write like any other). */
  readonly value: Uint8Array | null;
  /** What the writer had seen of this key: the replaced record's dot and its `seen`. */
  readonly seen: VersionVector;
}

export interface LwwView {
  readonly mode: 'lww';
  readonly found: boolean;
  readonly value: Uint8Array | null;
  /** The winning write's stamp, sortable text (see encodeStamp); null when never written. */
  readonly stamp: string | null;
}

/** The total order of LWW: stamp, then dot. */
export function compareLww(a: LwwRecord, b: LwwRecord): number {
  return compareStamps(a.stamp, b.stamp) || compareDots(a.dot, b.dot);
}

export function mergeLww(a: LwwRecord, b: LwwRecord): LwwRecord {
  const order = compareLww(a, b);
  if (order === 0) {
    // One dot is one event: equal dots with different contents is a bug (or a reused seq).
    invariant(sameWrite(a, b), `two different LWW writes carry dot ${a.dot.member}:${a.dot.seq}`);
    return a;
  }
  return order > 0 ? a : b;
}

/** A local write (value null: delete) replacing `previous`, the member's current record. */
export function writeLww(previous: LwwRecord | null, value: Uint8Array | null, dot: Dot, stamp: HlcStamp): LwwRecord {
  const seen = previous === null ? [] : vvWithDot(previous.seen, previous.dot);
  return { mode: 'lww', stamp, dot, value, seen };
}

/** Whether `loser`, replaced by `winner`, was lost to a concurrent write (the winner's writer
 * had not seen it) rather than knowingly overwritten. */
export function lostConcurrently(loser: LwwRecord, winner: LwwRecord): boolean {
  return !vvCovers(winner.seen, loser.dot);
}

export function lwwView(record: LwwRecord | null): LwwView {
  if (record === null) return { mode: 'lww', found: false, value: null, stamp: null };
  return { mode: 'lww', found: record.value !== null, value: record.value, stamp: encodeStamp(record.stamp) };
}

function sameWrite(a: LwwRecord, b: LwwRecord): boolean {
  if (a.value === null || b.value === null) return a.value === b.value;
  return bytesEqual(a.value, b.value);
}
