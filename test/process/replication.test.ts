// Commit levels and standby sets with real member processes: a synchronous standby that is
// down turns writes at `on` into 504 CHORUS_SYNC_STANDBY_TIMEOUT (never a success); remote_apply
// makes a write readable on the standby at once; and the RPO of asynchronous commit (`local`)
// measured by killing the leader, against none lost at `on`.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { ChorusClient, ChorusClientError } from '../../src/client/index.ts';
import type { ProcessCluster } from './helpers.ts';
import { runCli, startProcessCluster, waitFor } from './helpers.ts';
import { WriteLoad, assertNoneMissing, missingAt } from './load.ts';

async function put(url: string, key: string, level?: string): Promise<{ status: number; body: { code?: string; committed?: boolean; message?: string } }> {
  const res = await fetch(`${url}/v1/kv/${key}${level === undefined ? '' : `?commit=${level}`}`, { method: 'PUT', body: `v-${key}`, signal: AbortSignal.timeout(15_000) });
  return { status: res.status, body: (await res.json()) as { code?: string; committed?: boolean } };
}

/** The leader, after moving leadership away from `avoid` (with chorus switchover) if it leads. */
async function leaderOtherThan(t: TestContext, cluster: ProcessCluster, avoid: string): Promise<string> {
  let leader = await cluster.leader();
  if (leader === avoid) {
    const to = cluster.spec.ids.find((id) => id !== avoid)!;
    const result = await runCli(t, ['switchover', '--to', to, '--endpoints', cluster.urls().join(',')]);
    assert.equal(result.code, 0, result.stderr);
    leader = await cluster.leader();
  }
  assert.notEqual(leader, avoid);
  return leader;
}

test('FIRST 1 (n3) with n3 stopped: writes at on fail with CHORUS_SYNC_STANDBY_TIMEOUT and are never reported successful; with n3 back they succeed', async (t) => {
  const cluster = await startProcessCluster(t, 3, ['--synchronous-standby-names', 'FIRST 1 (n3)', '--sync-standby-timeout-ms', '1000']);
  try {
    const leader = await leaderOtherThan(t, cluster, 'n3');
    const client = new ChorusClient({ endpoints: cluster.urls(), timeoutMs: 15_000 });
    assert.equal((await client.put('sb/before', 'v')).committed, true);

    await cluster.kill('n3');
    await waitFor(async () => {
      const res = await fetch(`${cluster.url(leader)}/v1/cluster`);
      return ((await res.json()) as { replication: { satisfiable: boolean | null } }).replication.satisfiable === false;
    }, 'the leader sees that n3 is gone');
    const answers = await Promise.all([0, 1, 2, 3].map((i) => put(cluster.url(leader), `sb/during-${i}`)));
    for (const answer of answers) {
      assert.equal(answer.status, 504, JSON.stringify(answer.body));
      assert.equal(answer.body.code, 'CHORUS_SYNC_STANDBY_TIMEOUT');
    }
    t.diagnostic(`answer while n3 is down: 504 ${answers[0]!.body.message ?? ''}`);
    // Through the client library and a follower: the same, never retried into a success.
    await assert.rejects(client.put('sb/via-client', 'v'), (error: unknown) => error instanceof ChorusClientError && error.code === 'CHORUS_SYNC_STANDBY_TIMEOUT');

    cluster.start('n3');
    const after = await waitFor(async () => {
      const answer = await put(cluster.url(leader), `sb/after-${Date.now()}`);
      return answer.status === 200 ? answer : undefined;
    }, 'writes at on succeed with n3 back', 30_000);
    assert.equal(after.body.committed, true);
  } catch (error) {
    t.diagnostic(cluster.describe());
    throw error;
  }
});

test('remote_apply with standby n2: a stale read on n2 right after each acknowledgement sees the write', async (t) => {
  const cluster = await startProcessCluster(t, 3, ['--synchronous-commit', 'remote_apply', '--synchronous-standby-names', 'n2']);
  try {
    const leader = await leaderOtherThan(t, cluster, 'n2');
    let stale = 0;
    for (let i = 0; i < 200; i++) {
      const key = `ra/${i}`;
      const answer = await put(cluster.url(leader), key);
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      const res = await fetch(`${cluster.url('n2')}/v1/kv/${key}?consistency=stale`);
      if (res.status !== 200 || (await res.text()) !== `v-${key}`) stale++;
    }
    assert.equal(stale, 0, `${stale} of 200 acknowledged writes were not yet readable on the standby`);
  } catch (error) {
    t.diagnostic(cluster.describe());
    throw error;
  }
});

test('RPO: killing the leader right after acknowledgements at local can lose some of them; at on none is lost', async (t) => {
  const cluster = await startProcessCluster(t, 3, ['--enable-test-faults']);
  try {
    // 1. Under load at local: how many acknowledged writes does a SIGKILL of the leader lose?
    const rpo: Record<string, number> = {};
    for (const level of ['local', 'on'] as const) {
      const leader = await cluster.leader();
      const load = new WriteLoad([cluster.url(leader)], `rpo-${level}`, 32, level);
      await load.ackedAtLeast(1500);
      await cluster.kill(leader, 'SIGKILL');
      await load.stop();
      const survivor = await cluster.leader();
      const missing = await missingAt(cluster.url(survivor), load.acked);
      rpo[level] = missing.length;
      t.diagnostic(`commit=${level}: ${load.summary()}; after SIGKILL of the leader ${missing.length} acknowledged writes were lost`);
      if (level === 'on') assert.equal(missing.length, 0, 'no write acknowledged at on is lost');
      cluster.start(leader);
      await cluster.leader();
    }

    // 2. The same loss made certain: a leader cut off from the others still acknowledges writes
    // at local (they are durable on its own disk), and they die with it.
    const leader = await cluster.leader();
    const faults = await fetch(`${cluster.url(leader)}/v1/test/faults`, { method: 'POST', body: JSON.stringify({ isolate: true }) });
    assert.equal(faults.status, 200);
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => put(cluster.url(leader), `rpo-cut/${i}`, 'local')));
    const acked = new Map<string, string>();
    for (const [i, answer] of answers.entries()) {
      if (answer.status === 200) {
        assert.equal(answer.body.committed, false, 'the answer says the write is not committed yet');
        acked.set(`rpo-cut/${i}`, `v-rpo-cut/${i}`);
      }
    }
    const atOn = await put(cluster.url(leader), 'rpo-cut/on');
    assert.notEqual(atOn.status, 200, 'at on the cut-off leader acknowledges nothing');
    await cluster.kill(leader, 'SIGKILL');
    const survivor = await cluster.leader();
    const lost = await missingAt(cluster.url(survivor), acked);
    t.diagnostic(`cut-off leader: ${acked.size} writes acknowledged at local, ${lost.length} lost with it (RPO of asynchronous commit)`);
    assert.ok(acked.size > 0 && lost.length === acked.size, 'what only the lost leader held is gone');
    t.diagnostic(`RPO measured under load: local=${rpo['local']} on=${rpo['on']}`);
    // Back, the old leader gives up its unreplicated suffix for the cluster's history.
    const client = new ChorusClient({ endpoints: [cluster.url(survivor)], timeoutMs: 15_000 });
    const { revision } = await client.put('rpo-cut/after', 'v');
    cluster.start(leader);
    await cluster.appliedAtLeast(leader, revision);
    const back = new ChorusClient({ endpoints: [cluster.url(leader)], timeoutMs: 15_000 });
    assert.equal(await back.getText('rpo-cut/0', { consistency: 'stale' }), null);
    await assertNoneMissing(cluster.url(leader), new Map([['rpo-cut/after', 'v']]), 'stale');
  } catch (error) {
    t.diagnostic(cluster.describe());
    throw error;
  }
});
