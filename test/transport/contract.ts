// Contract tests for the Transport port, written once and run against every implementation
// (the TCP transport, the in-memory transport, and any later one).
//
// How to use: call transportContract at the top level of a *.test.ts file with a factory that
// starts a fresh set of connected endpoints for each test case:
//
//   transportContract('MemoryTransport', async (ids, options) => {
//     const network = new MemoryNetwork({ queueMessagesMax: options.queueMessagesMax });
//     const endpoints = ids.map((id) => network.open(id));
//     return {
//       endpoints,
//       stall: (from, to) => network.holdLink(from, to),
//       restore: (from, to) => network.releaseLink(from, to),
//       teardown: () => network.close(),
//     };
//   });
//
// What every transport must do: deliver each message to the member in its `to` field with equal
// content, in order per link (sender to receiver), never from inside `send` (no re-entrancy);
// refuse (send returns false) messages to unknown members or to itself and every message after
// close; stop delivering to a closed endpoint; bound the queue towards a peer that cannot be
// reached. The optional capabilities of src/ports (flush, fault hooks, statistics) are checked
// where the implementation has them.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import type { Entry, Message, NodeId } from '../../src/core/raft/types.ts';
import { hasTransportStats, isFaultInjectable, isFlushable } from '../../src/ports/index.ts';
import type { Transport } from '../../src/ports/index.ts';
import type { MultiMasterMessage, WireMessage } from '../../src/transport/types.ts';
import { append, heartbeat, pattern, range, seqsFrom, snapshotChunk, waitFor } from './helpers.ts';

export interface TransportClusterOptions {
  /** Per peer: the most messages a sender may hold for it (the implementation's default when
   * absent). */
  readonly queueMessagesMax?: number;
}

/** Endpoints started by a factory, one per id asked for, all able to reach each other. */
export interface TransportCluster {
  /** In the order of the ids; endpoint i sends as ids[i]. */
  readonly endpoints: readonly Transport<WireMessage>[];
  /** Makes `to` unreachable from `from` without losing messages: what `from` sends to `to` from
   * now on waits in its queue (the queue limit applies) until restore. */
  stall(from: NodeId, to: NodeId): void | Promise<void>;
  /** Ends stall: the messages waiting for `to` are delivered, in order. */
  restore(from: NodeId, to: NodeId): void | Promise<void>;
  /** Closes whatever is still open; called after each case, also when it failed. */
  teardown(): Promise<void>;
}

export type TransportFactory = (ids: readonly NodeId[], options: TransportClusterOptions) => Promise<TransportCluster>;

export interface TransportContractOptions {
  /** How long to wait before concluding that nothing more will arrive. Default 150 ms. */
  readonly quietMs?: number;
}

/** A running cluster with an inbox per endpoint (the contract's own handlers). */
interface Harness {
  readonly cluster: TransportCluster;
  readonly ids: readonly NodeId[];
  readonly inbox: ReadonlyMap<NodeId, WireMessage[]>;
  at(id: NodeId): Transport<WireMessage>;
  inboxOf(id: NodeId): WireMessage[];
}

async function withCluster(
  factory: TransportFactory,
  ids: readonly NodeId[],
  options: TransportClusterOptions,
  body: (h: Harness) => Promise<void>,
): Promise<void> {
  const cluster = await factory(ids, options);
  try {
    assert.equal(cluster.endpoints.length, ids.length, 'one endpoint per id');
    const inbox = new Map<NodeId, WireMessage[]>();
    const byId = new Map<NodeId, Transport<WireMessage>>();
    ids.forEach((id, i) => {
      const endpoint = cluster.endpoints[i];
      assert.ok(endpoint !== undefined);
      const received: WireMessage[] = [];
      inbox.set(id, received);
      byId.set(id, endpoint);
      endpoint.onMessage((m) => received.push(m));
    });
    const at = (id: NodeId): Transport<WireMessage> => {
      const endpoint = byId.get(id);
      assert.ok(endpoint !== undefined, `endpoint ${id}`);
      return endpoint;
    };
    const inboxOf = (id: NodeId): WireMessage[] => {
      const received = inbox.get(id);
      assert.ok(received !== undefined, `inbox of ${id}`);
      return received;
    };
    await body({ cluster, ids, inbox, at, inboxOf });
  } finally {
    await cluster.teardown();
  }
}

const seqOf = (m: WireMessage): number => ('seq' in m ? m.seq : -1);

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Sends one message from `from` to `to` and waits until it arrived (connections are up). */
async function warmUp(h: Harness, from: NodeId, to: NodeId, seq = -1): Promise<void> {
  const before = h.inboxOf(to).length;
  assert.equal(h.at(from).send(heartbeat(from, to, seq)), true, `warm-up ${from} -> ${to}`);
  await waitFor(() => h.inboxOf(to).length > before, `warm-up ${from} -> ${to} delivered`);
}

function assertPlainBytes(value: unknown, what: string): void {
  assert.ok(value instanceof Uint8Array, `${what} is a Uint8Array`);
  assert.equal(Object.getPrototypeOf(value), Uint8Array.prototype, `${what} is a plain Uint8Array`);
}

export function transportContract(name: string, factory: TransportFactory, contractOptions: TransportContractOptions = {}): void {
  const quietMs = contractOptions.quietMs ?? 150;

  describe(`Transport contract: ${name}`, () => {
    test('delivers each message to the addressed peer only, with equal content (Append entries, byte payloads, multi-master)', async () => {
      await withCluster(factory, ['a', 'b', 'c'], {}, async (h) => {
        const entries: Entry[] = [
          { index: 10, term: 3, type: 'normal', data: pattern(100, 1) },
          { index: 11, term: 3, type: 'noop' },
          { index: 12, term: 3, type: 'config', config: { voters: ['a', 'b', 'c'], learners: ['d'] } },
          { index: 13, term: 3, type: 'normal', data: new Uint8Array(0) },
          { index: 14, term: 3, type: 'normal', data: pattern(70_000, 2) },
        ];
        const toB: Message[] = [
          heartbeat('a', 'b', 1),
          append('a', 'b', 2, entries),
          { type: 'Vote', from: 'a', to: 'b', term: 4, lastIndex: 14, lastTerm: 3, transfer: false },
          snapshotChunk('a', 'b', pattern(256 * 1024, 3)),
        ];
        const multiMaster: MultiMasterMessage = {
          type: 'MultiMaster',
          from: 'a',
          to: 'c',
          term: 0,
          keyspace: 'users',
          body: { t: 'ack', ack: { seq: 7, members: ['a', 'c'] }, note: 'plain data' },
        };
        const toC: WireMessage[] = [append('a', 'c', 1, entries.slice(0, 2)), multiMaster];
        for (const m of toB) assert.equal(h.at('a').send(m), true, `send ${m.type} to b`);
        for (const m of toC) assert.equal(h.at('a').send(m), true, `send ${m.type} to c`);
        await waitFor(() => h.inboxOf('b').length === toB.length && h.inboxOf('c').length === toC.length, 'all delivered');
        assert.deepStrictEqual(h.inboxOf('b'), toB);
        assert.deepStrictEqual(h.inboxOf('c'), toC);
        await sleep(quietMs);
        assert.equal(h.inboxOf('a').length, 0, 'nothing reaches the sender');
        assert.equal(h.inboxOf('b').length, toB.length, 'no duplicates');
        assert.equal(h.inboxOf('c').length, toC.length, 'no duplicates');

        const receivedAppend = h.inboxOf('b')[1];
        assert.ok(receivedAppend?.type === 'Append');
        assertPlainBytes(receivedAppend.entries[0]?.data, 'entry data');
        assertPlainBytes(receivedAppend.entries[3]?.data, 'empty entry data');
        const receivedChunk = h.inboxOf('b')[3];
        assert.ok(receivedChunk?.type === 'Snapshot');
        assertPlainBytes(receivedChunk.chunk, 'snapshot chunk');
      });
    });

    test('a byte payload given as a Buffer view arrives as a Uint8Array of the same bytes', async () => {
      await withCluster(factory, ['a', 'b'], {}, async (h) => {
        const backing = Buffer.from(pattern(4096, 9));
        const view = backing.subarray(100, 164);
        assert.equal(h.at('a').send(append('a', 'b', 1, [{ index: 1, term: 1, type: 'normal', data: view }])), true);
        await waitFor(() => h.inboxOf('b').length === 1, 'delivered');
        const received = h.inboxOf('b')[0];
        assert.ok(received?.type === 'Append');
        const data = received.entries[0]?.data;
        assertPlainBytes(data, 'entry data');
        assert.deepEqual([...(data ?? [])], [...view]);
      });
    });

    test('what arrives is the message as it was at send: later changes by the sender do not show', async () => {
      await withCluster(factory, ['a', 'b'], {}, async (h) => {
        const data = pattern(32, 4);
        const entries: Entry[] = [{ index: 5, term: 2, type: 'normal', data }];
        const message = append('a', 'b', 1, entries);
        const expected = structuredClone(message);
        assert.equal(h.at('a').send(message), true);
        data.fill(0xee);
        entries.push({ index: 6, term: 2, type: 'noop' });
        (message as { commit: number }).commit = 999;
        await waitFor(() => h.inboxOf('b').length === 1, 'delivered');
        assert.deepStrictEqual(h.inboxOf('b')[0], expected);
      });
    });

    test('each link is FIFO: 1,000 messages per link arrive in the order sent', async () => {
      await withCluster(factory, ['a', 'b', 'c'], {}, async (h) => {
        const perLink = 1000;
        for (const seq of range(perLink)) {
          for (const from of ['a', 'c']) {
            // Payloads of varying size among small messages, so different sizes interleave.
            const m: Message = seq % 50 === 0
              ? append(from, 'b', seq, [{ index: seq + 1, term: 1, type: 'normal', data: pattern(seq * 20, seq) }])
              : heartbeat(from, 'b', seq);
            assert.equal(h.at(from).send(m), true, `send ${seq} from ${from}`);
          }
        }
        await waitFor(() => h.inboxOf('b').length === 2 * perLink, 'all delivered');
        assert.deepEqual(seqsFrom(h.inboxOf('b'), 'a'), range(perLink));
        assert.deepEqual(seqsFrom(h.inboxOf('b'), 'c'), range(perLink));
      });
    });

    test('one handler receives the messages of several peers, each peer in order', async () => {
      await withCluster(factory, ['a', 'b', 'c', 'd'], {}, async (h) => {
        const senders = ['b', 'c', 'd'];
        for (const seq of range(100)) {
          for (const from of senders) assert.equal(h.at(from).send(heartbeat(from, 'a', seq)), true);
        }
        await waitFor(() => h.inboxOf('a').length === 300, 'all delivered');
        for (const from of senders) assert.deepEqual(seqsFrom(h.inboxOf('a'), from), range(100), `from ${from}`);
        assert.ok(h.inboxOf('a').every((m) => m.to === 'a'));
        for (const id of senders) assert.equal(h.inboxOf(id).length, 0, `nothing for ${id}`);
      });
    });

    test('send to an unknown member or to itself returns false; the endpoint still works', async () => {
      await withCluster(factory, ['a', 'b'], {}, async (h) => {
        const a = h.at('a');
        assert.equal(a.send(heartbeat('a', 'nobody', 1)), false, 'unknown member');
        assert.equal(a.send(heartbeat('a', 'a', 2)), false, 'itself');
        if (hasTransportStats(a)) assert.equal(a.stats().droppedUnknownPeer, 2);
        assert.equal(a.send(heartbeat('a', 'b', 3)), true);
        await waitFor(() => h.inboxOf('b').length === 1, 'delivered');
        await sleep(quietMs);
        assert.equal(h.inboxOf('a').length, 0, 'a message to itself is not delivered');
        assert.deepEqual(seqsFrom(h.inboxOf('b'), 'a'), [3]);
      });
    });

    test('after close, send returns false and the closed endpoint receives nothing more', async () => {
      await withCluster(factory, ['a', 'b', 'c'], {}, async (h) => {
        await warmUp(h, 'a', 'b');
        await warmUp(h, 'c', 'b');
        await warmUp(h, 'b', 'a');
        // Messages on their way to b when it closes.
        for (const seq of range(20)) {
          h.at('a').send(heartbeat('a', 'b', seq));
          h.at('c').send(heartbeat('c', 'b', seq));
        }
        const received = h.inboxOf('b').length;
        await h.at('b').close();
        assert.equal(h.at('b').send(heartbeat('b', 'a', 100)), false, 'send after close');
        assert.equal(h.at('b').send(heartbeat('b', 'c', 101)), false, 'send after close');
        // What others send to a closed member may be queued or refused; it is never delivered.
        h.at('a').send(heartbeat('a', 'b', 200));
        await h.at('b').close(); // idempotent
        await sleep(quietMs);
        assert.equal(h.inboxOf('b').length, received, 'nothing delivered after close');
        assert.deepEqual(seqsFrom(h.inboxOf('a'), 'b'), [-1], 'nothing from b after close');
        // The others carry on.
        assert.equal(h.at('a').send(heartbeat('a', 'c', 300)), true);
        await waitFor(() => seqsFrom(h.inboxOf('c'), 'a').includes(300), 'a -> c still works');
      });
    });

    test('a closing sender discards what it still had queued', async () => {
      await withCluster(factory, ['a', 'b'], {}, async (h) => {
        await warmUp(h, 'a', 'b');
        for (const seq of range(20)) assert.equal(h.at('a').send(heartbeat('a', 'b', seq)), true);
        await h.at('a').close();
        assert.equal(h.at('a').send(heartbeat('a', 'b', 20)), false, 'send after close');
        await sleep(quietMs);
        assert.deepEqual(seqsFrom(h.inboxOf('b'), 'a'), [-1], 'only the warm-up message');
      });
    });

    test('delivery is never re-entrant: a handler that sends does not recurse, send delivers nothing synchronously', async () => {
      await withCluster(factory, ['a', 'b'], {}, async (h) => {
        const rounds = 50;
        let depth = 0;
        let depthMax = 0;
        let replies = 0;
        const chain: number[] = [];
        const ping = (self: NodeId, peer: NodeId) => (m: WireMessage): void => {
          depth += 1;
          depthMax = Math.max(depthMax, depth);
          chain.push(seqOf(m));
          if (seqOf(m) < rounds) {
            const next = seqOf(m) + 1;
            assert.equal(h.at(self).send(heartbeat(self, peer, next)), true);
            replies += 1;
            // The reply has not been handled yet: it is delivered on a later turn.
            assert.equal(chain[chain.length - 1], seqOf(m), 'no synchronous delivery of the reply');
          }
          depth -= 1;
        };
        h.at('a').onMessage(ping('a', 'b'));
        h.at('b').onMessage(ping('b', 'a'));
        assert.equal(h.at('a').send(heartbeat('a', 'b', 0)), true);
        assert.equal(chain.length, 0, 'send delivers nothing synchronously');
        await waitFor(() => chain.length === rounds + 1, 'the ping-pong chain');
        assert.deepEqual(chain, range(rounds + 1));
        assert.equal(replies, rounds);
        assert.equal(depthMax, 1, 'handlers never nest');
      });
    });

    test('a peer that cannot be reached: the queue fills up, send returns false, and the queued messages arrive in order once it can', async () => {
      const limit = 16;
      await withCluster(factory, ['a', 'b', 'c'], { queueMessagesMax: limit }, async (h) => {
        await warmUp(h, 'a', 'b');
        await h.cluster.stall('a', 'b');
        const results = range(limit + 5).map((seq) => h.at('a').send(heartbeat('a', 'b', seq)));
        assert.deepEqual(results, range(limit + 5).map((seq) => seq < limit), 'accepted up to the limit, then refused');
        // Other links are not affected by the stalled one.
        assert.equal(h.at('a').send(heartbeat('a', 'c', 1)), true);
        await waitFor(() => h.inboxOf('c').length === 1, 'a -> c still works');
        await sleep(quietMs);
        assert.deepEqual(seqsFrom(h.inboxOf('b'), 'a'), [-1], 'nothing reaches the unreachable peer');
        const a = h.at('a');
        if (hasTransportStats(a)) {
          const peer = a.stats().peers['b'];
          assert.equal(peer?.queuedMessages, limit, 'queued for b');
          assert.equal(peer?.droppedMessages, 5, 'refused for b');
        }
        assert.equal(h.at('a').send(heartbeat('a', 'b', 100)), false, 'still full');

        await h.cluster.restore('a', 'b');
        await waitFor(() => h.inboxOf('b').length === 1 + limit, 'queued messages delivered');
        assert.deepEqual(seqsFrom(h.inboxOf('b'), 'a'), [-1, ...range(limit)]);
        assert.equal(h.at('a').send(heartbeat('a', 'b', 101)), true, 'room again');
        await waitFor(() => h.inboxOf('b').length === 2 + limit, 'delivered after restore');
      });
    });

    test('flush (where offered) delivers nothing synchronously and loses nothing', async (t: TestContext) => {
      await withCluster(factory, ['a', 'b'], {}, async (h) => {
        const a = h.at('a');
        if (!isFlushable(a)) {
          t.skip('no flush');
          return;
        }
        await warmUp(h, 'a', 'b');
        for (const seq of range(10)) assert.equal(a.send(heartbeat('a', 'b', seq)), true);
        a.flush();
        a.flush();
        assert.equal(h.inboxOf('b').length, 1, 'nothing delivered inside flush');
        await waitFor(() => h.inboxOf('b').length === 11, 'delivered');
        assert.deepEqual(seqsFrom(h.inboxOf('b'), 'a'), [-1, ...range(10)]);
      });
    });

    test('the drop hook (where offered) loses the chosen messages while send returns true', async (t: TestContext) => {
      await withCluster(factory, ['a', 'b'], {}, async (h) => {
        const a = h.at('a');
        if (!isFaultInjectable(a)) {
          t.skip('no fault hooks');
          return;
        }
        a.setFaults({ drop: (m) => seqOf(m) % 2 === 1 });
        for (const seq of range(20)) assert.equal(a.send(heartbeat('a', 'b', seq)), true, `send ${seq}`);
        await waitFor(() => h.inboxOf('b').length === 10, 'the even messages');
        a.setFaults({});
        assert.equal(a.send(heartbeat('a', 'b', 21)), true);
        await waitFor(() => h.inboxOf('b').length === 11, 'faults removed');
        assert.deepEqual(seqsFrom(h.inboxOf('b'), 'a'), [...range(10).map((i) => i * 2), 21]);
        if (hasTransportStats(a)) {
          assert.equal(a.stats().peers['b']?.faultDroppedMessages, 10);
          assert.equal(a.stats().peers['b']?.droppedMessages, 0);
        }
      });
    });

    test('statistics (where offered) count per peer what was sent, queued and refused', async (t: TestContext) => {
      await withCluster(factory, ['a', 'b', 'c'], {}, async (h) => {
        const a = h.at('a');
        if (!hasTransportStats(a)) {
          t.skip('no statistics');
          return;
        }
        for (const seq of range(30)) assert.equal(a.send(heartbeat('a', 'b', seq)), true);
        for (const seq of range(5)) assert.equal(a.send(heartbeat('a', 'c', seq)), true);
        await waitFor(() => h.inboxOf('b').length === 30 && h.inboxOf('c').length === 5, 'delivered');
        // Counters may lag the handler by a turn; wait for them to settle.
        await waitFor(() => a.stats().peers['b']?.sentMessages === 30 && a.stats().peers['c']?.sentMessages === 5, 'sent counted');
        const stats = a.stats();
        assert.equal(stats.peers['b']?.queuedMessages, 0);
        assert.equal(stats.peers['b']?.droppedMessages, 0);
        assert.equal(stats.peers['b']?.faultDroppedMessages, 0);
        assert.equal(stats.peers['c']?.queuedMessages, 0);
        assert.equal(stats.droppedUnknownPeer, 0);
      });
    });
  });
}
