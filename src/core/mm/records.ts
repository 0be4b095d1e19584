// Mode dispatch over the three record kinds, and validation of records that arrive from peers
// (the node decodes them from msgpack: they are rebuilt here field by field, so a record is
// well-formed and canonical before it is merged or hashed).
import { canonicalText, hashText, type Hash64 } from './codec.ts';
import {
  crdtDots,
  crdtView,
  filterCrdt,
  mergeCrdt,
  type CounterEntry,
  type CrdtRecord,
  type CrdtValue,
  type FieldValue,
  type MapField,
  type RegisterEntry,
  type SetEntry,
} from './crdt.ts';
import { dvvView, mergeDvv, type DvvRecord, type Sibling } from './dvv.ts';
import { MmError } from './errors.ts';
import { compareStamps, isStamp, type HlcStamp } from './hlc.ts';
import { lwwView, mergeLww, type LwwRecord } from './lww.ts';
import {
  MEMBER_ID,
  compareDots,
  vvCovers,
  vvLeq,
  type ConflictMode,
  type Dot,
  type MemberId,
  type VersionVector,
} from './types.ts';
import type { CrdtView } from './crdt.ts';
import type { DvvView } from './dvv.ts';
import type { LwwView } from './lww.ts';

export type RecordState = LwwRecord | DvvRecord | CrdtRecord;
export type ReadView = LwwView | DvvView | CrdtView;

/** A key's record as it travels between members (stream batches, repairs, hints, pushes). */
export interface ShippedRecord {
  readonly key: string;
  readonly state: RecordState;
}

export function mergeStates(a: RecordState, b: RecordState): RecordState {
  if (a.mode === 'lww' && b.mode === 'lww') return mergeLww(a, b);
  if (a.mode === 'versions' && b.mode === 'versions') return mergeDvv(a, b);
  if (a.mode === 'crdt' && b.mode === 'crdt') return mergeCrdt(a, b);
  throw new MmError('CHORUS_BAD_REPLICATION_MESSAGE', `cannot merge a ${a.mode} record with a ${b.mode} record`);
}

/** A record with nothing visible: an LWW delete, or no siblings / no CRDT values. */
export function isTombstone(state: RecordState): boolean {
  switch (state.mode) {
    case 'lww':
      return state.value === null;
    case 'versions':
      return state.siblings.length === 0;
    case 'crdt':
      return state.values.length === 0;
  }
}

export function viewOf(mode: ConflictMode, state: RecordState | null): ReadView {
  switch (mode) {
    case 'lww':
      return lwwView(state as LwwRecord | null);
    case 'versions':
      return dvvView(state as DvvRecord | null);
    case 'crdt':
      return crdtView(state as CrdtRecord | null);
  }
}

/** The dots a record holds (live events, not its context). */
export function liveDots(state: RecordState): Dot[] {
  switch (state.mode) {
    case 'lww':
      return [state.dot];
    case 'versions':
      return state.siblings.map((s) => s.dot);
    case 'crdt':
      return crdtDots(state).map((d) => d.dot);
  }
}

/** Every version vector the record carries (for the highest seq known per member). */
export function contextOf(state: RecordState): VersionVector {
  return state.mode === 'lww' ? state.seen : state.context;
}

/** The HLC stamps a record carries: the clock must move past them on receipt. */
export function maxStampOf(state: RecordState): HlcStamp | null {
  let best: HlcStamp | null = null;
  const see = (s: HlcStamp): void => {
    if (best === null || compareStamps(s, best) > 0) best = s;
  };
  switch (state.mode) {
    case 'lww':
      see(state.stamp);
      break;
    case 'versions':
      for (const s of state.siblings) see(s.stamp);
      break;
    case 'crdt':
      for (const v of state.values) {
        if (v.type === 'register') for (const e of v.entries) see(e.stamp);
        if (v.type === 'map') for (const f of v.fields) if (f.value.type === 'register') for (const e of f.value.entries) see(e.stamp);
      }
      break;
  }
  return best;
}

/** The record without the dots `drop` selects. LWW records are all or nothing: null when dropped. */
export function withoutDots(state: RecordState, drop: (dot: Dot) => boolean): RecordState | null {
  switch (state.mode) {
    case 'lww':
      return drop(state.dot) ? null : state;
    case 'versions': {
      const siblings = state.siblings.filter((s) => !drop(s.dot));
      return siblings.length === state.siblings.length ? state : { mode: 'versions', siblings, context: state.context };
    }
    case 'crdt':
      return filterCrdt(state, drop);
  }
}

/** The digest hash of a key's record: equal on two members exactly when the records are equal. */
export function recordHash(key: string, state: RecordState): Hash64 {
  return hashText(`${key}\u0000${recordText(state)}`);
}

/** A canonical text of a record, field by field (the generic canonicalText is slower). Arrays
 * in records are kept sorted, so equal records give equal texts. */
export function recordText(state: RecordState): string {
  switch (state.mode) {
    case 'lww':
      return `L${stampText(state.stamp)}${dotText(state.dot)}${state.value === null ? '-' : `=${canonicalText(state.value)}`}${vvText(state.seen)}`;
    case 'versions': {
      let out = `V${vvText(state.context)}`;
      for (const s of state.siblings) out += `${dotText(s.dot)}${stampText(s.stamp)}${canonicalText(s.value)};`;
      return out;
    }
    case 'crdt': {
      let out = `C${vvText(state.context)}`;
      for (const v of state.values) out += crdtValueText(v);
      return out;
    }
  }
}

function crdtValueText(v: CrdtValue): string {
  switch (v.type) {
    case 'counter':
      return `c[${v.entries.map((e) => `${dotText(e.dot)}+${e.inc}-${e.dec}`).join(',')}]`;
    case 'set':
      return `s[${v.entries.map((e) => `${JSON.stringify(e.element)}${e.dots.map(dotText).join('')}`).join(',')}]`;
    case 'register':
      return `r[${v.entries.map((e) => `${dotText(e.dot)}${stampText(e.stamp)}${JSON.stringify(e.value)}`).join(',')}]`;
    case 'map':
      return `m[${v.fields.map((f) => `${JSON.stringify(f.name)}${crdtValueText(f.value)}`).join(',')}]`;
  }
}

function dotText(d: Dot): string {
  return `(${d.member}:${d.seq})`;
}

function stampText(s: HlcStamp): string {
  return `@${s.physicalMs}.${s.logical}.${s.member}`;
}

function vvText(vv: VersionVector): string {
  return `{${vv.map(([m, s]) => `${m}:${s}`).join(',')}}`;
}

// ---------------------------------------------------------------------------------------------
// Validation of records from peers

function fail(why: string): never {
  throw new MmError('CHORUS_BAD_REPLICATION_MESSAGE', `malformed record: ${why}`);
}

function obj(value: unknown, what: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(`${what} is not an object`);
  return value as Record<string, unknown>;
}

function arr(value: unknown, what: string): readonly unknown[] {
  if (!Array.isArray(value)) fail(`${what} is not an array`);
  return value as readonly unknown[];
}

function seqOf(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) fail(`${what} is not a positive integer`);
  return value as number;
}

function member(value: unknown, members: ReadonlySet<MemberId>, what: string): MemberId {
  if (typeof value !== 'string' || !MEMBER_ID.test(value) || !members.has(value)) fail(`${what} names no member of the keyspace`);
  return value as MemberId;
}

function dotFrom(value: unknown, members: ReadonlySet<MemberId>): Dot {
  const o = obj(value, 'dot');
  return { member: member(o.member, members, 'dot'), seq: seqOf(o.seq, 'dot seq') };
}

function stampFrom(value: unknown): HlcStamp {
  if (!isStamp(value)) fail('bad HLC stamp');
  const s = value as HlcStamp;
  return { physicalMs: s.physicalMs, logical: s.logical, member: s.member };
}

function bytesFrom(value: unknown, what: string): Uint8Array {
  if (!(value instanceof Uint8Array)) fail(`${what} is not bytes`);
  return value as Uint8Array;
}

export function vectorFrom(value: unknown, members: ReadonlySet<MemberId>): VersionVector {
  const out: [MemberId, number][] = [];
  for (const item of arr(value, 'version vector')) {
    const pair = arr(item, 'version vector entry');
    if (pair.length !== 2) fail('version vector entry is not a pair');
    const m = member(pair[0], members, 'version vector');
    const prev = out[out.length - 1];
    if (prev !== undefined && prev[0] >= m) fail('version vector not strictly sorted');
    out.push([m, seqOf(pair[1], 'version vector seq')]);
  }
  return out;
}

function canonicalString(value: unknown, what: string): string {
  if (typeof value !== 'string') fail(`${what} is not a string`);
  try {
    JSON.parse(value as string);
  } catch {
    fail(`${what} is not JSON text`);
  }
  return value as string;
}

function sortedStrictly<T>(items: readonly T[], compare: (a: T, b: T) => number, what: string): void {
  for (let i = 1; i < items.length; i++) if (compare(items[i - 1]!, items[i]!) >= 0) fail(`${what} not strictly sorted`);
}

function byDot(a: { dot: Dot }, b: { dot: Dot }): number {
  return compareDots(a.dot, b.dot);
}

/** Rebuilds a record received from a peer; MmError CHORUS_BAD_REPLICATION_MESSAGE if it is not
 * a well-formed record of `mode` over `members`. */
export function stateFrom(mode: ConflictMode, raw: unknown, members: ReadonlySet<MemberId>): RecordState {
  const o = obj(raw, 'record');
  if (o.mode !== mode) fail(`a ${String(o.mode)} record in a ${mode} keyspace`);
  switch (mode) {
    case 'lww': {
      const r: LwwRecord = {
        mode,
        stamp: stampFrom(o.stamp),
        dot: dotFrom(o.dot, members),
        value: o.value === null ? null : bytesFrom(o.value, 'value'),
        seen: vectorFrom(o.seen, members),
      };
      return r;
    }
    case 'versions': {
      const siblings: Sibling[] = arr(o.siblings, 'siblings').map((s) => {
        const x = obj(s, 'sibling');
        return { dot: dotFrom(x.dot, members), stamp: stampFrom(x.stamp), value: bytesFrom(x.value, 'sibling value') };
      });
      sortedStrictly(siblings, byDot, 'siblings');
      const context = vectorFrom(o.context, members);
      for (const s of siblings) if (!vvCovers(context, s.dot)) fail('a sibling outside the context');
      return { mode, siblings, context };
    }
    case 'crdt': {
      const values: CrdtValue[] = arr(o.values, 'values').map((v) => crdtValueFrom(v, members, true));
      sortedStrictly(values, (a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0), 'values');
      const context = vectorFrom(o.context, members);
      const record: CrdtRecord = { mode, values, context };
      for (const d of crdtDots(record)) if (!vvCovers(context, d.dot)) fail('a CRDT entry outside the context');
      return record;
    }
  }
}

function crdtValueFrom(raw: unknown, members: ReadonlySet<MemberId>, top: boolean): CrdtValue {
  const o = obj(raw, 'CRDT value');
  switch (o.type) {
    case 'counter': {
      const entries: CounterEntry[] = arr(o.entries, 'counter entries').map((e) => {
        const x = obj(e, 'counter entry');
        const total = (v: unknown): number => {
          if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail('counter total');
          return v as number;
        };
        return { dot: dotFrom(x.dot, members), inc: total(x.inc), dec: total(x.dec) };
      });
      sortedStrictly(entries, byDot, 'counter entries');
      if (entries.length === 0) fail('empty counter');
      return { type: 'counter', entries };
    }
    case 'set': {
      const entries: SetEntry[] = arr(o.entries, 'set entries').map((e) => {
        const x = obj(e, 'set entry');
        const dots = arr(x.dots, 'set dots').map((d) => dotFrom(d, members));
        sortedStrictly(dots, compareDots, 'set dots');
        if (dots.length === 0) fail('set element without dots');
        return { element: canonicalString(x.element, 'set element'), dots };
      });
      sortedStrictly(entries, (a, b) => (a.element < b.element ? -1 : a.element > b.element ? 1 : 0), 'set entries');
      if (entries.length === 0) fail('empty set');
      return { type: 'set', entries };
    }
    case 'register': {
      const entries: RegisterEntry[] = arr(o.entries, 'register entries').map((e) => {
        const x = obj(e, 'register entry');
        return { dot: dotFrom(x.dot, members), stamp: stampFrom(x.stamp), value: canonicalString(x.value, 'register value') };
      });
      sortedStrictly(entries, byDot, 'register entries');
      if (entries.length === 0) fail('empty register');
      return { type: 'register', entries };
    }
    case 'map': {
      if (!top) fail('a map inside a map');
      const fields: MapField[] = arr(o.fields, 'map fields').map((f) => {
        const x = obj(f, 'map field');
        if (typeof x.name !== 'string' || x.name.length === 0) fail('map field name');
        return { name: x.name as string, value: crdtValueFrom(x.value, members, false) as FieldValue };
      });
      sortedStrictly(
        fields,
        (a, b) => (a.name !== b.name ? (a.name < b.name ? -1 : 1) : a.value.type < b.value.type ? -1 : a.value.type > b.value.type ? 1 : 0),
        'map fields',
      );
      if (fields.length === 0) fail('empty map');
      return { type: 'map', fields };
    }
    default:
      return fail(`unknown CRDT type ${JSON.stringify(o.type)}`);
  }
}

/** Whether every event the record knows is covered by `vector`. */
export function knownBy(state: RecordState, vector: VersionVector): boolean {
  if (state.mode === 'lww') return vvCovers(vector, state.dot) && vvLeq(state.seen, vector);
  return vvLeq(state.context, vector);
}
