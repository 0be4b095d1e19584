// A member cut off from the others (test fault hooks, --enable-test-faults) never acknowledges
// a write: a write sent to it fails (503: not done) or times out (504: unknown), and what it
// could not replicate never becomes visible.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChorusClient } from '../../src/client/index.ts';
import { startProcessCluster, waitFor } from './helpers.ts';

async function put(url: string, key: string, value: string): Promise<{ status: number; code: string | undefined }> {
  const res = await fetch(`${url}/v1/kv/${key}`, { method: 'PUT', body: value, signal: AbortSignal.timeout(10_000) });
  const body = (await res.json()) as { code?: string };
  return { status: res.status, code: body.code };
}

async function setFaults(url: string, faults: object): Promise<void> {
  const res = await fetch(`${url}/v1/test/faults`, { method: 'POST', body: JSON.stringify(faults) });
  assert.equal(res.status, 200, await res.text());
}

test('an isolated follower and an isolated leader cannot acknowledge writes; nothing they took becomes visible', async (t) => {
  const cluster = await startProcessCluster(t, 3, ['--enable-test-faults', '--request-timeout-ms', '1500']);
  try {
    const leader = await cluster.leader();
    const follower = cluster.spec.ids.find((id) => id !== leader)!;
    const client = new ChorusClient({ endpoints: cluster.urls(), timeoutMs: 15_000 });
    await client.put('iso/before', 'ok');

    // 1. The isolated follower: every write sent to it fails, through and after the election timeout.
    await setFaults(cluster.url(follower), { isolate: true });
    const followerStatuses = new Set<number>();
    for (let i = 0; i < 6; i++) {
      const answer = await put(cluster.url(follower), `iso/follower-${i}`, 'never');
      followerStatuses.add(answer.status);
      assert.ok(answer.status === 503 || answer.status === 504, `write to the isolated follower answered ${answer.status} ${String(answer.code)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    t.diagnostic(`isolated follower answered ${[...followerStatuses].join(', ')}`);
    // The majority keeps going meanwhile.
    await client.put('iso/majority', 'ok');
    await setFaults(cluster.url(follower), {});
    await waitFor(async () => (await cluster.view(follower))?.leaderId === leader, 'the healed follower follows the leader again');

    // 2. The isolated leader accepts the proposal but can never commit it: 504 (unknown) or 503.
    await setFaults(cluster.url(leader), { isolate: true });
    const answer = await put(cluster.url(leader), 'iso/leader', 'never');
    t.diagnostic(`isolated leader answered ${answer.status} ${String(answer.code)}`);
    assert.ok(answer.status === 504 || answer.status === 503, `write to the isolated leader answered ${answer.status}`);
    const others = cluster.spec.ids.filter((id) => id !== leader);
    const survivors = new ChorusClient({ endpoints: others.map((id) => cluster.url(id)), timeoutMs: 15_000 });
    await survivors.put('iso/new-leader', 'ok');
    await setFaults(cluster.url(leader), {});
    const newLeader = await cluster.leader();
    assert.notEqual(newLeader, leader, 'the majority elected another leader');

    // 3. None of the writes the isolated members took is visible anywhere; the others are.
    await client.put('iso/after', 'ok');
    for (const id of cluster.spec.ids) {
      const direct = new ChorusClient({ endpoints: [cluster.url(id)], timeoutMs: 15_000 });
      await waitFor(async () => (await direct.getText('iso/after', { consistency: 'stale' })) === 'ok', `${id} caught up`);
      assert.equal(await direct.getText('iso/leader'), null, `${id}: the isolated leader's write never committed`);
      for (let i = 0; i < 6; i++) assert.equal(await direct.getText(`iso/follower-${i}`), null);
      assert.equal(await direct.getText('iso/majority'), 'ok');
      assert.equal(await direct.getText('iso/new-leader'), 'ok');
    }
  } catch (error) {
    t.diagnostic(cluster.describe());
    throw error;
  }
});
