// Keyspaces on a live three-member cluster in one process: the catalog through the log, consensus
// keyspaces beside /v1/kv, multi-master writes at every member (also one cut off from the
// others), each conflict strategy after healing, ?w=N, bad input, and restart from mm.db.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChorusNode } from '../../src/server/index.ts';
import { http, startCluster, waitFor } from './helpers.ts';

const json = (body: unknown): string => JSON.stringify(body);

async function createKeyspace(node: ChorusNode, body: unknown): Promise<{ status: number; json: () => unknown; text: string }> {
  return http('POST', `${node.clientUrl}/v1/keyspaces`, json(body), { 'content-type': 'application/json' });
}

/** Waits until every node's catalog holds `name` (the catalog is applied on each member). */
async function catalogEverywhere(nodes: readonly ChorusNode[], name: string): Promise<void> {
  await waitFor(() => nodes.every((n) => n.keyspace(name) !== undefined), `keyspace ${name} on every member`);
}

function hashes(nodes: readonly ChorusNode[], keyspace: string): string[] {
  return nodes.map((n) => n.mm.stats().find((s) => s.name === keyspace)?.stateHash ?? 'none');
}

test('the catalog is replicated; consensus keyspaces are separate from /v1/kv and from each other', async (t) => {
  const cluster = await startCluster(t, 3);
  const leader = await cluster.leader();
  const [f1] = cluster.followers(leader) as [ChorusNode];
  const nodes = [...cluster.nodes.values()];

  // Through a follower: forwarded to the leader.
  const created = await createKeyspace(f1, { name: 'orders', mode: 'consensus' });
  assert.equal(created.status, 201, created.text);
  assert.deepEqual(created.json(), { name: 'orders', mode: 'consensus', revision: (created.json() as { revision: number }).revision, created: true });
  const again = await createKeyspace(leader, { name: 'orders', mode: 'consensus' });
  assert.equal(again.status, 200, again.text);
  assert.equal((again.json() as { created: boolean }).created, false);
  const clash = await createKeyspace(leader, { name: 'orders', mode: 'multi-master', conflicts: 'lww' });
  assert.equal(clash.status, 409, clash.text);
  assert.equal((clash.json() as { code: string }).code, 'CHORUS_KEYSPACE_EXISTS');
  await catalogEverywhere(nodes, 'orders');

  for (const bad of [{ name: 'x y', mode: 'consensus' }, { name: 'default', mode: 'consensus' }, { name: 'a', mode: 'multi-master' }, { name: 'a', mode: 'consensus', conflicts: 'lww' }, { name: 'a', mode: 'nope' }, { name: 'a', mode: 'consensus', extra: 1 }]) {
    const res = await createKeyspace(leader, bad);
    assert.equal(res.status, 400, `${json(bad)}: ${res.text}`);
  }
  const notJson = await http('POST', `${leader.clientUrl}/v1/keyspaces`, '{', { 'content-type': 'application/json' });
  assert.equal((notJson.json() as { code: string }).code, 'CHORUS_BAD_JSON');

  const list = (await http('GET', `${f1.clientUrl}/v1/keyspaces`)).json() as { keyspaces: { name: string; mode: string }[] };
  assert.deepEqual(list.keyspaces.map((k) => `${k.name}:${k.mode}`), ['default:consensus', 'orders:consensus']);

  // The same key in three keyspaces: three values.
  assert.equal((await http('PUT', `${leader.clientUrl}/v1/kv/k`, 'plain')).status, 200);
  assert.equal((await http('PUT', `${f1.clientUrl}/v1/ks/orders/kv/k`, 'order')).status, 200);
  assert.equal((await http('PUT', `${f1.clientUrl}/v1/ks/orders/kv/k2`, 'order2')).status, 200);
  assert.equal((await http('GET', `${f1.clientUrl}/v1/kv/k`)).text, 'plain');
  assert.equal((await http('GET', `${f1.clientUrl}/v1/ks/default/kv/k`)).text, 'plain');
  assert.equal((await http('GET', `${leader.clientUrl}/v1/ks/orders/kv/k`)).text, 'order');
  const listed = (await http('GET', `${leader.clientUrl}/v1/ks/orders/kv?prefix=k`)).json() as { key: string }[];
  assert.deepEqual(listed.map((r) => r.key), ['k', 'k2']);
  const plainList = (await http('GET', `${leader.clientUrl}/v1/kv`)).json() as { key: string }[];
  assert.deepEqual(plainList.map((r) => r.key), ['k'], 'keyspace keys do not show in /v1/kv');
  // The reserved mark cannot be used to reach them.
  const reserved = await http('GET', `${leader.clientUrl}/v1/kv/%00orders%00k`);
  assert.equal(reserved.status, 400, reserved.text);
  assert.equal((await http('DELETE', `${leader.clientUrl}/v1/ks/orders/kv/k`)).status, 200);
  assert.equal((await http('GET', `${leader.clientUrl}/v1/ks/orders/kv/k`)).status, 404);
  const missing = await http('GET', `${leader.clientUrl}/v1/ks/nope/kv/k`);
  assert.equal(missing.status, 404);
  assert.equal((missing.json() as { code: string }).code, 'CHORUS_KEYSPACE_NOT_FOUND');
});

test('multi-master: after a cut shorter than the suspicion time, the batches lost in it are resent while the peer is silent, not after the ack timeout', async (t) => {
  // Anti-entropy, hints and the ack timeout are all out of reach: only the stream can repair.
  const cluster = await startCluster(t, 3, { enableTestFaults: true, multiMaster: { aeIntervalMs: 600_000, ackTimeoutMs: 600_000, suspectAfterMs: 60_000 } });
  const leader = await cluster.leader();
  const nodes = [...cluster.nodes.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
  const res = await createKeyspace(leader, { name: 'mm-short-cut', mode: 'multi-master', conflicts: 'lww' });
  assert.equal(res.status, 201, res.text);
  await catalogEverywhere(nodes, 'mm-short-cut');
  const [a, b, c] = nodes as [ChorusNode, ChorusNode, ChorusNode];
  assert.equal((await http('PUT', `${a.clientUrl}/v1/ks/mm-short-cut/kv/warm?w=3`, 'up')).status, 200);
  // Cut c off; a writes while the batches to c are lost.
  await http('POST', `${c.clientUrl}/v1/test/faults`, json({ isolate: true }));
  for (const n of [a, b]) await http('POST', `${n.clientUrl}/v1/test/faults`, json({ dropTo: [c.id], dropFrom: [c.id] }));
  for (let i = 0; i < 20; i++) assert.equal((await http('PUT', `${a.clientUrl}/v1/ks/mm-short-cut/kv/k${i}`, `v${i}`)).status, 200);
  await new Promise((resolve) => setTimeout(resolve, 800)); // the batch to c is now long unanswered
  for (const n of nodes) await http('POST', `${n.clientUrl}/v1/test/faults`, json({}));
  // Both sides lost their batch in flight; each resends it after half a second of silence.
  await waitFor(() => new Set(hashes(nodes, 'mm-short-cut')).size === 1, 'mm-short-cut converged', 20_000);
  assert.equal((await http('GET', `${c.clientUrl}/v1/ks/mm-short-cut/kv/k19`)).text, 'v19');
});

test('multi-master keyspaces accept writes on a member cut off from the others and converge after healing', async (t) => {
  const cluster = await startCluster(t, 3, { enableTestFaults: true, multiMaster: { aeIntervalMs: 500, suspectAfterMs: 1000 } });
  const leader = await cluster.leader();
  const nodes = [...cluster.nodes.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
  for (const conflicts of ['lww', 'versions', 'crdt']) {
    const res = await createKeyspace(leader, { name: `mm-${conflicts}`, mode: 'multi-master', conflicts });
    assert.equal(res.status, 201, res.text);
    assert.deepEqual((res.json() as { members: string[] }).members, nodes.map((n) => n.id));
  }
  for (const ks of ['mm-lww', 'mm-versions', 'mm-crdt']) await catalogEverywhere(nodes, ks);
  const [a, b, c] = nodes as [ChorusNode, ChorusNode, ChorusNode];

  // Before the cut: a write with w=3 is acknowledged once all three hold it.
  const w3 = await http('PUT', `${a.clientUrl}/v1/ks/mm-lww/kv/before?w=3`, 'v0');
  assert.equal(w3.status, 200, w3.text);
  assert.equal((w3.json() as { durableMembers: number }).durableMembers, 3);
  for (const n of nodes) assert.equal((await http('GET', `${n.clientUrl}/v1/ks/mm-lww/kv/before`)).text, 'v0', n.id);

  // Cut c off from everyone (both directions).
  const fault = await http('POST', `${c.clientUrl}/v1/test/faults`, json({ isolate: true }));
  assert.equal(fault.status, 200, fault.text);
  for (const n of [a, b]) await http('POST', `${n.clientUrl}/v1/test/faults`, json({ dropTo: [c.id], dropFrom: [c.id] }));

  // Writes on both sides, all acknowledged: c writes alone.
  const put = async (n: ChorusNode, ks: string, key: string, value: string): Promise<void> => {
    const res = await http('PUT', `${n.clientUrl}/v1/ks/${ks}/kv/${key}`, value);
    assert.equal(res.status, 200, `${n.id} ${ks}/${key}: ${res.text}`);
  };
  const op = async (n: ChorusNode, key: string, body: unknown): Promise<void> => {
    const res = await http('POST', `${n.clientUrl}/v1/ks/mm-crdt/crdt/${key}`, json(body));
    assert.equal(res.status, 200, `${n.id} crdt/${key}: ${res.text}`);
  };
  await put(a, 'mm-lww', 'x', 'from-a');
  await put(c, 'mm-lww', 'x', 'from-c');
  await put(b, 'mm-versions', 'v', 'from-b');
  await put(c, 'mm-versions', 'v', 'from-c');
  await op(a, 'hits', { type: 'counter', op: 'incr', by: 5 });
  await op(b, 'hits', { type: 'counter', op: 'incr', by: 2 });
  await op(c, 'hits', { type: 'counter', op: 'incr', by: 3 });
  await op(c, 'hits', { type: 'counter', op: 'decr', by: 1 });
  await op(a, 'tags', { type: 'set', op: 'add', value: 'red' });
  await op(c, 'tags', { type: 'set', op: 'add', value: 'blue' });
  // w=2 cannot be met on the cut-off member: an honest 504, the write stays.
  const lonely = await http('PUT', `${c.clientUrl}/v1/ks/mm-lww/kv/lonely?w=2`, 'alone', { 'chorus-timeout-ms': '300' });
  assert.equal(lonely.status, 504, lonely.text);
  assert.equal((lonely.json() as { code: string }).code, 'CHORUS_TIMEOUT');
  // A delete on one side of a key written before the cut.
  assert.equal((await http('DELETE', `${b.clientUrl}/v1/ks/mm-lww/kv/before`)).status, 200);

  assert.equal((await http('GET', `${c.clientUrl}/v1/ks/mm-lww/kv/x`)).text, 'from-c', 'c sees its own write while cut off');

  // Heal.
  for (const n of nodes) await http('POST', `${n.clientUrl}/v1/test/faults`, json({}));
  for (const ks of ['mm-lww', 'mm-versions', 'mm-crdt']) {
    await waitFor(() => new Set(hashes(nodes, ks)).size === 1, `${ks} converged`, 30_000);
  }

  const xs = await Promise.all(nodes.map(async (n) => (await http('GET', `${n.clientUrl}/v1/ks/mm-lww/kv/x`)).text));
  assert.equal(new Set(xs).size, 1, `every member returns the same value: ${xs.join(',')}`);
  const lwwStats = nodes.map((n) => n.mm.stats().find((s) => s.name === 'mm-lww')!.lwwOverwrites).reduce((x, y) => x + y, 0);
  assert.ok(lwwStats >= 1, 'the losing concurrent write is counted');
  for (const n of nodes) {
    assert.equal((await http('GET', `${n.clientUrl}/v1/ks/mm-lww/kv/before`)).status, 404, `deleted key stays deleted on ${n.id}`);
    assert.equal((await http('GET', `${n.clientUrl}/v1/ks/mm-lww/kv/lonely`)).text, 'alone');
    const v = (await http('GET', `${n.clientUrl}/v1/ks/mm-versions/kv/v`)).json() as { siblings: { value: string }[]; context: string };
    assert.deepEqual(v.siblings.map((s) => s.value).sort(), ['from-b', 'from-c'], `both siblings on ${n.id}`);
    const hits = (await http('GET', `${n.clientUrl}/v1/ks/mm-crdt/crdt/hits`)).json() as { type: string; value: number };
    assert.deepEqual(hits, { key: 'hits', type: 'counter', value: 9 });
    const tags = (await http('GET', `${n.clientUrl}/v1/ks/mm-crdt/crdt/tags`)).json() as { value: string[] };
    assert.deepEqual([...tags.value].sort(), ['blue', 'red']);
  }

  // Metrics: per keyspace and per peer.
  const metrics = (await http('GET', `${a.clientUrl}/metrics`)).text;
  assert.match(metrics, /chorus_mm_keys\{keyspace="mm-crdt",member="[^"]+"\} 2/);
  assert.match(metrics, /chorus_mm_backlog_seqs\{keyspace="mm-lww",peer="[^"]+",member="[^"]+"\} 0/);
  assert.match(metrics, /chorus_mm_lww_overwrites_total\{keyspace="mm-lww"/);

  // A write carrying the context of a read replaces exactly the siblings it saw.
  const read = await http('GET', `${a.clientUrl}/v1/ks/mm-versions/kv/v`);
  const context = read.headers.get('chorus-context')!;
  const resolved = await http('PUT', `${a.clientUrl}/v1/ks/mm-versions/kv/v?w=3`, 'merged', { 'chorus-context': context });
  assert.equal(resolved.status, 200, resolved.text);
  assert.equal((resolved.json() as { siblings: number }).siblings, 1);
  for (const n of nodes) {
    const v = (await http('GET', `${n.clientUrl}/v1/ks/mm-versions/kv/v`)).json() as { siblings: { value: string }[] };
    assert.deepEqual(v.siblings.map((s) => s.value), ['merged']);
  }

  // Listing with a prefix.
  const list = (await http('GET', `${b.clientUrl}/v1/ks/mm-crdt/kv?prefix=h`)).json() as { key: string; value: unknown }[];
  assert.deepEqual(list.map((i) => i.key), ['hits']);

  // Bad input: clear codes, nothing written.
  const cases: [string, string, string | undefined, number, string][] = [
    ['PUT', `/v1/ks/mm-crdt/kv/z`, 'v', 400, 'CHORUS_WRONG_MODE'],
    ['POST', `/v1/ks/mm-crdt/crdt/z`, json({ type: 'counter', op: 'explode' }), 400, 'CHORUS_BAD_CRDT_OP'],
    ['POST', `/v1/ks/mm-crdt/crdt/hits`, json({ type: 'set', op: 'add', value: 1 }), 409, 'CHORUS_CRDT_TYPE_MISMATCH'],
    ['PUT', `/v1/ks/mm-versions/kv/v`, 'x', 200, ''],
    ['PUT', `/v1/ks/mm-versions/kv/v?context=garbage`, 'x', 400, 'CHORUS_BAD_TOKEN'],
    ['PUT', `/v1/ks/mm-lww/kv/k?w=4`, 'x', 400, 'CHORUS_BAD_REQUEST'],
    ['PUT', `/v1/ks/mm-lww/kv/k?commit=on`, 'x', 400, 'CHORUS_BAD_REQUEST'],
    ['GET', `/v1/ks/mm-lww/kv/x?consistency=linearizable`, undefined, 400, 'CHORUS_BAD_REQUEST'],
    ['POST', `/v1/ks/mm-lww/crdt/z`, json({ type: 'counter', op: 'incr' }), 400, 'CHORUS_WRONG_MODE'],
  ];
  for (const [method, path, body, status, code] of cases) {
    const res = await http(method, `${b.clientUrl}${path}`, body);
    assert.equal(res.status, status, `${method} ${path}: ${res.text}`);
    if (code !== '') assert.equal((res.json() as { code: string }).code, code, `${method} ${path}`);
  }

  // Restart one member: its multi-master state comes back from mm.db.
  const before = hashes([b], 'mm-crdt')[0];
  await cluster.stop(b.id);
  const b2 = await cluster.start(b.id);
  await waitFor(() => b2.mm.stats().length === 3, 'keyspaces reopened');
  assert.equal(hashes([b2], 'mm-crdt')[0], before);
  const hits = (await http('GET', `${b2.clientUrl}/v1/ks/mm-crdt/crdt/hits`)).json() as { value: number };
  assert.equal(hits.value, 9);
});
