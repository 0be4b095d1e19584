import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyCrdtOp, crdtView, deleteCrdt, mergeCrdt, parseCrdtOp, type CrdtRecord } from '../../src/core/mm/crdt.ts';
import { MmError } from '../../src/core/mm/errors.ts';
import type { HlcStamp } from '../../src/core/mm/hlc.ts';

let clockMs = 0;
const stamp = (member: string): HlcStamp => ({ physicalMs: ++clockMs, logical: 0, member });

/** A tiny member: its record and its event counter. */
class M {
  rec: CrdtRecord | null = null;
  seq = 0;
  constructor(readonly id: string) {}
  op(json: unknown): this {
    this.seq++;
    this.rec = applyCrdtOp(this.rec, parseCrdtOp(json), { member: this.id, seq: this.seq }, stamp(this.id), this.id).record;
    return this;
  }
  del(): this {
    this.seq++;
    this.rec = deleteCrdt(this.rec, { member: this.id, seq: this.seq }).record;
    return this;
  }
  get(): unknown {
    return crdtView(this.rec).value;
  }
  /** Receives another member's state. */
  from(other: M): this {
    this.rec = this.rec === null ? other.rec : other.rec === null ? this.rec : mergeCrdt(this.rec, other.rec);
    return this;
  }
}

test('crdt counter: increments and decrements from every member add up', () => {
  const a = new M('a').op({ type: 'counter', op: 'incr', by: 5 }).op({ type: 'counter', op: 'decr', by: 2 });
  const b = new M('b').op({ type: 'counter', op: 'incr' });
  a.from(b);
  b.from(a).from(a);
  assert.deepEqual(a.get(), { type: 'counter', value: 4 });
  assert.deepEqual(b.get(), { type: 'counter', value: 4 });
  // A member keeps one entry: its running totals.
  assert.equal(a.rec!.values[0]!.type === 'counter' && a.rec!.values[0]!.entries.length, 2);
});

test('crdt set: add wins over a concurrent remove; an observed add is removed', () => {
  const a = new M('a').op({ type: 'set', op: 'add', value: 'x' }).op({ type: 'set', op: 'add', value: { n: 1, a: [true] } });
  const b = new M('b').from(a);
  b.op({ type: 'set', op: 'remove', value: 'x' });
  a.op({ type: 'set', op: 'add', value: 'x' }); // concurrent re-add
  a.from(b);
  b.from(a);
  assert.deepEqual(a.get(), { type: 'set', value: ['x', { a: [true], n: 1 }] });
  assert.deepEqual(b.get(), a.get());
  // A remove that has seen every add removes the element.
  b.op({ type: 'set', op: 'remove', value: 'x' });
  a.from(b);
  assert.deepEqual(a.get(), { type: 'set', value: [{ a: [true], n: 1 }] });
  // Elements are compared as canonical JSON: key order does not matter.
  a.op({ type: 'set', op: 'remove', value: { a: [true], n: 1 } });
  assert.equal(crdtView(a.rec).found, false);
});

test('crdt register: the greatest stamp shows; the next set replaces concurrent values', () => {
  const a = new M('a').op({ type: 'register', op: 'set', value: 'first' });
  const b = new M('b').op({ type: 'register', op: 'set', value: { later: 1 } });
  a.from(b);
  assert.deepEqual(a.get(), { type: 'register', value: { later: 1 } });
  assert.equal(a.rec!.values[0]!.type === 'register' && a.rec!.values[0]!.entries.length, 2);
  a.op({ type: 'register', op: 'set', value: null });
  assert.equal(a.rec!.values[0]!.type === 'register' && a.rec!.values[0]!.entries.length, 1);
  assert.deepEqual(a.get(), { type: 'register', value: null });
});

test('crdt map: fields of counters, sets and registers; an update concurrent with a field removal wins', () => {
  const a = new M('a')
    .op({ type: 'map', op: 'update', field: 'likes', value: { type: 'counter', op: 'incr', by: 3 } })
    .op({ type: 'map', op: 'update', field: 'tags', value: { type: 'set', op: 'add', value: 'red' } })
    .op({ type: 'map', op: 'update', field: '__proto__', value: { type: 'register', op: 'set', value: 'safe' } });
  const b = new M('b').from(a);
  b.op({ type: 'map', op: 'remove', field: 'tags' });
  a.op({ type: 'map', op: 'update', field: 'tags', value: { type: 'set', op: 'add', value: 'blue' } });
  a.from(b);
  b.from(a);
  const view = a.get() as { type: string; value: Record<string, unknown> };
  assert.equal(view.type, 'map');
  assert.deepEqual(view.value.likes, 3);
  assert.deepEqual(view.value.tags, ['blue']);
  assert.equal(Object.getOwnPropertyDescriptor(view.value, '__proto__')?.value, 'safe');
  assert.equal(Object.getPrototypeOf(view.value), Object.prototype);
  assert.deepEqual(b.get(), a.get());
});

test('crdt: deleting a key removes what was seen; a concurrent update survives the delete', () => {
  const a = new M('a').op({ type: 'set', op: 'add', value: 1 }).op({ type: 'set', op: 'add', value: 2 });
  const b = new M('b').from(a);
  b.del();
  assert.equal(crdtView(b.rec).found, false);
  a.op({ type: 'set', op: 'add', value: 3 });
  b.from(a);
  a.from(b);
  assert.deepEqual(a.get(), { type: 'set', value: [3] });
  assert.deepEqual(b.get(), a.get());
});

test('crdt: type mismatches are refused; concurrent creations with two types are both kept', () => {
  const a = new M('a').op({ type: 'counter', op: 'incr' });
  assert.throws(() => a.op({ type: 'set', op: 'add', value: 1 }), (e: unknown) => e instanceof MmError && e.code === 'CHORUS_CRDT_TYPE_MISMATCH');
  const m = new M('m').op({ type: 'map', op: 'update', field: 'f', value: { type: 'counter', op: 'incr' } });
  assert.throws(() => m.op({ type: 'map', op: 'update', field: 'f', value: { type: 'set', op: 'add', value: 1 } }), (e: unknown) => e instanceof MmError && e.code === 'CHORUS_CRDT_TYPE_MISMATCH');
  const b = new M('b').op({ type: 'set', op: 'add', value: 'x' });
  a.from(b);
  assert.deepEqual(a.get(), { type: 'conflict', value: { counter: 1, set: ['x'] } });
  // Deleting the key resolves the conflict.
  a.del();
  a.op({ type: 'set', op: 'add', value: 'y' });
  assert.deepEqual(a.get(), { type: 'set', value: ['y'] });
});

test('crdt: malformed operations are refused with CHORUS_BAD_CRDT_OP', () => {
  const bad = (json: unknown): void => assert.throws(() => parseCrdtOp(json), (e: unknown) => e instanceof MmError && e.code === 'CHORUS_BAD_CRDT_OP');
  bad(null);
  bad([]);
  bad({ type: 'counter', op: 'incr', by: 0 });
  bad({ type: 'counter', op: 'incr', by: 1.5 });
  bad({ type: 'counter', op: 'incr', by: 2 ** 51 });
  bad({ type: 'counter', op: 'mul', by: 2 });
  bad({ type: 'counter', op: 'incr', extra: 1 });
  bad({ type: 'set', op: 'add' });
  bad({ type: 'set', op: 'add', value: Number.NaN });
  bad({ type: 'register', op: 'set', value: new Date(0) });
  bad({ type: 'map', op: 'update', field: '', value: { type: 'counter', op: 'incr' } });
  bad({ type: 'map', op: 'update', field: 'f', value: { type: 'map', op: 'remove', field: 'g' } });
  bad({ type: 'map', op: 'remove', field: 'f', value: 1 });
  bad({ type: 'list', op: 'push' });
  let deep: unknown = 'x';
  for (let i = 0; i < 40; i++) deep = [deep];
  bad({ type: 'register', op: 'set', value: deep });
  assert.deepEqual(parseCrdtOp({ type: 'counter', op: 'decr' }), { type: 'counter', op: 'decr', by: 1 });
  assert.deepEqual(parseCrdtOp({ type: 'set', op: 'add', value: { b: 1, a: -0 } }), { type: 'set', op: 'add', value: '{"a":0,"b":1}' });
});
