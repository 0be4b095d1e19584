// Commit levels, synchronous standby sets and the replicated replication settings, on members
// in this process: what each level acknowledges, the honest `committed` flag, the standby
// timeout (504, never a success), and settings that every member agrees on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChorusClient } from '../../src/client/index.ts';
import { http, startCluster, waitFor } from './helpers.ts';

function code(answer: { json: () => unknown }): string {
  return (answer.json() as { code: string }).code;
}

test('commit levels: off and local answer committed:false, on and remote_apply committed:true; txn refuses off/local', async (t) => {
  const cluster = await startCluster(t, 3);
  const leader = await cluster.leader();
  const follower = cluster.followers(leader)[0]!;
  for (const level of ['off', 'local'] as const) {
    const put = await http('PUT', `${leader.clientUrl}/v1/kv/lvl-${level}?commit=${level}`, level);
    assert.equal(put.status, 200, put.text);
    const body = put.json() as { revision: number; committed: boolean };
    assert.equal(body.committed, false, `${level} is honest about its risk`);
    assert.ok(body.revision > 0);
    // Acknowledged early, applied once committed: a linearizable read sees it soon after.
    await waitFor(async () => (await http('GET', `${leader.clientUrl}/v1/kv/lvl-${level}`)).text === level, `${level} write applies`);
    const del = await http('DELETE', `${follower.clientUrl}/v1/kv/lvl-${level}`, undefined, { 'chorus-commit': level });
    assert.equal(del.status, 200, del.text);
    assert.deepEqual(Object.keys(del.json() as object).sort(), ['committed', 'revision'], 'no deleted count before it applies');
  }
  for (const level of ['on', 'remote_apply'] as const) {
    const put = await http('PUT', `${follower.clientUrl}/v1/kv/lvl-${level}?commit=${level}`, level);
    assert.equal(put.status, 200, put.text);
    assert.equal((put.json() as { committed: boolean }).committed, true);
  }
  const txnBody = JSON.stringify({ success: [{ op: 'put', key: 'tx', value: 'v' }] });
  for (const level of ['off', 'local']) {
    const refused = await http('POST', `${follower.clientUrl}/v1/txn?commit=${level}`, txnBody);
    assert.equal(refused.status, 400, refused.text);
    assert.equal(code(refused), 'CHORUS_BAD_REQUEST');
    assert.match((refused.json() as { message: string }).message, /result/);
  }
  const txn = await http('POST', `${leader.clientUrl}/v1/txn?commit=remote_apply`, txnBody);
  assert.equal(txn.status, 200, txn.text);
  assert.equal((txn.json() as { committed: boolean; succeeded: boolean }).committed, true);

  const unknown = await http('PUT', `${leader.clientUrl}/v1/kv/x?commit=sometimes`, 'v');
  assert.equal(unknown.status, 400);
  assert.equal(code(unknown), 'CHORUS_BAD_CONFIG');
  const disagree = await http('PUT', `${leader.clientUrl}/v1/kv/x?commit=on`, 'v', { 'chorus-commit': 'off' });
  assert.equal(disagree.status, 400);
  assert.equal(code(disagree), 'CHORUS_BAD_REQUEST');
  assert.equal((await http('PUT', `${leader.clientUrl}/v1/kv/x?commit=remote_write`, 'v')).status, 200, 'remote_write is accepted as on');
});

test('a cluster default of local acknowledges writes uncommitted; a txn then still waits for commit', async (t) => {
  const cluster = await startCluster(t, 3, { synchronousCommit: 'local' });
  const leader = await cluster.leader();
  const put = await http('PUT', `${leader.clientUrl}/v1/kv/d`, 'v');
  assert.equal((put.json() as { committed: boolean }).committed, false);
  const txn = await http('POST', `${leader.clientUrl}/v1/txn`, JSON.stringify({ success: [{ op: 'get', key: 'd' }] }));
  assert.equal(txn.status, 200, txn.text);
  assert.equal((txn.json() as { committed: boolean }).committed, true, 'a txn without a level is raised to on');
});

test('FIRST 1 (n3) with n3 down: writes at on end with 504 CHORUS_SYNC_STANDBY_TIMEOUT, never success; with n3 back they succeed', async (t) => {
  const cluster = await startCluster(t, 3, { syncStandbyTimeoutMs: 400, electionTicks: 10 });
  let leader = await cluster.leader();
  // The standby is a follower, so that stopping it leaves the leader in place.
  const standby = cluster.followers(leader)[0]!.id;
  const set = await http('PUT', `${leader.clientUrl}/v1/config/replication`, JSON.stringify({ synchronous_standby_names: `FIRST 1 (${standby})` }));
  assert.equal(set.status, 200, set.text);
  assert.deepEqual(set.json(), { synchronous_commit: 'on', synchronous_standby_names: `FIRST 1 (${standby})`, source: 'replicated', revision: (set.json() as { revision: number }).revision });
  for (const node of cluster.nodes.values()) {
    await waitFor(async () => ((await http('GET', `${node.clientUrl}/v1/config/replication`)).json() as { source: string }).source === 'replicated', `${node.id} has the setting`);
  }
  assert.equal((await http('PUT', `${leader.clientUrl}/v1/kv/before`, 'v')).status, 200);

  await cluster.stop(standby);
  leader = await cluster.leader();
  await waitFor(async () => {
    const view = (await http('GET', `${leader.clientUrl}/v1/cluster`)).json() as { replication: { satisfiable: boolean } };
    return view.replication.satisfiable === false;
  }, 'the leader sees the set unmet');
  const answers = await Promise.all([0, 1, 2].map((i) => http('PUT', `${leader.clientUrl}/v1/kv/during-${i}`, 'v')));
  for (const answer of answers) {
    assert.equal(answer.status, 504, answer.text);
    assert.equal(code(answer), 'CHORUS_SYNC_STANDBY_TIMEOUT');
    assert.match((answer.json() as { message: string }).message, /committed at revision \d+/);
  }
  const remoteApply = await http('PUT', `${leader.clientUrl}/v1/kv/during-ra?commit=remote_apply`, 'v');
  assert.equal(code(remoteApply), 'CHORUS_SYNC_STANDBY_TIMEOUT');
  // local does not wait for anybody, and the settings can still be changed.
  assert.equal((await http('PUT', `${leader.clientUrl}/v1/kv/during-local?commit=local`, 'v')).status, 200);
  assert.equal(leader.debugState().proposalsPending, 0, 'timed-out waits no longer count');

  await cluster.start(standby);
  const after = await waitFor(async () => {
    const answer = await http('PUT', `${leader.clientUrl}/v1/kv/after`, 'v');
    return answer.status === 200 ? answer : undefined;
  }, 'writes succeed once the standby is back');
  assert.equal((after.json() as { committed: boolean }).committed, true);
});

test('replication settings: bad values are 400 CHORUS_BAD_CONFIG; a replicated value outlives a restart and beats the flags', async (t) => {
  const cluster = await startCluster(t, 3, { synchronousCommit: 'on' });
  const leader = await cluster.leader();
  const follower = cluster.followers(leader)[0]!;
  const bad = [
    { synchronous_commit: 'sometimes' },
    { synchronous_standby_names: 'FIRST 2 (n2)' },
    { synchronous_standby_names: 'FIRST x (n2)' },
    { synchronous_standby_names: 'n2, n2' },
    { synchronous_commit: 3 },
  ];
  for (const doc of bad) {
    const answer = await http('PUT', `${follower.clientUrl}/v1/config/replication`, JSON.stringify(doc));
    assert.equal(answer.status, 400, JSON.stringify(doc));
    assert.equal(code(answer), 'CHORUS_BAD_CONFIG', JSON.stringify(doc));
  }
  const unknownKey = await http('PUT', `${follower.clientUrl}/v1/config/replication`, JSON.stringify({ wal_level: 'replica' }));
  assert.equal(code(unknownKey), 'CHORUS_BAD_REQUEST');
  assert.equal(code(await http('PUT', `${follower.clientUrl}/v1/config/replication`, '{')), 'CHORUS_BAD_JSON');

  const initial = (await http('GET', `${follower.clientUrl}/v1/config/replication`)).json() as { source: string };
  assert.equal(initial.source, 'config');
  // Set through a follower (forwarded), in PostgreSQL's spelling.
  const set = await http('PUT', `${follower.clientUrl}/v1/config/replication`, JSON.stringify({ synchronous_commit: 'remote_apply', synchronous_standby_names: 'any 1 (n1, n2, n3)' }));
  assert.equal(set.status, 200, set.text);
  assert.equal((set.json() as { synchronous_standby_names: string }).synchronous_standby_names, 'ANY 1 (n1, n2, n3)');
  const client = new ChorusClient({ endpoints: [follower.clientUrl] });
  assert.equal((await client.put('k', 'v')).committed, true);

  await cluster.stopAll();
  for (const id of cluster.spec.ids) await cluster.start(id, { synchronousCommit: 'off' });
  await cluster.leader();
  for (const node of cluster.nodes.values()) {
    const got = (await http('GET', `${node.clientUrl}/v1/config/replication`)).json() as { synchronous_commit: string; source: string };
    assert.deepEqual([got.synchronous_commit, got.source], ['remote_apply', 'replicated'], node.id);
  }
});

test('writes waiting for the standby set count as pending: beyond proposalsPendingMax the next one gets 503 CHORUS_BUSY', async (t) => {
  const cluster = await startCluster(t, 3, { proposalsPendingMax: 2, syncStandbyTimeoutMs: 2000, requestTimeoutMs: 3000 });
  const leader = await cluster.leader();
  const standby = cluster.followers(leader)[0]!.id;
  assert.equal((await http('PUT', `${leader.clientUrl}/v1/config/replication`, JSON.stringify({ synchronous_standby_names: standby }))).status, 200);
  await cluster.stop(standby);
  await waitFor(async () => ((await http('GET', `${leader.clientUrl}/v1/cluster`)).json() as { replication: { satisfiable: boolean } }).replication.satisfiable === false, 'the set is unmet');
  const waiting = [0, 1].map((i) => http('PUT', `${leader.clientUrl}/v1/kv/w${i}`, 'v'));
  await waitFor(() => leader.debugState().proposalsPending === 2, 'two writes wait for the standby');
  const refused = await http('PUT', `${leader.clientUrl}/v1/kv/w2`, 'v');
  assert.equal(refused.status, 503, refused.text);
  assert.equal(code(refused), 'CHORUS_BUSY');
  for (const answer of await Promise.all(waiting)) assert.equal(code(answer), 'CHORUS_SYNC_STANDBY_TIMEOUT');
  assert.equal(leader.debugState().proposalsPending, 0);
});
