// Bounded memory and hostile input: queue limits, frame limits, garbage on the wire.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  append,
  connected,
  freePort,
  hasCode,
  header,
  heartbeat,
  HOST,
  pattern,
  range,
  rawConnect,
  rawMember,
  seqsFrom,
  startCluster,
  startNode,
  waitFor,
} from './helpers.ts';

test('the per-peer message limit is hit while the peer is down; drops are counted', async (t) => {
  const port = await freePort();
  const a = await startNode(t, 'a', { peers: new Map([['b', { host: HOST, port }]]), queueMessagesMax: 100 });
  const results = range(150).map((seq) => a.transport.send(heartbeat('a', 'b', seq)));
  assert.deepEqual(results, [...Array<boolean>(100).fill(true), ...Array<boolean>(50).fill(false)]);
  const stats = a.transport.stats().peers['b'];
  assert.equal(stats?.connected, false);
  assert.equal(stats?.queuedMessages, 100);
  assert.equal(stats?.droppedMessages, 50);

  // When the peer comes up, the queued messages go out in order and the queue has room again.
  const b = await startNode(t, 'b', { listen: { host: HOST, port } });
  await waitFor(() => b.inbox.length === 100, 'queued messages delivered');
  assert.deepEqual(seqsFrom(b.inbox, 'a'), range(100));
  assert.equal(a.transport.stats().peers['b']?.queuedMessages, 0);
  assert.equal(a.transport.send(heartbeat('a', 'b', 100)), true);
});

test('the per-peer byte limit is hit while the peer is down', async (t) => {
  const port = await freePort();
  const a = await startNode(t, 'a', { peers: new Map([['b', { host: HOST, port }]]), queueBytesMax: 10_000 });
  const message = (seq: number) => append('a', 'b', seq, [{ index: seq, term: 1, type: 'normal', data: pattern(1000, seq) }]);
  const results = range(20).map((seq) => a.transport.send(message(seq)));
  const accepted = results.filter(Boolean).length;
  assert.ok(accepted >= 8 && accepted <= 9, `about 10,000 / 1,1xx frames fit, got ${accepted}`);
  assert.deepEqual(results, [...Array<boolean>(accepted).fill(true), ...Array<boolean>(20 - accepted).fill(false)]);
  const stats = a.transport.stats().peers['b'];
  assert.ok((stats?.queuedBytes ?? Infinity) <= 10_000);
  assert.equal(stats?.droppedMessages, 20 - accepted);
});

test('an oversized outbound message is refused at send', async (t) => {
  const [a, b] = await startCluster(t, ['a', 'b'], { frameBytesMax: 1024 });
  assert.ok(a && b);
  const big = append('a', 'b', 1, [{ index: 1, term: 1, type: 'normal', data: pattern(2000, 1) }]);
  const small = append('a', 'b', 2, [{ index: 1, term: 1, type: 'normal', data: pattern(500, 1) }]);
  assert.equal(a.transport.send(big), false);
  assert.equal(a.transport.send(small), true);
  await waitFor(() => b.inbox.length === 1, 'the small message');
  assert.deepEqual(b.inbox[0], small);
  assert.equal(a.transport.stats().peers['b']?.droppedMessages, 1);
  assert.ok(hasCode(a.records, 'CHORUS_FRAME_TOO_LARGE'));
});

test('a frame over the receiver\'s limit closes the connection; the sender reconnects', async (t) => {
  const a = await startNode(t, 'a');
  const b = await startNode(t, 'b', { frameBytesMax: 1024 });
  a.transport.setPeer('b', b.address);
  const big = append('a', 'b', 1, [{ index: 1, term: 1, type: 'normal', data: pattern(4000, 1) }]);
  assert.equal(a.transport.send(big), true, 'the sender allows it');
  await waitFor(() => b.transport.stats().inbound.oversizedFrames === 1, 'receiver rejects the frame');
  assert.ok(hasCode(b.records, 'CHORUS_FRAME_TOO_LARGE'));
  await waitFor(() => (a.transport.stats().peers['b']?.connects ?? 0) >= 2, 'sender reconnected');
  assert.equal(a.transport.send(heartbeat('a', 'b', 2)), true);
  await waitFor(() => b.inbox.length === 1, 'later message delivered');
  assert.deepEqual(b.inbox[0], heartbeat('a', 'b', 2));
});

test('raw sockets with oversized headers or garbage are disconnected; other peers are unaffected', async (t) => {
  const [a, b] = await startCluster(t, ['a', 'b'], { frameBytesMax: 64 * 1024 });
  assert.ok(a && b);
  await waitFor(() => connected(b, 'a'), 'b connected to a');

  // Before the handshake, even a modest frame is too large.
  const preHeader = await rawConnect(t, a.address.port);
  preHeader.socket.write(header(100_000));
  await preHeader.closed;

  // After the handshake, the configured limit applies.
  const postHeader = await rawMember(t, a.address.port, 'z1');
  postHeader.socket.write(header(64 * 1024 + 1));
  await postHeader.closed;

  const preGarbage = await rawConnect(t, a.address.port);
  preGarbage.socket.write(Buffer.concat([header(3), Buffer.from([0xc1, 0xc1, 0xc1])]));
  await preGarbage.closed;

  const postGarbage = await rawMember(t, a.address.port, 'z2');
  postGarbage.socket.write(Buffer.concat([header(5), Buffer.from([0x93, 0xc1, 0xff, 0x00, 0x01])]));
  await postGarbage.closed;

  // Decodable, but not a message.
  const postNotMessage = await rawMember(t, a.address.port, 'z3');
  postNotMessage.sendFrame({ type: 'Append', from: 'z3', to: 'a', term: 'three' });
  await postNotMessage.closed;

  // Random bytes from the first byte on.
  const noise = await rawConnect(t, a.address.port);
  noise.socket.write(pattern(10_000, 9));
  await noise.closed;

  const inbound = a.transport.stats().inbound;
  // The noise is counted as one or the other, depending on what its first bytes announce.
  assert.ok(inbound.oversizedFrames >= 2);
  assert.ok(inbound.malformedFrames >= 3);
  assert.equal(inbound.oversizedFrames + inbound.malformedFrames, 6);
  assert.equal(inbound.rejectedHandshakes, 3, 'the three that never completed a handshake');
  assert.equal(inbound.received, 0);
  assert.equal(a.inbox.length, 0);
  assert.ok(hasCode(a.records, 'CHORUS_FRAME_TOO_LARGE'));
  assert.ok(hasCode(a.records, 'CHORUS_FRAME_MALFORMED'));

  // The transport still works for its real peers, both ways.
  assert.equal(b.transport.send(heartbeat('b', 'a', 1)), true);
  assert.equal(a.transport.send(heartbeat('a', 'b', 2)), true);
  await waitFor(() => a.inbox.length === 1 && b.inbox.length === 1, 'real peers still exchange');
  assert.deepEqual(a.inbox[0], heartbeat('b', 'a', 1));
  assert.equal(b.transport.stats().peers['a']?.connects, 1, 'b\'s connection was never disturbed');
});

test('a throwing handler loses that message only', async (t) => {
  const [a, b] = await startCluster(t, ['a', 'b']);
  assert.ok(a && b);
  const seen: number[] = [];
  b.transport.onMessage((m) => {
    if (m.type === 'Heartbeat' && m.seq === 1) throw new Error('boom');
    if (m.type === 'Heartbeat') seen.push(m.seq);
  });
  for (const seq of range(3)) a.transport.send(heartbeat('a', 'b', seq));
  await waitFor(() => seen.length === 2, 'other messages');
  assert.deepEqual(seen, [0, 2]);
  assert.ok(hasCode(b.records, 'CHORUS_HANDLER_FAILED'));
  assert.equal(a.transport.stats().peers['b']?.connects, 1);
});

test('invalid options are rejected with a stable code', async () => {
  const { TcpTransport } = await import('../../src/transport/tcp-transport.ts');
  await assert.rejects(
    TcpTransport.start({ clusterId: 'c', selfId: 'a', listen: { host: HOST, port: 0 }, queueMessagesMax: 0 }),
    { code: 'CHORUS_INVALID_OPTION' },
  );
  await assert.rejects(
    TcpTransport.start({ clusterId: 'c', selfId: 'a', listen: { host: HOST, port: 0 }, backoffMsMin: 10, backoffMsMax: 5 }),
    { code: 'CHORUS_INVALID_OPTION' },
  );
});
