// The binary client protocol (docs/api.md, "Binary protocol") against bad input and faults, on
// one shared in-process three-member cluster: seeded fuzzing of well-framed requests (each
// readable id answered exactly once, bad shapes 400, the connection goes on) and of unreadable
// frames (answered [0, 400] and closed), frames split into single bytes, limits compared with
// the HTTP API for the same request, clients that do not read their answers, connections that
// close mid-frame or with requests in flight, 200 connections at once, keys that are awkward in
// URLs forwarded from a follower, and writes sent to a follower while the leader is down.
//
// Set CHORUS_FUZZ_SEED to replay a run; every fuzz assertion prints the seed and the case.
// Subtests marked todo document bugs found by this file (see their todo text).
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { BinaryRequestError, decodeBinaryPayload, encodeBinaryFrame, parseBinaryRequest } from '../../src/shared/binary-protocol.ts';
import { encodeKeyPath } from '../../src/api/codec.ts';
import { ChorusBinaryClient, ChorusClient, ChorusClientError } from '../../src/client/index.ts';
import type { ChorusNode } from '../../src/server/chorus-node.ts';
import { FrameDecoder } from '../../src/transport/frame-decoder.ts';
import { freePorts, HOST, http, sleep, startCluster, waitFor } from './helpers.ts';
import type { NodeOverrides, TestCluster } from './helpers.ts';

const SEED = Number(process.env['CHORUS_FUZZ_SEED'] ?? 0x5eed_2024);
/** The members' request deadline (short, so that writes to a leaderless follower end soon). */
const REQUEST_TIMEOUT_MS = 2000;
/** Forwards in flight per member (small, so that a leak of forwarding slots shows). */
const FORWARDS_PENDING_MAX = 8;

/** mulberry32: a small seeded PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Answer = [number, number, Record<string, unknown>];

async function binaryCluster(t: TestContext, overrides: NodeOverrides = {}): Promise<{ cluster: TestCluster; binaryPorts: Map<string, string> }> {
  const ports = await freePorts(3);
  const cluster = await startCluster(t, 3, overrides);
  const binaryPorts = new Map<string, string>();
  // Restart each member with a binary port (startCluster's overrides are shared by all members).
  for (const [i, id] of cluster.spec.ids.entries()) {
    binaryPorts.set(id, `${HOST}:${ports[i]!}`);
    await cluster.stop(id);
    await cluster.start(id, { listenBinary: binaryPorts.get(id)! });
  }
  return { cluster, binaryPorts };
}

interface Raw {
  readonly socket: net.Socket;
  readonly answers: Answer[];
  readonly closed: Promise<void>;
  isClosed: () => boolean;
}

/** A raw connection: sends bytes as given and collects the decoded answers. */
async function rawConnection(address: string, options: { paused?: boolean; allowHalfOpen?: boolean } = {}): Promise<Raw> {
  const split = address.lastIndexOf(':');
  const socket = net.connect({ host: address.slice(0, split), port: Number(address.slice(split + 1)), allowHalfOpen: options.allowHalfOpen ?? false });
  socket.setNoDelay(true);
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const answers: Answer[] = [];
  const decoder = new FrameDecoder(1 << 27, (payload) => answers.push(decodeBinaryPayload(payload) as Answer));
  let closed = false;
  const closedPromise = new Promise<void>((resolve) => socket.once('close', () => {
    closed = true;
    resolve();
  }));
  socket.on('error', () => undefined);
  socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  if (options.paused === true) socket.pause();
  return { socket, answers, closed: closedPromise, isClosed: () => closed };
}

/** A frame from raw payload bytes. */
function rawFrame(payload: Uint8Array): Buffer {
  const frame = Buffer.alloc(4 + payload.length);
  frame.writeUInt32BE(payload.length, 0);
  frame.set(payload, 4);
  return frame;
}

/** What the contract says the member does with one frame: answer it by its id (with 400 and
 * `code` for a bad shape), or answer [0, 400] and close. Predicted with the protocol's own
 * decoder, so that only the server's behaviour is under test. */
type Prediction = { kind: 'answer'; id: number; code?: string } | { kind: 'close' };
function predict(payload: Uint8Array): Prediction {
  let decoded: unknown;
  try {
    decoded = decodeBinaryPayload(Uint8Array.from(payload));
  } catch {
    return { kind: 'close' };
  }
  try {
    const request = parseBinaryRequest(decoded, Uint8Array.from(payload));
    return { kind: 'answer', id: request.id };
  } catch (error) {
    if (error instanceof BinaryRequestError && error.id !== 0) return { kind: 'answer', id: error.id, code: error.code };
    // A readable id whose request makes the parser throw something else is a bug of its own
    // (see the todo subtest on a BigInt op); the fuzzer avoids generating those.
    if (Array.isArray(decoded) && typeof decoded[0] === 'number' && Number.isSafeInteger(decoded[0]) && decoded[0] >= 1) return { kind: 'answer', id: decoded[0] };
    return { kind: 'close' };
  }
}

function describe(value: unknown): string {
  try {
    return JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? `<bin ${v.length}>` : typeof v === 'string' && v.length > 60 ? `${v.slice(0, 60)}...(${v.length})` : v))?.slice(0, 300) ?? String(value);
  } catch {
    return String(value);
  }
}

function isClientError(code: string, status?: number): (e: unknown) => boolean {
  return (e: unknown) => e instanceof ChorusClientError && e.code === code && (status === undefined || e.status === status);
}

async function healthy(node: ChorusNode, what: string): Promise<void> {
  const res = await http('GET', `${node.clientUrl}/healthz`);
  assert.equal(res.status, 200, `${what}: /healthz of ${node.id}`);
  const client = new ChorusBinaryClient({ endpoint: node.binaryAddress!, timeoutMs: 15_000 });
  try {
    const key = `health/${node.id}/${Math.random()}`;
    const put = await client.put(key, 'alive');
    assert.equal(put.committed, true, what);
    assert.equal(Buffer.from((await client.get(key))!.value).toString(), 'alive', what);
  } finally {
    client.close();
  }
}

/** A random message of a shape the fuzzer explores; its first element is `id`. */
function randomMessage(rand: () => number, id: number, n: number): unknown[] {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const bytes = (len: number): Uint8Array => Uint8Array.from({ length: len }, () => Math.floor(rand() * 256));
  const op = rand() < 0.8 ? pick(['put', 'get', 'del']) : pick<unknown>(['PUT', 'gett', '', 42, null, { op: 'put' }, ['put'], bytes(3), true, 1.5]);
  const key = rand() < 0.7 ? `fz/${n % 37}` : pick<unknown>(['', 7, null, bytes(4), ['k'], { k: 1 }, 'x'.repeat(5000), '\u0000ks\u0000x', 'ok/é/😀', -1, false]);
  const value = rand() < 0.7 ? bytes(Math.floor(rand() * 64)) : pick<unknown>(['text', 12, null, [1, 2], { v: 1 }, undefined, new Uint8Array(0)]);
  const hugeMap = Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`o${i}`, i]));
  const option = (): unknown => pick<unknown>([
    undefined, null, {}, 'on', 7, [1], bytes(2), hugeMap, { commit: 'on' }, { commit: 'local' }, { commit: 'off' },
    { commit: 'remote_apply' }, { commit: 'bogus' }, { commit: 5 }, { commit: ['on'] }, { commit: ' ON ' }, { consistency: 'stale' },
    { consistency: 'lease' }, { consistency: 'eventual' }, { consistency: 'stale', min_revision: 1 }, { min_revision: -1 }, { min_revision: 1.5 },
    { min_revision: '3' }, { min_revision: 2 ** 53 }, { min_revision: 0 }, { max_staleness_ms: 0 }, { max_staleness_ms: 60_000 },
    { max_staleness_ms: -5 }, { max_staleness_ms: 1e300 }, { commit: 'on', extra: 1 }, { nested: { commit: 'on' } }, { __proto__x: 1 },
  ]);
  const message: unknown[] = [id, op, key];
  if (op === 'put') message.push(value);
  const tail = rand();
  if (tail < 0.7) message.push(option());
  if (tail > 0.93) message.push(option(), 'extra');
  return message;
}

test('binary protocol under adversarial input and faults (one shared cluster)', async (t) => {
  const { cluster, binaryPorts } = await binaryCluster(t, { requestTimeoutMs: REQUEST_TIMEOUT_MS, forwardsPendingMax: FORWARDS_PENDING_MAX });
  let leader = await cluster.leader();
  t.diagnostic(`seed ${SEED} (set CHORUS_FUZZ_SEED to replay); leader ${leader.id}`);

  await t.test('fuzzed well-framed requests with a readable id: exactly one answer each, 400 for bad shapes, the connection goes on', async () => {
    leader = await cluster.leader();
    const rand = prng(SEED);
    for (const target of [leader, cluster.followers(leader)[0]!]) {
      const raw = await rawConnection(target.binaryAddress!);
      const cases = new Map<number, { message: unknown[]; prediction: Prediction }>();
      const frames: Buffer[] = [];
      for (let n = 0; n < 300; n++) {
        const id = n + 1 + Math.floor(rand() * 4) * 1_000_000_000_000; // ids up to 2^42 or so
        const message = randomMessage(rand, id, n);
        const frame = encodeBinaryFrame(message);
        const prediction = predict(frame.subarray(4));
        assert.equal(prediction.kind, 'answer', `seed ${SEED}: the generator made a frame without a readable id: ${describe(message)}`);
        cases.set(id, { message, prediction });
        frames.push(frame);
      }
      const all = Buffer.concat(frames);
      // The first frames one byte per write, the rest in random slices (several frames a write).
      const firstFramesBytes = frames.slice(0, 20).reduce((sum, f) => sum + f.length, 0);
      let offset = 0;
      while (offset < all.length) {
        const size = offset < firstFramesBytes ? 1 : 1 + Math.floor(rand() * 20_000);
        raw.socket.write(all.subarray(offset, offset + size));
        offset += size;
        if (offset < firstFramesBytes || rand() < 0.3) await new Promise((resolve) => setImmediate(resolve));
      }
      await waitFor(() => raw.answers.length >= cases.size || raw.isClosed(), `answers to ${cases.size} requests on ${target.id} (seed ${SEED})`, 30_000);
      assert.equal(raw.isClosed(), false, `seed ${SEED}: ${target.id} closed the connection; answers so far ${describe(raw.answers.slice(-3))}`);
      // One more round trip on the same connection: any late duplicate would have arrived by now
      // (answers of one connection leave in order of settling, and this one settles last).
      raw.socket.write(encodeBinaryFrame([999, 'put', 'fz/last', new Uint8Array([1]), { commit: 'on' }]));
      await waitFor(() => raw.answers.some((a) => a[0] === 999), 'the final round trip');
      const byId = new Map<number, Answer[]>();
      for (const answer of raw.answers) byId.set(answer[0], [...(byId.get(answer[0]) ?? []), answer]);
      for (const [id, { message, prediction }] of cases) {
        const got = byId.get(id) ?? [];
        const what = `seed ${SEED}, ${target.id}, request ${describe(message)}: answers ${describe(got)}`;
        assert.equal(got.length, 1, `exactly one answer per id; ${what}`);
        const [, status, body] = got[0]!;
        assert.notEqual(status, 500, `no internal error; ${what}`);
        if (prediction.kind === 'answer' && prediction.code !== undefined) {
          assert.equal(status, 400, what);
          assert.equal(body['code'], prediction.code, what);
        }
        if (status !== 200) assert.equal(typeof body['code'], 'string', `an error has a code; ${what}`);
      }
      assert.equal(raw.isClosed(), false, `seed ${SEED}: the connection stays open`);
      raw.socket.destroy();
    }
    await healthy(leader, 'after fuzzed requests');
  });

  await t.test('unreadable frames (random bytes, wrong shapes, bad ids, zero length) are answered [0, 400] and closed; the member keeps serving', async (st) => {
    leader = await cluster.leader();
    const rand = prng(SEED ^ 0x1234);
    const valid = encodeBinaryFrame([9, 'put', 'u/k', new Uint8Array([1, 2, 3]), { commit: 'on' }]).subarray(4);
    const payloads: { name: string; payload: Uint8Array }[] = [
      { name: 'zero-length', payload: new Uint8Array(0) },
      { name: '0xc1 (never used)', payload: Uint8Array.from([0xc1]) },
      { name: 'id 0', payload: encodeBinaryFrame([0, 'get', 'k']).subarray(4) },
      { name: 'id -1', payload: encodeBinaryFrame([-1, 'get', 'k']).subarray(4) },
      { name: 'id 1.5', payload: encodeBinaryFrame([1.5, 'get', 'k']).subarray(4) },
      { name: 'id 2^53', payload: encodeBinaryFrame([2 ** 53, 'get', 'k']).subarray(4) },
      { name: 'id uint64 max', payload: Uint8Array.from([0x93, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xa3, 0x67, 0x65, 0x74, 0xa1, 0x6b]) },
      { name: 'id as string', payload: encodeBinaryFrame(['1', 'get', 'k']).subarray(4) },
      { name: 'a map', payload: encodeBinaryFrame({ id: 1, op: 'get', key: 'k' }).subarray(4) },
      { name: 'a string', payload: encodeBinaryFrame('get k').subarray(4) },
      { name: 'a number', payload: encodeBinaryFrame(1).subarray(4) },
      { name: 'nil', payload: Uint8Array.from([0xc0]) },
      { name: 'an empty array', payload: Uint8Array.from([0x90]) },
      { name: 'nested arrays', payload: encodeBinaryFrame([[1], 'get', 'k']).subarray(4) },
      { name: 'deep nesting (stack)', payload: Uint8Array.from({ length: 200_000 }, () => 0x91) },
      { name: 'array claiming 2^32-1 elements', payload: Uint8Array.from([0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]) },
      { name: 'map claiming 2^32-1 entries', payload: Uint8Array.from([0xdf, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01]) },
      { name: 'str claiming 4 GiB', payload: Uint8Array.from([0x93, 0x01, 0xa3, 0x67, 0x65, 0x74, 0xdb, 0xff, 0xff, 0xff, 0xff]) },
      { name: 'truncated valid request', payload: valid.subarray(0, valid.length - 2) },
      { name: 'valid request and trailing bytes', payload: Uint8Array.from([...valid, 0x01]) },
      { name: 'two messages in one frame', payload: Uint8Array.from([...valid, ...valid]) },
      { name: 'record definition ext (msgpackr)', payload: Uint8Array.from([0xd4, 0x72, 0x40, 0x91, 0xa1, 0x61, 0x01]) },
      { name: 'timestamp ext as id', payload: Uint8Array.from([0x93, 0xd6, 0xff, 0, 0, 0, 1, 0xa3, 0x67, 0x65, 0x74, 0xa1, 0x6b]) },
    ];
    for (let i = 0; i < 60; i++) {
      const mode = rand();
      if (mode < 0.4) {
        payloads.push({ name: `random ${i}`, payload: Uint8Array.from({ length: Math.floor(rand() * 48) }, () => Math.floor(rand() * 256)) });
      } else {
        const mutated = Uint8Array.from(valid);
        const flips = 1 + Math.floor(rand() * 3);
        for (let f = 0; f < flips; f++) mutated[Math.floor(rand() * mutated.length)] = Math.floor(rand() * 256);
        payloads.push({ name: `mutated ${i}`, payload: rand() < 0.3 ? mutated.subarray(0, Math.floor(rand() * mutated.length)) : mutated });
      }
    }
    const address = leader.binaryAddress!;
    let closes = 0;
    for (let start = 0; start < payloads.length; start += 16) {
      await Promise.all(payloads.slice(start, start + 16).map(async ({ name, payload }) => {
        const prediction = predict(payload);
        const what = `seed ${SEED}, frame "${name}" (${Buffer.from(payload.subarray(0, 40)).toString('hex')}${payload.length > 40 ? '...' : ''}), predicted ${describe(prediction)}`;
        const raw = await rawConnection(address);
        // One byte at a time for small frames: the split must not matter.
        const frame = rawFrame(payload);
        if (frame.length <= 64) {
          for (const byte of frame) {
            raw.socket.write(Uint8Array.of(byte));
            await new Promise((resolve) => setImmediate(resolve));
          }
        } else {
          raw.socket.write(frame);
        }
        if (prediction.kind === 'close') {
          closes++;
          await waitFor(() => raw.isClosed(), `the member closes the connection: ${what}`);
          assert.equal(raw.answers.length, 1, `one answer: ${what}; got ${describe(raw.answers)}`);
          assert.equal(raw.answers[0]![0], 0, what);
          assert.equal(raw.answers[0]![1], 400, what);
          assert.equal(raw.answers[0]![2]['code'], 'CHORUS_BAD_REQUEST', what);
        } else {
          await waitFor(() => raw.answers.length > 0 || raw.isClosed(), `an answer: ${what}`);
          assert.equal(raw.answers.length, 1, `${what}; got ${describe(raw.answers)}`);
          assert.equal(raw.answers[0]![0], prediction.id, what);
          assert.notEqual(raw.answers[0]![1], 500, what);
          if (prediction.code !== undefined) assert.equal(raw.answers[0]![2]['code'], prediction.code, what);
          assert.equal(raw.isClosed(), false, `the connection stays open: ${what}`);
          raw.socket.destroy();
        }
      }));
    }
    st.diagnostic(`${payloads.length} frames, ${closes} predicted unreadable`);
    // A frame between two good ones on a pipelined connection: the good one before is served.
    await healthy(leader, 'after unreadable frames');
    for (const follower of cluster.followers(leader)) await healthy(follower, 'after unreadable frames');
  });

  await t.test('many frames in one write, and a zero-length frame after good ones: the good ones are answered first', async () => {
    leader = await cluster.leader();
    const raw = await rawConnection(leader.binaryAddress!);
    const frames = Array.from({ length: 200 }, (_, i) => encodeBinaryFrame([i + 1, 'put', `many/${i}`, Buffer.from(`v${i}`), { commit: 'on' }]));
    raw.socket.write(Buffer.concat(frames));
    await waitFor(() => raw.answers.length === 200, '200 answers');
    assert.deepEqual(raw.answers.map((a) => a[0]).sort((a, b) => a - b), Array.from({ length: 200 }, (_, i) => i + 1));
    // All 200 unless leadership moved meanwhile (then 503 nothing done, or 504).
    assert.ok(raw.answers.every((a) => a[1] === 200 || a[1] === 503 || a[1] === 504), describe(raw.answers.filter((a) => a[1] !== 200)));
    const ok = raw.answers.filter((a) => a[1] === 200);
    assert.equal(new Set(ok.map((a) => a[2]['revision'])).size, ok.length, 'unique revisions');
    raw.socket.write(Buffer.from([0, 0, 0, 0]));
    await raw.closed;
    assert.deepEqual(raw.answers[200]!.slice(0, 2), [0, 400]);
    const reader = new ChorusClient({ endpoints: [leader.clientUrl] });
    for (const [id] of ok) assert.equal(await reader.getText(`many/${id - 1}`), `v${id - 1}`);
  });

  await t.test('limits: value at valueBytesMax accepted, one over is 413 and the connection stays open; keys as over HTTP', async (st) => {
    leader = await cluster.leader();
    const client = new ChorusBinaryClient({ endpoint: leader.binaryAddress!, timeoutMs: 15_000 });
    st.after(() => client.close());
    const { valueBytesMax, keyBytesMax } = leader.limits;
    const full = new Uint8Array(valueBytesMax).fill(7);
    const put = await client.put('lim/full', full);
    assert.equal(put.committed, true);
    assert.equal((await client.get('lim/full'))!.value.length, valueBytesMax);
    await assert.rejects(client.put('lim/over', new Uint8Array(valueBytesMax + 1)), isClientError('CHORUS_VALUE_TOO_LARGE', 413));
    // The same connection goes on.
    assert.equal((await client.put('lim/after', 'x')).committed, true);

    const base = leader.clientUrl;
    const cases: { name: string; key: string }[] = [
      { name: 'key at keyBytesMax', key: 'k'.repeat(keyBytesMax) },
      { name: 'multibyte key at keyBytesMax', key: 'é'.repeat(keyBytesMax / 2) },
      { name: 'key one byte over', key: 'k'.repeat(keyBytesMax + 1) },
      { name: 'multibyte key one byte over', key: `${'é'.repeat(keyBytesMax / 2)}k` },
      { name: 'empty key', key: '' },
      { name: 'reserved key', key: '\u0000ks\u0000k' },
    ];
    for (const { name, key } of cases) {
      const viaHttp = await http('PUT', `${base}/v1/kv/${encodeKeyPath(key)}`, 'v');
      let binary: { status: number; code: string | undefined };
      try {
        await client.put(key, 'v');
        binary = { status: 200, code: undefined };
      } catch (error) {
        assert.ok(error instanceof ChorusClientError, String(error));
        binary = { status: error.status, code: error.code };
      }
      const httpCode = viaHttp.status === 200 ? undefined : (viaHttp.json() as { code: string }).code;
      assert.deepEqual(binary, { status: viaHttp.status, code: httpCode }, `${name}: binary as HTTP`);
      if (binary.status === 200) assert.equal(Buffer.from((await client.get(key))!.value).toString(), 'v', name);
    }
    // A frame just over the frame limit is refused without being read, with its own code.
    const raw = await rawConnection(leader.binaryAddress!);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(valueBytesMax + keyBytesMax + 1024 + 1);
    raw.socket.write(header);
    await raw.closed;
    assert.deepEqual([raw.answers[0]![0], raw.answers[0]![1], raw.answers[0]![2]['code']], [0, 413, 'CHORUS_REQUEST_TOO_LARGE']);
  });

  await t.test('answers carry the HTTP API\'s fields and errors for the same requests (commit levels, deletes, reads)', async (st) => {
    leader = await cluster.leader();
    const client = new ChorusBinaryClient({ endpoint: leader.binaryAddress!, timeoutMs: 15_000 });
    const raw = await rawConnection(leader.binaryAddress!);
    st.after(() => {
      client.close();
      raw.socket.destroy();
    });
    let nextId = 1;
    const ask = async (message: unknown[]): Promise<Answer> => {
      const id = nextId++;
      raw.socket.write(encodeBinaryFrame([id, ...message]));
      return waitFor(() => raw.answers.find((a) => a[0] === id), `answer ${id} to ${describe(message)}`);
    };
    const shape = (body: Record<string, unknown>): Record<string, string> => Object.fromEntries(Object.entries(body).map(([k, v]) => [k, v instanceof Uint8Array ? 'bytes' : typeof v]).sort());
    const base = leader.clientUrl;
    for (const commit of [undefined, 'on', 'remote_apply', 'local', 'off']) {
      const query = commit === undefined ? '' : `?commit=${commit}`;
      const viaHttp = await http('PUT', `${base}/v1/kv/cmp/put${query}`, 'v');
      const viaBinary = await ask(['put', 'cmp/put', new Uint8Array([1]), commit === undefined ? {} : { commit }]);
      assert.equal(viaBinary[1], viaHttp.status, `put commit=${commit}`);
      assert.deepEqual(shape(viaBinary[2]), shape(viaHttp.json() as Record<string, unknown>), `put commit=${commit}: the same fields`);
      assert.equal(viaBinary[2]['committed'], (viaHttp.json() as { committed: boolean }).committed, `put commit=${commit}`);
      if (commit === 'local' || commit === 'off') assert.equal(viaBinary[2]['committed'], false);
      const delHttp = await http('DELETE', `${base}/v1/kv/cmp/put${query}`);
      const delBinary = await ask(['del', 'cmp/put', commit === undefined ? {} : { commit }]);
      assert.equal(delBinary[1], delHttp.status, `del commit=${commit}`);
      assert.deepEqual(shape(delBinary[2]), shape(delHttp.json() as Record<string, unknown>), `del commit=${commit}: the same fields`);
    }
    // Wait until the off/local writes above have applied before the reads below.
    await client.put('cmp/rec', 'value');
    const viaBinary = await ask(['get', 'cmp/rec']);
    const viaHttp = await http('GET', `${base}/v1/kv/cmp/rec`);
    assert.equal(viaBinary[1], 200);
    assert.deepEqual(Buffer.from(viaBinary[2]['value'] as Uint8Array).toString(), viaHttp.text);
    assert.equal(viaBinary[2]['revision'], Number(viaHttp.headers.get('chorus-revision')));
    assert.equal(viaBinary[2]['createRevision'], Number(viaHttp.headers.get('chorus-create-revision')));
    assert.equal(viaBinary[2]['version'], Number(viaHttp.headers.get('chorus-version')));
    const errors: { name: string; binary: unknown[]; method: string; url: string }[] = [
      { name: 'bad commit', binary: ['put', 'cmp/e', new Uint8Array(0), { commit: 'sometimes' }], method: 'PUT', url: '/v1/kv/cmp/e?commit=sometimes' },
      { name: 'absent key', binary: ['get', 'cmp/absent'], method: 'GET', url: '/v1/kv/cmp/absent' },
      { name: 'bad consistency', binary: ['get', 'cmp/rec', { consistency: 'eventual' }], method: 'GET', url: '/v1/kv/cmp/rec?consistency=eventual' },
      { name: 'min_revision with linearizable', binary: ['get', 'cmp/rec', { consistency: 'linearizable', min_revision: 1 }], method: 'GET', url: '/v1/kv/cmp/rec?consistency=linearizable&min_revision=1' },
      { name: 'max_staleness_ms with lease', binary: ['get', 'cmp/rec', { consistency: 'lease', max_staleness_ms: 10 }], method: 'GET', url: '/v1/kv/cmp/rec?consistency=lease&max_staleness_ms=10' },
      { name: 'reserved key delete', binary: ['del', '\u0000x'], method: 'DELETE', url: '/v1/kv/%00x' },
      { name: 'min_revision far ahead (deadline)', binary: ['get', 'cmp/rec', { min_revision: 1_000_000_000 }], method: 'GET', url: '/v1/kv/cmp/rec?min_revision=1000000000' },
    ];
    for (const { name, binary, method, url } of errors) {
      const [httpAnswer, binaryAnswer] = await Promise.all([http(method, `${base}${url}`), ask(binary)]);
      assert.equal(binaryAnswer[1], httpAnswer.status, `${name}: status`);
      assert.equal(binaryAnswer[2]['code'], (httpAnswer.json() as { code: string }).code, `${name}: code`);
    }
    // A delete of an absent key: deleted 0 in both.
    const absentHttp = await http('DELETE', `${base}/v1/kv/cmp/never`);
    const absentBinary = await ask(['del', 'cmp/never']);
    assert.equal(absentBinary[2]['deleted'], (absentHttp.json() as { deleted: number }).deleted);
    assert.equal(absentBinary[2]['deleted'], 0);
  });

  await t.test('keys that are awkward in URLs, written through a follower (forwarded over HTTP), arrive unchanged', async (st) => {
    leader = await cluster.leader();
    const follower = cluster.followers(leader)[0]!;
    const onFollower = new ChorusBinaryClient({ endpoint: follower.binaryAddress!, timeoutMs: 15_000 });
    const onLeader = new ChorusBinaryClient({ endpoint: leader.binaryAddress!, timeoutMs: 15_000 });
    st.after(() => {
      onFollower.close();
      onLeader.close();
    });
    const { keyBytesMax } = leader.limits;
    const keys = [
      '..', '.', 'a/../b', 'a/./b', 'a//b', '/lead', 'trail/', '%', '%41', '%2F', '?x=1', '#frag', ' sp ace ', 'tab\tnl\ncr\r', 'é', '😀',
      '+&;=,', '\\back', '~!*()\'', 'a/%2e%2e/b', '\u007f\u0001', `${'%'.repeat(keyBytesMax - 1)}/`, '€'.repeat(Math.floor(keyBytesMax / 3)),
    ];
    for (const [i, key] of keys.entries()) {
      const value = `value ${i}`;
      let put;
      try {
        put = await onFollower.put(key, value);
      } catch (error) {
        assert.fail(`put of key ${JSON.stringify(key.slice(0, 60))} via the follower: ${String(error)}`);
      }
      assert.equal(put.committed, true);
      const got = await onLeader.get(key);
      assert.notEqual(got, null, `key ${JSON.stringify(key.slice(0, 60))} (length ${key.length}) is found on the leader under the same key`);
      assert.equal(Buffer.from(got!.value).toString(), value, `key ${JSON.stringify(key.slice(0, 60))}`);
      assert.equal(got!.revision, put.revision, `key ${JSON.stringify(key.slice(0, 60))}: no other write`);
    }
  });

  await t.test('connections closed mid-frame or with requests in flight: acknowledged writes are readable, no crash', async () => {
    leader = await cluster.leader();
    // Mid-header and mid-payload.
    const frame = encodeBinaryFrame([1, 'put', 'cut/never', new Uint8Array(100).fill(1)]);
    for (const cut of [2, 10, frame.length - 1]) {
      const raw = await rawConnection(leader.binaryAddress!);
      raw.socket.write(frame.subarray(0, cut));
      await new Promise((resolve) => setImmediate(resolve));
      raw.socket.destroy();
      await raw.closed;
    }
    // Requests in flight: close after some answers.
    for (const [round, after] of [0, 1, 50].entries()) {
      const raw = await rawConnection(leader.binaryAddress!);
      raw.socket.write(Buffer.concat(Array.from({ length: 200 }, (_, i) => encodeBinaryFrame([i + 1, 'put', `cut/${round}/${i}`, Buffer.from(`v${round}/${i}`), i % 2 === 0 ? { commit: 'on' } : { commit: 'local' }]))));
      if (after > 0) await waitFor(() => raw.answers.length >= after, `${after} answers`);
      raw.socket.destroy();
      await raw.closed;
      const acknowledged = raw.answers.filter((a) => a[1] === 200 && a[2]['committed'] === true);
      const onLeader = new ChorusBinaryClient({ endpoint: leader.binaryAddress!, timeoutMs: 15_000 });
      try {
        for (const [id, , body] of acknowledged) {
          const got = await onLeader.get(`cut/${round}/${id - 1}`);
          assert.notEqual(got, null, `acknowledged write cut/${round}/${id - 1} at revision ${String(body['revision'])}`);
          assert.equal(Buffer.from(got!.value).toString(), `v${round}/${id - 1}`);
        }
      } finally {
        onLeader.close();
      }
    }
    assert.equal(await new ChorusClient({ endpoints: [leader.clientUrl] }).getText('cut/never'), null, 'a frame cut short is never served');
    await healthy(leader, 'after connections closed mid-frame');
  });

  await t.test('200 connections at once doing puts: every acknowledged put readable with its value, revisions unique', async (st) => {
    leader = await cluster.leader();
    const members = [...cluster.nodes.values()];
    const clients = Array.from({ length: 200 }, (_, i) => new ChorusBinaryClient({ endpoint: members[i % 5 === 0 ? i % 3 : members.indexOf(leader)]!.binaryAddress!, timeoutMs: 20_000 }));
    st.after(() => clients.forEach((c) => c.close()));
    type PutOutcome = { key: string; ok?: { revision: number; committed: boolean }; error?: unknown };
    const results: PutOutcome[] = await Promise.all(clients.flatMap((client, c) => Array.from({ length: 4 }, async (_, j): Promise<PutOutcome> => {
      const key = `conc/${c}/${j}`;
      try {
        return { key, ok: await client.put(key, `value ${c}/${j}`) };
      } catch (error) {
        return { key, error };
      }
    })));
    const acknowledged = results.flatMap((r) => (r.ok === undefined ? [] : [r.ok]));
    const failed = results.filter((r) => r.ok === undefined);
    // Followers' forwards beyond forwardsPendingMax are refused (503); a busy machine may give 504: never an internal error.
    for (const f of failed) assert.ok(f.error instanceof ChorusClientError && (f.error.status === 503 || f.error.status === 504), `${f.key}: ${String(f.error)}`);
    st.diagnostic(`${acknowledged.length} acknowledged, ${failed.length} refused (${[...new Set(failed.map((f) => (f.error as ChorusClientError).code))].join(', ')})`);
    assert.equal(new Set(acknowledged.map((r) => r.revision)).size, acknowledged.length, 'revisions unique');
    const reader = new ChorusBinaryClient({ endpoint: leader.binaryAddress!, timeoutMs: 20_000, inflightMax: 2000 });
    st.after(() => reader.close());
    const reads = await Promise.all(results.map((r) => reader.get(r.key)));
    for (const [i, r] of results.entries()) {
      const got = reads[i]!;
      if (r.ok !== undefined) {
        assert.notEqual(got, null, `${r.key} acknowledged at ${r.ok.revision}`);
        assert.equal(Buffer.from(got!.value).toString(), `value ${r.key.slice(5)}`);
        assert.equal(got!.revision, r.ok.revision);
      } else if ((r.error as ChorusClientError).status === 503) {
        assert.equal(got, null, `${r.key} refused with 503 (nothing done) but present`);
      }
    }
  });

  await t.test('a client that never reads its answers: requests past the limit are refused, the others are still served', async (st) => {
    leader = await cluster.leader();
    const client = new ChorusBinaryClient({ endpoint: leader.binaryAddress!, timeoutMs: 15_000 });
    st.after(() => client.close());
    await client.put('slow/value', new Uint8Array(64 * 1024).fill(3));
    const slow = await rawConnection(leader.binaryAddress!, { paused: true });
    st.after(() => slow.socket.destroy());
    const total = 3000;
    slow.socket.write(Buffer.concat(Array.from({ length: total }, (_, i) => encodeBinaryFrame([i + 1, 'get', 'slow/value', { consistency: 'stale' }]))));
    // Other clients are served meanwhile.
    const other = new ChorusBinaryClient({ endpoint: leader.binaryAddress!, timeoutMs: 15_000 });
    st.after(() => other.close());
    assert.equal((await other.put('slow/other', 'fine')).committed, true);
    assert.equal(Buffer.from((await other.get('slow/other'))!.value).toString(), 'fine');
    await healthy(leader, 'while a client does not read');
    slow.socket.resume();
    await waitFor(() => slow.answers.length >= total || slow.isClosed(), `${total} answers once the client reads`, 60_000);
    // Up to 1,024 answers of 64 KiB were due: past the member's output limit for one client
    // (32 MiB) it may drop the client instead; either way no request is answered twice, and
    // every answer is a value or CHORUS_BUSY.
    const ids = new Set(slow.answers.map((a) => a[0]));
    assert.equal(ids.size, slow.answers.length, 'no request answered twice');
    if (!slow.isClosed()) assert.equal(slow.answers.length, total, 'every request answered');
    const served = slow.answers.filter((a) => a[1] === 200).length;
    const busy = slow.answers.filter((a) => a[1] === 503 && a[2]['code'] === 'CHORUS_BUSY').length;
    assert.equal(served + busy, slow.answers.length, 'a value or CHORUS_BUSY');
    st.diagnostic(`${served} served, ${busy} busy${slow.isClosed() ? ', then dropped for not reading' : ''}`);
  });

  await t.test('a client that never reads its answers is disconnected past the output limit; the member queues no more for it', async (st) => {
    leader = await cluster.leader();
    const value = new Uint8Array(64 * 1024).fill(5);
    const client = new ChorusBinaryClient({ endpoint: leader.binaryAddress!, timeoutMs: 15_000 });
    st.after(() => client.close());
    await client.put('slow/big', value);
    // The member's connection objects (private): how many bytes of answers wait for our client.
    const binary = (leader as unknown as { binary: { connections: Set<{ socket: net.Socket; inflight: number }>; writeBufferBytesHardMax: number } }).binary;
    const slow = await rawConnection(leader.binaryAddress!, { paused: true });
    st.after(() => slow.socket.destroy());
    // 1,024 reads in one write (about 36 KB: one read of the socket on loopback): 64 MiB of
    // answers, past the member's limit for one client.
    slow.socket.write(Buffer.concat(Array.from({ length: 1024 }, (_, i) => encodeBinaryFrame([i + 1, 'get', 'slow/big', { consistency: 'stale' }]))));
    let queuedMax = 0;
    const observe = (): void => {
      for (const c of binary.connections) queuedMax = Math.max(queuedMax, c.socket.writableLength);
    };
    // The answers pile up past the limit (the client reads nothing) ...
    await waitFor(() => {
      observe();
      return queuedMax > binary.writeBufferBytesHardMax;
    }, 'answers queued past the limit');
    // ... and within the grace period (5 s) the member drops the client.
    await waitFor(() => {
      observe();
      return [...binary.connections].every((c) => c.socket.writableLength < binary.writeBufferBytesHardMax);
    }, 'the client dropped', 30_000);
    st.diagnostic(`at most ${(queuedMax / 2 ** 20).toFixed(1)} MiB of answers queued for a client that does not read (limit ${(binary.writeBufferBytesHardMax / 2 ** 20).toFixed(0)} MiB)`);
    // The requests accepted before the limit was seen all answered into the buffer: at most the
    // 1,024 in flight (64 MiB here), never more.
    assert.ok(queuedMax <= 1024 * (value.length + 64), `${queuedMax} bytes of answers queued`);
    slow.socket.resume();
    await slow.closed;
    assert.ok(slow.answers.length < 1024, 'disconnected before all 64 MiB of answers were queued');
    // Others are served.
    assert.equal((await client.get('slow/big', { consistency: 'stale' }))!.value.length, value.length);
  });

  await t.test('invalid UTF-8 in a key is refused as over HTTP (400 CHORUS_BAD_KEY), not stored under another key', async (st) => {
    leader = await cluster.leader();
    const viaHttp = await http('PUT', `${leader.clientUrl}/v1/kv/a%FF`, 'v');
    assert.equal(viaHttp.status, 400);
    assert.equal((viaHttp.json() as { code: string }).code, 'CHORUS_BAD_KEY');
    const raw = await rawConnection(leader.binaryAddress!);
    st.after(() => raw.socket.destroy());
    // [7, "put", str(0x61 0xff), bin(1)]
    raw.socket.write(rawFrame(Uint8Array.from([0x94, 0x07, 0xa3, 0x70, 0x75, 0x74, 0xa2, 0x61, 0xff, 0xc4, 0x01, 0x09])));
    await waitFor(() => raw.answers.length > 0, 'an answer');
    assert.deepEqual([raw.answers[0]![1], raw.answers[0]![2]['code']], [400, 'CHORUS_BAD_KEY'], `the answer ${describe(raw.answers[0])}`);
  });

  await t.test('an unknown op that JSON cannot show (a msgpack BigInt) is answered 400 with its id; the connection goes on', async (st) => {
    leader = await cluster.leader();
    const raw = await rawConnection(leader.binaryAddress!);
    st.after(() => raw.socket.destroy());
    // [5, BigInt(1) as msgpackr ext 0x42, "k"]
    raw.socket.write(rawFrame(Uint8Array.from([0x93, 0x05, 0xd4, 0x42, 0x01, 0xa1, 0x6b])));
    await waitFor(() => raw.answers.length > 0, 'an answer');
    assert.deepEqual(raw.answers[0]!.slice(0, 2), [5, 400], `the answer ${describe(raw.answers[0])}`);
    raw.socket.write(encodeBinaryFrame([6, 'get', 'k', { consistency: 'stale' }]));
    await waitFor(() => raw.answers.length > 1 || raw.isClosed(), 'a second answer');
    assert.equal(raw.isClosed(), false, 'the connection goes on');
  });

  await t.test('writes to a follower while the leader is down: 503 (nothing done) or 504, never a lost 200, never a hang; then served', async (st) => {
    leader = await cluster.leader();
    const old = leader;
    const follower = cluster.followers(old)[0]!;
    const onFollower = new ChorusBinaryClient({ endpoint: follower.binaryAddress!, timeoutMs: REQUEST_TIMEOUT_MS * 6 });
    const onOld = new ChorusBinaryClient({ endpoint: old.binaryAddress!, timeoutMs: REQUEST_TIMEOUT_MS * 6 });
    st.after(() => {
      onFollower.close();
      onOld.close();
    });
    type Outcome = { key: string; status: number; code: string };
    const outcomes: Outcome[] = [];
    const attempt = async (client: ChorusBinaryClient, key: string): Promise<Outcome> => {
      try {
        await client.put(key, `v:${key}`);
        return { key, status: 200, code: 'OK' };
      } catch (error) {
        assert.ok(error instanceof ChorusClientError, String(error));
        return { key, status: error.status, code: error.code };
      }
    };
    // Both connections open before the leader stops (a connection that cannot be opened is
    // CHORUS_UNAVAILABLE, nothing sent).
    await onOld.put('down/warm-old', 'x');
    await onFollower.put('down/warm-follower', 'x');
    // Writes in flight on the old leader as it stops, and on the follower.
    const inflight = [
      ...Array.from({ length: 30 }, (_, i) => attempt(onOld, `down/old/${i}`)),
      ...Array.from({ length: 4 }, (_, i) => attempt(onFollower, `down/early/${i}`)),
    ];
    await cluster.stop(old.id);
    outcomes.push(...(await Promise.all(inflight)));
    // Sequential writes through the follower until one succeeds (a new leader).
    let succeeded = false;
    for (let i = 0; i < 200 && !succeeded; i++) {
      const outcome = await attempt(onFollower, `down/f/${i}`);
      outcomes.push(outcome);
      succeeded = outcome.status === 200;
      if (!succeeded) await sleep(50);
    }
    assert.ok(succeeded, 'a write through the follower succeeds once a new leader is elected');
    leader = await cluster.leader();
    st.diagnostic(`new leader ${leader.id}; outcomes: ${[...new Set(outcomes.map((o) => `${o.status} ${o.code}`))].join(', ')}`);
    for (const o of outcomes) {
      // status 0 is the client's own deadline (six times the member's) or a closed connection.
      // (The old leader's connection closes as it stops: outcome unknown.)
      const closedOld = o.status === 0 && o.key.startsWith('down/old/') && o.code === 'CHORUS_TIMEOUT';
      assert.ok(o.status === 200 || o.status === 503 || o.status === 504 || closedOld, `${o.key}: ${o.status} ${o.code}`);
    }
    const reader = new ChorusBinaryClient({ endpoint: leader.binaryAddress!, timeoutMs: 15_000 });
    st.after(() => reader.close());
    for (const o of outcomes) {
      const got = await reader.get(o.key);
      if (o.status === 200) assert.equal(got === null ? null : Buffer.from(got.value).toString(), `v:${o.key}`, `${o.key} was acknowledged`);
      if (o.status === 503) assert.equal(got, null, `${o.key} was refused with 503 ${o.code} (nothing done) but is present`);
    }
    // The old leader comes back, with its binary port.
    await cluster.start(old.id, { listenBinary: binaryPorts.get(old.id)! });
    leader = await cluster.leader();
    await healthy(cluster.node(old.id), 'the old leader back');
  });

  await t.test('a commit level with surrounding whitespace (accepted by the leader) is forwarded from a follower, and leaks no forwarding slot', async (st) => {
    leader = await cluster.leader();
    const follower = cluster.followers(leader)[0]!;
    const raw = await rawConnection(follower.binaryAddress!);
    const onLeader = await rawConnection(leader.binaryAddress!);
    st.after(() => {
      raw.socket.destroy();
      onLeader.socket.destroy();
    });
    onLeader.socket.write(encodeBinaryFrame([1, 'put', 'ws/leader', new Uint8Array([1]), { commit: 'on\n' }]));
    await waitFor(() => onLeader.answers.length > 0, 'the leader answers');
    assert.equal(onLeader.answers[0]![1], 200, `the leader: ${describe(onLeader.answers[0])}`);
    for (let i = 1; i <= FORWARDS_PENDING_MAX; i++) raw.socket.write(encodeBinaryFrame([i, 'put', `ws/${i}`, new Uint8Array([1]), { commit: i % 2 === 0 ? 'on\n' : '\u2028on' }]));
    await waitFor(() => raw.answers.length >= FORWARDS_PENDING_MAX, 'answers');
    // A plain forwarded write afterwards.
    raw.socket.write(encodeBinaryFrame([100, 'put', 'ws/plain', new Uint8Array([1])]));
    await waitFor(() => raw.answers.some((a) => a[0] === 100), 'the plain write answered');
    const plain = raw.answers.find((a) => a[0] === 100)!;
    assert.equal(plain[1], 200, `a plain forwarded write after ${FORWARDS_PENDING_MAX} whitespace commits: ${describe(plain)}; those were answered ${describe(raw.answers.filter((a) => a[0] !== 100).map((a) => [a[0], a[1], a[2]['code']]))}`);
    for (const answer of raw.answers.filter((a) => a[0] !== 100)) assert.equal(answer[1], 200, `the follower: ${describe(answer)}`);
  });
});
