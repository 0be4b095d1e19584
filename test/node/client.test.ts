// The typed client against an in-process cluster: every operation, following the leader,
// failing over from a dead endpoint, and typed errors with the server's code and status.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChorusClient, ChorusClientError, keyPath, normalizeEndpoint } from '../../src/client/index.ts';
import { freePorts, startCluster } from './helpers.ts';

test('put, get, delete, list, txn and cluster through the client', async (t) => {
  const cluster = await startCluster(t, 3, { valueBytesMax: 2048 });
  const leader = await cluster.leader();
  const follower = cluster.followers(leader)[0]!;
  const client = new ChorusClient({ endpoints: [follower.clientUrl, leader.clientUrl] });

  const { revision } = await client.put('users/\u00e9/1', 'alice');
  assert.ok(revision > 0);
  assert.equal(client.leaderEndpoint, leader.clientUrl, 'the client now sends writes to the leader');
  const got = await client.get('users/\u00e9/1');
  assert.equal(new TextDecoder().decode(got!.value), 'alice');
  assert.equal(got!.revision, revision);
  assert.equal(got!.version, 1);
  assert.equal(await client.get('missing'), null);
  assert.equal(await client.getText('users/\u00e9/1', { consistency: 'stale' }), 'alice');

  await client.put('users/\u00e9/2', new Uint8Array([0, 1, 2]));
  const { items, more } = await client.list('users/', { limit: 10 });
  assert.equal(more, false);
  assert.deepEqual(items.map((i) => i.key), ['users/\u00e9/1', 'users/\u00e9/2']);
  assert.deepEqual([...items[1]!.value], [0, 1, 2]);

  const swap = await client.txn({
    compare: [{ key: 'users/\u00e9/1', target: 'version', op: '==', value: 1 }],
    success: [{ op: 'put', key: 'users/\u00e9/1', value: 'bob' }, { op: 'get', key: 'users/\u00e9/1' }],
  });
  assert.equal(swap.succeeded, true);
  const result = swap.results[1]!;
  assert.ok(result.op === 'get' && result.found && result.value === 'bob');

  assert.deepEqual(await client.delete('users/\u00e9/2'), { revision: swap.revision + 1, deleted: 1, committed: true });

  const view = await client.cluster();
  assert.equal(view.leaderId, leader.id);
  assert.equal(view.members.length, 3);

  await assert.rejects(client.put('big', 'x'.repeat(2049)), (error: unknown) => {
    assert.ok(error instanceof ChorusClientError);
    assert.equal(error.code, 'CHORUS_VALUE_TOO_LARGE');
    assert.equal(error.status, 413);
    return true;
  });
  await assert.rejects(client.put('', 'v'), (error: unknown) => error instanceof ChorusClientError && error.code === 'CHORUS_BAD_KEY');
});

test('the client skips an endpoint that refuses connections, for reads and writes', async (t) => {
  const cluster = await startCluster(t, 3);
  await cluster.leader();
  const [deadPort] = await freePorts(1);
  const client = new ChorusClient({ endpoints: [`127.0.0.1:${deadPort!}`, ...cluster.spec.ids.map((id) => cluster.node(id).clientAddress)] });
  await client.put('failover', 'ok');
  assert.equal(await client.getText('failover'), 'ok');
});

test('with no endpoint reachable the client reports CHORUS_UNAVAILABLE within its deadline', async () => {
  const [a, b] = await freePorts(2);
  const client = new ChorusClient({ endpoints: `127.0.0.1:${a!},127.0.0.1:${b!}`, timeoutMs: 500, retryDelayMs: 50 });
  await assert.rejects(client.getText('k'), (error: unknown) => error instanceof ChorusClientError && error.code === 'CHORUS_UNAVAILABLE' && error.status === 0);
  await assert.rejects(client.put('k', 'v'), (error: unknown) => error instanceof ChorusClientError && error.code === 'CHORUS_UNAVAILABLE');
});

test('endpoint and key helpers', () => {
  assert.equal(normalizeEndpoint('127.0.0.1:8001/'), 'http://127.0.0.1:8001');
  assert.equal(normalizeEndpoint('https://x:1'), 'https://x:1');
  assert.equal(keyPath('a b/c?d'), 'a%20b/c%3Fd');
  assert.throws(() => new ChorusClient({ endpoints: [] }), TypeError);
});
