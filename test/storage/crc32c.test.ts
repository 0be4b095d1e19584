import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc32c, crc32cUpdate } from '../../src/storage/crc32c.ts';
import { pseudoRandomBytes } from './contracts.ts';

/** Bit-at-a-time CRC32C straight from the definition, to check the table-driven one against. */
function referenceCrc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

test('standard check value: crc32c("123456789") = 0xE3069283', () => {
  assert.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283);
});

test('iSCSI (RFC 3720 B.4) test vectors', () => {
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa, '32 zero bytes');
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43, '32 0xFF bytes');
  const ascending = Uint8Array.from({ length: 32 }, (_, i) => i);
  assert.equal(crc32c(ascending), 0x46dd794e, '32 ascending bytes');
  const descending = Uint8Array.from({ length: 32 }, (_, i) => 31 - i);
  assert.equal(crc32c(descending), 0x113fdb5c, '32 descending bytes');
});

test('the empty input has checksum 0', () => {
  assert.equal(crc32c(new Uint8Array(0)), 0);
});

test('agrees with the bitwise definition for every length and alignment up to 70 bytes', () => {
  const data = pseudoRandomBytes(80, 42);
  for (let start = 0; start < 8; start++) {
    for (let length = 0; start + length <= 78 && length <= 70; length++) {
      const slice = data.subarray(start, start + length);
      assert.equal(crc32c(slice), referenceCrc32c(slice), `start ${start}, length ${length}`);
      assert.equal(crc32c(data, start, start + length), referenceCrc32c(slice), `range form, start ${start}, length ${length}`);
    }
  }
});

test('incremental updates equal the checksum of the concatenation', () => {
  const data = pseudoRandomBytes(10_000, 9);
  const whole = crc32c(data);
  for (const split of [0, 1, 7, 8, 9, 4096, 9999, 10_000]) {
    assert.equal(crc32cUpdate(crc32c(data.subarray(0, split)), data.subarray(split)), whole, `split at ${split}`);
  }
  assert.equal(whole, referenceCrc32c(data));
});

test('a range outside the buffer is refused', () => {
  assert.throws(() => crc32c(new Uint8Array(4), 2, 5), RangeError);
  assert.throws(() => crc32c(new Uint8Array(4), 3, 2), RangeError);
});
