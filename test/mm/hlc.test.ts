import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ClockDriftError, Hlc, LOGICAL_MAX, compareStamps, decodeStamp, encodeStamp, type HlcStamp } from '../../src/core/mm/hlc.ts';
import { MmError } from '../../src/core/mm/errors.ts';

test('hlc: now() is strictly increasing even when physical time stalls or goes back', () => {
  const clock = new Hlc('a', 1000);
  const s1 = clock.now(5000);
  const s2 = clock.now(5000);
  const s3 = clock.now(4000);
  const s4 = clock.now(6000);
  assert.deepEqual(s1, { physicalMs: 5000, logical: 0, member: 'a' });
  assert.deepEqual(s2, { physicalMs: 5000, logical: 1, member: 'a' });
  assert.deepEqual(s3, { physicalMs: 5000, logical: 2, member: 'a' });
  assert.deepEqual(s4, { physicalMs: 6000, logical: 0, member: 'a' });
});

test('hlc: update() moves past a remote stamp, so the next local event is greater', () => {
  const clock = new Hlc('a', 1000);
  clock.now(5000);
  const remote: HlcStamp = { physicalMs: 5500, logical: 7, member: 'z' };
  clock.update(remote, 5000);
  const next = clock.now(5000);
  assert.ok(compareStamps(next, remote) > 0);
  assert.deepEqual(next, { physicalMs: 5500, logical: 9, member: 'a' });
  // Equal physical parts: the logical part takes the max of both plus one.
  const other = new Hlc('b', 1000);
  other.now(100);
  other.update({ physicalMs: 100, logical: 4, member: 'c' }, 50);
  assert.deepEqual(other.last, { physicalMs: 100, logical: 5, member: 'b' });
  // A remote stamp behind the local clock changes only the logical part.
  other.update({ physicalMs: 10, logical: 99, member: 'c' }, 50);
  assert.deepEqual(other.last, { physicalMs: 100, logical: 6, member: 'b' });
});

test('hlc: a remote stamp beyond maxClockDriftMs is refused with CHORUS_CLOCK_DRIFT and changes nothing', () => {
  const clock = new Hlc('a', 1000);
  clock.now(10_000);
  const before = clock.last;
  const far: HlcStamp = { physicalMs: 11_001, logical: 0, member: 'b' };
  assert.throws(
    () => clock.update(far, 10_000),
    (e: unknown) => e instanceof ClockDriftError && e instanceof MmError && e.code === 'CHORUS_CLOCK_DRIFT' && /1001ms ahead/.test(e.message),
  );
  assert.deepEqual(clock.last, before);
  // Exactly at the bound is accepted; once local time catches up the far stamp is too.
  clock.update({ physicalMs: 11_000, logical: 0, member: 'b' }, 10_000);
  clock.update(far, 10_500);
  assert.equal(clock.last.physicalMs, 11_001);
});

test('hlc: the logical counter borrows the next millisecond instead of overflowing', () => {
  const clock = new Hlc('a', 1000, { physicalMs: 7, logical: LOGICAL_MAX, member: 'a' });
  assert.deepEqual(clock.now(7), { physicalMs: 8, logical: 0, member: 'a' });
});

test('hlc: a clock restored from a durable stamp never issues a stamp at or below it', () => {
  const durable: HlcStamp = { physicalMs: 9000, logical: 3, member: 'a' };
  const clock = new Hlc('a', 1000, durable);
  assert.ok(compareStamps(clock.now(1), durable) > 0);
});

test('hlc: the encoding sorts exactly as the stamps compare, and round-trips', () => {
  const stamp = fc.record({
    physicalMs: fc.integer({ min: 0, max: 2 ** 48 - 1 }),
    logical: fc.integer({ min: 0, max: LOGICAL_MAX }),
    member: fc.constantFrom('a', 'b', 'n1', 'n10', 'n2', 'Z', 'node-7.x'),
  });
  fc.assert(
    fc.property(stamp, stamp, (a, b) => {
      const ea = encodeStamp(a);
      const eb = encodeStamp(b);
      assert.deepEqual(decodeStamp(ea), { ...a });
      assert.equal(Math.sign(compareStamps(a, b)), Math.sign(ea < eb ? -1 : ea > eb ? 1 : 0));
    }),
    { numRuns: 500 },
  );
  assert.throws(() => decodeStamp('nope'), (e: unknown) => e instanceof MmError);
});
