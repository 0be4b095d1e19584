// Unit tests of the wire pieces: frame splitting, codec, message validation, queue, backoff.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Message } from '../../src/core/raft/types.ts';
import { backoffDelayMs, jitterMs } from '../../src/transport/backoff.ts';
import { decodeOwnedPayload, decodePayload, encodeFrame, validateMessage } from '../../src/transport/codec.ts';
import { FrameDecoder } from '../../src/transport/frame-decoder.ts';
import { FrameQueue } from '../../src/transport/frame-queue.ts';
import { TransportError } from '../../src/transport/errors.ts';
import { append, heartbeat, pattern, snapshotChunk } from './helpers.ts';

const samples: Message[] = [
  heartbeat('a', 'b', 1),
  append('a', 'b', 2, [
    { index: 1, term: 1, type: 'normal', data: pattern(300, 1) },
    { index: 2, term: 1, type: 'config', config: { voters: ['a'], learners: ['b'] } },
  ]),
  snapshotChunk('a', 'b', pattern(5000, 2)),
  { type: 'PreVote', from: 'a', to: 'b', term: 1, lastIndex: 2, lastTerm: 1 },
  { type: 'Vote', from: 'a', to: 'b', term: 1, lastIndex: 2, lastTerm: 1, transfer: true },
  { type: 'VoteResp', from: 'b', to: 'a', term: 1, granted: false },
  { type: 'PreVoteResp', from: 'b', to: 'a', term: 1, granted: true },
  { type: 'AppendResp', from: 'b', to: 'a', term: 1, seq: 1, sentTick: 2, reject: true, index: 5, conflictTerm: 1, conflictIndex: 3, applied: 4 },
  { type: 'HeartbeatResp', from: 'b', to: 'a', term: 1, seq: 1, sentTick: 2, applied: 4 },
  { type: 'SnapshotResp', from: 'b', to: 'a', term: 1, seq: 1, sentTick: 2, snapshotIndex: 9, nextOffset: 100, done: false, reject: false },
  { type: 'TimeoutNow', from: 'a', to: 'b', term: 1 },
  { type: 'ReadIndex', from: 'b', to: 'a', term: 1, readId: 'r-1' },
  { type: 'ReadIndexResp', from: 'a', to: 'b', term: 1, readId: 'r-1', index: -1 },
];

test('every message type survives encode, split at any byte, decode and validation', () => {
  const stream = Buffer.concat(samples.map((m) => encodeFrame(m)));
  for (const step of [1, 2, 3, 5, 7, 64, 4096, stream.length]) {
    const decoded: unknown[] = [];
    const decoder = new FrameDecoder(1 << 20, (payload) => decoded.push(validateMessage(decodePayload(payload))));
    for (let at = 0; at < stream.length; at += step) decoder.push(stream.subarray(at, at + step));
    assert.deepStrictEqual(decoded, samples, `chunks of ${step} bytes`);
  }
});

test('a large snapshot chunk in an assembled frame is decoded without a copy; other bytes are copied', () => {
  const large = snapshotChunk('a', 'b', pattern(256 * 1024, 3));
  const small = snapshotChunk('a', 'b', pattern(1000, 4));
  // Entries are kept in the log long after their frame: they are always copied out.
  const entries = Array.from({ length: 4 }, (_, i) => ({ index: i + 1, term: 1, type: 'normal' as const, data: pattern(40_000, i) }));
  const largeAppend = append('a', 'b', 2, entries);
  const stream = Buffer.concat([encodeFrame(small), encodeFrame(large), encodeFrame(small), encodeFrame(largeAppend)]);
  for (const step of [64 * 1024, stream.length]) {
    const frames: { payload: Uint8Array; owned: boolean }[] = [];
    const decoder = new FrameDecoder(1 << 20, (payload, owned) => frames.push({ payload, owned }));
    for (let at = 0; at < stream.length; at += step) decoder.push(stream.subarray(at, at + step));
    assert.equal(frames.length, 4);
    // In one chunk, frames are views of it: not owned. Split over chunks, they are assembled.
    assert.equal(frames[1]!.owned, step !== stream.length, `chunks of ${step} bytes`);
    assert.equal(frames[3]!.owned, step !== stream.length, `chunks of ${step} bytes`);
    for (const { payload, owned } of frames.slice(0, 3)) {
      const message = validateMessage(owned ? decodeOwnedPayload(payload) : decodePayload(payload));
      assert.ok(message !== null && message.type === 'Snapshot');
      const sharesFrame = message.chunk.buffer === payload.buffer;
      assert.equal(sharesFrame, owned && payload.byteLength >= 64 * 1024, `chunks of ${step} bytes, ${payload.byteLength}-byte frame`);
    }
    assert.deepStrictEqual(validateMessage(decodeOwnedPayload(frames[1]!.payload)), large);
    const appended = validateMessage(decodeOwnedPayload(frames[3]!.payload));
    assert.ok(appended !== null && appended.type === 'Append');
    assert.deepStrictEqual(appended, largeAppend);
    for (const entry of appended.entries) assert.notEqual(entry.data!.buffer, frames[3]!.payload.buffer, 'an entry is copied out of its frame');
  }
});

test('the frame decoder rejects an oversized header even when it arrives byte by byte', () => {
  const frames: Uint8Array[] = [];
  const decoder = new FrameDecoder(10, (payload) => frames.push(payload));
  decoder.push(new Uint8Array([0, 0]));
  assert.throws(() => decoder.push(new Uint8Array([0, 11])), (err: unknown) => err instanceof TransportError && err.code === 'CHORUS_FRAME_TOO_LARGE');
  decoder.push(new Uint8Array([0, 0, 0, 1, 5]));
  assert.equal(frames.length, 0, 'a stopped decoder ignores further input');
});

test('the frame decoder handles empty frames and stop() from inside the callback', () => {
  const frames: number[] = [];
  const decoder = new FrameDecoder(10, (payload) => {
    frames.push(payload.length);
    if (frames.length === 2) decoder.stop();
  });
  decoder.push(new Uint8Array([0, 0, 0, 0, 0, 0, 0, 1, 7, 0, 0, 0, 1, 8]));
  assert.deepEqual(frames, [0, 1]);
});

test('undecodable payloads raise CHORUS_FRAME_MALFORMED', () => {
  for (const bytes of [[], [0xc1, 0xc1], [0xd9], [0x92, 0x01], [0x01, 0x02]]) {
    assert.throws(() => decodePayload(new Uint8Array(bytes)), (err: unknown) => err instanceof TransportError && err.code === 'CHORUS_FRAME_MALFORMED');
  }
});

test('validateMessage rejects wrong shapes', () => {
  const bad: unknown[] = [
    null,
    42,
    [],
    { type: 'Heartbeat', from: 'a', to: 'b', term: 1, seq: 1, sentTick: 1 },
    { type: 'Heartbeat', from: 'a', to: 'b', term: '1', seq: 1, sentTick: 1, commit: 1 },
    { type: 'Nope', from: 'a', to: 'b', term: 1 },
    { type: 'Append', from: 'a', to: 'b', term: 1, seq: 1, sentTick: 1, prevIndex: 1, prevTerm: 1, commit: 1, entries: [{ index: 1, term: 1, type: 'normal', data: 'text' }] },
    { type: 'Append', from: 'a', to: 'b', term: 1, seq: 1, sentTick: 1, prevIndex: 1, prevTerm: 1, commit: 1, entries: {} },
    { ...snapshotChunk('a', 'b', new Uint8Array(1)), chunk: [1] },
    { type: 'Vote', from: 'a', to: 'b', term: 1, lastIndex: 1, lastTerm: 1 },
    { type: 'ReadIndexResp', from: 'a', to: 'b', term: 1, readId: 'r', index: 1.5 },
  ];
  for (const value of bad) assert.equal(validateMessage(value), null, JSON.stringify(value));
});

test('encoded frames stay intact while later frames are encoded', () => {
  const first = encodeFrame(heartbeat('a', 'b', 1));
  const copy = Buffer.from(first);
  for (let i = 0; i < 10_000; i += 1) encodeFrame(heartbeat('a', 'b', i));
  encodeFrame(snapshotChunk('a', 'b', pattern(2 * 1024 * 1024, 1)));
  assert.deepEqual(first, copy);
  assert.equal(first.readUInt32BE(0), first.length - 4);
});

test('the frame queue keeps order and byte totals across compaction', () => {
  const queue = new FrameQueue();
  for (let i = 0; i < 5000; i += 1) queue.push(Buffer.alloc((i % 7) + 1, i & 0xff));
  let expectedBytes = 0;
  for (let i = 0; i < 5000; i += 1) expectedBytes += (i % 7) + 1;
  assert.equal(queue.bytes, expectedBytes);
  let next = 0;
  while (queue.length > 0) {
    const frame = queue.peek(0);
    assert.ok(frame);
    assert.equal(frame.length, (next % 7) + 1);
    assert.equal(frame[0], next & 0xff);
    expectedBytes -= frame.length;
    queue.discard(1);
    next += 1;
    assert.equal(queue.bytes, expectedBytes);
  }
  assert.equal(next, 5000);
});

test('backoff grows exponentially to the cap, jittered within [base/2, base]', () => {
  const low = () => 0;
  const high = () => 0.999_999;
  assert.equal(backoffDelayMs(0, 100, 5000, low), 50);
  assert.equal(backoffDelayMs(0, 100, 5000, high), 100);
  assert.equal(backoffDelayMs(3, 100, 5000, high), 800);
  assert.equal(backoffDelayMs(10, 100, 5000, high), 5000);
  assert.equal(backoffDelayMs(1000, 100, 5000, low), 2500);
  assert.equal(jitterMs(1, low), 1, 'never zero');
});
