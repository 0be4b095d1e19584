// The binary protocol's server on a fake member (no Raft), with small limits so that each one is
// reached: connections, requests in flight per connection, and the forwarding of a follower's
// write to the leader's HTTP API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { decodeBinaryPayload, encodeBinaryFrame } from '../../src/shared/binary-protocol.ts';
import { BinaryServer } from '../../src/api/binary-server.ts';
import type { BinaryServerOptions } from '../../src/api/binary-server.ts';
import type { ApplyResult } from '../../src/kv/sqlite-state-machine.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import { ChorusBinaryClient } from '../../src/client/index.ts';
import { FrameDecoder } from '../../src/transport/frame-decoder.ts';
import { FakeService, listening } from './fake-service.ts';

const OPTIONS: BinaryServerOptions = { requestTimeoutMs: 2000, connectionsMax: 2, inflightPerConnectionMax: 4, forwardsPendingMax: 4, logger: silentLogger };

async function serve(t: Parameters<typeof listening>[0], service: FakeService, options: Partial<BinaryServerOptions> = {}): Promise<string> {
  const server = new BinaryServer(service, { ...OPTIONS, ...options });
  const { host, port } = await server.listen('127.0.0.1', 0);
  t.after(() => server.close());
  return `${host}:${port}`;
}

async function connect(address: string): Promise<{ socket: net.Socket; answers: [number, number, Record<string, unknown>][]; closed: Promise<void> }> {
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const answers: [number, number, Record<string, unknown>][] = [];
  const decoder = new FrameDecoder(1 << 20, (payload) => answers.push(decodeBinaryPayload(payload) as [number, number, Record<string, unknown>]));
  socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  socket.on('error', () => undefined);
  return { socket, answers, closed: new Promise((resolve) => socket.once('close', () => resolve())) };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(condition(), what);
}

test('connections past connectionsMax are answered CHORUS_BUSY and closed; the others go on', async (t) => {
  const service = new FakeService();
  const address = await serve(t, service);
  const a = await connect(address);
  const b = await connect(address);
  const c = await connect(address);
  await c.closed;
  assert.deepEqual(c.answers.map(([id, status, body]) => [id, status, body['code']]), [[0, 503, 'CHORUS_BUSY']]);
  a.socket.write(encodeBinaryFrame([1, 'put', 'k', new Uint8Array([1])]));
  b.socket.write(encodeBinaryFrame([1, 'get', 'k', { consistency: 'stale' }]));
  await until(() => a.answers.length === 1 && b.answers.length === 1, 'both served');
  assert.equal(a.answers[0]![1], 200);
  a.socket.destroy();
  b.socket.destroy();
  // A slot is free again once the server has seen a connection close.
  let served = false;
  for (let attempt = 0; attempt < 100 && !served; attempt++) {
    const d = await connect(address);
    d.socket.write(encodeBinaryFrame([1, 'get', 'k', { consistency: 'stale' }]));
    await until(() => d.answers.length > 0, 'an answer');
    served = d.answers[0]![1] === 200;
    d.socket.destroy();
    if (!served) await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(served, 'a new connection is served once the others closed');
});

test('requests past inflightPerConnectionMax are answered CHORUS_BUSY at once, nothing done; the others complete', async (t) => {
  const service = new FakeService();
  const held: (() => void)[] = [];
  service.proposeHook = () => new Promise<ApplyResult>((resolve) => held.push(() => resolve({ kind: 'put', revision: 7 })));
  const address = await serve(t, service);
  const conn = await connect(address);
  conn.socket.write(Buffer.concat(Array.from({ length: 10 }, (_, i) => encodeBinaryFrame([i + 1, 'put', `k${i}`, new Uint8Array([i])]))));
  await until(() => conn.answers.length === 6, 'six refused');
  assert.ok(conn.answers.every(([, status, body]) => status === 503 && body['code'] === 'CHORUS_BUSY'));
  assert.deepEqual(conn.answers.map(([id]) => id).sort((x, y) => x - y), [5, 6, 7, 8, 9, 10]);
  assert.equal(service.proposeCalls, 4, 'only the first four were proposed');
  for (const release of held) release();
  await until(() => conn.answers.length === 10, 'the four answered');
  assert.deepEqual(conn.answers.slice(6).map(([id, status]) => [id, status]).sort((x, y) => x[0]! - y[0]!), [[1, 200], [2, 200], [3, 200], [4, 200]]);
  conn.socket.destroy();
});

test('a write on a follower is forwarded to the leader\'s HTTP API and answered as there', async (t) => {
  const leader = new FakeService('n1');
  const { address: leaderHttp } = await listening(t, leader);
  const follower = new FakeService('n2');
  follower.notLeader = { leaderId: 'n1' };
  follower.leaderAddress = leaderHttp;
  const client = new ChorusBinaryClient({ endpoint: await serve(t, follower) });
  t.after(() => client.close());
  const put = await client.put('a/b c', 'forwarded', { commit: 'on' });
  assert.equal(put.committed, true);
  assert.equal(Buffer.from(leader.sm.get('a/b c')!.value).toString(), 'forwarded', 'the leader applied it, key intact');
  assert.equal(leader.proposeOptions.at(-1)?.level, 'on', 'the commit level went along');
  assert.equal((await client.delete('a/b c')).deleted, 1);
  // No leader known: 503 CHORUS_NO_LEADER, nothing done.
  follower.notLeader = { leaderId: null };
  await assert.rejects(client.put('x', 'y'), (e: unknown) => (e as { code?: string }).code === 'CHORUS_NO_LEADER' && (e as { status?: number }).status === 503);
});
