// Runs the transport contract against the TCP transport (on loopback, ephemeral ports) and the
// in-memory transport (with the default scheduler and with one that runs tasks out of order).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { NodeId } from '../../src/core/raft/types.ts';
import { hasPeerDirectory, hasTransportStats, isFaultInjectable, isFlushable } from '../../src/ports/index.ts';
import type { FaultInjectable, FlushableTransport, PeerDirectory, Transport, TransportStatsSource } from '../../src/ports/index.ts';
import { MemoryNetwork } from '../../src/transport/memory-transport.ts';
import type { DeliveryScheduler, MemoryTransport } from '../../src/transport/memory-transport.ts';
import { TcpTransport } from '../../src/transport/tcp-transport.ts';
import type { PeerAddress, WireMessage } from '../../src/transport/types.ts';
import { transportContract } from './contract.ts';
import type { TransportCluster, TransportClusterOptions } from './contract.ts';
import { CLUSTER, freePort, HOST } from './helpers.ts';

// The TCP transport has every optional capability, structurally (checked by the compiler).
const _tcpCapabilities = (t: TcpTransport): Transport<WireMessage> & FlushableTransport & PeerDirectory & FaultInjectable<WireMessage> & TransportStatsSource => t;
const _memoryCapabilities = (t: MemoryTransport): Transport<WireMessage> & FlushableTransport & FaultInjectable<WireMessage> & TransportStatsSource => t;

async function tcpCluster(ids: readonly NodeId[], options: TransportClusterOptions): Promise<TransportCluster> {
  const transports = new Map<NodeId, TcpTransport>();
  const addresses = new Map<NodeId, PeerAddress>();
  const teardown = async (): Promise<void> => {
    await Promise.all([...transports.values()].map((t) => t.close()));
  };
  try {
    for (const id of ids) {
      const transport = await TcpTransport.start({
        clusterId: CLUSTER,
        selfId: id,
        listen: { host: HOST, port: 0 },
        backoffMsMin: 10,
        backoffMsMax: 200,
        ...(options.queueMessagesMax === undefined ? {} : { queueMessagesMax: options.queueMessagesMax }),
      });
      transports.set(id, transport);
      addresses.set(id, transport.address());
    }
  } catch (err) {
    await teardown();
    throw err;
  }
  const get = (id: NodeId): TcpTransport => {
    const transport = transports.get(id);
    assert.ok(transport !== undefined, `transport ${id}`);
    return transport;
  };
  for (const [id, transport] of transports) {
    for (const [peer, address] of addresses) if (peer !== id) transport.setPeer(peer, address);
  }
  return {
    endpoints: ids.map(get),
    // Point `from` at an address where nothing listens: it dials, fails and backs off, holding
    // what is sent to `to` in its bounded queue.
    stall: async (from, to) => get(from).setPeer(to, { host: HOST, port: await freePort() }),
    restore: (from, to) => {
      const address = addresses.get(to);
      assert.ok(address !== undefined);
      get(from).setPeer(to, address);
    },
    teardown,
  };
}

function memoryCluster(schedule?: () => DeliveryScheduler) {
  return async (ids: readonly NodeId[], options: TransportClusterOptions): Promise<TransportCluster> => {
    const network = new MemoryNetwork({
      ...(options.queueMessagesMax === undefined ? {} : { queueMessagesMax: options.queueMessagesMax }),
      ...(schedule === undefined ? {} : { schedule: schedule() }),
    });
    return {
      endpoints: ids.map((id) => network.open(id)),
      stall: (from, to) => network.holdLink(from, to),
      restore: (from, to) => network.releaseLink(from, to),
      teardown: () => network.close(),
    };
  };
}

/** Collects delivery tasks and runs them a turn later in a scrambled (seeded) order, as a
 * simulator might: per-link order must survive it. */
function scramblingScheduler(seed: number): DeliveryScheduler {
  let state = seed;
  const next = (): number => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
  let tasks: (() => void)[] = [];
  let armed = false;
  const run = (): void => {
    armed = false;
    const batch = tasks;
    tasks = [];
    while (batch.length > 0) {
      const i = Math.floor(next() * batch.length);
      const [task] = batch.splice(i, 1);
      task?.();
    }
  };
  return (task) => {
    tasks.push(task);
    if (!armed) {
      armed = true;
      setImmediate(run);
    }
  };
}

transportContract('TcpTransport', tcpCluster, { quietMs: 200 });
transportContract('MemoryTransport', memoryCluster());
transportContract('MemoryTransport with a scrambling scheduler', memoryCluster(() => scramblingScheduler(0x2545f491)));

describe('transport capabilities', () => {
  test('the type guards find every capability of the TCP transport', async () => {
    const transport = await TcpTransport.start({ clusterId: CLUSTER, selfId: 'a', listen: { host: HOST, port: 0 } });
    try {
      const port: Transport<WireMessage> = transport;
      assert.equal(isFlushable(port), true);
      assert.equal(hasPeerDirectory(port), true);
      assert.equal(isFaultInjectable(port), true);
      assert.equal(hasTransportStats(port), true);
    } finally {
      await transport.close();
    }
  });

  test('the memory transport flushes, takes fault hooks and keeps statistics, but has no peer directory', async () => {
    const network = new MemoryNetwork();
    const port: Transport<WireMessage> = network.open('a');
    assert.equal(isFlushable(port), true);
    assert.equal(hasPeerDirectory(port), false);
    assert.equal(isFaultInjectable(port), true);
    assert.equal(hasTransportStats(port), true);
    await network.close();
  });

  test('a bare Transport has none of them', () => {
    const bare: Transport<WireMessage> = { send: () => false, onMessage: () => {}, close: async () => {} };
    assert.equal(isFlushable(bare), false);
    assert.equal(hasPeerDirectory(bare), false);
    assert.equal(isFaultInjectable(bare), false);
    assert.equal(hasTransportStats(bare), false);
  });
});
