import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Packr } from 'msgpackr';
import {
  DEFAULT_KV_LIMITS,
  decodeCommand,
  encodeCommand,
  evaluateCompare,
  keyFromBytes,
  KvError,
  resolveLimits,
  utf8ByteLength,
  validateCommand,
  validateKey,
} from '../../src/kv/commands.ts';
import type { Command, Compare, CompareOp, CompareSubject, CompareTarget, Op } from '../../src/kv/commands.ts';
import { assertKvError, bytes, plain, xorshift } from './helpers.ts';

const limits = DEFAULT_KV_LIMITS;
// Packs arbitrary wire objects, to forge payloads that encodeCommand would never write.
const forge = new Packr({ useRecords: false, mapsAsObjects: true });

function puts(n: number, prefix = 'k'): Op[] {
  return Array.from({ length: n }, (_, i) => ({ op: 'put' as const, key: `${prefix}${i}`, value: bytes('v') }));
}

function compares(n: number): Compare[] {
  return Array.from({ length: n }, (_, i) => ({ key: `c${i}`, target: 'version' as const, op: '==' as const, value: 0 }));
}

// --------------------------------------------------------------------------------------------
// Limits

test('default limits are 4096-byte keys, 1 MiB values, 128 txn ops', () => {
  assert.deepEqual({ ...DEFAULT_KV_LIMITS }, { keyBytesMax: 4096, valueBytesMax: 1048576, txnOpsMax: 128 });
  assert.deepEqual({ ...resolveLimits({ keyBytesMax: 10 }) }, { keyBytesMax: 10, valueBytesMax: 1048576, txnOpsMax: 128 });
  assert.throws(() => resolveLimits({ keyBytesMax: 0 }), RangeError);
  assert.throws(() => resolveLimits({ txnOpsMax: 1.5 }), RangeError);
});

test('key at keyBytesMax is accepted, one byte over is CHORUS_KEY_TOO_LARGE', () => {
  validateCommand({ kind: 'put', key: 'k'.repeat(4096), value: bytes('') }, limits);
  assertKvError(() => validateCommand({ kind: 'put', key: 'k'.repeat(4097), value: bytes('') }, limits), 'CHORUS_KEY_TOO_LARGE');
  // Bytes, not characters: 1024 four-byte characters fill the limit exactly.
  validateCommand({ kind: 'delete', key: '😀'.repeat(1024) }, limits);
  assertKvError(() => validateCommand({ kind: 'delete', key: `${'😀'.repeat(1024)}a` }, limits), 'CHORUS_KEY_TOO_LARGE');
  validateCommand({ kind: 'delete', key: 'é'.repeat(2048) }, limits);
  assertKvError(() => validateCommand({ kind: 'delete', key: `${'é'.repeat(2048)}x` }, limits), 'CHORUS_KEY_TOO_LARGE');
  // Configurable.
  const small = resolveLimits({ keyBytesMax: 3 });
  validateKey('abc', small);
  assertKvError(() => validateKey('abcd', small), 'CHORUS_KEY_TOO_LARGE');
  assertKvError(() => validateKey('aé', resolveLimits({ keyBytesMax: 2 })), 'CHORUS_KEY_TOO_LARGE');
});

test('value at valueBytesMax is accepted, one byte over is CHORUS_VALUE_TOO_LARGE', () => {
  validateCommand({ kind: 'put', key: 'k', value: new Uint8Array(1048576) }, limits);
  assertKvError(() => validateCommand({ kind: 'put', key: 'k', value: new Uint8Array(1048577) }, limits), 'CHORUS_VALUE_TOO_LARGE');
  const small = resolveLimits({ valueBytesMax: 4 });
  validateCommand({ kind: 'put', key: 'k', value: new Uint8Array(4) }, small);
  assertKvError(() => validateCommand({ kind: 'put', key: 'k', value: new Uint8Array(5) }, small), 'CHORUS_VALUE_TOO_LARGE');
  // Inside a txn: put values and value comparisons alike.
  assertKvError(
    () => validateCommand({ kind: 'txn', compare: [], success: [{ op: 'put', key: 'k', value: new Uint8Array(5) }], failure: [] }, small),
    'CHORUS_VALUE_TOO_LARGE',
  );
  assertKvError(
    () => validateCommand({ kind: 'txn', compare: [{ key: 'k', target: 'value', op: '==', value: new Uint8Array(5) }], success: [], failure: [] }, small),
    'CHORUS_VALUE_TOO_LARGE',
  );
  // An empty value is a value.
  validateCommand({ kind: 'put', key: 'k', value: new Uint8Array(0) }, limits);
});

test('txn at txnOpsMax ops per branch and compares is accepted, one more is CHORUS_BAD_REQUEST', () => {
  validateCommand({ kind: 'txn', compare: compares(128), success: puts(128), failure: puts(128) }, limits);
  assertKvError(() => validateCommand({ kind: 'txn', compare: compares(129), success: [], failure: [] }, limits), 'CHORUS_BAD_REQUEST');
  assertKvError(() => validateCommand({ kind: 'txn', compare: [], success: puts(129), failure: [] }, limits), 'CHORUS_BAD_REQUEST');
  assertKvError(() => validateCommand({ kind: 'txn', compare: [], success: [], failure: puts(129) }, limits), 'CHORUS_BAD_REQUEST');
  const small = resolveLimits({ txnOpsMax: 2 });
  validateCommand({ kind: 'txn', compare: compares(2), success: puts(2), failure: puts(2) }, small);
  assertKvError(() => validateCommand({ kind: 'txn', compare: [], success: puts(3), failure: [] }, small), 'CHORUS_BAD_REQUEST');
});

// --------------------------------------------------------------------------------------------
// Keys

test('empty, non-string and lone-surrogate keys are CHORUS_BAD_KEY', () => {
  assertKvError(() => validateCommand({ kind: 'put', key: '', value: bytes('v') }, limits), 'CHORUS_BAD_KEY');
  assertKvError(() => validateCommand({ kind: 'delete', key: 42 }, limits), 'CHORUS_BAD_KEY');
  assertKvError(() => validateCommand({ kind: 'delete' }, limits), 'CHORUS_BAD_KEY');
  for (const key of ['\ud800', 'a\udc00b', 'ab\ud83d', '\ude00\ud83d']) {
    assertKvError(() => validateKey(key, limits), 'CHORUS_BAD_KEY');
  }
  // Valid surrogate pairs, NUL and the BOM are ordinary characters.
  for (const key of ['😀', 'a\u0000b', '\ufeffx', 'a/b/c', '%_*']) assert.equal(validateKey(key, limits), key);
  // Keys inside txns are checked too.
  assertKvError(() => validateCommand({ kind: 'txn', compare: [], success: [{ op: 'get', key: '' }], failure: [] }, limits), 'CHORUS_BAD_KEY');
  assertKvError(
    () => validateCommand({ kind: 'txn', compare: [{ key: '\ud800', target: 'version', op: '==', value: 1 }], success: [], failure: [] }, limits),
    'CHORUS_BAD_KEY',
  );
});

test('utf8ByteLength counts UTF-8 bytes and flags lone surrogates', () => {
  assert.equal(utf8ByteLength(''), 0);
  assert.equal(utf8ByteLength('a\u0000'), 2);
  assert.equal(utf8ByteLength('é'), 2);
  assert.equal(utf8ByteLength('€'), 3);
  assert.equal(utf8ByteLength('😀'), 4);
  assert.equal(utf8ByteLength('a\ud800'), -1);
  assert.equal(utf8ByteLength('\udfff'), -1);
  assert.equal(utf8ByteLength('x'.repeat(10_000), 5), 6, 'stops counting past the bound');
});

test('keyFromBytes accepts valid UTF-8 and rejects the rest', () => {
  assert.equal(keyFromBytes(bytes('a/é/😀')), 'a/é/😀');
  // The BOM is kept: stripping it would make two byte keys collide.
  assert.equal(keyFromBytes(new Uint8Array([0xef, 0xbb, 0xbf, 0x61])), '\ufeffa');
  const invalid = [
    [0xff], // never valid
    [0x61, 0xc3], // truncated two-byte sequence
    [0xc0, 0xaf], // overlong '/'
    [0xe0, 0x80, 0xaf], // overlong '/'
    [0xed, 0xa0, 0x80], // an encoded surrogate
    [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
    [0x80], // lone continuation byte
  ];
  for (const sequence of invalid) assertKvError(() => keyFromBytes(new Uint8Array(sequence)), 'CHORUS_BAD_KEY');
  assertKvError(() => keyFromBytes(new Uint8Array(0)), 'CHORUS_BAD_KEY');
  assert.equal(keyFromBytes(new Uint8Array(4096).fill(0x61)).length, 4096);
  assertKvError(() => keyFromBytes(new Uint8Array(4097).fill(0x61)), 'CHORUS_KEY_TOO_LARGE');
  assertKvError(() => keyFromBytes(bytes('abcd'), resolveLimits({ keyBytesMax: 3 })), 'CHORUS_KEY_TOO_LARGE');
});

// --------------------------------------------------------------------------------------------
// Malformed commands

test('malformed commands are CHORUS_BAD_REQUEST', () => {
  const malformed: unknown[] = [
    null,
    'put',
    [],
    { kind: 'nope', key: 'k' },
    { kind: 'config', voters: [] }, // not a kind yet
    { key: 'k', value: bytes('v') },
    { kind: 'put', key: 'k' }, // no value
    { kind: 'put', key: 'k', value: 'text' }, // value must be bytes
    { kind: 'put', key: 'k', value: [1, 2] },
    { kind: 'txn', success: [], failure: [] }, // no compare
    { kind: 'txn', compare: [], success: [] },
    { kind: 'txn', compare: {}, success: [], failure: [] },
    { kind: 'txn', compare: [null], success: [], failure: [] },
    { kind: 'txn', compare: [{ key: 'k', target: 'lease', op: '==', value: 1 }], success: [], failure: [] },
    { kind: 'txn', compare: [{ key: 'k', target: 'version', op: '>=', value: 1 }], success: [], failure: [] },
    { kind: 'txn', compare: [{ key: 'k', target: 'version', op: '==', value: bytes('1') }], success: [], failure: [] },
    { kind: 'txn', compare: [{ key: 'k', target: 'version', op: '==', value: 1.5 }], success: [], failure: [] },
    { kind: 'txn', compare: [{ key: 'k', target: 'modRevision', op: '==', value: 2 ** 53 }], success: [], failure: [] },
    { kind: 'txn', compare: [{ key: 'k', target: 'value', op: '==', value: 1 }], success: [], failure: [] },
    { kind: 'txn', compare: [], success: [{ op: 'range', key: 'k' }], failure: [] },
    { kind: 'txn', compare: [], success: [{ op: 'put', key: 'k' }], failure: [] },
    // A branch writes a key at most once.
    { kind: 'txn', compare: [], success: [{ op: 'put', key: 'k', value: bytes('1') }, { op: 'delete', key: 'k' }], failure: [] },
    { kind: 'txn', compare: [], success: [], failure: [{ op: 'put', key: 'k', value: bytes('1') }, { op: 'put', key: 'k', value: bytes('2') }] },
  ];
  for (const cmd of malformed) assertKvError(() => validateCommand(cmd, limits), 'CHORUS_BAD_REQUEST');
  // Reading a key it writes, and writing the same key in both branches, are fine.
  validateCommand(
    {
      kind: 'txn',
      compare: [],
      success: [{ op: 'get', key: 'k' }, { op: 'put', key: 'k', value: bytes('1') }, { op: 'get', key: 'k' }],
      failure: [{ op: 'delete', key: 'k' }],
    },
    limits,
  );
});

test('the unknown-kind message stays short whatever the kind', () => {
  try {
    validateCommand({ kind: 'x'.repeat(100_000) }, limits);
    assert.fail('expected a KvError');
  } catch (error) {
    assert.ok(error instanceof KvError);
    assert.ok(error.message.length < 100, error.message);
  }
});

// --------------------------------------------------------------------------------------------
// Encoding

const samples: Command[] = [
  { kind: 'put', key: 'a', value: bytes('hello') },
  { kind: 'put', key: 'a/é/😀\u0000\ufeff', value: new Uint8Array([0, 255, 1, 254]) },
  { kind: 'put', key: 'empty', value: new Uint8Array(0) },
  { kind: 'put', key: 'big', value: new Uint8Array(1048576).fill(7) },
  { kind: 'delete', key: 'gone' },
  {
    kind: 'txn',
    compare: [
      { key: 'a', target: 'value', op: '==', value: bytes('x') },
      { key: 'b', target: 'version', op: '>', value: 0 },
      { key: 'c', target: 'modRevision', op: '<', value: 2 ** 40 },
      { key: 'd', target: 'createRevision', op: '!=', value: -3 },
    ],
    success: [
      { op: 'put', key: 'a', value: bytes('y') },
      { op: 'delete', key: 'b' },
      { op: 'get', key: 'c' },
    ],
    failure: [{ op: 'get', key: 'a' }],
  },
  { kind: 'txn', compare: [], success: [], failure: [] },
];

test('encode then decode gives the command back', () => {
  for (const cmd of samples) {
    validateCommand(cmd, limits);
    const decoded = decodeCommand(encodeCommand(cmd));
    assert.deepEqual(plain(decoded), plain(cmd));
    validateCommand(decoded, limits);
  }
});

test('encodeCommand refuses keys that have no UTF-8 form instead of altering them', () => {
  assertKvError(() => encodeCommand({ kind: 'delete', key: 'a\ud800' }), 'CHORUS_BAD_KEY');
});

test('decodeCommand accepts a plain Uint8Array as well as a Buffer', () => {
  const encoded = encodeCommand(samples[0]!);
  assert.deepEqual(plain(decodeCommand(new Uint8Array(encoded))), plain(samples[0]));
});

function assertBadCommand(payload: Uint8Array): void {
  assertKvError(() => decodeCommand(payload), 'CHORUS_BAD_COMMAND');
}

test('corrupt and foreign payloads are CHORUS_BAD_COMMAND', () => {
  assertBadCommand(new Uint8Array(0));
  assertBadCommand(new Uint8Array([0xc1])); // never used in MessagePack
  assertBadCommand(bytes('{"kind":"put"}'));
  assertBadCommand(forge.pack('put'));
  assertBadCommand(forge.pack(null));
  assertBadCommand(forge.pack([1, 2, 3]));
  assertBadCommand(forge.pack({ kind: 'nope', key: bytes('k') }));
  assertBadCommand(forge.pack({ kind: 'put', key: 'k', value: bytes('v') })); // key as str, not bin
  assertBadCommand(forge.pack({ kind: 'put', key: bytes('k'), value: 'v' }));
  assertBadCommand(forge.pack({ kind: 'put', key: new Uint8Array([0xff]), value: bytes('v') })); // invalid UTF-8 key
  assertBadCommand(forge.pack({ kind: 'txn', compare: [], success: [] }));
  assertBadCommand(forge.pack({ kind: 'txn', compare: [{ key: bytes('k'), target: 'version', op: '==', value: 'one' }], success: [], failure: [] }));
  assertBadCommand(forge.pack({ kind: 'txn', compare: [], success: [{ op: 'nope', key: bytes('k') }], failure: [] }));
  // A map whose field name is not valid UTF-8 (str 'kind' with one byte spoiled).
  const spoiled = forge.pack({ kind: 'delete', key: bytes('k') });
  const at = spoiled.indexOf(0x6b); // the 'k' of "kind"
  const copy = new Uint8Array(spoiled);
  copy[at] = 0xff;
  assertBadCommand(copy);
  // Trailing bytes and every truncation of a valid payload.
  const valid = encodeCommand(samples[5]!);
  assertBadCommand(new Uint8Array([...valid, 0]));
  for (let length = 0; length < valid.length; length++) assertBadCommand(valid.subarray(0, length));
  // Extension types (here a timestamp), which msgpackr would turn into objects.
  assertBadCommand(forge.pack({ kind: 'delete', key: new Date(0) }));
});

test('hostile structures fail cleanly, without deep recursion or huge allocations', () => {
  assertBadCommand(new Uint8Array(1_000_000).fill(0x91)); // a million nested one-item arrays
  assertBadCommand(new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff])); // array of 2^32-1 items, none present
  assertBadCommand(new Uint8Array([0xdf, 0xff, 0xff, 0xff, 0xff])); // map of 2^32-1 entries
  assertBadCommand(new Uint8Array([0xc6, 0xff, 0xff, 0xff, 0xff, 0])); // bin claiming 4 GiB
  assertBadCommand(new Uint8Array([0xdb, 0x7f, 0xff, 0xff, 0xff])); // str claiming 2 GiB
  // Nesting deeper than any command needs is refused even when well-formed.
  assertBadCommand(forge.pack({ kind: 'txn', compare: [{ key: bytes('k'), target: 'value', op: '==', value: [[[1]]] }], success: [], failure: [] }));
});

test('fuzzed payloads either decode to a well-typed command or fail with CHORUS_BAD_COMMAND', () => {
  const next = xorshift(20240601);
  const seeds = samples.filter((cmd) => cmd.kind !== 'put' || cmd.value.byteLength < 1000).map(encodeCommand);
  let decoded = 0;
  for (let round = 0; round < 5000; round++) {
    const seed = seeds[next() % seeds.length]!;
    const payload = new Uint8Array(seed);
    const flips = 1 + (next() % 4);
    for (let f = 0; f < flips; f++) payload[next() % payload.length] = next() & 0xff;
    let cmd: Command;
    try {
      cmd = decodeCommand(payload);
    } catch (error) {
      assert.ok(error instanceof KvError && error.code === 'CHORUS_BAD_COMMAND', `round ${round}: ${String(error)}`);
      continue;
    }
    decoded++;
    assert.ok(['put', 'delete', 'txn'].includes(cmd.kind));
    // Validation of whatever decoded only ever fails with a KvError.
    try {
      validateCommand(cmd, limits);
    } catch (error) {
      assert.ok(error instanceof KvError, `round ${round}: ${String(error)}`);
    }
  }
  assert.ok(decoded > 0, 'some mutations (e.g. of value bytes) still decode');
  // Random bytes, not derived from valid payloads.
  for (let round = 0; round < 2000; round++) {
    const payload = new Uint8Array(1 + (next() % 64)).map(() => next() & 0xff);
    try {
      decodeCommand(payload);
    } catch (error) {
      assert.ok(error instanceof KvError && error.code === 'CHORUS_BAD_COMMAND', `random ${round}: ${String(error)}`);
    }
  }
});

// --------------------------------------------------------------------------------------------
// Comparison semantics

test('comparisons follow etcd on present keys, with every target and operator', () => {
  const current: CompareSubject = { value: bytes('m'), createRevision: 2, modRevision: 5, version: 3 };
  const numeric: [CompareTarget, number][] = [['createRevision', 2], ['modRevision', 5], ['version', 3]];
  const expected: Record<CompareOp, [boolean, boolean, boolean]> = {
    // operand below, equal, above the stored number
    '==': [false, true, false],
    '!=': [true, false, true],
    '<': [false, false, true], // stored < operand
    '>': [true, false, false], // stored > operand
  };
  for (const [target, stored] of numeric) {
    for (const op of Object.keys(expected) as CompareOp[]) {
      [stored - 1, stored, stored + 1].forEach((value, i) => {
        assert.equal(evaluateCompare({ key: 'k', target, op, value }, current), expected[op][i], `${target} ${op} ${value}`);
      });
    }
  }
  // Values compare bytewise; a proper prefix sorts first.
  const valueOperands = [bytes('l'), bytes('m'), bytes('n')];
  for (const op of Object.keys(expected) as CompareOp[]) {
    valueOperands.forEach((value, i) => {
      assert.equal(evaluateCompare({ key: 'k', target: 'value', op, value }, current), expected[op][i], `value ${op} ${i}`);
    });
  }
  assert.equal(evaluateCompare({ key: 'k', target: 'value', op: '>', value: bytes('') }, current), true);
  assert.equal(evaluateCompare({ key: 'k', target: 'value', op: '<', value: bytes('ma') }, current), true);
  const high: CompareSubject = { ...current, value: new Uint8Array([0x80]) };
  assert.equal(evaluateCompare({ key: 'k', target: 'value', op: '>', value: new Uint8Array([0x7f, 0xff]) }, high), true, 'unsigned bytes');
  // An empty stored value is a value, unlike an absent key.
  const empty: CompareSubject = { ...current, value: new Uint8Array(0) };
  assert.equal(evaluateCompare({ key: 'k', target: 'value', op: '==', value: new Uint8Array(0) }, empty), true);
});

test('comparisons on an absent key see zero counters and no value', () => {
  const cases: [Compare, boolean][] = [
    [{ key: 'k', target: 'version', op: '==', value: 0 }, true],
    [{ key: 'k', target: 'version', op: '>', value: 0 }, false],
    [{ key: 'k', target: 'version', op: '<', value: 1 }, true],
    [{ key: 'k', target: 'version', op: '!=', value: 0 }, false],
    [{ key: 'k', target: 'createRevision', op: '==', value: 0 }, true],
    [{ key: 'k', target: 'createRevision', op: '<', value: 5 }, true],
    [{ key: 'k', target: 'modRevision', op: '==', value: 0 }, true],
    [{ key: 'k', target: 'modRevision', op: '>', value: -1 }, true],
    [{ key: 'k', target: 'value', op: '==', value: bytes('') }, false],
    [{ key: 'k', target: 'value', op: '==', value: bytes('x') }, false],
    [{ key: 'k', target: 'value', op: '!=', value: bytes('x') }, true],
    [{ key: 'k', target: 'value', op: '!=', value: bytes('') }, true],
    [{ key: 'k', target: 'value', op: '<', value: bytes('x') }, false],
    [{ key: 'k', target: 'value', op: '>', value: bytes('') }, false],
  ];
  for (const [c, want] of cases) assert.equal(evaluateCompare(c, undefined), want, `${c.target} ${c.op} ${String(c.value)}`);
});
