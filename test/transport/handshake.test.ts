// Only members of the same cluster, speaking a supported protocol, get their messages through.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  connected,
  hasCode,
  heartbeat,
  hello,
  rawConnect,
  rawMember,
  sleep,
  startNode,
  waitFor,
} from './helpers.ts';

test('a transport of another cluster is refused, nothing is delivered, and it backs off', async (t) => {
  const a = await startNode(t, 'a');
  // A long maximum backoff: after a refusal the dialer must wait it out, not spin.
  const stranger = await startNode(t, 'x', {
    clusterId: 'another-cluster',
    peers: new Map([['a', a.address]]),
    backoffMsMin: 1,
    backoffMsMax: 60_000,
  });
  for (let seq = 0; seq < 5; seq += 1) stranger.transport.send(heartbeat('x', 'a', seq));
  await waitFor(() => (stranger.transport.stats().peers['a']?.refusals ?? 0) >= 1, 'refusal seen by the dialer');
  await waitFor(() => a.transport.stats().inbound.rejectedHandshakes >= 1, 'refusal counted by the acceptor');
  assert.ok(hasCode(a.records, 'CHORUS_HANDSHAKE_REFUSED'));
  assert.ok(a.records.some((r) => r.fields['refusal'] === 'CHORUS_CLUSTER_MISMATCH'));
  assert.ok(hasCode(stranger.records, 'CHORUS_HANDSHAKE_REFUSED'));

  await sleep(300);
  const peer = stranger.transport.stats().peers['a'];
  assert.equal(peer?.refusals, 1, 'no retry storm after a refusal');
  assert.equal(peer?.connected, false);
  assert.equal(peer?.queuedMessages, 5, 'messages stay queued, undelivered');
  assert.equal(a.inbox.length, 0);
  assert.equal(a.transport.stats().inbound.received, 0);
});

test('an unsupported protocol version is refused with a reason', async (t) => {
  const a = await startNode(t, 'a');
  const client = await rawConnect(t, a.address.port);
  client.sendFrame(hello('z', undefined, 99));
  await client.closed;
  assert.deepEqual(client.frames, [{
    kind: 'refuse',
    code: 'CHORUS_PROTOCOL_UNSUPPORTED',
    reason: 'protocol version 99 is not supported',
  }]);
  assert.equal(a.transport.stats().inbound.rejectedHandshakes, 1);
});

test('a first frame that is not a hello is refused; messages before a handshake are never delivered', async (t) => {
  const a = await startNode(t, 'a');
  const client = await rawConnect(t, a.address.port);
  client.sendFrame(heartbeat('z', 'a', 1));
  await client.closed;
  assert.equal((client.frames[0] as { code?: unknown }).code, 'CHORUS_HANDSHAKE_INVALID');
  assert.equal(a.inbox.length, 0);
});

test('a dialer that reaches the wrong member does not deliver to it', async (t) => {
  const c = await startNode(t, 'c');
  // "b" is configured at c's address (a stale address book, say).
  const a = await startNode(t, 'a', { peers: new Map([['b', c.address]]), backoffMsMax: 60_000 });
  a.transport.send(heartbeat('a', 'b', 1));
  await waitFor(() => (a.transport.stats().peers['b']?.refusals ?? 0) >= 1, 'wrong member detected');
  assert.equal(connected(a, 'b'), false);
  assert.equal(c.inbox.length, 0);
  assert.equal(c.transport.stats().inbound.droppedMisaddressed, 0, 'nothing was even sent');
});

test('messages whose from or to do not match the connection are dropped and counted', async (t) => {
  const a = await startNode(t, 'a');
  const client = await rawMember(t, a.address.port, 'z');
  client.sendFrame(heartbeat('y', 'a', 1)); // from is not the handshake's member
  client.sendFrame(heartbeat('z', 'q', 2)); // not addressed to a
  client.sendFrame(heartbeat('z', 'a', 3));
  await waitFor(() => a.inbox.length === 1, 'the well-addressed message');
  assert.deepEqual(a.inbox[0], heartbeat('z', 'a', 3));
  const inbound = a.transport.stats().inbound;
  assert.equal(inbound.droppedMisaddressed, 2);
  assert.equal(inbound.received, 1);
  assert.equal(client.isClosed(), false, 'misaddressed messages do not cost the connection');
});

test('a dialer claiming the acceptor\'s own id is refused', async (t) => {
  const a = await startNode(t, 'a');
  const client = await rawConnect(t, a.address.port);
  client.sendFrame(hello('a'));
  await client.closed;
  assert.equal((client.frames[0] as { code?: unknown }).code, 'CHORUS_HANDSHAKE_INVALID');
});

test('a connection that never says hello is closed after the handshake timeout', async (t) => {
  const a = await startNode(t, 'a', { handshakeTimeoutMs: 50 });
  const client = await rawConnect(t, a.address.port);
  await client.closed;
  assert.equal(a.transport.stats().inbound.rejectedHandshakes, 1);
  assert.ok(hasCode(a.records, 'CHORUS_HANDSHAKE_TIMEOUT'));
});
