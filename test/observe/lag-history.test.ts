// The leader's lag history for the dashboard: one sample per follower and interval, bounded,
// and served through any member by GET /v1/lag-history.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LagHistoryResponseJson } from '../../src/observe/api-types.ts';
import type { FollowerObservation } from '../../src/observe/conditions.ts';
import { LagHistory } from '../../src/observe/lag-history.ts';
import { http, startCluster, waitFor } from '../node/helpers.ts';

function follower(id: string, lagEntries: number): FollowerObservation {
  return { id, voter: true, reachable: true, matchIndex: 0, appliedIndex: 0, lagEntries, lagBytes: lagEntries * 10, lagSeconds: lagEntries / 100, stalled: false };
}

test('one sample per interval; at most samplesMax per follower; departed members age out', () => {
  const history = new LagHistory(5, 1000);
  for (let i = 0; i < 20; i++) history.record([follower('n2', i), follower('n3', 0)], i * 500, 1_000_000 + i * 500);
  const json = history.toJson();
  assert.equal(json['n2']!.length, 5, 'bounded: the newest samplesMax kept');
  assert.deepEqual(json['n2']!.map((p) => p[1]), [10, 12, 14, 16, 18], 'one sample per 1000 ms');
  assert.deepEqual(json['n2']!.at(-1), [1_009_000, 18, 180, 0.18]);
  // n3 leaves the configuration: kept while recent, dropped once older than the window.
  history.record([follower('n2', 1)], 12_000, 1_012_000);
  assert.ok('n3' in history.toJson());
  history.record([follower('n2', 1)], 40_000, 1_040_000);
  assert.deepEqual(Object.keys(history.toJson()), ['n2']);
  history.clear();
  assert.deepEqual(history.toJson(), {});
});

test('GET /v1/lag-history answers the leader\'s measurements, also through a follower', async (t) => {
  const cluster = await startCluster(t, 3, { alerts: { evaluateIntervalMs: 100 } });
  const leader = await cluster.leader();
  const follower = cluster.followers(leader)[0]!;
  // Writes give the samples something to show (their answers do not matter here).
  for (let i = 0; i < 5; i++) await http('PUT', `${leader.clientUrl}/v1/kv/h/${i}`, 'v');
  const answer = await waitFor(async () => {
    const res = await http('GET', `${follower.clientUrl}/v1/lag-history`);
    const body = res.json() as LagHistoryResponseJson;
    return Object.values(body.samples).some((points) => points.length >= 2) ? body : undefined;
  }, 'the leader has samples');
  // The leader's answer (the one found above, unless leadership moved on a loaded machine).
  assert.equal(answer.member, answer.leaderId);
  assert.equal(answer.intervalMs, 1000);
  assert.deepEqual(Object.keys(answer.samples).sort(), cluster.spec.ids.filter((id) => id !== answer.member).sort());
  const local = (await http('GET', `${follower.clientUrl}/v1/lag-history?scope=local`)).json() as LagHistoryResponseJson;
  assert.equal(local.member, follower.id);
  if (local.leaderId !== follower.id) assert.deepEqual(local.samples, {}, 'a follower measures no lag');
  assert.equal((await http('GET', `${follower.clientUrl}/v1/lag-history?scope=all`)).status, 400);
});
