// The fault hooks used by integration tests: drop and delay, applied at send.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { WireMessage as Message } from '../../src/transport/types.ts';
import { freePort, heartbeat, HOST, range, seqsFrom, sleep, startCluster, startNode, waitFor } from './helpers.ts';

const seqOf = (m: Message): number => ('seq' in m ? m.seq : -1);

test('the drop hook loses the chosen messages; send still reports success', async (t) => {
  const [a, b] = await startCluster(t, ['a', 'b']);
  assert.ok(a && b);
  a.transport.setFaults({ drop: (m) => seqOf(m) % 2 === 1 });
  for (const seq of range(100)) assert.equal(a.transport.send(heartbeat('a', 'b', seq)), true);
  await waitFor(() => b.inbox.length === 50, 'even messages');
  const stats = a.transport.stats().peers['b'];
  assert.equal(stats?.faultDroppedMessages, 50);
  assert.equal(stats?.droppedMessages, 0);

  a.transport.setFaults({});
  assert.equal(a.transport.send(heartbeat('a', 'b', 101)), true);
  await waitFor(() => b.inbox.length === 51, 'faults removed');
  assert.deepEqual(seqsFrom(b.inbox, 'a'), [...range(50).map((i) => i * 2), 101]);
});

test('the delay hook holds a message back, so later messages overtake it', async (t) => {
  const [a, b] = await startCluster(t, ['a', 'b']);
  assert.ok(a && b);
  a.transport.setFaults({ delayMs: (m) => (seqOf(m) === 0 ? 500 : 0) });
  for (const seq of range(10)) assert.equal(a.transport.send(heartbeat('a', 'b', seq)), true);
  await waitFor(() => b.inbox.length >= 9, 'undelayed messages');
  assert.equal(a.transport.stats().peers['b']?.delayedMessages, 1);
  await waitFor(() => b.inbox.length === 10, 'the delayed message');
  assert.deepEqual(seqsFrom(b.inbox, 'a'), [...range(9).map((i) => i + 1), 0]);
  assert.equal(a.transport.stats().peers['b']?.delayedMessages, 0);
});

test('delayed messages count against the queue limits and close clears their timers', async (t) => {
  const port = await freePort();
  const a = await startNode(t, 'a', { peers: new Map([['b', { host: HOST, port }]]), queueMessagesMax: 5 });
  a.transport.setFaults({ delayMs: () => 60_000 });
  const results = range(8).map((seq) => a.transport.send(heartbeat('a', 'b', seq)));
  assert.deepEqual(results, [true, true, true, true, true, false, false, false]);
  const stats = a.transport.stats().peers['b'];
  assert.equal(stats?.delayedMessages, 5);
  assert.equal(stats?.queuedMessages, 5);
  assert.equal(stats?.droppedMessages, 3);
  // If close() left the 60 s timers armed, this test file would not finish promptly.
  await a.transport.close();
  await sleep(10);
});
