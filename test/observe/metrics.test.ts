// GET /metrics of an in-process cluster: every metric of docs/observability.md exists with its
// Prometheus type and labels, each member serves its own registry, and the counters move with
// what the members do (writes at each commit level, reads at each consistency, drops).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { http, startCluster, waitFor } from '../node/helpers.ts';
import { find, parseExposition, value } from './prom.ts';
import type { Exposition } from './prom.ts';

async function scrape(url: string): Promise<Exposition> {
  const res = await http('GET', `${url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parseExposition(res.text);
}

const EXPECTED_TYPES: Readonly<Record<string, string>> = {
  chorus_replication_lag_entries: 'gauge',
  chorus_replication_lag_bytes: 'gauge',
  chorus_replication_lag_seconds: 'gauge',
  chorus_replication_stalled: 'gauge',
  chorus_replication_follower_reachable: 'gauge',
  chorus_replication_match_index: 'gauge',
  chorus_sync_standby_satisfied: 'gauge',
  chorus_term: 'gauge',
  chorus_role: 'gauge',
  chorus_is_leader: 'gauge',
  chorus_has_leader: 'gauge',
  chorus_log_index: 'gauge',
  chorus_cluster_members: 'gauge',
  chorus_elections_total: 'counter',
  chorus_elections_won_total: 'counter',
  chorus_leader_changes_total: 'counter',
  chorus_commit_latency_seconds: 'histogram',
  chorus_apply_batch_duration_seconds: 'histogram',
  chorus_wal_fsync_duration_seconds: 'histogram',
  chorus_applied_entries_total: 'counter',
  chorus_wal_appended_entries_total: 'counter',
  chorus_wal_appended_bytes_total: 'counter',
  chorus_proposals_total: 'counter',
  chorus_reads_total: 'counter',
  chorus_snapshots_sent_total: 'counter',
  chorus_snapshot_sent_bytes_total: 'counter',
  chorus_snapshots_installed_total: 'counter',
  chorus_snapshot_installed_bytes_total: 'counter',
  chorus_snapshots_taken_total: 'counter',
  chorus_pending_requests: 'gauge',
  chorus_pending_requests_limit: 'gauge',
  chorus_requests_dropped_total: 'counter',
  chorus_transport_queued_messages: 'gauge',
  chorus_transport_queued_bytes: 'gauge',
  chorus_transport_connected: 'gauge',
  chorus_transport_dropped_messages_total: 'counter',
  chorus_transport_sent_bytes_total: 'counter',
  chorus_transport_reconnects_total: 'counter',
  chorus_transport_received_bytes_total: 'counter',
  chorus_alerts_firing: 'gauge',
  chorus_alert_webhook_queued: 'gauge',
  chorus_alert_webhook_deliveries_total: 'counter',
  chorus_alert_webhook_retries_total: 'counter',
  chorus_events_total: 'counter',
  chorus_events_retained: 'gauge',
};

/** PUT through any member, retried while the answer is a 503 (nothing was done). */
async function put(url: string, key: string, level?: string): Promise<void> {
  await waitFor(async () => {
    const res = await http('PUT', `${url}/v1/kv/${key}${level === undefined ? '' : `?commit=${level}`}`, 'value');
    assert.ok(res.status === 200 || res.status === 503, `${key}: ${res.status} ${res.text}`);
    return res.status === 200;
  }, `PUT ${key}`);
}

test('every member serves its own metrics, with the documented names, types and labels', async (t) => {
  const cluster = await startCluster(t, 3, { alertWebhook: 'http://127.0.0.1:9/never-called' });
  const first = await cluster.leader();
  for (let i = 0; i < 10; i++) await put(first.clientUrl, `m/on-${i}`);
  for (let i = 0; i < 4; i++) await put(first.clientUrl, `m/local-${i}`, 'local');
  for (let i = 0; i < 3; i++) await put(first.clientUrl, `m/off-${i}`, 'off');
  for (let i = 0; i < 2; i++) await put(first.clientUrl, `m/ra-${i}`, 'remote_apply');
  const f = cluster.followers(first)[0]!;
  const read = async (path: string, expected: number): Promise<void> => {
    await waitFor(async () => (await http('GET', `${f.clientUrl}${path}`)).status === expected, `GET ${path}`);
  };
  await read('/v1/kv/m/on-1', 200);
  await read('/v1/kv/m/absent?consistency=lease', 404);
  for (const path of ['/v1/kv/m/on-1?consistency=stale', '/v1/kv/m/on-1?min_revision=1', '/v1/kv?prefix=m/&consistency=stale']) {
    assert.equal((await http('GET', `${f.clientUrl}${path}`)).status, 200, path);
  }

  // The leader's scrape (leadership may have moved under a loaded machine: ask until one leads).
  const { leader, ex } = await waitFor(async () => {
    const current = await cluster.leader();
    const scraped = await scrape(current.clientUrl);
    return value(scraped, 'chorus_is_leader') === 1 ? { leader: current, ex: scraped } : undefined;
  }, 'a scrape of the leader');
  const followers = cluster.followers(leader);
  for (const [name, type] of Object.entries(EXPECTED_TYPES)) assert.equal(ex.types.get(name), type, `${name} is a ${type}`);
  for (const s of ex.samples) if (s.name.startsWith('chorus_')) assert.equal(s.labels['member'], leader.id, `${s.name} carries member="${leader.id}"`);
  assert.ok(ex.types.has('process_cpu_seconds_total') && ex.types.has('nodejs_eventloop_lag_seconds'), 'Node process metrics are included');

  // Replication, per follower, on the leader only.
  const lagFollowers = find(ex, 'chorus_replication_lag_seconds').map((s) => s.labels['follower']).sort();
  assert.deepEqual(lagFollowers, followers.map((n) => n.id).sort());
  for (const name of ['chorus_replication_lag_entries', 'chorus_replication_lag_bytes', 'chorus_replication_stalled', 'chorus_replication_follower_reachable']) {
    assert.equal(find(ex, name).length, 2, name);
  }
  assert.equal(value(ex, 'chorus_role', { role: 'leader' }), 1);
  assert.equal(value(ex, 'chorus_cluster_members', { kind: 'voter' }), 3);
  assert.ok(value(ex, 'chorus_elections_won_total') >= 1);
  assert.ok(find(ex, 'chorus_leader_changes_total').length >= 1);
  assert.equal(find(ex, 'chorus_sync_standby_satisfied').length, 0, 'no standby set, no series');
  const commitBuckets = find(ex, 'chorus_commit_latency_seconds_bucket', { level: 'on' });
  assert.ok(commitBuckets.length > 5 && commitBuckets.some((b) => b.labels['le'] === '+Inf'), 'a histogram with buckets');
  assert.ok(value(ex, 'chorus_wal_fsync_duration_seconds_count') > 0);
  assert.ok(value(ex, 'chorus_apply_batch_duration_seconds_count') > 0);
  assert.ok(value(ex, 'chorus_wal_appended_bytes_total') > 0);
  assert.equal(value(ex, 'chorus_pending_requests_limit', { queue: 'proposals' }), 10_000);
  assert.equal(find(ex, 'chorus_transport_connected').length, 2, 'one series per peer');
  assert.equal(value(ex, 'chorus_alert_webhook_queued'), 0);

  // Proposals by commit level, counted by whichever member led when each was accepted (a
  // proposal overtaken by a leader change and retried counts twice); commit latency for the
  // levels that wait for the commit.
  const all = await Promise.all([...cluster.nodes.values()].map((n) => scrape(n.clientUrl)));
  const total = (name: string, labels: Record<string, string>): number => all.reduce((sum, e) => sum + find(e, name, labels).reduce((a, s) => a + s.value, 0), 0);
  assert.ok(total('chorus_proposals_total', { level: 'on' }) >= 10);
  assert.ok(total('chorus_proposals_total', { level: 'local' }) >= 4);
  assert.ok(total('chorus_proposals_total', { level: 'off' }) >= 3);
  assert.ok(total('chorus_proposals_total', { level: 'remote_apply' }) >= 2);
  assert.ok(total('chorus_commit_latency_seconds_count', { level: 'on' }) >= 10);
  assert.ok(total('chorus_commit_latency_seconds_count', { level: 'remote_apply' }) >= 2);
  assert.equal(total('chorus_commit_latency_seconds_count', { level: 'local' }), 0, 'acknowledged before the commit: not measured');

  // The follower that served the reads: by consistency; no lag series unless it leads now.
  const fx = await scrape(f.clientUrl);
  if (value(fx, 'chorus_is_leader') === 0) assert.equal(find(fx, 'chorus_replication_lag_seconds').length, 0);
  assert.equal(value(fx, 'chorus_term') >= 1, true);
  assert.ok(value(fx, 'chorus_reads_total', { consistency: 'linearizable', outcome: 'ok' }) >= 1);
  assert.equal(value(fx, 'chorus_reads_total', { consistency: 'stale', outcome: 'ok' }), 3);
  assert.ok(value(fx, 'chorus_reads_total', { consistency: 'lease', outcome: 'ok' }) >= 1, 'a 404 is a read served');
  assert.ok(value(fx, 'chorus_wal_fsync_duration_seconds_count') > 0, 'followers sync their WAL too');
});

test('refused requests are counted as drops of their queue', async (t) => {
  const cluster = await startCluster(t, 1, { proposalsPendingMax: 1 });
  const node = await cluster.leader();
  const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => http('PUT', `${node.clientUrl}/v1/kv/d/${i}`, 'v')));
  const busy = answers.filter((a) => a.status === 503).length;
  assert.ok(busy > 0, 'the pending bound was hit');
  const ex = await scrape(node.clientUrl);
  assert.equal(value(ex, 'chorus_requests_dropped_total', { queue: 'proposals', reason: 'pending-max' }), busy);
  assert.equal(value(ex, 'chorus_pending_requests_limit', { queue: 'proposals' }), 1);
});
