// Shared vocabulary of the multi-master core: members, dots and version vectors, and the
// keyspace definition. Everything here is plain data (no classes) so that the node layer can
// msgpack it and the simulator can copy it.
import { MmError } from './errors.ts';

export type MemberId = string;

export type ConflictMode = 'lww' | 'versions' | 'crdt';

/** `{"name":"carts","mode":"multi-master","conflicts":"lww|versions|crdt"}` */
export interface KeyspaceSpec {
  readonly name: string;
  readonly mode: 'multi-master';
  readonly conflicts: ConflictMode;
}

/** One event: the seq-th change originated at `member`. Seqs count every local change of the
 * member in this keyspace (all keys share one counter), so a dot names exactly one event and
 * the member's change log is ordered by it. */
export interface Dot {
  readonly member: MemberId;
  readonly seq: number;
}

/** Per member, the highest seq known. Sorted by member, seqs >= 1, no duplicate members.
 * Read as "every event of `member` with seq <= n that concerns this key is known": a member's
 * events on one key happen in order at that member, and a state containing event n of a member
 * was derived from that member's state after all its earlier events. */
export type VersionVector = readonly (readonly [MemberId, number])[];

export const MEMBER_ID = /^[A-Za-z0-9._-]{1,64}$/;
export const KEYSPACE_NAME = /^[A-Za-z0-9._-]{1,64}$/;

export function compareDots(a: Dot, b: Dot): number {
  if (a.member !== b.member) return a.member < b.member ? -1 : 1;
  return a.seq - b.seq;
}

export function dotEquals(a: Dot, b: Dot): boolean {
  return a.member === b.member && a.seq === b.seq;
}

export function dotText(d: Dot): string {
  return `${d.member}:${d.seq}`;
}

export function vvGet(vv: VersionVector, member: MemberId): number {
  for (const [m, s] of vv) if (m === member) return s;
  return 0;
}

/** Whether the vector knows the event. */
export function vvCovers(vv: VersionVector, dot: Dot): boolean {
  return vvGet(vv, dot.member) >= dot.seq;
}

/** The pointwise maximum. */
export function vvMerge(a: VersionVector, b: VersionVector): VersionVector {
  if (b.length === 0) return a;
  if (a.length === 0) return b;
  const out: [MemberId, number][] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = a[i];
    const y = b[j];
    if (y === undefined || (x !== undefined && x[0] < y[0])) {
      out.push([x![0], x![1]]);
      i++;
    } else if (x === undefined || y[0] < x[0]) {
      out.push([y[0], y[1]]);
      j++;
    } else {
      out.push([x[0], Math.max(x[1], y[1])]);
      i++;
      j++;
    }
  }
  return out;
}

export function vvWithDot(vv: VersionVector, dot: Dot): VersionVector {
  return vvMerge(vv, [[dot.member, dot.seq]]);
}

/** a <= b pointwise: everything a knows, b knows. */
export function vvLeq(a: VersionVector, b: VersionVector): boolean {
  for (const [m, s] of a) if (vvGet(b, m) < s) return false;
  return true;
}

export function vvEquals(a: VersionVector, b: VersionVector): boolean {
  return a.length === b.length && vvLeq(a, b) && vvLeq(b, a);
}

/** Parses `{"name":..,"mode":"multi-master","conflicts":..}`; MmError CHORUS_BAD_KEYSPACE otherwise. */
export function parseKeyspaceSpec(json: unknown): KeyspaceSpec {
  const bad = (why: string): never => {
    throw new MmError('CHORUS_BAD_KEYSPACE', why);
  };
  if (json === null || typeof json !== 'object' || Array.isArray(json)) return bad('a keyspace definition is a JSON object');
  const o = json as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (key !== 'name' && key !== 'mode' && key !== 'conflicts') bad(`unknown field ${JSON.stringify(key)}`);
  }
  if (typeof o.name !== 'string' || !KEYSPACE_NAME.test(o.name)) return bad('name must be 1-64 characters of A-Z a-z 0-9 . _ -');
  if (o.mode !== 'multi-master') return bad('mode must be "multi-master"');
  if (o.conflicts !== 'lww' && o.conflicts !== 'versions' && o.conflicts !== 'crdt') {
    return bad('conflicts must be "lww", "versions" or "crdt"');
  }
  return { name: o.name, mode: 'multi-master', conflicts: o.conflicts };
}
