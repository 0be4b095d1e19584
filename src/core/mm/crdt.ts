// Causal CRDTs (Almeida, Shoker, Baquero: "Delta state replicated data types", 2018): every
// update is tagged with a dot, and a record keeps its values plus a causal context of every
// event it has seen. Merge keeps an entry when both sides hold it, or when one side holds it and
// the other side has never seen its dot; an entry one side has seen but no longer holds was
// removed there, knowingly. That one rule gives:
//
// - counter (PN-counter): one entry per member with that member's running increments and
//   decrements; an update replaces the member's previous entry.
// - set (OR-set, add wins): each element carries the dots of the adds that put it there; a
//   remove drops the dots it observed, so an add concurrent with a remove survives.
// - register (LWW register): a set replaces every entry it observed; concurrent sets leave
//   several entries, and a read shows the one with the greatest HLC stamp (the next set
//   replaces them all).
// - map (OR-map): fields of those three types, keyed by name and type; removing a field drops
//   the dots it observed, so a concurrent update of the field survives (update wins).
//
// Deleting a key is removing every dot: an update concurrent with the delete survives it.
// Known limitation (shared with Riak's maps): a counter removed (by a delete or a map field
// removal) concurrently with an increment comes back with the incrementing member's whole
// running total, not only the concurrent increment.
import { approxBytes } from './codec.ts';
import { MmError, invariant } from './errors.ts';
import { compareStamps, type HlcStamp } from './hlc.ts';
import { canonicalJson, parseCanonical, type JsonValue } from './json.ts';
import { compareDots, dotEquals, vvCovers, vvMerge, vvWithDot, type Dot, type MemberId, type VersionVector } from './types.ts';

export type CrdtType = 'counter' | 'set' | 'register' | 'map';
export type FieldType = 'counter' | 'set' | 'register';

export interface CounterEntry {
  readonly dot: Dot;
  /** The member's running totals since its entry was last removed. */
  readonly inc: number;
  readonly dec: number;
}
export interface SetEntry {
  /** The element as canonical JSON text. */
  readonly element: string;
  /** Sorted, non-empty. */
  readonly dots: readonly Dot[];
}
export interface RegisterEntry {
  readonly dot: Dot;
  readonly stamp: HlcStamp;
  /** Canonical JSON text. */
  readonly value: string;
}

/** Entries are sorted (by dot, or by element for sets) and a value is never empty: an empty
 * value is absent (the bottom of the lattice). */
export interface CounterValue {
  readonly type: 'counter';
  readonly entries: readonly CounterEntry[];
}
export interface SetValue {
  readonly type: 'set';
  readonly entries: readonly SetEntry[];
}
export interface RegisterValue {
  readonly type: 'register';
  readonly entries: readonly RegisterEntry[];
}
export type FieldValue = CounterValue | SetValue | RegisterValue;
export interface MapField {
  readonly name: string;
  readonly value: FieldValue;
}
export interface MapValue {
  readonly type: 'map';
  /** Sorted by (name, type); a name normally has one type (see CHORUS_CRDT_TYPE_MISMATCH), two
   * only when members created it concurrently with different types. */
  readonly fields: readonly MapField[];
}
export type CrdtValue = FieldValue | MapValue;

export interface CrdtRecord {
  readonly mode: 'crdt';
  /** At most one value per type, sorted by type; normally one. Empty: absent (a tombstone). */
  readonly values: readonly CrdtValue[];
  /** Invariant: covers every dot in `values`. */
  readonly context: VersionVector;
}

export const EMPTY_CRDT: CrdtRecord = { mode: 'crdt', values: [], context: [] };

// ---------------------------------------------------------------------------------------------
// Operations

export type FieldOp =
  | { readonly type: 'counter'; readonly op: 'incr' | 'decr'; readonly by: number }
  | { readonly type: 'set'; readonly op: 'add' | 'remove'; readonly value: string }
  | { readonly type: 'register'; readonly op: 'set'; readonly value: string };

export type CrdtOp =
  | FieldOp
  | { readonly type: 'map'; readonly op: 'update'; readonly field: string; readonly value: FieldOp }
  | { readonly type: 'map'; readonly op: 'remove'; readonly field: string };

/** A running total past this is refused, so the sum over members stays a safe integer. */
export const COUNTER_TOTAL_MAX = 2 ** 50;
export const FIELD_NAME_CHARS_MAX = 256;

/** Validates a client operation, e.g. `{"type":"counter","op":"incr","by":5}`,
 * `{"type":"set","op":"add","value":"x"}` or
 * `{"type":"map","op":"update","field":"f","value":{"type":"counter","op":"incr","by":1}}`.
 * Values become canonical JSON text. MmError CHORUS_BAD_CRDT_OP otherwise. */
export function parseCrdtOp(json: unknown): CrdtOp {
  const o = asObject(json, 'an operation');
  if (o.type === 'map') {
    allowOnly(o, ['type', 'op', 'field', 'value']);
    if (typeof o.field !== 'string' || o.field.length === 0 || o.field.length > FIELD_NAME_CHARS_MAX) {
      return bad(`map field must be a non-empty string of at most ${FIELD_NAME_CHARS_MAX} characters`);
    }
    if (o.op === 'update') {
      const inner = asObject(o.value, 'a map update value');
      if (inner.type === 'map') return bad('maps hold counters, sets and registers, not maps');
      return { type: 'map', op: 'update', field: o.field, value: parseFieldOp(inner) };
    }
    if (o.op === 'remove') {
      if (o.value !== undefined) return bad('a map remove takes no value');
      return { type: 'map', op: 'remove', field: o.field };
    }
    return bad('map ops are "update" and "remove"');
  }
  return parseFieldOp(o);
}

function parseFieldOp(o: Record<string, unknown>): FieldOp {
  switch (o.type) {
    case 'counter': {
      allowOnly(o, ['type', 'op', 'by']);
      if (o.op !== 'incr' && o.op !== 'decr') return bad('counter ops are "incr" and "decr"');
      const by = o.by === undefined ? 1 : o.by;
      if (typeof by !== 'number' || !Number.isSafeInteger(by) || by < 1 || by > COUNTER_TOTAL_MAX) {
        return bad(`counter "by" must be an integer from 1 to 2^50`);
      }
      return { type: 'counter', op: o.op, by };
    }
    case 'set': {
      allowOnly(o, ['type', 'op', 'value']);
      if (o.op !== 'add' && o.op !== 'remove') return bad('set ops are "add" and "remove"');
      if (o.value === undefined) return bad('a set op needs a value');
      return { type: 'set', op: o.op, value: canonicalJson(o.value, 'set element') };
    }
    case 'register': {
      allowOnly(o, ['type', 'op', 'value']);
      if (o.op !== 'set') return bad('the register op is "set"');
      if (o.value === undefined) return bad('a register set needs a value');
      return { type: 'register', op: 'set', value: canonicalJson(o.value, 'register value') };
    }
    default:
      return bad('type must be "counter", "set", "register" or "map"');
  }
}

function asObject(json: unknown, what: string): Record<string, unknown> {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) return bad(`${what} must be a JSON object`);
  return json as Record<string, unknown>;
}

function allowOnly(o: Record<string, unknown>, fields: readonly string[]): void {
  for (const key of Object.keys(o)) if (!fields.includes(key)) bad(`unknown field ${JSON.stringify(key)}`);
}

function bad(message: string): never {
  throw new MmError('CHORUS_BAD_CRDT_OP', message);
}

export interface CrdtWrite {
  readonly record: CrdtRecord;
  /** The dots this operation removed (observed). */
  readonly replaced: readonly Dot[];
}

/** Applies a local operation at member `self` as event `dot`. Throws CHORUS_CRDT_TYPE_MISMATCH
 * when the key (or map field) holds another type. */
export function applyCrdtOp(current: CrdtRecord | null, op: CrdtOp, dot: Dot, stamp: HlcStamp, self: MemberId): CrdtWrite {
  const cur = current ?? EMPTY_CRDT;
  invariant(!vvCovers(cur.context, dot), `dot ${dot.member}:${dot.seq} is not new`);
  if (cur.values.length > 0 && !cur.values.some((v) => v.type === op.type)) {
    throw new MmError('CHORUS_CRDT_TYPE_MISMATCH', `the key holds a ${cur.values.map((v) => v.type).join('/')}, not a ${op.type}`);
  }
  const existing = cur.values.find((v) => v.type === op.type);
  const replaced: Dot[] = [];
  let next: CrdtValue | null;
  if (op.type === 'map') {
    const fields = existing?.type === 'map' ? existing.fields : [];
    let out: MapField[];
    if (op.op === 'remove') {
      out = [];
      for (const f of fields) {
        if (f.name === op.field) replaced.push(...fieldDots(f.value));
        else out.push(f);
      }
    } else {
      const named = fields.filter((f) => f.name === op.field);
      if (named.length > 0 && !named.some((f) => f.value.type === op.value.type)) {
        throw new MmError('CHORUS_CRDT_TYPE_MISMATCH', `map field ${JSON.stringify(op.field)} holds a ${named.map((f) => f.value.type).join('/')}, not a ${op.value.type}`);
      }
      const target = named.find((f) => f.value.type === op.value.type);
      const updated = applyFieldOp(target?.value, op.value, dot, stamp, self, replaced);
      out = fields.filter((f) => f !== target);
      if (updated !== null) out.push({ name: op.field, value: updated });
      out.sort(compareFields);
    }
    next = out.length === 0 ? null : { type: 'map', fields: out };
  } else {
    next = applyFieldOp(existing as FieldValue | undefined, op, dot, stamp, self, replaced);
  }
  const values = cur.values.filter((v) => v.type !== op.type);
  if (next !== null) values.push(next);
  values.sort(compareTypes);
  return { record: { mode: 'crdt', values, context: vvWithDot(cur.context, dot) }, replaced };
}

function applyFieldOp(value: FieldValue | undefined, op: FieldOp, dot: Dot, stamp: HlcStamp, self: MemberId, replaced: Dot[]): FieldValue | null {
  switch (op.type) {
    case 'counter': {
      const entries = value?.type === 'counter' ? value.entries : [];
      let inc = 0;
      let dec = 0;
      const others: CounterEntry[] = [];
      for (const e of entries) {
        if (e.dot.member === self) {
          inc += e.inc;
          dec += e.dec;
          replaced.push(e.dot);
        } else others.push(e);
      }
      if (op.op === 'incr') inc += op.by;
      else dec += op.by;
      if (inc > COUNTER_TOTAL_MAX || dec > COUNTER_TOTAL_MAX) bad('counter total would pass 2^50');
      others.push({ dot, inc, dec });
      others.sort(byDot);
      return { type: 'counter', entries: others };
    }
    case 'set': {
      const entries = value?.type === 'set' ? value.entries : [];
      const out: SetEntry[] = [];
      for (const e of entries) {
        if (e.element === op.value) replaced.push(...e.dots);
        else out.push(e);
      }
      if (op.op === 'add') {
        out.push({ element: op.value, dots: [dot] });
        out.sort(byElement);
      }
      return out.length === 0 ? null : { type: 'set', entries: out };
    }
    case 'register': {
      const entries = value?.type === 'register' ? value.entries : [];
      for (const e of entries) replaced.push(e.dot);
      return { type: 'register', entries: [{ dot, stamp, value: op.value }] };
    }
  }
}

/** Deletes the key: every dot is removed; updates concurrent with the delete survive it. */
export function deleteCrdt(current: CrdtRecord | null, dot: Dot): CrdtWrite {
  const cur = current ?? EMPTY_CRDT;
  return { record: { mode: 'crdt', values: [], context: vvWithDot(cur.context, dot) }, replaced: crdtDots(cur).map((d) => d.dot) };
}

// ---------------------------------------------------------------------------------------------
// Merge

export function mergeCrdt(a: CrdtRecord, b: CrdtRecord): CrdtRecord {
  const values: CrdtValue[] = [];
  for (const type of TYPES) {
    const x = a.values.find((v) => v.type === type);
    const y = b.values.find((v) => v.type === type);
    if (x === undefined && y === undefined) continue;
    const joined = type === 'map' ? joinMap(x as MapValue | undefined, a.context, y as MapValue | undefined, b.context) : joinField(x as FieldValue | undefined, a.context, y as FieldValue | undefined, b.context);
    if (joined !== null) values.push(joined);
  }
  return { mode: 'crdt', values, context: vvMerge(a.context, b.context) };
}

const TYPES: readonly CrdtType[] = ['counter', 'map', 'register', 'set'];

function compareTypes(a: { type: string }, b: { type: string }): number {
  return a.type < b.type ? -1 : a.type > b.type ? 1 : 0;
}

function compareFields(a: MapField, b: MapField): number {
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  return compareTypes(a.value, b.value);
}

function byDot(a: { dot: Dot }, b: { dot: Dot }): number {
  return compareDots(a.dot, b.dot);
}

function byElement(a: SetEntry, b: SetEntry): number {
  return a.element < b.element ? -1 : a.element > b.element ? 1 : 0;
}

/** The join of two dot functions (entries keyed by their dot). */
function joinDotFun<E extends { readonly dot: Dot }>(xs: readonly E[], cx: VersionVector, ys: readonly E[], cy: VersionVector): E[] {
  const out: E[] = [];
  let i = 0;
  let j = 0;
  while (i < xs.length || j < ys.length) {
    const x = xs[i];
    const y = ys[j];
    const order = x === undefined ? 1 : y === undefined ? -1 : compareDots(x.dot, y.dot);
    if (order === 0) {
      out.push(x!);
      i++;
      j++;
    } else if (order < 0) {
      if (!vvCovers(cy, x!.dot)) out.push(x!);
      i++;
    } else {
      if (!vvCovers(cx, y!.dot)) out.push(y!);
      j++;
    }
  }
  return out;
}

function joinDots(xs: readonly Dot[], cx: VersionVector, ys: readonly Dot[], cy: VersionVector): Dot[] {
  return joinDotFun(xs.map((dot) => ({ dot })), cx, ys.map((dot) => ({ dot })), cy).map((e) => e.dot);
}

function joinField(x: FieldValue | undefined, cx: VersionVector, y: FieldValue | undefined, cy: VersionVector): FieldValue | null {
  const type = (x ?? y)!.type;
  invariant(x === undefined || y === undefined || x.type === y.type, 'joinField of two types');
  switch (type) {
    case 'counter': {
      const entries = joinDotFun((x as CounterValue | undefined)?.entries ?? [], cx, (y as CounterValue | undefined)?.entries ?? [], cy);
      return entries.length === 0 ? null : { type, entries };
    }
    case 'register': {
      const entries = joinDotFun((x as RegisterValue | undefined)?.entries ?? [], cx, (y as RegisterValue | undefined)?.entries ?? [], cy);
      return entries.length === 0 ? null : { type, entries };
    }
    case 'set': {
      const xs = (x as SetValue | undefined)?.entries ?? [];
      const ys = (y as SetValue | undefined)?.entries ?? [];
      const entries: SetEntry[] = [];
      let i = 0;
      let j = 0;
      while (i < xs.length || j < ys.length) {
        const p = xs[i];
        const q = ys[j];
        const order = p === undefined ? 1 : q === undefined ? -1 : byElement(p, q);
        let dots: Dot[];
        let element: string;
        if (order === 0) {
          dots = joinDots(p!.dots, cx, q!.dots, cy);
          element = p!.element;
          i++;
          j++;
        } else if (order < 0) {
          dots = p!.dots.filter((d) => !vvCovers(cy, d));
          element = p!.element;
          i++;
        } else {
          dots = q!.dots.filter((d) => !vvCovers(cx, d));
          element = q!.element;
          j++;
        }
        if (dots.length > 0) entries.push({ element, dots });
      }
      return entries.length === 0 ? null : { type, entries };
    }
  }
}

function joinMap(x: MapValue | undefined, cx: VersionVector, y: MapValue | undefined, cy: VersionVector): MapValue | null {
  const xs = x?.fields ?? [];
  const ys = y?.fields ?? [];
  const fields: MapField[] = [];
  let i = 0;
  let j = 0;
  while (i < xs.length || j < ys.length) {
    const p = xs[i];
    const q = ys[j];
    const order = p === undefined ? 1 : q === undefined ? -1 : compareFields(p, q);
    const name = order <= 0 ? p!.name : q!.name;
    const joined = joinField(order <= 0 ? p!.value : undefined, cx, order >= 0 ? q!.value : undefined, cy);
    if (order <= 0) i++;
    if (order >= 0) j++;
    if (joined !== null) fields.push({ name, value: joined });
  }
  return fields.length === 0 ? null : { type: 'map', fields };
}

// ---------------------------------------------------------------------------------------------
// Dots (for the replica's pruning and for checkers)

export interface LocatedDot {
  readonly dot: Dot;
  /** Where the dot lives, e.g. `set/"x"` or `map/f/counter`: tells checkers what it stands for. */
  readonly path: string;
}

export function crdtDots(record: CrdtRecord): LocatedDot[] {
  const out: LocatedDot[] = [];
  for (const v of record.values) {
    if (v.type === 'map') {
      for (const f of v.fields) for (const d of fieldLocatedDots(f.value, `map/${JSON.stringify(f.name)}/`)) out.push(d);
    } else {
      for (const d of fieldLocatedDots(v, '')) out.push(d);
    }
  }
  return out;
}

function fieldLocatedDots(v: FieldValue, prefix: string): LocatedDot[] {
  if (v.type === 'set') return v.entries.flatMap((e) => e.dots.map((dot) => ({ dot, path: `${prefix}set/${e.element}` })));
  return v.entries.map((e) => ({ dot: e.dot, path: `${prefix}${v.type}` }));
}

function fieldDots(v: FieldValue): Dot[] {
  return fieldLocatedDots(v, '').map((d) => d.dot);
}

/** The record without the entries whose dot `drop` selects (the context is kept). */
export function filterCrdt(record: CrdtRecord, drop: (dot: Dot) => boolean): CrdtRecord {
  const keepField = (v: FieldValue): FieldValue | null => {
    if (v.type === 'set') {
      const entries = v.entries.map((e) => ({ element: e.element, dots: e.dots.filter((d) => !drop(d)) })).filter((e) => e.dots.length > 0);
      return entries.length === 0 ? null : { type: 'set', entries };
    }
    if (v.type === 'counter') {
      const entries = v.entries.filter((e) => !drop(e.dot));
      return entries.length === 0 ? null : { type: 'counter', entries };
    }
    const entries = v.entries.filter((e) => !drop(e.dot));
    return entries.length === 0 ? null : { type: 'register', entries };
  };
  const values: CrdtValue[] = [];
  for (const v of record.values) {
    if (v.type === 'map') {
      const fields: MapField[] = [];
      for (const f of v.fields) {
        const kept = keepField(f.value);
        if (kept !== null) fields.push({ name: f.name, value: kept });
      }
      if (fields.length > 0) values.push({ type: 'map', fields });
    } else {
      const kept = keepField(v);
      if (kept !== null) values.push(kept);
    }
  }
  return { mode: 'crdt', values, context: record.context };
}

// ---------------------------------------------------------------------------------------------
// Views

export type CrdtJson =
  | { readonly type: 'counter'; readonly value: number }
  | { readonly type: 'set'; readonly value: readonly JsonValue[] }
  | { readonly type: 'register'; readonly value: JsonValue }
  | { readonly type: 'map'; readonly value: { readonly [field: string]: JsonValue } }
  /** Members created the key concurrently with different types: every type's value, by type. */
  | { readonly type: 'conflict'; readonly value: { readonly [type: string]: JsonValue } };

export interface CrdtView {
  readonly mode: 'crdt';
  readonly found: boolean;
  readonly value: CrdtJson | null;
}

export function crdtView(record: CrdtRecord | null): CrdtView {
  const values = record?.values ?? [];
  const first = values[0];
  if (first === undefined) return { mode: 'crdt', found: false, value: null };
  if (values.length === 1) return { mode: 'crdt', found: true, value: { type: first.type, value: valueJson(first) } as CrdtJson };
  return { mode: 'crdt', found: true, value: { type: 'conflict', value: Object.fromEntries(values.map((v) => [v.type, valueJson(v)])) } };
}

function valueJson(v: CrdtValue): JsonValue {
  if (v.type !== 'map') return fieldJson(v);
  const byName = new Map<string, MapField[]>();
  for (const f of v.fields) byName.set(f.name, [...(byName.get(f.name) ?? []), f]);
  // fromEntries defines own properties, so a field named "__proto__" is just a field.
  return Object.fromEntries(
    [...byName].map(([name, fields]) => [
      name,
      fields.length === 1 ? fieldJson(fields[0]!.value) : { $conflict: Object.fromEntries(fields.map((f) => [f.value.type, fieldJson(f.value)])) },
    ]),
  );
}

function fieldJson(v: FieldValue): JsonValue {
  switch (v.type) {
    case 'counter':
      return v.entries.reduce((sum, e) => sum + e.inc - e.dec, 0);
    case 'set':
      return v.entries.map((e) => parseCanonical(e.element));
    case 'register': {
      let best: RegisterEntry | undefined;
      for (const e of v.entries) {
        if (best === undefined || (compareStamps(e.stamp, best.stamp) || compareDots(e.dot, best.dot)) > 0) best = e;
      }
      return best === undefined ? null : parseCanonical(best.value);
    }
  }
}

/** Approximate encoded size, for recordBytesMax. */
export function crdtBytes(record: CrdtRecord): number {
  return approxBytes(record);
}

export function hasDot(record: CrdtRecord, dot: Dot): boolean {
  return crdtDots(record).some((d) => dotEquals(d.dot, dot));
}
