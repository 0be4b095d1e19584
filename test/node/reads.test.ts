// Read levels per request on members in this process: lease, stale, bounded staleness
// (max_staleness_ms, CHORUS_TOO_STALE), min_revision (read-your-writes, CHORUS_TIMEOUT),
// remote_apply visibility on the standby, and the /primary and /replica health checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChorusClient } from '../../src/client/index.ts';
import { http, sleep, startCluster, waitFor } from './helpers.ts';

function code(answer: { json: () => unknown }): string {
  return (answer.json() as { code: string }).code;
}

test('consistency=lease and linearizable read the latest write on every member; bad parameters are 400', async (t) => {
  const cluster = await startCluster(t, 3);
  const leader = await cluster.leader();
  const put = await http('PUT', `${leader.clientUrl}/v1/kv/k`, 'v1');
  assert.equal(put.status, 200);
  for (const node of cluster.nodes.values()) {
    for (const consistency of ['lease', 'linearizable']) {
      const got = await http('GET', `${node.clientUrl}/v1/kv/k?consistency=${consistency}`);
      assert.equal(got.text, 'v1', `${node.id} ${consistency}`);
    }
    const list = await http('GET', `${node.clientUrl}/v1/kv?prefix=k&consistency=lease`);
    assert.equal(list.status, 200);
  }
  const cases = [
    '/v1/kv/k?consistency=eventual',
    '/v1/kv/k?max_staleness_ms=-1',
    '/v1/kv/k?max_staleness_ms=abc',
    '/v1/kv/k?min_revision=1.5',
    '/v1/kv/k?consistency=linearizable&min_revision=1',
    '/v1/kv/k?consistency=lease&max_staleness_ms=100',
    '/v1/kv?consistency=lease&min_revision=1',
  ];
  for (const url of cases) {
    const answer = await http('GET', `${leader.clientUrl}${url}`);
    assert.equal(answer.status, 400, url);
    assert.equal(code(answer), 'CHORUS_BAD_REQUEST', url);
  }
});

test('max_staleness_ms: a follower in touch with the leader serves it; cut off, it answers 503 CHORUS_TOO_STALE', async (t) => {
  const cluster = await startCluster(t, 3, { heartbeatDelayMaxMs: 50 });
  const leader = await cluster.leader();
  const follower = cluster.followers(leader)[0]!;
  await http('PUT', `${leader.clientUrl}/v1/kv/b`, 'fresh');
  // Heartbeats every tick (20 ms): the bound settles well under a second.
  const served = await waitFor(async () => {
    const answer = await http('GET', `${follower.clientUrl}/v1/kv/b?max_staleness_ms=1000`);
    return answer.status === 200 ? answer : undefined;
  }, 'a bounded read on the follower');
  assert.equal(served.text, 'fresh');
  assert.equal((await http('GET', `${leader.clientUrl}/v1/kv/b?max_staleness_ms=0`)).text, 'fresh', 'the leader shows 0 when it applied its attested commit');
  // A bound below the assumed heartbeat delay can never be shown by a follower.
  const tight = await http('GET', `${follower.clientUrl}/v1/kv/b?max_staleness_ms=10`);
  assert.equal(tight.status, 503, tight.text);
  assert.equal(code(tight), 'CHORUS_TOO_STALE');

  follower.setTestFaults({ isolate: true });
  await sleep(300);
  const cut = await http('GET', `${follower.clientUrl}/v1/kv/b?max_staleness_ms=200`);
  assert.equal(cut.status, 503, cut.text);
  assert.equal(code(cut), 'CHORUS_TOO_STALE');
  assert.match((cut.json() as { message: string }).message, /try another member/);
  // A stale read with no bound is still served.
  assert.equal((await http('GET', `${follower.clientUrl}/v1/kv/b?consistency=stale`)).text, 'fresh');
  follower.setTestFaults({});
});

test('min_revision: a member waits until it applied the revision; one it never reaches is 504 CHORUS_TIMEOUT', async (t) => {
  const cluster = await startCluster(t, 3, { requestTimeoutMs: 600 });
  const leader = await cluster.leader();
  const follower = cluster.followers(leader)[0]!;
  const { revision } = (await http('PUT', `${leader.clientUrl}/v1/kv/ryw`, 'mine')).json() as { revision: number };
  const read = await http('GET', `${follower.clientUrl}/v1/kv/ryw?min_revision=${revision}`);
  assert.equal(read.status, 200, read.text);
  assert.equal(read.text, 'mine', 'read-your-writes on another member');
  const list = await http('GET', `${follower.clientUrl}/v1/kv?prefix=ryw&min_revision=${revision}&consistency=stale`);
  assert.equal(list.status, 200);
  const future = await http('GET', `${follower.clientUrl}/v1/kv/ryw?min_revision=${revision + 1000}`);
  assert.equal(future.status, 504, future.text);
  assert.equal(code(future), 'CHORUS_TIMEOUT');
  // A write that arrives while the read waits releases it.
  const waiting = http('GET', `${follower.clientUrl}/v1/kv/later?min_revision=${revision + 1}`);
  await http('PUT', `${leader.clientUrl}/v1/kv/later`, 'arrived');
  assert.equal((await waiting).text, 'arrived');
});

test('remote_apply with standby n2: a stale read on n2 right after the acknowledgement sees the write', async (t) => {
  const cluster = await startCluster(t, 3);
  const leader = await cluster.leader();
  const standby = cluster.followers(leader)[0]!;
  const set = await http('PUT', `${leader.clientUrl}/v1/config/replication`, JSON.stringify({ synchronous_commit: 'remote_apply', synchronous_standby_names: standby.id }));
  assert.equal(set.status, 200, set.text);
  for (let i = 0; i < 30; i++) {
    const put = await http('PUT', `${leader.clientUrl}/v1/kv/ra`, `v${i}`);
    assert.equal(put.status, 200, put.text);
    const read = await http('GET', `${standby.clientUrl}/v1/kv/ra?consistency=stale`);
    assert.equal(read.text, `v${i}`, `write ${i} visible on the standby at once`);
  }
});

test('/primary and /replica?lag=N answer 200 only for the leader, and for replicas within N entries', async (t) => {
  const cluster = await startCluster(t, 3);
  const leader = await cluster.leader();
  const follower = cluster.followers(leader)[0]!;
  await http('PUT', `${leader.clientUrl}/v1/kv/h`, 'v');
  assert.equal((await http('GET', `${leader.clientUrl}/primary`)).status, 200);
  const client = new ChorusClient({ endpoints: [leader.clientUrl] });
  assert.deepEqual((await client.health(leader.clientUrl, 'primary')).ok, true);
  assert.equal((await client.health(follower.clientUrl, 'primary')).health.role, 'follower');
  const notPrimary = await http('GET', `${follower.clientUrl}/primary`);
  assert.equal(notPrimary.status, 503);
  assert.equal((notPrimary.json() as { role: string }).role, 'follower');
  assert.equal((await http('GET', `${leader.clientUrl}/replica`)).status, 503, 'the leader is no replica');
  await waitFor(async () => (await http('GET', `${follower.clientUrl}/replica?lag=0`)).status === 200, 'the follower is a replica within 0 entries');
  assert.equal((await http('GET', `${follower.clientUrl}/replica?lag=x`)).status, 400);
  follower.setTestFaults({ isolate: true });
  await waitFor(async () => (await http('GET', `${follower.clientUrl}/replica`)).status === 503, 'a cut-off follower is not a healthy replica');
  follower.setTestFaults({});
});
