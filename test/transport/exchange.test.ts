// Messages flow between live transports, intact and in order per link.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Entry, Message } from '../../src/core/raft/types.ts';
import {
  append,
  connected,
  heartbeat,
  pattern,
  range,
  seqsFrom,
  snapshotChunk,
  startCluster,
  startNode,
  waitFor,
} from './helpers.ts';

test('two transports exchange messages both ways', async (t) => {
  const [a, b] = await startCluster(t, ['a', 'b']);
  assert.ok(a && b);
  assert.ok(a.address.port > 0, 'the bound port is exposed');
  assert.equal(a.transport.send(heartbeat('a', 'b', 1)), true);
  assert.equal(b.transport.send(heartbeat('b', 'a', 2)), true);
  await waitFor(() => a.inbox.length === 1 && b.inbox.length === 1, 'one message each way');
  assert.deepEqual(b.inbox[0], heartbeat('a', 'b', 1));
  assert.deepEqual(a.inbox[0], heartbeat('b', 'a', 2));
  const stats = a.transport.stats();
  assert.equal(stats.peers['b']?.sentMessages, 1);
  assert.equal(stats.peers['b']?.connected, true);
  assert.equal(stats.inbound.received, 1);
});

test('Append entries and a 1 MiB snapshot chunk arrive intact, byte fields as Uint8Array', async (t) => {
  const [a, b, c] = await startCluster(t, ['a', 'b', 'c']);
  assert.ok(a && b && c);
  const entries: Entry[] = [
    { index: 10, term: 3, type: 'normal', data: pattern(100, 1) },
    { index: 11, term: 3, type: 'noop' },
    { index: 12, term: 3, type: 'config', config: { voters: ['a', 'b', 'c'], learners: ['d'] } },
    { index: 13, term: 3, type: 'normal', data: new Uint8Array(0) },
    { index: 14, term: 3, type: 'normal', data: pattern(70_000, 2) },
  ];
  const appendMessage = append('a', 'b', 1, entries);
  const chunk = snapshotChunk('a', 'c', pattern(1024 * 1024, 3));
  assert.equal(a.transport.send(appendMessage), true);
  assert.equal(a.transport.send(chunk), true);
  await waitFor(() => b.inbox.length === 1 && c.inbox.length === 1, 'append and snapshot delivered');

  assert.deepStrictEqual(b.inbox[0], appendMessage);
  assert.deepStrictEqual(c.inbox[0], chunk);
  const received = b.inbox[0];
  assert.ok(received?.type === 'Append');
  const data = received.entries[0]?.data;
  assert.ok(data instanceof Uint8Array);
  assert.equal(Object.getPrototypeOf(data), Uint8Array.prototype, 'plain Uint8Array, not Buffer');
  const receivedChunk = c.inbox[0];
  assert.ok(receivedChunk?.type === 'Snapshot');
  assert.equal(Object.getPrototypeOf(receivedChunk.chunk), Uint8Array.prototype);
});

test('three transports: every link delivers its messages in order', async (t) => {
  const ids = ['a', 'b', 'c'];
  const nodes = await startCluster(t, ids);
  const perLink = 500;
  for (const seq of range(perLink)) {
    for (const from of nodes) {
      for (const to of nodes) {
        if (from === to) continue;
        // Mix in Append frames with payloads so frames of different sizes interleave.
        const message: Message = seq % 50 === 0
          ? append(from.id, to.id, seq, [{ index: seq, term: 1, type: 'normal', data: pattern(seq * 40, seq) }])
          : heartbeat(from.id, to.id, seq);
        assert.equal(from.transport.send(message), true);
      }
    }
  }
  const expected = range(perLink);
  await waitFor(() => nodes.every((n) => n.inbox.length === perLink * 2), 'all messages delivered');
  for (const to of nodes) {
    for (const from of nodes) {
      if (from === to) continue;
      assert.deepEqual(seqsFrom(to.inbox, from.id), expected, `${from.id} -> ${to.id} in order`);
    }
  }
});

test('a burst of 10,000 small messages all arrive, in order', async (t) => {
  const [a, b] = await startCluster(t, ['a', 'b']);
  assert.ok(a && b);
  await waitFor(() => connected(a, 'b'), 'a connected to b');
  const count = 10_000;
  let accepted = 0;
  for (const seq of range(count)) if (a.transport.send(heartbeat('a', 'b', seq))) accepted += 1;
  assert.equal(accepted, count);
  await waitFor(() => b.inbox.length === count, 'burst delivered');
  assert.deepEqual(seqsFrom(b.inbox, 'a'), range(count));
  const stats = a.transport.stats().peers['b'];
  assert.equal(stats?.sentMessages, count);
  assert.equal(stats?.droppedMessages, 0);
  assert.equal(stats?.queuedMessages, 0);
});

test('reconnects after the peer restarts on the same port', async (t) => {
  const [a, b] = await startCluster(t, ['a', 'b']);
  assert.ok(a && b);
  assert.equal(a.transport.send(heartbeat('a', 'b', 1)), true);
  await waitFor(() => b.inbox.length === 1, 'first message');

  await b.transport.close();
  const restarted = await startNode(t, 'b', { listen: { host: b.address.host, port: b.address.port } });
  restarted.transport.setPeer('a', a.address);
  await waitFor(() => (a.transport.stats().peers['b']?.connects ?? 0) >= 2, 'a reconnected to the restarted b');
  assert.ok((a.transport.stats().peers['b']?.reconnects ?? 0) >= 1);

  assert.equal(a.transport.send(heartbeat('a', 'b', 2)), true);
  assert.equal(restarted.transport.send(heartbeat('b', 'a', 3)), true);
  await waitFor(() => restarted.inbox.some((m) => 'seq' in m && m.seq === 2), 'message after restart');
  await waitFor(() => a.inbox.some((m) => 'seq' in m && m.seq === 3), 'reply from the restarted b');
});

test('messages queued while the peer is away are delivered once it comes up', async (t) => {
  const a = await startNode(t, 'a');
  const b = await startNode(t, 'b');
  a.transport.setPeer('b', b.address);
  await waitFor(() => connected(a, 'b'), 'connected');
  await b.transport.close();
  await waitFor(() => !connected(a, 'b'), 'a noticed b is gone');
  for (const seq of range(20)) assert.equal(a.transport.send(heartbeat('a', 'b', seq)), true);
  assert.equal(a.transport.stats().peers['b']?.queuedMessages, 20);
  const restarted = await startNode(t, 'b', { listen: b.address });
  await waitFor(() => restarted.inbox.length === 20, 'queued messages delivered');
  assert.deepEqual(seqsFrom(restarted.inbox, 'a'), range(20));
});

test('peers can be added, re-addressed and removed at runtime; resolver functions work', async (t) => {
  const b = await startNode(t, 'b');
  const c = await startNode(t, 'c');
  const directory = new Map([['b', b.address], ['c', c.address]]);
  const a = await startNode(t, 'a', { peers: (id) => directory.get(id) });

  assert.equal(a.transport.send(heartbeat('a', 'b', 1)), true, 'resolved on first send');
  await waitFor(() => b.inbox.length === 1, 'delivered via resolver');
  assert.equal(a.transport.send(heartbeat('a', 'zz', 1)), false, 'unknown member');
  assert.equal(a.transport.send(heartbeat('a', 'a', 1)), false, 'never to self');
  assert.equal(a.transport.stats().droppedUnknownPeer, 2);

  // Re-address "b" to a new process of b; the link is replaced.
  const b2 = await startNode(t, 'b');
  a.transport.setPeer('b', b2.address);
  await waitFor(() => a.transport.stats().peers['b']?.address === `${b2.address.host}:${b2.address.port}` && connected(a, 'b'), 're-addressed');
  assert.equal(a.transport.send(heartbeat('a', 'b', 2)), true);
  await waitFor(() => b2.inbox.length === 1, 'delivered to the new address');

  a.transport.removePeer('c');
  assert.equal(a.transport.stats().peers['c'], undefined);
  // With a resolver, a later send looks the member up again.
  assert.equal(a.transport.send(heartbeat('a', 'c', 3)), true);
  await waitFor(() => c.inbox.length === 1, 'delivered after re-resolution');
});

test('send after close returns false and close is idempotent', async (t) => {
  const [a] = await startCluster(t, ['a', 'b']);
  assert.ok(a);
  await a.transport.close();
  await a.transport.close();
  assert.equal(a.transport.send(heartbeat('a', 'b', 1)), false);
});

test('flush() writes what was sent at once; without it the write waits for the end of the turn', async (t) => {
  const [a, b] = await startCluster(t, ['a', 'b']);
  assert.ok(a && b);
  await waitFor(() => connected(a, 'b'), 'a connected to b');
  const sentMessages = (): number => a.transport.stats().peers['b']?.sentMessages ?? 0;
  assert.equal(a.transport.send(heartbeat('a', 'b', 1)), true);
  assert.equal(sentMessages(), 0, 'queued: written when the event loop turns');
  a.transport.flush();
  assert.equal(sentMessages(), 1, 'written by flush(), synchronously');
  a.transport.flush(); // nothing queued: a no-op
  assert.equal(a.transport.send(heartbeat('a', 'b', 2)), true);
  await waitFor(() => b.inbox.length === 2, 'both delivered');
  assert.deepEqual(seqsFrom(b.inbox, 'a'), [1, 2]);
  assert.equal(sentMessages(), 2, 'the queued flush wrote the second one');
});
