// Merge laws. Each state is reachable: it comes from random operations at three members and
// random merges between them (arbitrary records could break invariants no member ever
// produces, e.g. a sibling outside its context). From such histories three states are picked
// and merge is checked commutative, associative and idempotent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { canonicalText } from '../../src/core/mm/codec.ts';
import { applyCrdtOp, deleteCrdt, mergeCrdt, parseCrdtOp, type CrdtRecord } from '../../src/core/mm/crdt.ts';
import { deleteDvv, mergeDvv, putDvv, type DvvRecord } from '../../src/core/mm/dvv.ts';
import { MmError } from '../../src/core/mm/errors.ts';
import { mergeLww, writeLww, type LwwRecord } from '../../src/core/mm/lww.ts';

const MEMBERS = ['a', 'b', 'c'] as const;
const RUNS = 300;

type Step<Op> = { readonly kind: 'op'; readonly r: number; readonly op: Op } | { readonly kind: 'merge'; readonly from: number; readonly to: number };

function steps<Op>(op: fc.Arbitrary<Op>): fc.Arbitrary<Step<Op>[]> {
  const r = fc.integer({ min: 0, max: MEMBERS.length - 1 });
  return fc.array(
    fc.oneof(
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('op' as const), r, op }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('merge' as const), from: r, to: r }) },
    ),
    { minLength: 1, maxLength: 30 },
  );
}

/** Runs a history and returns every state any member went through. */
function reachable<S, Op>(history: readonly Step<Op>[], empty: S, apply: (s: S, op: Op, member: string, seq: number, t: number) => S, merge: (a: S, b: S) => S): S[] {
  const states = MEMBERS.map(() => empty);
  const seqs = MEMBERS.map(() => 0);
  const pool: S[] = [empty];
  let t = 0;
  for (const step of history) {
    if (step.kind === 'op') {
      seqs[step.r]!++;
      try {
        states[step.r] = apply(states[step.r]!, step.op, MEMBERS[step.r]!, seqs[step.r]!, ++t);
      } catch (error) {
        // Type mismatches are refused operations, not states.
        if (!(error instanceof MmError)) throw error;
      }
      pool.push(states[step.r]!);
    } else {
      states[step.to] = merge(states[step.to]!, states[step.from]!);
      pool.push(states[step.to]!);
    }
  }
  return pool;
}

function checkLaws<S>(name: string, arb: fc.Arbitrary<S[]>, merge: (a: S, b: S) => S): void {
  test(`merge laws: ${name}`, () => {
    const same = (x: S, y: S): void => assert.equal(canonicalText(x), canonicalText(y));
    fc.assert(
      fc.property(arb, fc.nat(), fc.nat(), fc.nat(), (pool, i, j, k) => {
        const a = pool[i % pool.length]!;
        const b = pool[j % pool.length]!;
        const c = pool[k % pool.length]!;
        same(merge(a, b), merge(b, a));
        same(merge(merge(a, b), c), merge(a, merge(b, c)));
        same(merge(a, a), a);
        // Merging is also absorbing: a state merged with something it already includes is unchanged.
        same(merge(merge(a, b), b), merge(a, b));
      }),
      { numRuns: RUNS },
    );
  });
}

// ---------------------------------------------------------------------------------------------
// CRDTs

const EMPTY_CRDT: CrdtRecord = { mode: 'crdt', values: [], context: [] };

function crdtPool(op: fc.Arbitrary<unknown>): fc.Arbitrary<CrdtRecord[]> {
  return steps(fc.oneof({ weight: 6, arbitrary: op }, { weight: 1, arbitrary: fc.constant('delete') })).map((history) =>
    reachable<CrdtRecord, unknown>(
      history,
      EMPTY_CRDT,
      (s, o, member, seq, t) => {
        const dot = { member, seq };
        if (o === 'delete') return deleteCrdt(s, dot).record;
        return applyCrdtOp(s, parseCrdtOp(o), dot, { physicalMs: t % 4, logical: 0, member }, member).record;
      },
      mergeCrdt,
    ),
  );
}

const counterOp = fc.record({ type: fc.constant('counter'), op: fc.constantFrom('incr', 'decr'), by: fc.integer({ min: 1, max: 9 }) });
const setOp = fc.record({ type: fc.constant('set'), op: fc.constantFrom('add', 'add', 'remove'), value: fc.constantFrom('x', 'y', 'z', 1, { k: [1] }) });
const registerOp = fc.record({ type: fc.constant('register'), op: fc.constant('set'), value: fc.oneof(fc.integer(), fc.string({ maxLength: 3 }), fc.constant(null)) });
const fieldOp = fc.oneof(counterOp, setOp, registerOp);
const mapOp = fc.oneof(
  { weight: 4, arbitrary: fc.record({ type: fc.constant('map'), op: fc.constant('update'), field: fc.constantFrom('f', 'g', 'h'), value: fieldOp }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('map'), op: fc.constant('remove'), field: fc.constantFrom('f', 'g', 'h') }) },
);

checkLaws('PN-counter', crdtPool(counterOp), mergeCrdt);
checkLaws('OR-set (add wins)', crdtPool(setOp), mergeCrdt);
checkLaws('LWW-register', crdtPool(registerOp), mergeCrdt);
checkLaws('OR-map of counters, sets and registers', crdtPool(mapOp), mergeCrdt);
checkLaws('CRDTs of mixed types (concurrent type conflicts)', crdtPool(fc.oneof(counterOp, setOp, registerOp, mapOp)), mergeCrdt);

// ---------------------------------------------------------------------------------------------
// DVV sibling sets

type DvvStep = { readonly kind: 'put' | 'delete'; readonly token: 'none' | 'own' | 'peer'; readonly peer: number; readonly value: number };
const EMPTY_DVV: DvvRecord = { mode: 'versions', siblings: [], context: [] };

const dvvPool: fc.Arbitrary<DvvRecord[]> = steps<DvvStep>(
  fc.record({
    kind: fc.constantFrom('put', 'put', 'delete'),
    token: fc.constantFrom('none', 'own', 'peer'),
    peer: fc.integer({ min: 0, max: 2 }),
    value: fc.integer({ min: 0, max: 99 }),
  }),
).map((history) => {
  // A token read at a peer is that peer's context at the time, like a client reading at one
  // member and writing at another.
  const latest: DvvRecord[] = MEMBERS.map(() => EMPTY_DVV);
  return reachable<DvvRecord, DvvStep>(
    history,
    EMPTY_DVV,
    (s, o, member, seq, t) => {
      const ctx = o.token === 'none' ? null : o.token === 'own' ? s.context : latest[o.peer]!.context;
      const dot = { member, seq };
      const next = o.kind === 'put' ? putDvv(s, new Uint8Array([o.value]), ctx, dot, { physicalMs: t, logical: 0, member }).record : deleteDvv(s, ctx, dot).record;
      latest[MEMBERS.indexOf(member as 'a')] = next;
      return next;
    },
    (a, b) => mergeDvv(a, b),
  );
});

checkLaws('DVV sibling sets', dvvPool, mergeDvv);

// ---------------------------------------------------------------------------------------------
// LWW

const lwwRecords: fc.Arbitrary<LwwRecord[]> = fc
  .array(
    fc.record({
      physicalMs: fc.integer({ min: 0, max: 4 }),
      logical: fc.integer({ min: 0, max: 2 }),
      member: fc.constantFrom(...MEMBERS),
      deleted: fc.boolean(),
    }),
    { minLength: 1, maxLength: 12 },
  )
  // Every write has its own dot (a dot is one event); stamps may collide, which the dot orders.
  .map((writes) =>
    writes.map((w, i) =>
      writeLww(null, w.deleted ? null : new Uint8Array([i]), { member: w.member, seq: i + 1 }, { physicalMs: w.physicalMs, logical: w.logical, member: w.member }),
    ),
  );

checkLaws('LWW records', lwwRecords, mergeLww);
