// Multi-master keyspaces on three real `chorus start` processes: one member is cut off with the
// transport fault hooks; both sides write conflicting values and increment the same counter;
// after healing every member converges (the counter is the sum of all increments, a versions key
// shows both siblings, an lww key keeps the higher stamp, a set keeps concurrent adds). Then a
// member is killed with SIGKILL right after acknowledged writes and comes back with them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChorusClient } from '../../src/client/index.ts';
import { runCli, startProcessCluster, waitFor } from './helpers.ts';

async function setFaults(url: string, faults: object): Promise<void> {
  const res = await fetch(`${url}/v1/test/faults`, { method: 'POST', body: JSON.stringify(faults) });
  assert.equal(res.status, 200, await res.text());
}

async function getJson(url: string): Promise<{ status: number; body: unknown; text: string; headers: Headers }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  return { status: res.status, body, text, headers: res.headers };
}

test('multi-master: writes on a cut-off member and on the majority converge after healing', async (t) => {
  const cluster = await startProcessCluster(t, 3, ['--enable-test-faults']);
  await cluster.leader();
  const [a, b, c] = cluster.spec.ids as [string, string, string];
  const endpoints = cluster.urls().join(',');

  // The catalog through the CLI.
  for (const conflicts of ['lww', 'versions', 'crdt']) {
    const out = await runCli(t, ['keyspace', 'create', `mm-${conflicts}`, '--mode', 'multi-master', '--conflicts', conflicts, '--endpoints', endpoints]);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, new RegExp(`created: mm-${conflicts} multi-master \\(${conflicts}\\)`));
  }
  const listed = await runCli(t, ['keyspace', 'list', '--endpoints', endpoints]);
  assert.match(listed.stdout, /mm-versions\s+multi-master\s+versions/);
  for (const id of cluster.spec.ids) {
    await waitFor(async () => (await getJson(`${cluster.url(id)}/v1/keyspaces/mm-crdt`)).status === 200, `${id} knows the catalog`);
  }

  const only = (id: string): ChorusClient => new ChorusClient({ endpoints: [cluster.url(id)], timeoutMs: 10_000 });

  // Cut c off in both directions.
  await setFaults(cluster.url(c), { isolate: true });
  for (const id of [a, b]) await setFaults(cluster.url(id), { dropTo: [c], dropFrom: [c] });

  // Conflicting writes on both sides, each acknowledged by the member it was sent to.
  await only(a).mmPut('mm-lww', 'color', 'blue');
  await only(c).mmPut('mm-lww', 'color', 'green');
  await only(b).mmPut('mm-versions', 'cart', 'book');
  await only(c).mmPut('mm-versions', 'cart', 'lamp');
  let expected = 0;
  for (const [id, by] of [[a, 4], [b, 3], [c, 5], [c, 2]] as const) {
    await only(id).crdt('mm-crdt', 'visits', { type: 'counter', op: 'incr', by });
    expected += by;
  }
  await only(a).crdt('mm-crdt', 'tags', { type: 'set', op: 'add', value: 'a-side' });
  await only(c).crdt('mm-crdt', 'tags', { type: 'set', op: 'add', value: 'c-side' });
  // The CLI against the cut-off member alone.
  const cliPut = await runCli(t, ['put', 'solo', 'from-c', '--keyspace', 'mm-lww', '--endpoints', cluster.url(c)]);
  assert.equal(cliPut.code, 0, cliPut.stderr);
  assert.match(cliPut.stdout, /^OK c?\S+:\d+ stamp \S+, durable on 1 member\(s\)/);
  const cliIncr = await runCli(t, ['crdt', 'visits', '{"type":"counter","op":"incr","by":1}', '--keyspace', 'mm-crdt', '--endpoints', cluster.url(c)]);
  assert.equal(cliIncr.code, 0, cliIncr.stderr);
  expected += 1;

  // While cut off, c does not see the majority's writes, and the majority does not see c's.
  const text = async (id: string, key: string): Promise<string | null> => {
    const got = await only(id).get(key, { keyspace: 'mm-lww' });
    return got === null ? null : new TextDecoder().decode(got.value);
  };
  assert.equal(await text(c, 'color'), 'green');
  assert.equal(await only(a).get('solo', { keyspace: 'mm-lww' }), null);

  // Heal; every member converges.
  for (const id of cluster.spec.ids) await setFaults(cluster.url(id), {});
  const read = async (id: string): Promise<string> => JSON.stringify(await Promise.all([
    getJson(`${cluster.url(id)}/v1/ks/mm-lww/kv`).then((r) => r.body),
    getJson(`${cluster.url(id)}/v1/ks/mm-versions/kv`).then((r) => r.body),
    getJson(`${cluster.url(id)}/v1/ks/mm-crdt/kv`).then((r) => r.body),
  ]));
  await waitFor(async () => {
    const states = await Promise.all(cluster.spec.ids.map(read));
    return new Set(states).size === 1 && states[0]!.includes('c-side') && states[0]!.includes('from-c');
  }, 'every member returns the same value for every key', 60_000);

  for (const id of cluster.spec.ids) {
    const visits = await only(id).crdtGet('mm-crdt', 'visits');
    assert.deepEqual(visits, { key: 'visits', type: 'counter', value: expected }, `${id}: the counter is the sum of every increment`);
    const tags = await only(id).crdtGet('mm-crdt', 'tags');
    assert.deepEqual([...(tags?.value as string[])].sort(), ['a-side', 'c-side'], `${id}: concurrent adds both kept`);
    const cart = await getJson(`${cluster.url(id)}/v1/ks/mm-versions/kv/cart`);
    assert.deepEqual(((cart.body as { siblings: { value: string }[] }).siblings).map((s) => s.value).sort(), ['book', 'lamp'], `${id}: both siblings`);
    const color = await only(id).get('color', { keyspace: 'mm-lww' });
    assert.ok(color !== null);
    assert.equal(color.stamp !== undefined, true);
  }
  // lww keeps the write with the higher stamp: compare the two writes' stamps as the members saw them.
  const winner = new TextDecoder().decode((await only(a).get('color', { keyspace: 'mm-lww' }))!.value);
  assert.ok(winner === 'blue' || winner === 'green');
  const metrics = (await (await fetch(`${cluster.url(a)}/metrics`)).text()) + (await (await fetch(`${cluster.url(c)}/metrics`)).text());
  const overwrites = [...metrics.matchAll(/chorus_mm_lww_overwrites_total\{keyspace="mm-lww"[^}]*\} (\d+)/g)].reduce((s, m) => s + Number(m[1]), 0);
  assert.equal(overwrites, 1, 'the losing write is counted once, at the member that made it');

  // SIGKILL right after acknowledged writes: they survive the restart (fsync before the answer).
  for (let i = 0; i < 20; i++) await only(b).mmPut('mm-lww', `durable-${i}`, `v${i}`);
  await cluster.kill(b);
  cluster.start(b);
  await waitFor(async () => (await getJson(`${cluster.url(b)}/healthz`).catch(() => ({ status: 0 }))).status === 200, `${b} restarted`);
  for (let i = 0; i < 20; i++) {
    const got = await only(b).get(`durable-${i}`, { keyspace: 'mm-lww' });
    assert.equal(got === null ? null : new TextDecoder().decode(got.value), `v${i}`, `durable-${i} after SIGKILL`);
  }
});
