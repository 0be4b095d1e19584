// Boot and recovery rules: which stored entries may follow a snapshot, the data directory's
// identity, structured logs, and client addresses learned through the transport handshake.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Entry, Snapshot } from '../../src/core/raft/types.ts';
import { entriesAfterSnapshot } from '../../src/node/boot.ts';
import fs from 'node:fs';
import path from 'node:path';
import { ChorusNode } from '../../src/server/chorus-node.ts';
import { FileSnapshotStore } from '../../src/storage/snapshot-store.ts';
import { ChorusError } from '../../src/shared/errors.ts';
import { createJsonLogger } from '../../src/shared/logger.ts';
import { advertisedClientAddress, parseHello } from '../../src/transport/codec.ts';
import { TcpTransport } from '../../src/transport/tcp-transport.ts';
import { clusterSpec, memberConfig, waitFor } from './helpers.ts';

function entries(from: number, to: number, term: number): Entry[] {
  return Array.from({ length: to - from + 1 }, (_, i) => ({ index: from + i, term, type: 'normal' as const }));
}

function snapshotAt(index: number, term: number): Snapshot {
  return { meta: { index, term, config: { voters: ['n1'], learners: [] } }, data: new Uint8Array(1) };
}

test('stored entries follow a snapshot only when they continue it', () => {
  assert.deepEqual(entriesAfterSnapshot(null, entries(1, 3, 1)), entries(1, 3, 1));
  assert.deepEqual(entriesAfterSnapshot(snapshotAt(5, 2), []), []);
  // The log holds the snapshot's last entry with its term: keep it all (what precedes the
  // snapshot is wal_keep, what follows is the log).
  assert.deepEqual(entriesAfterSnapshot(snapshotAt(5, 2), entries(1, 8, 2)), entries(1, 8, 2));
  assert.deepEqual(entriesAfterSnapshot(snapshotAt(8, 2), entries(3, 8, 2)), entries(3, 8, 2));
  // Compacted right at the snapshot: the log starts after it.
  assert.deepEqual(entriesAfterSnapshot(snapshotAt(5, 2), entries(6, 8, 2)), entries(6, 8, 2));
  // Another history at the snapshot's index (a crash before a 'discard' reset): drop it all.
  assert.equal(entriesAfterSnapshot(snapshotAt(5, 3), entries(1, 8, 2)), null);
  // A gap after the snapshot.
  assert.equal(entriesAfterSnapshot(snapshotAt(5, 2), entries(7, 8, 2)), null);
  // Everything is below the snapshot.
  assert.equal(entriesAfterSnapshot(snapshotAt(9, 2), entries(1, 8, 2)), null);
  // Terms never go down along a log.
  assert.equal(entriesAfterSnapshot(snapshotAt(5, 3), entries(6, 8, 2)), null);
});

test('a data directory refuses to run another member or another cluster', async (t) => {
  const spec = await clusterSpec(t, 1);
  const node = await ChorusNode.start(memberConfig(spec, 'n1'));
  await node.stop();
  await assert.rejects(ChorusNode.start({ ...memberConfig(spec, 'n1'), clusterId: 'another' }), (error: unknown) => {
    return error instanceof ChorusError && error.code === 'CHORUS_DATA_DIR_MISMATCH';
  });
  const again = await ChorusNode.start(memberConfig(spec, 'n1'));
  await again.stop();
});

test('a single member elects itself, serves, stops, and restarts on its data', async (t) => {
  const spec = await clusterSpec(t, 1);
  let node = await ChorusNode.start(memberConfig(spec, 'n1'));
  await waitFor(() => node.debugState().role === 'leader', 'a one-member cluster elects itself');
  const put = await node.http.inject({ method: 'PUT', url: '/v1/kv/solo', payload: 'v' });
  assert.equal(put.statusCode, 200, put.body);
  await node.stop();
  await node.stop(); // idempotent
  node = await ChorusNode.start(memberConfig(spec, 'n1'));
  try {
    await waitFor(() => node.debugState().role === 'leader', 'leader again');
    const get = await node.http.inject({ method: 'GET', url: '/v1/kv/solo' });
    assert.equal(get.body, 'v');
  } finally {
    await node.stop();
  }
  const stopped = await node.http.inject({ method: 'GET', url: '/healthz' }).catch((e: unknown) => e);
  assert.ok(stopped instanceof Error || (stopped as { statusCode: number }).statusCode === 503);
});

test('compaction saves only the snapshot position; the member restarts from its state database, and refuses one behind the log', async (t) => {
  const spec = await clusterSpec(t, 1);
  const config = memberConfig(spec, 'n1', { snapshotEntries: 10, walKeepEntries: 0 });
  let node = await ChorusNode.start(config);
  await waitFor(() => node.debugState().role === 'leader', 'a one-member cluster elects itself');
  for (let i = 0; node.debugState().snapshotsTaken < 2; i++) {
    assert.ok(i < 500, 'two compactions within 500 writes');
    const put = await node.http.inject({ method: 'PUT', url: `/v1/kv/k${i}`, payload: `v${i}` });
    assert.equal(put.statusCode, 200, put.body);
  }
  const snapshotIndex = node.debugState().snapshotIndex;
  await node.stop();
  const store = await FileSnapshotStore.open(path.join(config.dataDir, 'snap'));
  const saved = await store.load();
  await store.close();
  assert.equal(saved?.meta.index, snapshotIndex);
  assert.equal(saved?.data.byteLength, 0, 'no image: the state database holds the state');

  node = await ChorusNode.start(config);
  try {
    // Checked at once: once it leads again it replays the entries after the position and may
    // compact again (under load, before a check made after the election).
    assert.equal(node.debugState().snapshotIndex, snapshotIndex, 'it boots from the saved position');
    await waitFor(() => node.debugState().role === 'leader', 'leader again');
    const get = await node.http.inject({ method: 'GET', url: '/v1/kv/k0' });
    assert.equal(get.body, 'v0', 'a key below the snapshot comes from the state database');
  } finally {
    await node.stop();
  }

  // A state database that lost what the compacted log no longer has cannot be replayed.
  for (const suffix of ['', '-wal', '-shm']) fs.rmSync(path.join(config.dataDir, `state.db${suffix}`), { force: true });
  await assert.rejects(ChorusNode.start(config), (error: unknown) => {
    return error instanceof ChorusError && error.code === 'CHORUS_RECOVERY_FAILED' && /behind the compacted log/.test(error.message);
  });
});

test('logs are JSON lines with time, level, member and event', () => {
  const lines: string[] = [];
  const logger = createJsonLogger({ level: 'info', base: { member: 'n1' }, write: (line) => lines.push(line) });
  logger.debug('hidden');
  logger.info('became-leader', { term: 3 });
  logger.child({ component: 'x' }).error('fatal', { error: Object.assign(new Error('disk'), { code: 'EIO' }) });
  assert.equal(lines.length, 2);
  const first = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.equal(first['event'], 'became-leader');
  assert.equal(first['member'], 'n1');
  assert.equal(first['level'], 'info');
  assert.equal(first['term'], 3);
  assert.equal(typeof first['ts'], 'string');
  assert.ok(lines.every((l) => l.endsWith('\n')));
  const second = JSON.parse(lines[1]!) as { component: string; error: { message: string; code: string } };
  assert.equal(second.component, 'x');
  assert.deepEqual(second.error, { name: 'Error', message: 'disk', code: 'EIO' });
});

test('the transport handshake carries client addresses both ways, within a bound', async (t) => {
  const start = (id: string, clientAddress: string, clientAddressesMax?: number) => TcpTransport.start({
    clusterId: 'c', selfId: id, listen: { host: '127.0.0.1', port: 0 }, clientAddress, backoffMsMin: 10, backoffMsMax: 100,
    ...(clientAddressesMax === undefined ? {} : { clientAddressesMax }),
  });
  const hub = await start('hub', '127.0.0.1:9000', 1);
  const a = await start('a', '127.0.0.1:9001');
  const b = await start('b', '127.0.0.1:9002');
  t.after(() => Promise.all([hub.close(), a.close(), b.close()]));
  a.setPeer('hub', hub.address());
  await waitFor(() => hub.peerClientAddress('a') === '127.0.0.1:9001', 'the acceptor learns the dialer\'s address from its hello');
  await waitFor(() => a.peerClientAddress('hub') === '127.0.0.1:9000', 'the dialer learns the acceptor\'s address from its welcome');
  b.setPeer('hub', hub.address());
  await waitFor(() => b.peerClientAddress('hub') === '127.0.0.1:9000', 'b connected');
  assert.equal(hub.peerClientAddress('b'), undefined, 'beyond clientAddressesMax nothing more is remembered');
  assert.equal(hub.peerClientAddresses().size, 1);
});

test('the handshake field is optional: absent or unusable addresses are ignored, hellos stay valid', () => {
  const base = { kind: 'hello', clusterId: 'c', memberId: 'a', protocolVersion: 1 };
  for (const clientAddress of [undefined, 7, '', 'x'.repeat(257)]) {
    const hello = parseHello(clientAddress === undefined ? base : { ...base, clientAddress });
    assert.ok(hello !== null, 'still a valid hello');
    assert.equal(advertisedClientAddress(hello), undefined);
  }
  assert.equal(advertisedClientAddress(parseHello({ ...base, clientAddress: '127.0.0.1:8001' })!), '127.0.0.1:8001');
});
