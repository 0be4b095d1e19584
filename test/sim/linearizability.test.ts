import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkLinearizability } from '../../sim/checker/linearizability.ts';
import type { CheckResult, Model, Operation } from '../../sim/checker/linearizability.ts';
import { kvModel } from '../../sim/checker/kv-model.ts';
import type { KvInput, KvOutput } from '../../sim/checker/kv-model.ts';

type KvOp = Operation<KvInput, KvOutput>;

/** returnTime of an operation whose outcome the client never learned. */
const UNKNOWN = Infinity;

function put(clientId: number, callTime: number, returnTime: number, key: string, value: string): KvOp {
  return { clientId, callTime, returnTime, input: { kind: 'put', key, value }, output: { kind: 'put' } };
}
function get(clientId: number, callTime: number, returnTime: number, key: string, value: string | null): KvOp {
  return { clientId, callTime, returnTime, input: { kind: 'get', key }, output: { kind: 'get', value } };
}
function del(clientId: number, callTime: number, returnTime: number, key: string): KvOp {
  return { clientId, callTime, returnTime, input: { kind: 'delete', key }, output: { kind: 'delete' } };
}
function cas(
  clientId: number,
  callTime: number,
  returnTime: number,
  key: string,
  expected: string | null,
  value: string,
  succeeded: boolean,
): KvOp {
  return { clientId, callTime, returnTime, input: { kind: 'cas', key, expected, value }, output: { kind: 'cas', succeeded } };
}

function check(ops: readonly KvOp[], stepsMax?: number): CheckResult {
  return checkLinearizability(kvModel, ops, stepsMax === undefined ? undefined : { stepsMax });
}

function assertOk(ops: readonly KvOp[]): void {
  assert.deepEqual(check(ops), { result: 'ok' });
}

function assertIllegal(ops: readonly KvOp[]): Extract<CheckResult, { result: 'illegal' }> {
  const result = check(ops);
  assert.equal(result.result, 'illegal', `expected illegal, got ${JSON.stringify(result)}`);
  return result as Extract<CheckResult, { result: 'illegal' }>;
}

// ---------------------------------------------------------------------------------------------
// Known-good histories

test('an empty history is linearizable', () => {
  assertOk([]);
});

test('a sequential history is linearizable', () => {
  assertOk([
    get(1, 0, 1, 'x', null),
    put(1, 2, 3, 'x', 'a'),
    get(2, 4, 5, 'x', 'a'),
    put(2, 6, 7, 'x', 'b'),
    get(1, 8, 9, 'x', 'b'),
    del(1, 10, 11, 'x'),
    get(2, 12, 13, 'x', null),
  ]);
});

test('overlapping writes may take effect in either order', () => {
  const writes = [put(1, 0, 10, 'x', 'a'), put(2, 0, 10, 'x', 'b')];
  // After both writes complete, either value is a legal final state, but it must be stable.
  assertOk([...writes, get(3, 20, 30, 'x', 'a'), get(3, 40, 50, 'x', 'a')]);
  assertOk([...writes, get(3, 20, 30, 'x', 'b'), get(3, 40, 50, 'x', 'b')]);
  // Reads concurrent with both writes may see nothing, either value, or one then the other.
  assertOk([...writes, get(3, 1, 2, 'x', null), get(3, 3, 4, 'x', 'b'), get(3, 5, 6, 'x', 'a')]);
  assertOk([...writes, get(3, 1, 2, 'x', 'a'), get(4, 1, 2, 'x', 'a'), get(3, 3, 4, 'x', 'b')]);
});

test('a read concurrent with a write may see the old or the new value', () => {
  const base = [put(1, 0, 1, 'x', 'old'), put(1, 10, 20, 'x', 'new')];
  assertOk([...base, get(2, 12, 14, 'x', 'old')]);
  assertOk([...base, get(2, 12, 14, 'x', 'new')]);
  // Equal instants count as overlapping: a read called when the write returns may still see old.
  assertOk([...base, get(2, 20, 25, 'x', 'old')]);
});

test('an outcome-unknown write that is later observed is linearizable', () => {
  assertOk([
    put(1, 0, 1, 'x', 'a'),
    put(2, 5, UNKNOWN, 'x', 'b'),
    get(3, 10, 11, 'x', 'a'),
    get(3, 100, 101, 'x', 'b'),
    get(4, 200, 201, 'x', 'b'),
  ]);
});

test('an outcome-unknown write that is never observed is linearizable', () => {
  assertOk([put(1, 0, 1, 'x', 'a'), put(2, 5, UNKNOWN, 'x', 'b'), get(3, 10, 11, 'x', 'a'), get(3, 1000, 1001, 'x', 'a')]);
  // Several unknown writes, none observed, with completed writes after them.
  assertOk([
    put(2, 5, UNKNOWN, 'x', 'b'),
    del(3, 6, UNKNOWN, 'x'),
    put(1, 10, 11, 'x', 'c'),
    get(1, 12, 13, 'x', 'c'),
  ]);
});

test('an outcome-unknown read carries no information', () => {
  // The output of an unknown-outcome operation is ignored, even if it is nonsense.
  assertOk([put(1, 0, 1, 'x', 'a'), get(2, 2, UNKNOWN, 'x', 'never written'), get(1, 3, 4, 'x', 'a')]);
});

test('an outcome-unknown write still obeys real time and permanence', () => {
  // It cannot take effect before it was called.
  assertIllegal([get(1, 0, 5, 'x', 'b'), put(2, 10, UNKNOWN, 'x', 'b')]);
  // Once observed it has taken effect, so a later read cannot see the value it replaced.
  assertIllegal([put(1, 0, 1, 'x', 'a'), put(2, 5, UNKNOWN, 'x', 'b'), get(3, 10, 11, 'x', 'b'), get(3, 20, 21, 'x', 'a')]);
  // It takes effect at most once.
  assertIllegal([
    put(2, 0, UNKNOWN, 'x', 'b'),
    get(3, 10, 11, 'x', 'b'),
    put(1, 20, 21, 'x', 'a'),
    get(3, 30, 31, 'x', 'b'),
  ]);
});

// ---------------------------------------------------------------------------------------------
// Known-bad histories

test('a stale read after a completed write is rejected', () => {
  assertIllegal([put(1, 0, 10, 'x', 'a'), put(1, 20, 30, 'x', 'b'), get(2, 40, 50, 'x', 'a')]);
});

test('a read of a value never written is rejected', () => {
  assertIllegal([put(1, 0, 10, 'x', 'a'), get(2, 5, 15, 'x', 'z')]);
  assertIllegal([get(2, 5, 15, 'x', 'z')]);
});

test('two readers seeing concurrent writes in opposite orders is rejected', () => {
  assertIllegal([
    put(1, 0, 100, 'x', 'a'),
    put(2, 0, 100, 'x', 'b'),
    get(3, 10, 20, 'x', 'a'),
    get(4, 10, 20, 'x', 'b'),
    get(3, 30, 40, 'x', 'b'),
    get(4, 30, 40, 'x', 'a'),
  ]);
  // Same reads without the second reader's reversal are fine: the test hinges on the reversal.
  assertOk([
    put(1, 0, 100, 'x', 'a'),
    put(2, 0, 100, 'x', 'b'),
    get(3, 10, 20, 'x', 'a'),
    get(4, 10, 20, 'x', 'a'),
    get(3, 30, 40, 'x', 'b'),
    get(4, 30, 40, 'x', 'b'),
  ]);
});

test('a lost acknowledged write is rejected', () => {
  assertIllegal([put(1, 0, 10, 'x', 'a'), get(2, 20, 30, 'x', null)]);
  assertIllegal([put(1, 0, 1, 'x', 'old'), put(1, 10, 20, 'x', 'new'), get(2, 21, 30, 'x', 'old')]);
  assertIllegal([put(1, 0, 1, 'x', 'a'), del(1, 10, 20, 'x'), get(2, 21, 30, 'x', 'a')]);
});

test('the description lists the failing operations and the longest linearizable prefix', () => {
  const result = assertIllegal([put(1, 0, 10, 'x', 'a'), put(1, 20, 30, 'x', 'b'), get(2, 40, 50, 'x', 'a')]);
  const lines = result.description.split('\n');
  assert.ok(lines.some((line) => line.includes('client 1 [0, 10] put("x", "a") -> ok')), result.description);
  assert.ok(lines.some((line) => line.includes('client 2 [40, 50] get("x") -> "a"')), result.description);
  // The two writes linearize; the read after them cannot.
  const prefixAt = lines.findIndex((line) => line.startsWith('longest linearizable prefix'));
  assert.ok(prefixAt > 0, result.description);
  assert.match(lines[prefixAt] ?? '', /\(2 operations/);
  assert.deepEqual(
    lines.slice(prefixAt + 1).map((line) => line.trim()),
    ['#0 client 1 [0, 10] put("x", "a") -> ok', '#1 client 1 [20, 30] put("x", "b") -> ok'],
  );
});

// ---------------------------------------------------------------------------------------------
// Compare-and-set

test('cas succeeds exactly when the current value matches', () => {
  assertOk([
    cas(1, 0, 1, 'x', null, 'a', true), // absent key, expected absent
    cas(1, 2, 3, 'x', null, 'b', false),
    cas(1, 4, 5, 'x', 'a', 'b', true),
    cas(1, 6, 7, 'x', 'a', 'c', false),
    get(1, 8, 9, 'x', 'b'),
  ]);
  // A failed cas changes nothing.
  assertIllegal([put(1, 0, 1, 'x', 'a'), cas(1, 2, 3, 'x', 'z', 'b', false), get(1, 4, 5, 'x', 'b')]);
  // A cas cannot succeed against a value it does not expect, nor fail against one it does.
  assertIllegal([put(1, 0, 1, 'x', 'a'), cas(1, 2, 3, 'x', 'z', 'b', true)]);
  assertIllegal([put(1, 0, 1, 'x', 'a'), cas(1, 2, 3, 'x', 'a', 'b', false)]);
  // null means absent, not the string "null".
  assertIllegal([put(1, 0, 1, 'x', 'null'), cas(1, 2, 3, 'x', null, 'b', true)]);
  assertOk([put(1, 0, 1, 'x', 'a'), del(1, 2, 3, 'x'), cas(1, 4, 5, 'x', null, 'b', true)]);
});

test('two concurrent cas from the same value cannot both succeed', () => {
  const base = put(1, 0, 1, 'x', 'a');
  assertIllegal([base, cas(2, 10, 20, 'x', 'a', 'b', true), cas(3, 10, 20, 'x', 'a', 'c', true)]);
  assertOk([base, cas(2, 10, 20, 'x', 'a', 'b', true), cas(3, 10, 20, 'x', 'a', 'c', false)]);
  // ...unless the first one's new value is what the second expects.
  assertOk([base, cas(2, 10, 20, 'x', 'a', 'b', true), cas(3, 10, 20, 'x', 'b', 'c', true), get(1, 30, 31, 'x', 'c')]);
});

test('an outcome-unknown cas only takes effect when its expectation holds', () => {
  // Its output is ignored (here it claims failure), but it may have succeeded.
  assertOk([put(1, 0, 1, 'x', 'a'), cas(2, 2, UNKNOWN, 'x', 'a', 'b', false), get(1, 10, 11, 'x', 'b')]);
  // It could never have succeeded, so 'b' cannot appear.
  assertIllegal([put(1, 0, 1, 'x', 'a'), cas(2, 2, UNKNOWN, 'x', 'z', 'b', true), get(1, 10, 11, 'x', 'b')]);
});

// ---------------------------------------------------------------------------------------------
// Partitioning

test('a violation on one key is found among many valid keys', () => {
  const ops: KvOp[] = [];
  for (let k = 0; k < 40; k++) {
    const key = `k${k}`;
    ops.push(put(k, 0, 10, key, `${key}-1`), put(k + 100, 5, 15, key, `${key}-2`), get(k, 20, 30, key, `${key}-2`));
  }
  assertOk(ops);
  // Key k17 gets a stale read; its partition is the 18th key to appear.
  ops.push(get(999, 40, 50, 'k17', 'k17-1'));
  const result = assertIllegal(ops);
  assert.equal(result.partition, 17);
  assert.match(result.description, /get\("k17"\) -> "k17-1"/);
  assert.doesNotMatch(result.description, /k16/);
});

test('the shortest failing partition is reported', () => {
  const long = [put(1, 0, 1, 'long', 'a'), put(1, 2, 3, 'long', 'b'), get(1, 4, 5, 'long', 'c'), get(1, 6, 7, 'long', 'b')];
  const short = [get(2, 0, 1, 'short', 'z')];
  const result = assertIllegal([...long, ...short]);
  assert.equal(result.partition, 1);
  assert.match(result.description, /1 operations/);
});

test('keys are independent: interleaving does not couple them', () => {
  // Sequential on each key, but the cross-key order would be impossible for a single register.
  assertOk([put(1, 0, 1, 'x', 'a'), put(1, 2, 3, 'y', 'b'), get(2, 4, 5, 'x', 'a'), get(2, 6, 7, 'y', 'b')]);
});

test('without partition() the whole history is one partition', () => {
  // A counter: every increment returns the new count, so all operations interact.
  type CounterInput = { kind: 'inc' } | { kind: 'read' };
  const counter: Model<number, CounterInput, number> = {
    init: () => 0,
    step: (state, input, output) => {
      const next = input.kind === 'inc' ? state + 1 : state;
      return { ok: output === next, next };
    },
    hashState: (state) => String(state),
  };
  const op = (clientId: number, callTime: number, returnTime: number, input: CounterInput, output: number) => ({
    clientId, callTime, returnTime, input, output,
  });
  const inc: CounterInput = { kind: 'inc' };
  const read: CounterInput = { kind: 'read' };
  assert.deepEqual(checkLinearizability(counter, [op(1, 0, 10, inc, 2), op(2, 0, 10, inc, 1), op(3, 20, 21, read, 2)]), {
    result: 'ok',
  });
  const bad = checkLinearizability(counter, [op(1, 0, 10, inc, 1), op(2, 0, 10, inc, 1)]);
  assert.equal(bad.result, 'illegal');
  assert.equal(bad.result === 'illegal' && bad.partition, 0);
  // The default description prints inputs and outputs as JSON.
  assert.match(bad.result === 'illegal' ? bad.description : '', /client 1 \[0, 10\] \{"kind":"inc"\} -> 1/);
});

// ---------------------------------------------------------------------------------------------
// Budget and validation

test('a search that runs out of steps reports unknown', () => {
  const ops = generateHistory(new Rng(7), { opCount: 200, keyCount: 2, clientCount: 5, unknownRate: 0 });
  assert.deepEqual(check(ops), { result: 'ok' });
  const result = check(ops, 10);
  assert.equal(result.result, 'unknown');
  assert.match(result.result === 'unknown' ? result.reason : '', /step budget of 10/);
  assert.equal(check(ops, 0).result, 'unknown');
  // A budget is not needed when there is nothing to search.
  assert.deepEqual(check([], 0), { result: 'ok' });
});

test('memoization keeps a hopeless search small', () => {
  // Twelve concurrent reads can be ordered 12! ways, but they reach only 2^12 distinct
  // configurations; the impossible read after them forces the search to rule out every one.
  const ops: KvOp[] = [];
  for (let client = 0; client < 12; client++) ops.push(get(client, 0, 10, 'x', null));
  ops.push(get(99, 20, 30, 'x', 'z'));
  assert.equal(check(ops, 100_000).result, 'illegal');
});

test('malformed histories are refused', () => {
  assert.throws(() => check([get(1, 10, 5, 'x', null)]), RangeError);
  assert.throws(() => check([get(1, Number.NaN, 5, 'x', null)]), RangeError);
  assert.throws(() => check([get(1, Infinity, Infinity, 'x', null)]), RangeError);
  assert.throws(() => check([], -1), RangeError);
});

// ---------------------------------------------------------------------------------------------
// Randomized histories

/** xorshift32: a small seeded generator, so every run sees the same histories. */
class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 0x9e3779b9;
  }
  /** A uniformly distributed integer in [0, maxExclusive). */
  int(maxExclusive: number): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state % maxExclusive;
  }
  chance(probability: number): boolean {
    return this.int(1_000_000) < probability * 1_000_000;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }
}

interface GenerateOptions {
  opCount: number;
  keyCount: number;
  /** Each client has one operation in flight at a time, so this is the concurrency. */
  clientCount: number;
  /** Fraction of operations whose outcome is unknown (half of the unknown writes never apply). */
  unknownRate: number;
}

/**
 * A linearizable history by construction: each operation gets a random call/return interval on
 * its client's timeline and a linearization point inside it; outputs come from applying the
 * operations to a sequential register per key in linearization-point order.
 */
function generateHistory(rng: Rng, options: GenerateOptions): KvOp[] {
  const clientTimes = new Array<number>(options.clientCount).fill(0);
  const writtenByKey = new Map<string, string[]>();
  const planned: { op: KvOp; pointTime: number; applies: boolean }[] = [];
  for (let i = 0; i < options.opCount; i++) {
    const clientId = i % options.clientCount;
    const key = `k${rng.int(options.keyCount)}`;
    const written = writtenByKey.get(key) ?? [];
    writtenByKey.set(key, written);
    const callTime = (clientTimes[clientId] ?? 0) + rng.int(5);
    const durationMs = 1 + rng.int(30);
    const returnTime = callTime + durationMs;
    clientTimes[clientId] = returnTime;
    // Values are unique, so a read's value names exactly one write.
    const value = `v${i}`;
    const roll = rng.int(10);
    let input: KvInput;
    if (roll < 4) input = { kind: 'get', key };
    else if (roll < 7) input = { kind: 'put', key, value };
    else if (roll < 8) input = { kind: 'delete', key };
    else {
      // Expect one of the key's recent values (or absence), so that some cas succeed.
      const recent = written.slice(-3);
      const expected = recent.length === 0 || rng.chance(0.3) ? null : rng.pick(recent);
      input = { kind: 'cas', key, expected, value };
    }
    if (input.kind === 'put' || input.kind === 'cas') written.push(value);
    const unknown = rng.chance(options.unknownRate);
    planned.push({
      op: { clientId, callTime, returnTime: unknown ? UNKNOWN : returnTime, input, output: { kind: 'put' } },
      // In [callTime, returnTime), and distinct: the fractional part breaks ties.
      pointTime: callTime + rng.int(durationMs) + i / (options.opCount + 1),
      applies: !unknown || rng.chance(0.5),
    });
  }
  const byPoint = planned.slice().sort((a, b) => a.pointTime - b.pointTime);
  const registers = new Map<string, string | null>();
  for (const { op, applies } of byPoint) {
    if (!applies) continue; // an unknown-outcome operation that never took effect
    const state = registers.get(op.input.key) ?? null;
    switch (op.input.kind) {
      case 'get':
        op.output = { kind: 'get', value: state };
        break;
      case 'put':
        op.output = { kind: 'put' };
        registers.set(op.input.key, op.input.value);
        break;
      case 'delete':
        op.output = { kind: 'delete' };
        registers.set(op.input.key, null);
        break;
      case 'cas': {
        const succeeded = state === op.input.expected;
        op.output = { kind: 'cas', succeeded };
        if (succeeded) registers.set(op.input.key, op.input.value);
        break;
      }
    }
  }
  return planned.map(({ op }) => op);
}

/**
 * Finds a completed read and a value it certainly cannot return: one written by a completed put
 * that was overwritten by another completed put or delete before the read was called.
 */
function findStaleValue(ops: readonly KvOp[]): { readIndex: number; staleValue: string } | undefined {
  for (let r = 0; r < ops.length; r++) {
    const read = ops[r] as KvOp;
    if (read.input.kind !== 'get' || read.returnTime === UNKNOWN) continue;
    for (const overwrite of ops) {
      if (overwrite.input.key !== read.input.key || overwrite.returnTime >= read.callTime) continue;
      if (overwrite.input.kind !== 'put' && overwrite.input.kind !== 'delete') continue;
      for (const write of ops) {
        if (write.input.kind !== 'put' || write.input.key !== read.input.key) continue;
        if (write.returnTime < overwrite.callTime) return { readIndex: r, staleValue: write.input.value };
      }
    }
  }
  return undefined;
}

function withReadOutput(ops: readonly KvOp[], index: number, value: string | null): KvOp[] {
  return ops.map((op, i) => (i === index ? { ...op, output: { kind: 'get', value } } : op));
}

test('randomized linearizable histories are accepted, and a corrupted read is rejected', () => {
  for (let seed = 1; seed <= 40; seed++) {
    const rng = new Rng(seed * 7919);
    const ops = generateHistory(rng, { opCount: 120, keyCount: 3, clientCount: 4, unknownRate: 0.1 });
    assert.deepEqual(check(ops), { result: 'ok' }, `seed ${seed}`);

    const stale = findStaleValue(ops);
    assert.ok(stale, `seed ${seed}: the history should contain a read with a stale candidate`);
    const staleResult = check(withReadOutput(ops, stale.readIndex, stale.staleValue));
    assert.equal(staleResult.result, 'illegal', `seed ${seed}: stale read accepted`);

    const readIndex = ops.findIndex((op) => op.input.kind === 'get' && op.returnTime !== UNKNOWN);
    assert.equal(check(withReadOutput(ops, readIndex, 'never written')).result, 'illegal', `seed ${seed}`);
  }
});

/**
 * A reference checker by exhaustive search: any unlinearized operation may go next unless some
 * other unlinearized completed operation returned strictly before it was called; unknown-outcome
 * operations may be skipped. Only for tiny histories.
 */
function bruteForceLinearizable(ops: readonly KvOp[]): boolean {
  const used = new Array<boolean>(ops.length).fill(false);
  const search = (state: string | null): boolean => {
    if (ops.every((op, i) => used[i] || op.returnTime === UNKNOWN)) return true;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i] as KvOp;
      if (used[i]) continue;
      const blocked = ops.some((other, j) => j !== i && !used[j] && other.returnTime < op.callTime);
      if (blocked) continue;
      const { ok, next } = kvModel.step(state, op.input, op.output);
      if (!ok && op.returnTime !== UNKNOWN) continue;
      used[i] = true;
      if (search(next)) return true;
      used[i] = false;
    }
    return false;
  };
  return search(null);
}

/** A small random history on one key with arbitrary (often illegal) outputs. */
function randomTinyHistory(rng: Rng): KvOp[] {
  const values = ['a', 'b', 'c'];
  const ops: KvOp[] = [];
  const opCount = 1 + rng.int(6);
  for (let i = 0; i < opCount; i++) {
    const callTime = rng.int(20);
    const returnTime = rng.chance(0.15) ? UNKNOWN : callTime + rng.int(10);
    const roll = rng.int(10);
    const valueOrNull = () => (rng.chance(0.25) ? null : rng.pick(values));
    if (roll < 4) ops.push(get(i, callTime, returnTime, 'x', valueOrNull()));
    else if (roll < 7) ops.push(put(i, callTime, returnTime, 'x', rng.pick(values)));
    else if (roll < 8) ops.push(del(i, callTime, returnTime, 'x'));
    else ops.push(cas(i, callTime, returnTime, 'x', valueOrNull(), rng.pick(values), rng.chance(0.5)));
  }
  return ops;
}

test('agrees with exhaustive search on small random histories', () => {
  const rng = new Rng(20240611);
  let accepted = 0;
  let rejected = 0;
  for (let trial = 0; trial < 3000; trial++) {
    const ops = randomTinyHistory(rng);
    const expected = bruteForceLinearizable(ops);
    const result = check(ops);
    assert.equal(result.result, expected ? 'ok' : 'illegal', `trial ${trial}: ${JSON.stringify(ops)}`);
    if (expected) accepted++;
    else rejected++;
  }
  // Both verdicts must be well represented, or the comparison proves little.
  assert.ok(accepted > 300 && rejected > 300, `accepted ${accepted}, rejected ${rejected}`);
});

test('2,000 operations on 10 keys with concurrency 5 fit the default step budget', () => {
  const ops = generateHistory(new Rng(424242), { opCount: 2000, keyCount: 10, clientCount: 5, unknownRate: 0.05 });
  assert.deepEqual(check(ops), { result: 'ok' });
  const stale = findStaleValue(ops);
  assert.ok(stale);
  assert.equal(check(withReadOutput(ops, stale.readIndex, stale.staleValue)).result, 'illegal');
});
