// Backpressure against a peer that stops reading: bounded queue, 'drain', stalled sockets.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { Socket } from 'node:net';
import { decodePayload, encodeFrame, validateMessage } from '../../src/transport/codec.ts';
import { FrameDecoder } from '../../src/transport/frame-decoder.ts';
import type { WireMessage as Message } from '../../src/transport/types.ts';
import { CLUSTER, connected, hasCode, HOST, pattern, snapshotChunk, startNode, waitFor } from './helpers.ts';

/** An acceptor for member "b" that answers the handshake, then stops reading until resumed. */
async function stubbornPeer(t: TestContext): Promise<{ port: number; received: Message[]; sockets: Socket[]; resume(): void }> {
  const received: Message[] = [];
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    let greeted = false;
    const decoder = new FrameDecoder(1 << 30, (payload) => {
      const value = decodePayload(payload);
      if (!greeted) {
        greeted = true;
        socket.write(encodeFrame({ kind: 'welcome', clusterId: CLUSTER, memberId: 'b', protocolVersion: 1 }));
        socket.pause();
        return;
      }
      const message = validateMessage(value);
      if (message !== null) received.push(message);
    });
    socket.on('data', (chunk: Buffer) => decoder.push(chunk));
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen({ host: HOST, port: 0 }, resolve));
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return { port, received, sockets, resume: () => sockets.forEach((s) => s.resume()) };
}

test('a peer that stops reading fills the bounded queue; after it resumes, drain flushes it in order', async (t) => {
  const peer = await stubbornPeer(t);
  const a = await startNode(t, 'a', {
    peers: new Map([['b', { host: HOST, port: peer.port }]]),
    queueBytesMax: 4 * 1024 * 1024,
    socketBufferBytes: 64 * 1024,
  });
  await waitFor(() => connected(a, 'b'), 'connected');
  const chunk = pattern(1024 * 1024, 5);
  const accepted: number[] = [];
  let refused = 0;
  for (let seq = 0; seq < 64 && refused === 0; seq += 1) {
    if (a.transport.send({ ...snapshotChunk('a', 'b', chunk), seq })) accepted.push(seq);
    else refused += 1;
  }
  assert.equal(refused, 1, 'the queue limit was reached');
  const stats = a.transport.stats().peers['b'];
  assert.ok((stats?.queuedBytes ?? Infinity) <= 4 * 1024 * 1024);
  assert.equal(stats?.droppedMessages, 1);

  peer.resume();
  await waitFor(() => peer.received.length === accepted.length, 'every accepted chunk delivered');
  assert.deepEqual(peer.received.map((m) => ('seq' in m ? m.seq : -1)), accepted);
  assert.equal(a.transport.stats().peers['b']?.queuedMessages, 0);
});

test('a socket that stays unwritable is presumed dead and replaced', async (t) => {
  const peer = await stubbornPeer(t);
  const a = await startNode(t, 'a', {
    peers: new Map([['b', { host: HOST, port: peer.port }]]),
    writeStallMsMax: 200,
  });
  await waitFor(() => connected(a, 'b'), 'connected');
  const chunk = pattern(1024 * 1024, 6);
  // Far more than loopback socket buffers hold, fed over several turns of the event loop.
  for (let seq = 0; seq < 48 && !hasCode(a.records, 'CHORUS_WRITE_STALLED'); seq += 1) {
    a.transport.send({ ...snapshotChunk('a', 'b', chunk), seq });
    await new Promise((resolve) => setImmediate(resolve));
  }
  await waitFor(() => hasCode(a.records, 'CHORUS_WRITE_STALLED'), 'stall detected');
  await waitFor(() => (a.transport.stats().peers['b']?.connects ?? 0) >= 2, 'replaced by a new connection');
});
