// The event history of members in this process: leader changes with their reason (transfer,
// election after the leader stopped, check-quorum step-down), membership and configuration
// changes, snapshot transfers; and GET /v1/events (since, limit, kind, errors).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EventJson, EventsResponseJson } from '../../src/observe/api-types.ts';
import type { ChorusNode } from '../../src/server/chorus-node.ts';
import { TestCluster, http, startCluster, startGrowableCluster, waitFor } from '../node/helpers.ts';
import { parseExposition, value } from './prom.ts';

async function events(node: ChorusNode, query = ''): Promise<EventsResponseJson> {
  const res = await http('GET', `${node.clientUrl}/v1/events${query}`);
  assert.equal(res.status, 200, res.text);
  return res.json() as EventsResponseJson;
}

async function leaderChanges(node: ChorusNode): Promise<readonly EventJson[]> {
  return (await events(node, '?kind=leader-change&limit=1000')).events;
}

test('leader changes are recorded with their reason: transfer, election, check-quorum step-down', async (t) => {
  const cluster = await startCluster(t, 3, { enableTestFaults: true });
  const first = await cluster.leader();
  const target = cluster.followers(first)[0]!;

  // A switchover: the new leader won an election started by a transfer.
  await first.switchover(target.id, first.nowMs() + 10_000);
  const second = await cluster.leader();
  assert.equal(second.id, target.id);
  const transfer = await waitFor(async () => (await leaderChanges(second)).find((e) => e.detail['leaderId'] === second.id), 'the transfer is recorded');
  assert.equal(transfer.detail['reason'], 'transfer');
  assert.equal(transfer.detail['previousLeaderId'], null, 'as a candidate it knew no leader');
  assert.match(transfer.message, new RegExp(`${second.id} is the leader of term \\d+: leadership transfer`));

  // The leader is cut off: it steps down by check-quorum; the others elect a new leader.
  second.setTestFaults({ isolate: true });
  const stepDown = await waitFor(async () => (await leaderChanges(second)).find((e) => e.detail['previousLeaderId'] === second.id && e.detail['leaderId'] === null), 'the isolated leader steps down', 30_000);
  assert.equal(stepDown.detail['reason'], 'check-quorum');
  assert.match(stepDown.message, /stepped down .*check-quorum/);
  const others = [...cluster.nodes.values()].filter((n) => n !== second);
  const third = await waitFor(() => others.find((n) => n.debugState().role === 'leader'), 'the others elect a leader', 30_000);
  second.setTestFaults({});
  await cluster.leader(30_000);

  // The leader stops: the survivors record the new leader, elected after an election timeout.
  const survivors = [...cluster.nodes.values()].filter((n) => n !== third);
  await cluster.stop(third.id);
  const fourth = await cluster.leader(30_000);
  for (const node of survivors) {
    const seen = await waitFor(async () => (await leaderChanges(node)).filter((e) => e.detail['leaderId'] === fourth.id).at(-1), `${node.id} records ${fourth.id} as leader`);
    assert.equal(seen.detail['reason'], 'election', `${node.id}: ${seen.message}`);
    assert.ok((await leaderChanges(node)).some((e) => e.detail['previousLeaderId'] === third.id), `${node.id} records the loss of ${third.id}`);
  }

  // Elections are counted and recorded too.
  const ex = parseExposition((await http('GET', `${fourth.clientUrl}/metrics`)).text);
  assert.ok(value(ex, 'chorus_elections_won_total') >= 1);
  assert.ok((await events(fourth, '?kind=election')).events.some((e) => e.detail['won'] === true));
});

/** A request through any member, retried while it answers 503 (nothing was done). */
async function until200(method: string, url: string, body?: string): Promise<void> {
  await waitFor(async () => {
    const res = await http(method, url, body);
    assert.ok(res.status === 200 || res.status === 503, `${method} ${url}: ${res.status} ${res.text}`);
    return res.status === 200;
  }, `${method} ${url}`);
}

test('membership, configuration and snapshot transfers are recorded; /v1/events pages by seq', async (t) => {
  const { cluster, full } = await startGrowableCluster(t, 3, 4, { snapshotEntries: 20, walKeepEntries: 0 });
  const leader = await cluster.leader();
  const original = [...cluster.nodes.values()];
  for (let i = 0; i < 60; i++) await until200('PUT', `${leader.clientUrl}/v1/kv/e/${i}`, 'v');
  await waitFor(() => original.some((n) => n.debugState().snapshotIndex >= 20), 'a snapshot was taken');

  await until200('POST', `${leader.clientUrl}/v1/members`, JSON.stringify({ id: 'n4', peerAddress: TestCluster.peerAddress(full, 'n4'), learner: true }));
  const n4 = await cluster.join(full, 'n4');
  await waitFor(() => n4.debugState().snapshotsInstalled >= 1, 'the learner installs a snapshot');
  await until200('POST', `${leader.clientUrl}/v1/members/n4/promote`);
  await until200('PUT', `${leader.clientUrl}/v1/config/replication`, JSON.stringify({ synchronous_commit: 'remote_apply' }));

  // Every member records the configuration changes it applies; the snapshot transfer is recorded
  // by whichever member led (leadership may move on a loaded machine).
  const history = await waitFor(async () => {
    const h = (await events(leader, '?limit=1000')).events;
    return h.some((e) => e.kind === 'config') && h.filter((e) => e.kind === 'membership').length >= 2 ? h : undefined;
  }, 'the changes are recorded');
  const membership = history.filter((e) => e.kind === 'membership').map((e) => e.message);
  assert.ok(membership.some((m) => /n4 added as a learner/.test(m)), membership.join('\n'));
  assert.ok(membership.some((m) => /n4 promoted to voter/.test(m)), membership.join('\n'));
  assert.ok(history.some((e) => e.kind === 'config' && e.detail['synchronousCommit'] === 'remote_apply'));
  const everyone = (await Promise.all(original.map((n) => events(n, '?kind=snapshot&limit=1000')))).flatMap((a) => a.events);
  assert.ok(everyone.some((e) => e.detail['direction'] === 'send' && e.detail['to'] === 'n4'), 'the transfer to n4 is recorded');
  assert.ok(everyone.some((e) => e.detail['direction'] === 'take'));
  const installed = (await events(n4, '?kind=snapshot')).events.filter((e) => e.detail['direction'] === 'install');
  assert.ok(installed.length >= 1);
  assert.ok(original.some((n) => n.id === installed[0]!.detail['from']), 'installed from the leader');

  const scrapes = await Promise.all(original.map(async (n) => parseExposition((await http('GET', `${n.clientUrl}/metrics`)).text)));
  assert.ok(scrapes.reduce((sum, x) => sum + value(x, 'chorus_snapshots_sent_total'), 0) >= 1);
  assert.ok(scrapes.reduce((sum, x) => sum + value(x, 'chorus_snapshot_sent_bytes_total'), 0) > 0);
  const nx = parseExposition((await http('GET', `${n4.clientUrl}/metrics`)).text);
  assert.ok(value(nx, 'chorus_snapshots_installed_total') >= 1);

  // Paging: since, limit (the newest when cut), and the oldest/newest seq held.
  const all = await events(leader, '?limit=1000');
  assert.equal(all.member, leader.id);
  assert.equal(all.firstSeq, 1);
  assert.equal(all.lastSeq, all.events.at(-1)!.seq);
  assert.deepEqual(all.events.map((e) => e.seq), Array.from({ length: all.events.length }, (_, i) => i + 1), 'ordered, no gaps');
  const after = await events(leader, `?since=${all.lastSeq - 2}`);
  assert.deepEqual(after.events.map((e) => e.seq), [all.lastSeq - 1, all.lastSeq]);
  assert.deepEqual((await events(leader, '?limit=1')).events.map((e) => e.seq), [all.lastSeq]);
  for (const bad of ['?since=x', '?limit=0', '?limit=1001', '?kind=bogus', '?since=1&since=2']) {
    const res = await http('GET', `${leader.clientUrl}/v1/events${bad}`);
    assert.equal(res.status, 400, bad);
    assert.equal((res.json() as { code: string }).code, 'CHORUS_BAD_REQUEST');
  }
});
