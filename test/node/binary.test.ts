// The binary client protocol on an in-process three-member cluster: put/get/del with the HTTP
// API's results and errors, writes sent to a follower forwarded to the leader, many requests in
// flight on one connection, and bad input: a malformed request gets its own error and the
// connection goes on, an unreadable frame or an oversized one closes the connection with a
// reason, and the per-connection limit on requests in flight answers CHORUS_BUSY.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { encodeBinaryFrame, decodeBinaryPayload } from '../../src/shared/binary-protocol.ts';
import { ChorusBinaryClient, ChorusClient, ChorusClientError } from '../../src/client/index.ts';
import { FrameDecoder } from '../../src/transport/frame-decoder.ts';
import { BinaryEndpoints } from '../../bench/binary-phases.ts';
import { describeFailures, runLoad } from '../../bench/load.ts';
import { benchKey, benchValue } from '../../bench/systems.ts';
import { binaryCluster, freePorts, HOST, waitFor } from './helpers.ts';


/** A raw connection: sends frames as given and collects the decoded answers. */
async function rawConnection(address: string): Promise<{ socket: net.Socket; answers: unknown[]; closed: Promise<void> }> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  const socket = net.connect({ host, port });
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const answers: unknown[] = [];
  const decoder = new FrameDecoder(1 << 26, (payload) => answers.push(decodeBinaryPayload(payload)));
  socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => undefined);
  return { socket, answers, closed };
}

test('binary protocol: put, get and del with the HTTP API\'s results; follower writes are forwarded', async (t) => {
  const cluster = await binaryCluster(t);
  const leader = await cluster.leader();
  const follower = cluster.followers(leader)[0]!;
  const onLeader = new ChorusBinaryClient({ endpoint: leader.binaryAddress! });
  const onFollower = new ChorusBinaryClient({ endpoint: follower.binaryAddress! });
  t.after(() => {
    onLeader.close();
    onFollower.close();
  });

  const put = await onLeader.put('b/one', 'first');
  assert.equal(put.committed, true);
  assert.ok(put.revision > 0);
  const got = await onLeader.get('b/one');
  assert.equal(Buffer.from(got!.value).toString(), 'first');
  assert.equal(got!.revision, put.revision);
  assert.equal(got!.version, 1);
  // The same record through HTTP.
  const http = new ChorusClient({ endpoints: [leader.clientUrl] });
  assert.equal(await http.getText('b/one'), 'first');

  // A write on a follower reaches the leader; the follower then reads it (min_revision).
  const forwarded = await onFollower.put('b/two', new Uint8Array([0, 1, 2, 255]));
  assert.equal(forwarded.committed, true);
  const fromFollower = await onFollower.get('b/two', { consistency: 'stale', minRevision: forwarded.revision });
  assert.deepEqual([...fromFollower!.value], [0, 1, 2, 255]);
  assert.deepEqual([...(await onFollower.get('b/two'))!.value], [0, 1, 2, 255], 'linearizable on a follower');

  const local = await onLeader.put('b/three', 'x', { commit: 'local' });
  assert.ok(local.revision > forwarded.revision);

  const deleted = await onLeader.delete('b/one');
  assert.equal(deleted.deleted, 1);
  assert.equal(await onLeader.get('b/one'), null, 'not found is null');
  assert.equal((await onFollower.delete('b/one')).deleted, 0, 'a forwarded delete of a missing key');

  // Errors carry the HTTP API's codes and statuses.
  await assert.rejects(onLeader.put('', 'v'), (e: unknown) => e instanceof ChorusClientError && e.code === 'CHORUS_BAD_KEY' && e.status === 400);
  await assert.rejects(onLeader.put('\u0000ks\u0000k', 'v'), (e: unknown) => e instanceof ChorusClientError && e.code === 'CHORUS_BAD_KEY');
  await assert.rejects(onLeader.put('k', 'v', { commit: 'sometimes' as 'on' }), (e: unknown) => e instanceof ChorusClientError && e.status === 400);
  await assert.rejects(onLeader.get('k', { consistency: 'linearizable', minRevision: 5 }), (e: unknown) => e instanceof ChorusClientError && e.code === 'CHORUS_BAD_REQUEST');
  const tooBig = new Uint8Array(leader.limits.valueBytesMax + 1);
  await assert.rejects(onLeader.put('big', tooBig), (e: unknown) => e instanceof ChorusClientError && e.code === 'CHORUS_VALUE_TOO_LARGE' && e.status === 413);
});

test('binary protocol: 1,000 writes in flight on one connection all commit; past the limit, CHORUS_BUSY', async (t) => {
  const cluster = await binaryCluster(t);
  const leader = await cluster.leader();
  const client = new ChorusBinaryClient({ endpoint: leader.binaryAddress!, inflightMax: 4096 });
  t.after(() => client.close());
  const results = await Promise.all(Array.from({ length: 1000 }, (_, i) => client.put(`p/${i}`, `v${i}`)));
  const revisions = new Set(results.map((r) => r.revision));
  assert.equal(revisions.size, 1000, 'each write its own revision');
  const http = new ChorusClient({ endpoints: [leader.clientUrl] });
  assert.equal(await http.getText('p/999'), 'v999');
  // More than the server's limit per connection (1024) at once: the excess is refused, never lost.
  const burst = await Promise.allSettled(Array.from({ length: 3000 }, (_, i) => client.get(`p/${i % 1000}`, { consistency: 'stale' })));
  const busy = burst.filter((r) => r.status === 'rejected' && r.reason instanceof ChorusClientError && r.reason.code === 'CHORUS_BUSY').length;
  const ok = burst.filter((r) => r.status === 'fulfilled').length;
  assert.equal(ok + busy, 3000, 'every request answered: a value or CHORUS_BUSY');
  assert.ok(ok >= 1024, `at least the limit served (${ok})`);
  assert.ok(busy > 0, 'the limit was reached');
  t.diagnostic(`3,000 reads at once on one connection: ${ok} served, ${busy} answered CHORUS_BUSY`);
});

test('binary protocol: bad requests get errors; unreadable or oversized frames close the connection with a reason', async (t) => {
  const cluster = await binaryCluster(t);
  const leader = await cluster.leader();
  const address = leader.binaryAddress!;

  // Well-framed but wrong requests: answered by id, and the connection goes on.
  const raw = await rawConnection(address);
  raw.socket.write(encodeBinaryFrame([1, 'frobnicate', 'k']));
  raw.socket.write(encodeBinaryFrame([2, 'put', 42, new Uint8Array(1)]));
  raw.socket.write(encodeBinaryFrame([3, 'put', 'k', 'not bytes']));
  raw.socket.write(encodeBinaryFrame([4, 'get', 'k', { consistency: 'eventually' }]));
  raw.socket.write(encodeBinaryFrame([5, 'get', 'k', { bogus: 1 }]));
  raw.socket.write(encodeBinaryFrame([6, 'put', 'k', new Uint8Array([7])]));
  await waitFor(() => raw.answers.length === 6, 'six answers');
  const byId = new Map((raw.answers as [number, number, { code?: string }][]).map((a) => [a[0], a]));
  assert.equal(byId.get(1)![1], 400);
  assert.equal(byId.get(2)![2].code, 'CHORUS_BAD_KEY');
  assert.equal(byId.get(3)![1], 400);
  assert.equal(byId.get(4)![1], 400);
  assert.equal(byId.get(5)![1], 400);
  assert.equal(byId.get(6)![1], 200, 'a good request after bad ones is served');

  // Not msgpack at all: answered with id 0 and closed.
  const garbage = await rawConnection(address);
  const frame = Buffer.from([0, 0, 0, 3, 0xc1, 0xc1, 0xc1]);
  garbage.socket.write(frame);
  await garbage.closed;
  assert.deepEqual((garbage.answers[0] as unknown[]).slice(0, 2), [0, 400]);

  // A frame header announcing more than the limit: 413 and closed, without reading the rest.
  const huge = await rawConnection(address);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(leader.limits.valueBytesMax * 4);
  huge.socket.write(header);
  await huge.closed;
  assert.equal((huge.answers[0] as unknown[])[1], 413);
  assert.equal(((huge.answers[0] as unknown[])[2] as { code: string }).code, 'CHORUS_REQUEST_TOO_LARGE');

  // The member is fine afterwards.
  const client = new ChorusBinaryClient({ endpoint: address });
  t.after(() => client.close());
  assert.equal((await client.put('after', 'ok')).committed, true);
});

test('the bench\'s binary load target drives a cluster through runLoad: every write acknowledged, every read found', async (t) => {
  const cluster = await binaryCluster(t);
  const leader = await cluster.leader();
  const addresses = [...cluster.nodes.values()].map((n) => n.binaryAddress!);
  const leaderIndex = addresses.indexOf(leader.binaryAddress!);
  const endpoints = new BinaryEndpoints(addresses, 1, 10_000);
  t.after(() => endpoints.close());
  const writes = await runLoad({
    endpoints, concurrency: 16, requestsMax: 300,
    request: (seq) => ({ endpoint: leaderIndex, op: 'put' as const, key: benchKey(seq), value: benchValue(seq) }),
    accept: (answer) => answer.status === 200,
  });
  assert.equal(writes.succeeded, 300, describeFailures(writes.failures));
  const reads = await runLoad({
    endpoints, concurrency: 16, requestsMax: 300,
    request: (seq) => ({ endpoint: seq % 3, op: 'get' as const, key: benchKey(seq) }),
    accept: (answer) => answer.status === 200,
  });
  assert.equal(reads.succeeded, 300, describeFailures(reads.failures));
  const missing = await endpoints.send({ endpoint: 0, op: 'get', key: 'bench-none' });
  assert.deepEqual(missing, { status: 404, code: 'CHORUS_KEY_NOT_FOUND' });
});

test('binary client: an unreachable endpoint is CHORUS_UNAVAILABLE, a bad one is refused', async () => {
  const [port] = await freePorts(1);
  const client = new ChorusBinaryClient({ endpoint: `${HOST}:${port!}`, timeoutMs: 2000 });
  await assert.rejects(client.put('k', 'v'), (e: unknown) => e instanceof ChorusClientError && e.code === 'CHORUS_UNAVAILABLE');
  client.close();
  assert.throws(() => new ChorusBinaryClient({ endpoint: 'no-port' }), (e: unknown) => e instanceof ChorusClientError && e.code === 'CHORUS_BAD_REQUEST');
});
