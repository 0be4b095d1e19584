// The in-memory transport beyond the shared contract: driven step by step by an injected
// scheduler, its queue limit, copying, restarts under the same id and its counters.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryNetwork, copyMessage } from '../../src/transport/memory-transport.ts';
import type { DeliveryScheduler, LinkRef } from '../../src/transport/memory-transport.ts';
import type { WireMessage } from '../../src/transport/types.ts';
import { capturingLogger, hasCode, heartbeat, pattern, append, range, seqsFrom } from './helpers.ts';

/** A scheduler the test runs by hand, as a simulator would. */
function manualScheduler(): { schedule: DeliveryScheduler; tasks: { task: () => void; link: LinkRef }[]; runAll(order?: 'fifo' | 'reverse'): number } {
  const tasks: { task: () => void; link: LinkRef }[] = [];
  return {
    schedule: (task, link) => {
      tasks.push({ task, link });
    },
    tasks,
    runAll: (order = 'fifo') => {
      let ran = 0;
      while (tasks.length > 0) {
        const next = order === 'fifo' ? tasks.shift() : tasks.pop();
        next?.task();
        ran += 1;
      }
      return ran;
    },
  };
}

function networkWithInboxes(ids: readonly string[], options: ConstructorParameters<typeof MemoryNetwork>[0] = {}) {
  const network = new MemoryNetwork(options);
  const inbox = new Map<string, WireMessage[]>();
  const endpoints = ids.map((id) => {
    const endpoint = network.open(id);
    const received: WireMessage[] = [];
    inbox.set(id, received);
    endpoint.onMessage((m) => received.push(m));
    return endpoint;
  });
  const inboxOf = (id: string): WireMessage[] => inbox.get(id) ?? assert.fail(`no inbox ${id}`);
  return { network, endpoints, inboxOf };
}

test('a burst beyond queueMessagesMax is cut at the limit: send returns false and counts the drop', () => {
  const sched = manualScheduler();
  const { endpoints: [a], inboxOf } = networkWithInboxes(['a', 'b'], { queueMessagesMax: 8, schedule: sched.schedule });
  assert.ok(a);
  const results = range(12).map((seq) => a.send(heartbeat('a', 'b', seq)));
  assert.deepEqual(results, range(12).map((seq) => seq < 8));
  assert.deepEqual(a.stats().peers['b'], { queuedMessages: 8, sentMessages: 0, droppedMessages: 4, faultDroppedMessages: 0, held: false });
  assert.equal(inboxOf('b').length, 0, 'nothing delivered before the scheduler runs');
  assert.equal(sched.runAll(), 8, 'one task per accepted message');
  assert.deepEqual(seqsFrom(inboxOf('b'), 'a'), range(8));
  assert.deepEqual(a.stats().peers['b'], { queuedMessages: 0, sentMessages: 8, droppedMessages: 4, faultDroppedMessages: 0, held: false });
  assert.equal(a.send(heartbeat('a', 'b', 12)), true, 'room again once delivered');
});

test('the scheduler decides when and across links in which order; each link stays FIFO', () => {
  const sched = manualScheduler();
  const { endpoints: [a, b], inboxOf } = networkWithInboxes(['a', 'b', 'c'], { schedule: sched.schedule });
  assert.ok(a && b);
  for (const seq of range(5)) {
    a.send(heartbeat('a', 'c', seq));
    b.send(heartbeat('b', 'c', seq));
  }
  assert.deepEqual(sched.tasks.map((t) => `${t.link.from}->${t.link.to}`).slice(0, 2), ['a->c', 'b->c'], 'tasks name their link');
  // Run the tasks newest first: messages of one link still arrive in order.
  sched.runAll('reverse');
  assert.deepEqual(seqsFrom(inboxOf('c'), 'a'), range(5));
  assert.deepEqual(seqsFrom(inboxOf('c'), 'b'), range(5));
  assert.equal(inboxOf('c')[0]?.from, 'b', 'the last task ran first and took b\'s oldest message');
});

test('a scheduler that runs a task synchronously is refused', () => {
  const network = new MemoryNetwork({ schedule: (task) => task() });
  const a = network.open('a');
  network.open('b');
  assert.throws(() => a.send(heartbeat('a', 'b', 1)), { code: 'CHORUS_INVALID_OPTION' });
});

test('messages are copied at send: a Buffer view arrives as a plain Uint8Array of its own bytes only', () => {
  const sched = manualScheduler();
  const { endpoints: [a], inboxOf } = networkWithInboxes(['a', 'b'], { schedule: sched.schedule });
  assert.ok(a);
  const big = Buffer.from(pattern(1 << 20, 1));
  const view = big.subarray(10, 20);
  const message = append('a', 'b', 1, [{ index: 1, term: 1, type: 'normal', data: view }]);
  assert.equal(a.send(message), true);
  big.fill(0);
  sched.runAll();
  const received = inboxOf('b')[0];
  assert.ok(received?.type === 'Append');
  const data = received.entries[0]?.data;
  assert.ok(data !== undefined);
  assert.equal(Object.getPrototypeOf(data), Uint8Array.prototype);
  assert.equal(data.buffer.byteLength, 10, 'the rest of the 1 MiB buffer is not copied along');
  assert.deepEqual([...data], [...pattern(1 << 20, 1).subarray(10, 20)]);
  assert.notEqual(received, message);
});

test('copyMessage keeps plain data and refuses anything else', () => {
  const withProtoKey = JSON.parse('{"__proto__": {"polluted": true}, "x": 1}') as Record<string, unknown>;
  const copy = copyMessage(withProtoKey) as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(copy), Object.prototype, 'an own __proto__ key stays a field');
  assert.deepEqual(Object.keys(copy), ['__proto__', 'x']);
  assert.deepStrictEqual(copyMessage({ n: 1n, s: 's', u: undefined, z: null, list: [1, [2]] }), { n: 1n, s: 's', u: undefined, z: null, list: [1, [2]] });
  assert.throws(() => copyMessage({ when: new Date(0) }), TypeError);
  assert.throws(() => copyMessage({ fn: () => 1 }), TypeError);
  assert.throws(() => copyMessage({ map: new Map() }), TypeError);
  const cyclic: Record<string, unknown> = {};
  cyclic['self'] = cyclic;
  assert.throws(() => copyMessage(cyclic), TypeError);
});

test('a message that cannot be copied is refused and counted as dropped', () => {
  const { logger, records } = capturingLogger();
  const { endpoints: [a] } = networkWithInboxes(['a', 'b'], { logger });
  assert.ok(a);
  const bad = { ...heartbeat('a', 'b', 1), extra: new Map() } as unknown as WireMessage;
  assert.equal(a.send(bad), false);
  assert.equal(a.stats().peers['b']?.droppedMessages, 1);
  assert.ok(hasCode(records, 'CHORUS_ENCODE_FAILED'));
});

test('a message whose sender is not the endpoint is refused', () => {
  const { endpoints: [a] } = networkWithInboxes(['a', 'b', 'c']);
  assert.ok(a);
  assert.equal(a.send(heartbeat('c', 'b', 1)), false);
  assert.equal(a.stats().droppedMisaddressed, 1);
});

test('a closed member can be opened again; what was queued for the old endpoint never reaches the new one', async () => {
  const sched = manualScheduler();
  const { network, endpoints: [a, b], inboxOf } = networkWithInboxes(['a', 'b'], { schedule: sched.schedule });
  assert.ok(a && b);
  for (const seq of range(3)) assert.equal(a.send(heartbeat('a', 'b', seq)), true);
  assert.throws(() => network.open('b'), { code: 'CHORUS_INVALID_OPTION' }, 'one open endpoint per id');
  await b.close();
  assert.equal(network.endpoint('b'), undefined);
  assert.deepEqual(network.members(), ['a']);
  assert.equal(a.send(heartbeat('a', 'b', 3)), false, 'b is unknown while closed');
  assert.equal(a.stats().peers['b']?.queuedMessages, 0, 'the queue for the closed endpoint was discarded');

  const b2 = network.open('b');
  const received: WireMessage[] = [];
  b2.onMessage((m) => received.push(m));
  assert.equal(a.send(heartbeat('a', 'b', 4)), true);
  // The tasks of the messages discarded at close find nothing; the new one delivers seq 4.
  assert.equal(sched.tasks.length, 4);
  sched.runAll();
  assert.deepEqual(seqsFrom(received, 'a'), [4]);
  assert.equal(inboxOf('b').length, 0, 'the old endpoint received nothing');
  assert.equal(a.stats().droppedUnknownPeer, 1);
});

test('a throwing handler loses only that message; messages before any handler are counted', () => {
  const sched = manualScheduler();
  const { logger, records } = capturingLogger();
  const network = new MemoryNetwork({ schedule: sched.schedule, logger });
  const a = network.open('a');
  const b = network.open('b');
  a.send(heartbeat('a', 'b', 0));
  sched.runAll();
  const seen: number[] = [];
  b.onMessage((m) => {
    if ('seq' in m && m.seq === 2) throw new Error('boom');
    if ('seq' in m) seen.push(m.seq);
  });
  for (const seq of range(4).slice(1)) a.send(heartbeat('a', 'b', seq));
  sched.runAll();
  assert.deepEqual(seen, [1, 3]);
  assert.deepEqual(b.stats().inbound, { received: 4, droppedNoHandler: 1, handlerErrors: 1 });
  assert.ok(hasCode(records, 'CHORUS_HANDLER_FAILED'));
});

test('holdLink holds one direction only, and releaseLink delivers what waited, in order', () => {
  const sched = manualScheduler();
  const { network, endpoints: [a, b], inboxOf } = networkWithInboxes(['a', 'b'], { schedule: sched.schedule });
  assert.ok(a && b);
  network.holdLink('a', 'b');
  for (const seq of range(3)) assert.equal(a.send(heartbeat('a', 'b', seq)), true);
  assert.equal(b.send(heartbeat('b', 'a', 9)), true);
  sched.runAll();
  assert.equal(inboxOf('b').length, 0, 'a -> b held');
  assert.deepEqual(seqsFrom(inboxOf('a'), 'b'), [9], 'b -> a flows');
  assert.equal(a.stats().peers['b']?.held, true);
  assert.equal(a.stats().peers['b']?.queuedMessages, 3);
  network.releaseLink('a', 'b');
  network.releaseLink('a', 'b'); // a second release changes nothing
  assert.equal(sched.tasks.length, 3, 'one new task per waiting message');
  sched.runAll();
  assert.deepEqual(seqsFrom(inboxOf('b'), 'a'), range(3));
  assert.equal(a.stats().peers['b']?.held, false);

  // Held and released again before the tasks ran: the messages keep their tasks, none are added.
  network.holdLink('a', 'b');
  for (const seq of range(2)) a.send(heartbeat('a', 'b', 10 + seq));
  assert.equal(sched.tasks.length, 0, 'no task while held');
  network.releaseLink('a', 'b');
  assert.equal(sched.tasks.length, 2);
  network.holdLink('a', 'b');
  network.releaseLink('a', 'b');
  assert.equal(sched.tasks.length, 2, 'one task per message, not more');
  sched.runAll();
  assert.deepEqual(seqsFrom(inboxOf('b'), 'a'), [...range(3), 10, 11]);
});

test('flush is a no-op: delivery still waits for the scheduler', () => {
  const sched = manualScheduler();
  const { endpoints: [a], inboxOf } = networkWithInboxes(['a', 'b'], { schedule: sched.schedule });
  assert.ok(a);
  a.send(heartbeat('a', 'b', 1));
  a.flush();
  assert.equal(inboxOf('b').length, 0);
  sched.runAll();
  assert.equal(inboxOf('b').length, 1);
});

test('the drop hook sees the message and returns true for it; send to a closed network endpoint is refused', async () => {
  const sched = manualScheduler();
  const { network, endpoints: [a], inboxOf } = networkWithInboxes(['a', 'b'], { schedule: sched.schedule });
  assert.ok(a);
  const dropped: number[] = [];
  a.setFaults({ drop: (m) => ('seq' in m && m.seq < 2 ? (dropped.push(m.seq), true) : false) });
  for (const seq of range(4)) assert.equal(a.send(heartbeat('a', 'b', seq)), true);
  sched.runAll();
  assert.deepEqual(dropped, [0, 1]);
  assert.deepEqual(seqsFrom(inboxOf('b'), 'a'), [2, 3]);
  await network.close();
  assert.equal(a.isClosed, true);
  assert.equal(a.send(heartbeat('a', 'b', 5)), false);
});

test('options are checked', () => {
  for (const queueMessagesMax of [0, -1, 1.5, Number.NaN]) {
    assert.throws(() => new MemoryNetwork({ queueMessagesMax }), { code: 'CHORUS_INVALID_OPTION' }, String(queueMessagesMax));
  }
  assert.throws(() => new MemoryNetwork().open(''), { code: 'CHORUS_INVALID_OPTION' });
});
