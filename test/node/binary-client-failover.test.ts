// ChorusBinaryClient with several endpoints: it connects past a dead one, moves to another member
// when the one it uses stops, never reports a write that was in flight on a lost connection as
// done or as failed (CHORUS_TIMEOUT: outcome unknown) nor sends it again, sends a lost get once
// more elsewhere, keeps inflightMax across the switch, and refuses bad endpoint options.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import { decodeBinaryPayload } from '../../src/shared/binary-protocol.ts';
import { ChorusBinaryClient, ChorusClient, ChorusClientError } from '../../src/client/index.ts';
import { FrameDecoder } from '../../src/transport/frame-decoder.ts';
import { binaryCluster, freePorts, HOST, waitFor } from './helpers.ts';


/** A member that accepts connections and reads requests but never answers them. */
async function silentServer(t: TestContext, port = 0): Promise<{ address: string; requests: unknown[]; sockets: net.Socket[] }> {
  const requests: unknown[] = [];
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    const decoder = new FrameDecoder(1 << 26, (payload) => requests.push(decodeBinaryPayload(payload)));
    socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  });
  await new Promise<void>((resolve) => server.listen(port, HOST, resolve));
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { address: `${HOST}:${(server.address() as AddressInfo).port}`, requests, sockets };
}

const outcomeUnknown = (e: unknown): boolean => e instanceof ChorusClientError && e.code === 'CHORUS_TIMEOUT' && e.status === 0 && /outcome is unknown/.test(e.message);

test('binary client failover: past a dead endpoint on the first call, and to another member when its member stops', async (t) => {
  const cluster = await binaryCluster(t);
  const leader = await cluster.leader();
  const [first, second] = cluster.followers(leader);
  const [deadPort] = await freePorts(1);
  const dead = `${HOST}:${deadPort!}`;

  // (a) The first endpoint refuses connections: the first call goes to the next one.
  const client = new ChorusBinaryClient({ endpoints: [dead, first!.binaryAddress!, second!.binaryAddress!, leader.binaryAddress!], timeoutMs: 15_000 });
  t.after(() => client.close());
  assert.equal(client.endpoint, dead);
  const put = await client.put('fo/a', 'one');
  assert.equal(put.committed, true);
  assert.equal(client.endpoint, first!.binaryAddress, 'connected to the first live endpoint');
  assert.equal(Buffer.from((await client.get('fo/a'))!.value).toString(), 'one');

  // (b) Its member stops: once the client sees the connection close, new requests go to the next
  // member (a follower too: it forwards writes to the leader).
  await cluster.stop(first!.id);
  await waitFor(() => client.endpoint !== first!.binaryAddress, 'the client to see its connection close');
  const after = await client.put('fo/b', 'two');
  assert.equal(after.committed, true);
  assert.ok(after.revision > put.revision);
  assert.equal(client.endpoint, second!.binaryAddress);
  assert.equal(Buffer.from((await client.get('fo/b'))!.value).toString(), 'two');
  const http = new ChorusClient({ endpoints: [leader.clientUrl] });
  assert.equal(await http.getText('fo/b'), 'two');
  assert.equal((await client.delete('fo/a')).deleted, 1);
});

test('binary client failover: a put in flight on a lost connection is outcome-unknown and never resent; a lost get is resent once', async (t) => {
  const cluster = await binaryCluster(t);
  const leader = await cluster.leader();
  const silent = await silentServer(t);
  const client = new ChorusBinaryClient({ endpoints: [silent.address, leader.binaryAddress!], timeoutMs: 15_000, inflightMax: 3 });
  t.after(() => client.close());

  // (c) Three requests reach the silent member; a fourth is over inflightMax.
  const put = client.put('lost/put', 'v');
  const del = client.delete('lost/del');
  const get = client.get('lost/put');
  const settled = Promise.allSettled([put, del, get]);
  await waitFor(() => silent.requests.length === 3, 'the silent member to receive three requests');
  await assert.rejects(client.put('over', 'v'), (e: unknown) => e instanceof ChorusClientError && e.code === 'CHORUS_BUSY');
  // Its connection drops with them in flight.
  for (const socket of silent.sockets) socket.destroy();
  const [putResult, delResult, getResult] = await settled;
  assert.equal(putResult.status, 'rejected', 'a put in flight is never reported as done');
  assert.ok(outcomeUnknown(putResult.reason), `the put's outcome is unknown: ${String(putResult.reason)}`);
  assert.match((putResult.reason as Error).message, /may or may not have been applied/);
  assert.equal(delResult.status, 'rejected');
  assert.ok(outcomeUnknown(delResult.reason), `the delete's outcome is unknown: ${String(delResult.reason)}`);
  // The get was sent again, on the next endpoint, and found nothing: the put was not resent.
  assert.equal(getResult.status, 'fulfilled', String((getResult as PromiseRejectedResult).reason));
  assert.equal(getResult.value, null);
  assert.equal(client.endpoint, leader.binaryAddress);
  const http = new ChorusClient({ endpoints: [leader.clientUrl] });
  assert.equal(await http.getText('lost/put'), null, 'the write in flight was not sent to another member');
  assert.equal(silent.requests.length, 3, 'nothing more was sent to the silent member');

  // The client goes on on the live member, with its whole inflightMax again.
  const results = await Promise.all([client.put('next/1', 'a'), client.put('next/2', 'b'), client.put('next/3', 'c')]);
  assert.ok(results.every((r) => r.committed));
});

test('binary client failover: no endpoint reachable is CHORUS_UNAVAILABLE, nothing sent; the client then recovers', async (t) => {
  const [a, b] = await freePorts(2);
  const client = new ChorusBinaryClient({ endpoints: [`${HOST}:${a!}`, `${HOST}:${b!}`], timeoutMs: 5000 });
  t.after(() => client.close());
  await assert.rejects(client.put('k', 'v'), (e: unknown) => e instanceof ChorusClientError && e.code === 'CHORUS_UNAVAILABLE' && /nothing was sent/.test(e.message));
  await assert.rejects(client.get('k'), (e: unknown) => e instanceof ChorusClientError && e.code === 'CHORUS_UNAVAILABLE');
  // A member appears on the second endpoint: the next request finds it (after a pause, as every
  // endpoint failed in a row), and is sent there.
  const silent = await silentServer(t, b!);
  const put = client.put('k', 'v');
  const settled = put.then(() => 'answered', (e: unknown) => e);
  await waitFor(() => silent.requests.length === 1, 'the request to reach the second endpoint');
  assert.equal(client.endpoint, `${HOST}:${b!}`);
  for (const socket of silent.sockets) socket.destroy();
  assert.ok(outcomeUnknown(await settled));
});

test('binary client: endpoint or endpoints, one of them, host:port each', () => {
  const bad = (e: unknown): boolean => e instanceof ChorusClientError && e.code === 'CHORUS_BAD_REQUEST';
  assert.throws(() => new ChorusBinaryClient({}), bad, 'neither');
  assert.throws(() => new ChorusBinaryClient({ endpoints: [] }), bad, 'an empty list');
  assert.throws(() => new ChorusBinaryClient({ endpoint: `${HOST}:9001`, endpoints: [`${HOST}:9002`] }), bad, 'both');
  assert.throws(() => new ChorusBinaryClient({ endpoints: [`${HOST}:9001`, 'no-port'] }), bad, 'a bad one in the list');
  assert.throws(() => new ChorusBinaryClient({ endpoint: 'no-port' }), bad);
  assert.throws(() => new ChorusBinaryClient({ endpoints: 'h:1' as unknown as string[] }), bad, 'not a list');
  const one = new ChorusBinaryClient({ endpoint: `${HOST}:9001` });
  assert.equal(one.endpoint, `${HOST}:9001`);
  const many = new ChorusBinaryClient({ endpoints: [`${HOST}:9001`, `${HOST}:9002`] });
  assert.equal(many.endpoint, `${HOST}:9001`);
  one.close();
  many.close();
});
