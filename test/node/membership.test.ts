// Membership changes and switchover on members in this process: a learner joins with --join,
// bootstraps from a snapshot, serves reads and is promoted; members are removed; every invalid
// change has its code; a switchover moves leadership; /v1/cluster reports lag and eligibility.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChorusClient } from '../../src/client/index.ts';
import type { ClusterMember, ClusterView } from '../../src/shared/api-types.ts';
import { TestCluster, http, startCluster, startGrowableCluster, waitFor } from './helpers.ts';

function code(answer: { json: () => unknown }): string {
  return (answer.json() as { code: string }).code;
}

async function view(url: string): Promise<ClusterView> {
  return (await http('GET', `${url}/v1/cluster`)).json() as ClusterView;
}

function member(v: ClusterView, id: string): ClusterMember {
  const m = v.members.find((x) => x.id === id);
  if (m === undefined) throw new Error(`${id} is not in the view`);
  return m;
}

test('a learner joins, bootstraps from a snapshot, serves stale reads, is promoted, and is removed', async (t) => {
  const { cluster, full } = await startGrowableCluster(t, 3, 4, { snapshotEntries: 30, walKeepEntries: 0 });
  const leader = await cluster.leader();
  const follower = cluster.followers(leader)[0]!;
  const client = new ChorusClient({ endpoints: [follower.clientUrl], timeoutMs: 10_000 });
  // Snapshots are taken off the loop, at a per-member threshold: write on until one covers 60.
  for (let i = 0; i < 100 || leader.debugState().snapshotIndex < 60; i++) {
    assert.ok(i < 2000, 'the leader took no snapshot past 60');
    await client.put(`m/${i}`, `v${i}`);
  }

  // Added through a follower (forwarded to the leader), before the member even runs.
  const added = await http('POST', `${follower.clientUrl}/v1/members`, JSON.stringify({ id: 'n4', peerAddress: TestCluster.peerAddress(full, 'n4'), learner: true }));
  assert.equal(added.status, 200, added.text);
  assert.equal((added.json() as { role: string }).role, 'learner');
  const before = await view(leader.clientUrl);
  assert.equal(member(before, 'n4').role, 'learner');
  assert.equal(member(before, 'n4').canLead, false);
  assert.equal(member(before, 'n4').whyNot, 'learner');
  assert.equal(member(before, 'n4').peerAddress, TestCluster.peerAddress(full, 'n4'));

  const n4 = await cluster.join(full, 'n4');
  await waitFor(() => n4.debugState().appliedIndex >= leader.debugState().commitIndex, 'the learner catches up');
  assert.ok(n4.debugState().snapshotsInstalled >= 1, 'it bootstrapped from a snapshot');
  const direct = new ChorusClient({ endpoints: [n4.clientUrl] });
  for (let i = 0; i < 100; i += 9) assert.equal(await direct.getText(`m/${i}`, { consistency: 'stale' }), `v${i}`);
  assert.equal(await direct.getText('m/5'), 'v5', 'a learner serves linearizable reads too');
  assert.equal((await view(n4.clientUrl)).self.role, 'learner');
  const replica = await http('GET', `${n4.clientUrl}/replica?lag=10`);
  assert.equal(replica.status, 200, replica.text);

  const promoted = await http('POST', `${leader.clientUrl}/v1/members/n4/promote`);
  assert.equal(promoted.status, 200, promoted.text);
  await waitFor(async () => member(await view(leader.clientUrl), 'n4').canLead === true, 'n4 can lead once promoted and caught up');
  assert.equal(member(await view(leader.clientUrl), 'n4').voter, true);

  // n4 restarts (with --join kept) on its data: it stays a voter of the grown cluster.
  await cluster.stop('n4');
  const again = await cluster.start('n4');
  await client.put('m/after-restart', 'yes');
  await waitFor(async () => (await new ChorusClient({ endpoints: [again.clientUrl] }).getText('m/after-restart', { consistency: 'stale' })) === 'yes', 'n4 applies new writes');

  const removed = await http('DELETE', `${follower.clientUrl}/v1/members/n4`);
  assert.equal(removed.status, 200, removed.text);
  assert.equal((removed.json() as { role: string }).role, 'removed');
  await waitFor(async () => (await view(leader.clientUrl)).members.every((m) => m.id !== 'n4'), 'n4 left the configuration');
  assert.equal((await client.put('m/final', 'yes')).committed, true);
});

test('invalid membership changes and switchovers get their codes and change nothing', async (t) => {
  const { cluster, full } = await startGrowableCluster(t, 3, 4);
  const leader = await cluster.leader();
  const url = leader.clientUrl;
  const voter = cluster.followers(leader)[0]!.id;
  const cases: { method: string; path: string; body?: unknown; status: number; code: string }[] = [
    { method: 'POST', path: '/v1/members', body: { id: voter, peerAddress: '127.0.0.1:1' }, status: 409, code: 'CHORUS_MEMBER_EXISTS' },
    { method: 'POST', path: '/v1/members', body: { id: 'bad id', peerAddress: '127.0.0.1:1' }, status: 400, code: 'CHORUS_BAD_CONFIG' },
    { method: 'POST', path: '/v1/members', body: { id: 'n9', peerAddress: 'nowhere' }, status: 400, code: 'CHORUS_BAD_CONFIG' },
    { method: 'POST', path: '/v1/members', body: { id: 'n9', peerAddress: '127.0.0.1:70000' }, status: 400, code: 'CHORUS_BAD_CONFIG' },
    { method: 'POST', path: '/v1/members', body: { peerAddress: '127.0.0.1:1' }, status: 400, code: 'CHORUS_BAD_REQUEST' },
    { method: 'POST', path: '/v1/members', body: { id: 'n9', peerAddress: '127.0.0.1:1', learner: 'yes' }, status: 400, code: 'CHORUS_BAD_REQUEST' },
    { method: 'POST', path: '/v1/members/n9/promote', status: 404, code: 'CHORUS_MEMBER_NOT_FOUND' },
    { method: 'POST', path: `/v1/members/${voter}/promote`, status: 409, code: 'CHORUS_MEMBER_CHANGE_INVALID' },
    { method: 'DELETE', path: '/v1/members/n9', status: 404, code: 'CHORUS_MEMBER_NOT_FOUND' },
    { method: 'POST', path: '/v1/switchover', body: { to: 'n9' }, status: 404, code: 'CHORUS_MEMBER_NOT_FOUND' },
    { method: 'POST', path: '/v1/switchover', body: { to: 7 }, status: 400, code: 'CHORUS_BAD_REQUEST' },
  ];
  for (const c of cases) {
    const answer = await http(c.method, `${url}${c.path}`, c.body === undefined ? undefined : JSON.stringify(c.body));
    assert.equal(answer.status, c.status, `${c.method} ${c.path} ${answer.text}`);
    assert.equal(code(answer), c.code, `${c.method} ${c.path}`);
  }
  // A learner cannot be switched over to.
  assert.equal((await http('POST', `${url}/v1/members`, JSON.stringify({ id: 'n4', peerAddress: TestCluster.peerAddress(full, 'n4'), learner: true }))).status, 200);
  const toLearner = await http('POST', `${url}/v1/switchover`, JSON.stringify({ to: 'n4' }));
  assert.equal(toLearner.status, 409, toLearner.text);
  assert.match((toLearner.json() as { message: string }).message, /learner/);
  // Removing a member the standby set needs is refused until the set changes.
  await http('PUT', `${url}/v1/config/replication`, JSON.stringify({ synchronous_standby_names: 'FIRST 1 (n4)', synchronous_commit: 'local' }));
  const needed = await http('DELETE', `${url}/v1/members/n4`);
  assert.equal(needed.status, 409, needed.text);
  assert.equal(code(needed), 'CHORUS_MEMBER_CHANGE_INVALID');
  await http('PUT', `${url}/v1/config/replication`, JSON.stringify({ synchronous_standby_names: '' }));
  assert.equal((await http('DELETE', `${url}/v1/members/n4`)).status, 200);
  const v = await view(url);
  assert.deepEqual(v.members.map((m) => m.id).sort(), ['n1', 'n2', 'n3']);
  assert.equal(v.leaderId, leader.id, 'nothing moved the leadership');
});

test('the last voter cannot be removed', async (t) => {
  const cluster = await startCluster(t, 1);
  const leader = await cluster.leader();
  const answer = await http('DELETE', `${leader.clientUrl}/v1/members/${leader.id}`);
  assert.equal(answer.status, 409, answer.text);
  assert.equal(code(answer), 'CHORUS_MEMBER_CHANGE_INVALID');
  const none = await http('POST', `${leader.clientUrl}/v1/switchover`, '{}');
  assert.equal(none.status, 409, 'no other voter to hand over to');
});

test('switchover: leadership moves to the named voter (or the best one), writes keep working, and the view says who can lead', async (t) => {
  const cluster = await startCluster(t, 3);
  const leader = await cluster.leader();
  const target = cluster.followers(leader)[1]!;
  const client = new ChorusClient({ endpoints: [...cluster.nodes.values()].map((n) => n.clientUrl), timeoutMs: 10_000 });
  await client.put('s/0', 'v');
  const v = await view(leader.clientUrl);
  for (const m of v.members) {
    assert.equal(typeof m.lagEntries, 'number');
    assert.equal(typeof m.lagBytes, 'number');
    assert.equal(typeof m.lagSeconds, 'number');
    assert.equal(m.progressing, true);
  }
  await waitFor(async () => (await view(leader.clientUrl)).members.every((m) => m.canLead === true), 'every voter can lead');

  // Through the other follower: forwarded to the leader.
  const answer = await http('POST', `${cluster.followers(leader)[0]!.clientUrl}/v1/switchover`, JSON.stringify({ to: target.id }));
  assert.equal(answer.status, 200, answer.text);
  assert.deepEqual({ ...(answer.json() as object), term: 0 }, { previousLeaderId: leader.id, leaderId: target.id, term: 0 });
  assert.equal((await cluster.leader()).id, target.id);
  assert.equal((await client.put('s/1', 'v')).committed, true);

  const again = await http('POST', `${target.clientUrl}/v1/switchover`, '{}');
  assert.equal(again.status, 200, again.text);
  const next = (again.json() as { leaderId: string }).leaderId;
  assert.notEqual(next, target.id);
  assert.equal((await cluster.leader()).id, next);
  const same = await http('POST', `${cluster.node(next).clientUrl}/v1/switchover`, JSON.stringify({ to: next }));
  assert.equal((same.json() as { leaderId: string }).leaderId, next, 'switching over to the leader itself changes nothing');

  // An unreachable voter cannot lead, and says so.
  const down = cluster.followers(cluster.node(next))[0]!.id;
  await cluster.stop(down);
  await waitFor(async () => member(await view(cluster.node(next).clientUrl), down).whyNot === 'unreachable', 'the view names the unreachable voter');
});

test('removing the leader hands leadership over first, then removes it', async (t) => {
  const cluster = await startCluster(t, 3);
  const leader = await cluster.leader();
  const client = new ChorusClient({ endpoints: [...cluster.nodes.values()].map((n) => n.clientUrl), timeoutMs: 10_000 });
  await client.put('r/0', 'v');
  const answer = await http('DELETE', `${leader.clientUrl}/v1/members/${leader.id}`);
  assert.equal(answer.status, 200, answer.text);
  assert.equal((answer.json() as { role: string }).role, 'removed');
  await cluster.stop(leader.id);
  const next = await cluster.leader();
  assert.notEqual(next.id, leader.id);
  const v = await view(next.clientUrl);
  assert.deepEqual(v.members.map((m) => m.id).sort(), cluster.spec.ids.filter((id) => id !== leader.id).sort());
  assert.equal((await client.put('r/1', 'v')).committed, true, 'the two remaining voters commit');
});
