// Crash recovery with real processes: SIGKILL of the leader under write load, of every member
// at once, and a restarted member catching up. Only acknowledged writes are checked: a write
// that timed out (504) or broke mid-request has an unknown outcome.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChorusClient, ChorusClientError } from '../../src/client/index.ts';
import { pool, startProcessCluster, waitFor } from './helpers.ts';
import type { ProcessCluster } from './helpers.ts';

const KEYS = 1000;
const CONCURRENCY = 32;

function keyOf(i: number): string {
  return `crash/${String(i).padStart(4, '0')}`;
}

function valueOf(i: number): string {
  return `value-${i}-${'x'.repeat(i % 50)}`;
}

interface WriteOutcome {
  readonly acked: Map<string, string>;
  readonly unknown: number;
  readonly failed: number;
}

async function writeKeys(cluster: ProcessCluster, count: number, onAcked?: (ackedCount: number) => void): Promise<WriteOutcome> {
  const client = new ChorusClient({ endpoints: cluster.urls(), timeoutMs: 15_000 });
  const acked = new Map<string, string>();
  let unknown = 0;
  let failed = 0;
  await pool(Array.from({ length: count }, (_, i) => i), CONCURRENCY, async (i) => {
    try {
      await client.put(keyOf(i), valueOf(i));
      acked.set(keyOf(i), valueOf(i));
      onAcked?.(acked.size);
    } catch (error) {
      if (error instanceof ChorusClientError && (error.code === 'CHORUS_TIMEOUT' || error.status === 504)) unknown++;
      else failed++;
    }
  });
  return { acked, unknown, failed };
}

/** Reads every acknowledged key through `endpoint` (linearizable reads) and compares. */
async function assertAllAcked(endpoint: string, acked: ReadonlyMap<string, string>, consistency: 'linearizable' | 'stale' = 'linearizable'): Promise<void> {
  const client = new ChorusClient({ endpoints: [endpoint], timeoutMs: 15_000 });
  const missing: string[] = [];
  await pool([...acked], CONCURRENCY, async ([key, value]) => {
    const got = await client.getText(key, { consistency });
    if (got !== value) missing.push(`${key}=${String(got)}`);
  });
  assert.deepEqual(missing.slice(0, 10), [], `${missing.length} acknowledged keys differ at ${endpoint}`);
}

test('SIGKILL of the leader under load: a new leader is elected, every acknowledged write survives, the restarted member catches up', async (t) => {
  const cluster = await startProcessCluster(t, 3);
  try {
    const oldLeader = await cluster.leader();
    let killed: Promise<unknown> | null = null;
    const outcome = await writeKeys(cluster, KEYS, (ackedCount) => {
      // Kill the leader in the middle of the load, while writes are in flight.
      if (ackedCount === KEYS / 2 && killed === null) killed = cluster.kill(oldLeader, 'SIGKILL');
    });
    await killed;
    t.diagnostic(`acked ${outcome.acked.size}, unknown outcome ${outcome.unknown}, failed ${outcome.failed}`);
    assert.ok(outcome.acked.size >= KEYS * 0.9, `most writes are acknowledged (${outcome.acked.size})`);

    const newLeader = await cluster.leader();
    assert.notEqual(newLeader, oldLeader);
    for (const id of cluster.running()) await assertAllAcked(cluster.url(id), outcome.acked);

    cluster.start(oldLeader);
    const commit = (await cluster.view(newLeader))!.self.commitIndex;
    await cluster.appliedAtLeast(oldLeader, commit);
    await assertAllAcked(cluster.url(oldLeader), outcome.acked, 'stale');
    await assertAllAcked(cluster.url(oldLeader), outcome.acked);
  } catch (error) {
    t.diagnostic(cluster.describe());
    throw error;
  }
});

test('SIGKILL of every member at once, then a restart: every acknowledged write is back', async (t) => {
  const cluster = await startProcessCluster(t, 3);
  try {
    await cluster.leader();
    const outcome = await writeKeys(cluster, 300);
    assert.equal(outcome.acked.size, 300, 'without faults every write is acknowledged');
    await Promise.all(cluster.spec.ids.map((id) => cluster.kill(id, 'SIGKILL')));
    for (const id of cluster.spec.ids) cluster.start(id);
    await cluster.leader();
    for (const id of cluster.spec.ids) await assertAllAcked(cluster.url(id), outcome.acked);
    // And the restarted cluster takes new writes.
    const client = new ChorusClient({ endpoints: cluster.urls(), timeoutMs: 15_000 });
    const { revision } = await client.put('after/restart', 'yes');
    assert.ok(revision > 300);
    await waitFor(async () => (await client.getText('after/restart')) === 'yes', 'the new write reads back');
  } catch (error) {
    t.diagnostic(cluster.describe());
    throw error;
  }
});
