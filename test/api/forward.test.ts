// Forwarding of writes from a follower to the leader's HTTP address: the happy path, the hop
// limit, a leader that cannot be reached (503: not delivered) or that breaks the connection
// after the request went out (504: unknown), and the bounds on forwards in flight and on the
// size of the leader's answer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { Forwarder, HOPS_HEADER, LEADER_HEADER } from '../../src/api/forward.ts';
import { ChorusError } from '../../src/shared/errors.ts';
import { freePorts } from '../node/helpers.ts';
import { FakeService, apiFor, listening } from './fake-service.ts';

function json(body: string): Record<string, unknown> {
  return JSON.parse(body) as Record<string, unknown>;
}

/** A TCP server that reads a request and then does `onRequest` with the socket. */
async function rawServer(t: import('node:test').TestContext, onRequest: (socket: Socket) => void): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('data', () => onRequest(socket));
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  t.after(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

test('a follower forwards writes to the leader and names it in the answer', async (t) => {
  const leaderService = new FakeService('n2');
  const leader = await listening(t, leaderService);
  leaderService.leaderAddress = leader.address;
  const follower = new FakeService('n1');
  follower.notLeader = { leaderId: 'n2' };
  follower.leaderAddress = leader.address;
  const app = apiFor(t, follower);

  const put = await app.inject({ method: 'PUT', url: '/v1/kv/a%2Fb/c', payload: Buffer.from([1, 2, 3]) });
  assert.equal(put.statusCode, 200, put.body);
  assert.deepEqual(json(put.body), { revision: 1, committed: true });
  assert.equal(put.headers[LEADER_HEADER], leader.address);
  assert.deepEqual(Buffer.from(leaderService.get('a/b/c')!.value), Buffer.from([1, 2, 3]), 'the key and bytes arrive intact');

  const txn = await app.inject({ method: 'POST', url: '/v1/txn', payload: JSON.stringify({ success: [{ op: 'get', key: 'a/b/c' }] }) });
  assert.equal(txn.statusCode, 200, txn.body);
  assert.equal((json(txn.body)['results'] as { valueBase64: string }[])[0]!.valueBase64, 'AQID');
  const del = await app.inject({ method: 'DELETE', url: '/v1/kv/a%2Fb/c' });
  assert.deepEqual(json(del.body), { revision: 3, deleted: 1, committed: true });
  // The leader's own errors come back as they are.
  const bad = await app.inject({ method: 'POST', url: '/v1/txn', payload: '{"success":[{"op":"nope","key":"k"}]}' });
  assert.equal(bad.statusCode, 400);
  assert.equal(follower.proposeCalls, 3, 'the invalid txn was refused before forwarding');
  leaderService.proposeHook = async () => {
    throw new ChorusError('CHORUS_TIMEOUT', 'unknown');
  };
  const timedOut = await app.inject({ method: 'PUT', url: '/v1/kv/x', payload: 'v' });
  assert.equal(timedOut.statusCode, 504);
  assert.equal(json(timedOut.body)['code'], 'CHORUS_TIMEOUT');
});

test('no leader, an unknown leader address, or the hop limit: 503 CHORUS_NO_LEADER', async (t) => {
  const follower = new FakeService('n1');
  const app = apiFor(t, follower);
  follower.notLeader = { leaderId: null };
  const none = await app.inject({ method: 'PUT', url: '/v1/kv/k', payload: 'v' });
  assert.equal(none.statusCode, 503);
  assert.equal(json(none.body)['code'], 'CHORUS_NO_LEADER');

  follower.notLeader = { leaderId: 'n2' };
  follower.leaderAddress = null;
  const unknown = await app.inject({ method: 'PUT', url: '/v1/kv/k', payload: 'v' });
  assert.equal(json(unknown.body)['code'], 'CHORUS_NO_LEADER');

  // Two members that each believe the other leads: the hop limit ends the ping-pong.
  const other = new FakeService('n2');
  other.notLeader = { leaderId: 'n1' };
  const otherServer = await listening(t, other);
  const self = await listening(t, follower);
  other.leaderAddress = self.address;
  follower.leaderAddress = otherServer.address;
  const loop = await app.inject({ method: 'PUT', url: '/v1/kv/k', payload: 'v' });
  assert.equal(loop.statusCode, 503);
  assert.equal(json(loop.body)['code'], 'CHORUS_NO_LEADER');
  assert.match(String(json(loop.body)['message']), /forwarded 2 times/);
  const hopped = await app.inject({ method: 'PUT', url: '/v1/kv/k', payload: 'v', headers: { [HOPS_HEADER]: '2' } });
  assert.equal(json(hopped.body)['code'], 'CHORUS_NO_LEADER');
});

test('a leader that refuses connections: 503 (not delivered); one that breaks after the request: 504 (unknown)', async (t) => {
  const follower = new FakeService('n1');
  follower.notLeader = { leaderId: 'n2' };
  const app = apiFor(t, follower);
  const [closedPort] = await freePorts(1);
  follower.leaderAddress = `127.0.0.1:${closedPort!}`;
  const refused = await app.inject({ method: 'PUT', url: '/v1/kv/k', payload: 'v' });
  assert.equal(refused.statusCode, 503);
  assert.equal(json(refused.body)['code'], 'CHORUS_NO_LEADER');

  follower.leaderAddress = await rawServer(t, (socket) => socket.destroy());
  const broken = await app.inject({ method: 'PUT', url: '/v1/kv/k', payload: 'v' });
  assert.equal(broken.statusCode, 504);
  assert.equal(json(broken.body)['code'], 'CHORUS_TIMEOUT');

  follower.leaderAddress = await rawServer(t, () => {}); // never answers
  const silent = await apiFor(t, follower, { requestTimeoutMs: 200 }).inject({ method: 'PUT', url: '/v1/kv/k', payload: 'v' });
  assert.equal(silent.statusCode, 504);
  assert.equal(json(silent.body)['code'], 'CHORUS_TIMEOUT');
});

test('forwards in flight are bounded by forwardsPendingMax: 503 CHORUS_BUSY beyond it', async (t) => {
  const follower = new FakeService('n1');
  follower.notLeader = { leaderId: 'n2' };
  const held: Socket[] = [];
  follower.leaderAddress = await rawServer(t, (socket) => held.push(socket));
  const app = apiFor(t, follower, { forwardsPendingMax: 2, requestTimeoutMs: 10_000 });
  const first = app.inject({ method: 'PUT', url: '/v1/kv/a', payload: 'v' });
  const second = app.inject({ method: 'PUT', url: '/v1/kv/b', payload: 'v' });
  while (held.length < 2) await new Promise((r) => setTimeout(r, 10));
  const third = await app.inject({ method: 'PUT', url: '/v1/kv/c', payload: 'v' });
  assert.equal(third.statusCode, 503);
  assert.equal(json(third.body)['code'], 'CHORUS_BUSY');
  const ok = 'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 14\r\n\r\n{"revision":9}';
  for (const socket of held) socket.end(ok);
  assert.equal((await first).statusCode, 200);
  assert.equal((await second).statusCode, 200);
});

test("the leader's answer is bounded: a larger one is cut off and reported as unknown", async (t) => {
  const address = await rawServer(t, (socket) => {
    socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: 100000\r\n\r\n');
    socket.end(Buffer.alloc(100_000));
  });
  const forwarder = new Forwarder({ pendingMax: 4, responseBytesMax: 1024 });
  t.after(() => forwarder.close());
  await assert.rejects(
    forwarder.forward(address, { method: 'GET', url: '/v1/kv', contentType: undefined, body: undefined, hops: 1, timeoutMs: 5000 }),
    (error: unknown) => error instanceof ChorusError && error.code === 'CHORUS_TIMEOUT',
  );
  assert.equal(forwarder.pendingCount, 0);
});
