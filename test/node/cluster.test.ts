// Three members in one process on 127.0.0.1 with short ticks: writes and reads through every
// member, follower forwarding, leader change, a write overwritten after a leader change, and
// snapshots (taken, sent to a lagging member, booted from).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ChorusClient } from '../../src/client/index.ts';
import { http, startCluster, waitFor } from './helpers.ts';

test('writes and reads through every member; followers forward writes to the leader', async (t) => {
  const cluster = await startCluster(t, 3);
  const leader = await cluster.leader();
  const [f1, f2] = cluster.followers(leader) as [typeof leader, typeof leader];

  const viaLeader = await http('PUT', `${leader.clientUrl}/v1/kv/k1`, 'from-leader');
  assert.equal(viaLeader.status, 200, viaLeader.text);
  const viaFollower = await http('PUT', `${f1.clientUrl}/v1/kv/dir/k2`, 'from-follower');
  assert.equal(viaFollower.status, 200, viaFollower.text);
  assert.equal(viaFollower.headers.get('chorus-leader-address'), leader.clientAddress, 'the answer names the leader');
  const revision = (viaFollower.json() as { revision: number }).revision;
  assert.ok(revision > (viaLeader.json() as { revision: number }).revision);

  // Linearizable reads from any member see both writes at once (no waiting).
  for (const node of [leader, f1, f2]) {
    assert.equal((await http('GET', `${node.clientUrl}/v1/kv/k1`)).text, 'from-leader', node.id);
    const got = await http('GET', `${node.clientUrl}/v1/kv/dir/k2`);
    assert.equal(got.text, 'from-follower', node.id);
    assert.equal(got.headers.get('chorus-revision'), String(revision));
  }

  const txn = await http('POST', `${f2.clientUrl}/v1/txn`, JSON.stringify({
    compare: [{ key: 'k1', target: 'value', op: '==', value: 'from-leader' }],
    success: [{ op: 'put', key: 'k1', value: 'swapped' }],
    failure: [],
  }));
  assert.equal(txn.status, 200, txn.text);
  assert.equal((txn.json() as { succeeded: boolean }).succeeded, true);
  assert.equal((await http('GET', `${f1.clientUrl}/v1/kv/k1`)).text, 'swapped');

  const del = await http('DELETE', `${f2.clientUrl}/v1/kv/k1`);
  assert.equal((del.json() as { deleted: number }).deleted, 1);
  assert.equal((await http('GET', `${leader.clientUrl}/v1/kv/k1`)).status, 404);

  const list = await http('GET', `${f1.clientUrl}/v1/kv?prefix=dir/`);
  assert.deepEqual((list.json() as { key: string }[]).map((i) => i.key), ['dir/k2']);

  // The cluster view from a follower carries the leader's progress.
  const view = (await http('GET', `${f1.clientUrl}/v1/cluster`)).json() as {
    leaderId: string; self: { id: string; role: string }; membersSource: string;
    members: { id: string; role: string; matchIndex: number | null; clientAddress: string | null; reachable: boolean }[];
  };
  assert.equal(view.leaderId, leader.id);
  assert.equal(view.self.id, f1.id);
  assert.equal(view.self.role, 'follower');
  assert.equal(view.membersSource, 'leader');
  assert.deepEqual(view.members.map((m) => m.id).sort(), ['n1', 'n2', 'n3']);
  assert.equal(view.members.find((m) => m.id === leader.id)?.role, 'leader');
  for (const m of view.members) {
    assert.equal(typeof m.matchIndex, 'number');
    assert.equal(m.clientAddress, cluster.node(m.id).clientAddress);
    assert.equal(m.reachable, true);
  }
  const ready = await http('GET', `${f2.clientUrl}/readyz`);
  assert.equal(ready.status, 200, ready.text);
});

test('leader change: the survivors elect a new leader, keep every write, and the old leader catches up', async (t) => {
  const cluster = await startCluster(t, 3);
  const client = new ChorusClient({ endpoints: cluster.spec.ids.map((id) => cluster.node(id).clientUrl), timeoutMs: 10_000 });
  const first = await cluster.leader();
  for (let i = 0; i < 20; i++) await client.put(`lc/${i}`, `v${i}`);
  await cluster.stop(first.id);
  const second = await cluster.leader();
  assert.notEqual(second.id, first.id);
  for (let i = 20; i < 40; i++) await client.put(`lc/${i}`, `v${i}`);
  for (let i = 0; i < 40; i++) assert.equal(await client.getText(`lc/${i}`), `v${i}`);

  const restarted = await cluster.start(first.id);
  await waitFor(() => restarted.debugState().appliedIndex >= second.debugState().commitIndex, 'the old leader catches up');
  const direct = new ChorusClient({ endpoints: [restarted.clientUrl] });
  for (let i = 0; i < 40; i++) assert.equal(await direct.getText(`lc/${i}`, { consistency: 'stale' }), `v${i}`);
});

test('a write whose index gets another entry after a leader change fails with 503 CHORUS_LEADER_CHANGED', async (t) => {
  // A long request deadline, so the write is still waiting when its fate is decided.
  const cluster = await startCluster(t, 3, { requestTimeoutMs: 20_000 });
  const old = await cluster.leader();
  old.setTestFaults({ isolate: true });
  const pending = http('PUT', `${old.clientUrl}/v1/kv/lost`, 'never');
  await waitFor(() => old.debugState().proposalsPending === 1, 'the isolated leader accepted the write');
  const others = cluster.followers(old);
  await waitFor(() => others.some((n) => n.debugState().role === 'leader'), 'the majority elects a new leader');
  const client = new ChorusClient({ endpoints: others.map((n) => n.clientUrl), timeoutMs: 10_000 });
  await client.put('other', 'committed'); // a new leader commits other entries at that index
  old.setTestFaults({});
  const answer = await pending;
  assert.equal(answer.status, 503, answer.text);
  assert.equal((answer.json() as { code: string }).code, 'CHORUS_LEADER_CHANGED');
  assert.equal(await client.getText('lost'), null);
  assert.equal(await client.getText('other'), 'committed');
});

/** Puts `${prefix}${i}` = `v${i}` from i = 0, at least `count` of them and then until `enough()`
 * (bounded): snapshots are taken off the loop at a per-member threshold, so how many writes
 * they take is not fixed. Returns how many were written. */
async function putUntil(client: ChorusClient, prefix: string, count: number, enough: () => boolean): Promise<number> {
  let written = 0;
  for (; written < count || !enough(); written++) {
    assert.ok(written < 20 * count, `still not enough after ${written} writes`);
    await client.put(`${prefix}${written}`, `v${written}`);
  }
  return written;
}

test('snapshots: taken every snapshotEntries, sent to a member that fell behind, and booted from', async (t) => {
  const cluster = await startCluster(t, 3, { snapshotEntries: 20, walKeepEntries: 0 });
  const leader = await cluster.leader();
  const [lagging, other] = cluster.followers(leader) as [typeof leader, typeof leader];
  await cluster.stop(lagging.id);
  const client = new ChorusClient({ endpoints: [leader.clientUrl], timeoutMs: 10_000 });
  // Both running members keep taking snapshots while every write is served.
  await putUntil(client, 'snap/', 120, () => [leader, other].every((n) => n.debugState().snapshotsTaken >= 4 && n.debugState().snapshotIndex >= 100));

  // The log the lagging member needs is gone: it can only catch up from a snapshot.
  const back = await cluster.start(lagging.id);
  await waitFor(() => back.debugState().appliedIndex >= leader.debugState().commitIndex, 'the lagging member catches up');
  assert.ok(back.debugState().snapshotsInstalled >= 1, 'it installed a snapshot');
  const direct = new ChorusClient({ endpoints: [back.clientUrl] });
  for (let i = 0; i < 120; i += 7) assert.equal(await direct.getText(`snap/${i}`, { consistency: 'stale' }), `v${i}`);
  await client.put('snap/after', 'yes');
  await waitFor(async () => (await direct.getText('snap/after', { consistency: 'stale' })) === 'yes', 'it applies new writes after the snapshot');
  // The leader sent the image from a file; compactions after it delete the file.
  const images = (id: string): string[] => fs.readdirSync(path.join(cluster.spec.dirs.get(id)!, 'images'));
  await putUntil(client, 'snap/more/', 60, () => images(leader.id).length === 0);
  assert.deepEqual(images(leader.id), []);

  // Every member restarts from its snapshot and compacted log; image files left behind by a
  // stop go at start.
  await cluster.stopAll();
  fs.writeFileSync(path.join(cluster.spec.dirs.get(leader.id)!, 'images', 'image-9.db'), 'left by a crash');
  for (const id of cluster.spec.ids) await cluster.start(id);
  assert.deepEqual(images(leader.id), []);
  await cluster.leader();
  const all = new ChorusClient({ endpoints: cluster.spec.ids.map((id) => cluster.node(id).clientUrl), timeoutMs: 10_000 });
  for (let i = 0; i < 120; i += 5) assert.equal(await all.getText(`snap/${i}`), `v${i}`);
  assert.equal(await all.getText('snap/after'), 'yes');
});

test('a state database ahead of the log (a crash between restoring a received snapshot and saving its position) is caught up, not reapplied', async (t) => {
  const cluster = await startCluster(t, 3, { snapshotEntries: 20, walKeepEntries: 0 });
  const leader = await cluster.leader();
  const behind = cluster.followers(leader)[0]!;
  const client = new ChorusClient({ endpoints: [leader.clientUrl], timeoutMs: 10_000 });
  await putUntil(client, 'early/', 10, () => true);
  await cluster.stop(behind.id);
  // Writes the stopped member misses; counters make a replayed write visible (version grows).
  for (let i = 0; i < 60; i++) await client.put(`late/${i % 7}`, `v${i}`);
  const expected = await Promise.all(Array.from({ length: 7 }, async (_, k) => (await client.get(`late/${k}`))));
  // Stop everyone and give the stopped member the leader's state database: it is now ahead of
  // its own log, as after a crash right after a received snapshot was restored.
  await cluster.stopAll();
  const stateFile = (id: string): string => path.join(cluster.spec.dirs.get(id)!, 'state.db');
  for (const suffix of ['', '-wal', '-shm']) {
    fs.rmSync(`${stateFile(behind.id)}${suffix}`, { force: true });
    if (fs.existsSync(`${stateFile(leader.id)}${suffix}`)) fs.copyFileSync(`${stateFile(leader.id)}${suffix}`, `${stateFile(behind.id)}${suffix}`);
  }
  for (const id of cluster.spec.ids) await cluster.start(id);
  await cluster.leader();
  const back = cluster.node(behind.id);
  const all = new ChorusClient({ endpoints: cluster.spec.ids.map((id) => cluster.node(id).clientUrl), timeoutMs: 10_000 });
  await all.put('after/restart', 'yes');
  await waitFor(() => back.debugState().appliedIndex >= cluster.node(cluster.spec.ids.find((id) => id !== behind.id)!).debugState().commitIndex, 'the member catches up');
  const direct = new ChorusClient({ endpoints: [back.clientUrl] });
  for (let k = 0; k < 7; k++) {
    const got = await direct.get(`late/${k}`, { consistency: 'stale' });
    assert.deepEqual({ value: got?.value, version: got?.version, revision: got?.revision }, { value: expected[k]?.value, version: expected[k]?.version, revision: expected[k]?.revision }, `late/${k} as the leader had it`);
  }
  assert.equal(await direct.getText('after/restart', { consistency: 'stale' }), 'yes');
});

test('wal_keep: a member a little behind catches up from the log kept below the snapshot, without one', async (t) => {
  const cluster = await startCluster(t, 3, { snapshotEntries: 20, walKeepEntries: 1000 });
  const leader = await cluster.leader();
  const lagging = cluster.followers(leader)[0]!;
  await cluster.stop(lagging.id);
  const client = new ChorusClient({ endpoints: [leader.clientUrl], timeoutMs: 10_000 });
  const written = await putUntil(client, 'keep/', 80, () => leader.debugState().snapshotsTaken >= 3 && leader.debugState().snapshotIndex >= 60);
  const back = await cluster.start(lagging.id);
  await waitFor(() => back.debugState().appliedIndex >= leader.debugState().commitIndex, 'the lagging member catches up');
  assert.equal(back.debugState().snapshotsInstalled, 0, 'no snapshot was needed');
  const direct = new ChorusClient({ endpoints: [back.clientUrl] });
  assert.equal(await direct.getText(`keep/${written - 1}`, { consistency: 'stale' }), `v${written - 1}`);
  // The leader restarts with its snapshot and the entries kept below it.
  await cluster.stop(leader.id);
  await cluster.start(leader.id);
  await cluster.leader();
  const all = new ChorusClient({ endpoints: cluster.spec.ids.map((id) => cluster.node(id).clientUrl), timeoutMs: 10_000 });
  for (let i = 0; i < 80; i += 9) assert.equal(await all.getText(`keep/${i}`), `v${i}`);
});
