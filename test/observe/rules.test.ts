// The alert rules on observations (pure), and the observer that turns raised and resolved
// alerts into events, log lines and webhook deliveries (with a fake runtime and a fake clock).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ClusterView } from '../../src/shared/api-types.ts';
import { defaultAlertRules } from '../../src/observe/alerts.ts';
import type { AlertRules } from '../../src/observe/alerts.ts';
import { alertConditions } from '../../src/observe/conditions.ts';
import type { FollowerObservation, Observation } from '../../src/observe/conditions.ts';
import { resolveObserveConfig } from '../../src/observe/config.ts';
import { NodeObserver } from '../../src/observe/observer.ts';
import { createJsonLogger } from '../../src/shared/logger.ts';

const rules: AlertRules = { ...defaultAlertRules, lagSecondsMax: 2, lagBytesMin: 1, stallSeconds: 5, noLeaderSeconds: 3, fsyncSecondsMax: 0.5 };

function follower(id: string, overrides: Partial<FollowerObservation> = {}): FollowerObservation {
  return { id, voter: true, reachable: true, matchIndex: 100, appliedIndex: 100, lagEntries: 0, lagBytes: 0, lagSeconds: 0, stalled: false, ...overrides };
}

function observation(overrides: Partial<Observation> = {}): Observation {
  return {
    self: 'n1', role: 'leader', term: 2, leaderId: 'n1', commitIndex: 100, appliedIndex: 100, lastIndex: 100, snapshotIndex: 0,
    voters: ['n1', 'n2', 'n3'], learners: [], followers: [follower('n2'), follower('n3')],
    standby: { names: '', standbys: [], satisfiable: true }, proposalsPending: 0, readsPending: 0,
    ...overrides,
  };
}

const none = { slowFsync: null, peers: [] };

test('a healthy, idle cluster holds no condition', () => {
  assert.deepEqual(alertConditions({ observation: observation(), ...none }, rules), []);
  // A follower that only misses a new term's empty no-op is not behind in any way that matters.
  const noop = observation({ followers: [follower('n2', { lagEntries: 1, lagBytes: 0, lagSeconds: 60 })] });
  assert.deepEqual(alertConditions({ observation: noop, ...none }, rules), []);
});

test('lag needs both: more seconds than lagSecondsMax and at least lagBytesMin bytes', () => {
  const burst = observation({ followers: [follower('n2', { lagEntries: 500, lagBytes: 1e6, lagSeconds: 0.3 })] });
  assert.deepEqual(alertConditions({ observation: burst, ...none }, rules), [], 'a burst in flight is not lag');
  const behind = observation({ followers: [follower('n2', { lagEntries: 500, lagBytes: 1e6, lagSeconds: 2.5 }), follower('n3')] });
  const held = alertConditions({ observation: behind, ...none }, rules);
  assert.deepEqual(held.map((c) => c.id), ['replication-lag:n2']);
  assert.equal(held[0]!.severity, 'warning');
  assert.deepEqual(held[0]!.labels, { member: 'n1', follower: 'n2' });
  assert.match(held[0]!.message, /n2 is 2\.5 s behind/);
});

test('stalled followers, no leader, an unmet standby set, a slow fsync and an unreachable multi-master peer', () => {
  const o = observation({
    leaderId: null,
    followers: [follower('n3', { stalled: true, lagEntries: 7, reachable: false })],
    standby: { names: 'FIRST 1 (n3)', standbys: [], satisfiable: false },
  });
  const held = alertConditions({
    observation: o,
    slowFsync: { seconds: 1.2, agoSeconds: 3 },
    peers: [{ id: 'n9', keyspace: 'carts', unreachableSeconds: 61 }, { id: 'n8', keyspace: 'carts', unreachableSeconds: 5 }],
  }, rules);
  assert.deepEqual(held.map((c) => c.id).sort(), ['no-leader', 'peer-unreachable:carts:n9', 'replication-stalled:n3', 'slow-fsync', 'sync-standby-unmet']);
  const byId = new Map(held.map((c) => [c.id, c]));
  assert.equal(byId.get('no-leader')!.forMs, 3000, 'no leader must last noLeaderSeconds');
  assert.equal(byId.get('sync-standby-unmet')!.forMs, rules.syncStandbyUnmetSeconds * 1000);
  assert.equal(byId.get('no-leader')!.severity, 'critical');
  assert.deepEqual(alertConditions({ observation: o, slowFsync: { seconds: 0.2, agoSeconds: 1 }, peers: [] }, rules).map((c) => c.id).includes('slow-fsync'), false);
});

function fakeView(): ClusterView {
  return {
    clusterId: 'c1', term: 1, leaderId: 'n1',
    self: { id: 'n1', role: 'leader', commitIndex: 1, appliedIndex: 1, lastIndex: 1, snapshotIndex: 0, clientAddress: null, peerAddress: null },
    members: [], membersSource: 'leader',
    replication: { synchronous_commit: 'on', synchronous_standby_names: '', source: 'config', revision: 0, standbys: [], satisfiable: true },
  };
}

test('the observer raises and resolves alerts as events, log lines and webhook deliveries', async (t) => {
  const bodies: Record<string, unknown>[] = [];
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => { text += c.toString('utf8'); });
    req.on('end', () => {
      bodies.push(JSON.parse(text) as Record<string, unknown>);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/alerts`;
  const logLines: Record<string, unknown>[] = [];
  let now = 0;
  const observer = new NodeObserver({
    memberId: 'n1', clusterId: 'c1',
    config: resolveObserveConfig({ lagSecondsMax: 2, noLeaderSeconds: 3 }, url),
    logger: createJsonLogger({ write: (line) => logLines.push(JSON.parse(line) as Record<string, unknown>) }),
    source: { clusterView: fakeView, pending: () => ({ proposals: 0, reads: 0 }), transportStats: () => null },
    proposalsPendingMax: 10, readsPendingMax: 10, nowMs: () => now, processMetrics: false,
  });
  t.after(() => observer.stop());

  const leaderless = observation({ leaderId: null, followers: [] });
  assert.deepEqual(observer.evaluate(leaderless).raised, [], 'not before noLeaderSeconds');
  now = 3000;
  const step = observer.evaluate(leaderless);
  assert.deepEqual(step.raised.map((a) => a.id), ['no-leader']);
  assert.deepEqual(observer.activeAlerts().map((a) => [a.id, a.member]), [['no-leader', 'n1']]);
  now = 4000;
  assert.deepEqual(observer.evaluate(observation()).resolved.map((a) => a.id), ['no-leader']);
  assert.deepEqual(observer.activeAlerts(), []);

  await observer.webhook!.idle();
  assert.equal(bodies.length, 2);
  const [firing, resolved] = bodies as [Record<string, unknown>, Record<string, unknown>];
  assert.equal(firing['status'], 'firing');
  assert.equal(firing['member'], 'n1');
  assert.equal(firing['clusterId'], 'c1');
  assert.equal(firing['version'], 1);
  assert.equal((firing['alert'] as Record<string, unknown>)['rule'], 'no-leader');
  assert.equal((firing['alert'] as Record<string, unknown>)['severity'], 'critical');
  assert.equal(resolved['status'], 'resolved');
  assert.equal(typeof resolved['resolvedAt'], 'string');

  const kinds = observer.listEvents({}).events.map((e) => e.kind);
  assert.deepEqual(kinds, ['alert-raised', 'alert-resolved']);
  assert.deepEqual(logLines.map((l) => [l['event'], l['level']]), [['alert-raised', 'warn'], ['alert-resolved', 'info']]);
});

test('a slow fsync raises slow-fsync; one timed across a stall of the whole process does not', (t) => {
  let now = 0;
  const logs: string[] = [];
  const observer = new NodeObserver({
    memberId: 'n1', clusterId: 'c1', config: resolveObserveConfig({ fsyncSecondsMax: 0.5, fsyncWindowSeconds: 10 }),
    logger: createJsonLogger({ write: (line) => logs.push(String((JSON.parse(line) as { event: string }).event)) }),
    source: { clusterView: fakeView, pending: () => ({ proposals: 0, reads: 0 }), transportStats: () => null },
    proposalsPendingMax: 10, readsPendingMax: 10, nowMs: () => now, processMetrics: false,
  });
  t.after(() => observer.stop());
  observer.noteTimer();
  now = 1000;
  observer.noteTimer();
  now = 1600;
  observer.noteWalSynced([], 600);
  assert.deepEqual(observer.evaluate(observation()).raised.map((a) => a.id), ['slow-fsync']);
  for (now = 2000; now <= 12_000; now += 1000) observer.noteTimer();
  now = 12_000;
  assert.deepEqual(observer.evaluate(observation()).resolved.map((a) => a.id), ['slow-fsync'], 'resolved after fsyncWindowSeconds');
  assert.deepEqual(logs.filter((l) => l === 'process-stalled'), [], 'a timer on time is no stall');

  // SIGSTOP from 12.1 s to 20 s: syncs in flight across it complete when the process resumes,
  // before and after the timer notices the stall.
  now = 20_000;
  observer.noteWalSynced([], 7900);
  observer.noteTimer(20_050);
  now = 20_100;
  observer.noteWalSynced([], 8000);
  assert.deepEqual(observer.evaluate(observation()).raised, [], 'the stall is not the disk');
  assert.deepEqual(logs.filter((l) => l === 'process-stalled'), ['process-stalled']);
});

test('the observer records leader changes with their reason, elections and membership changes', (t) => {
  const observer = new NodeObserver({
    memberId: 'n2', clusterId: 'c1', config: resolveObserveConfig(undefined), logger: createJsonLogger({ write: () => {} }),
    source: { clusterView: fakeView, pending: () => ({ proposals: 0, reads: 0 }), transportStats: () => null },
    proposalsPendingMax: 10, readsPendingMax: 10, processMetrics: false,
  });
  t.after(() => observer.stop());
  const three = { voters: ['n1', 'n2', 'n3'], learners: [] };
  observer.observeRaft('follower', null, 0, three, () => 'boot');
  observer.observeRaft('follower', 'n1', 1, three, () => 'election');
  observer.observeRaft('follower', null, 1, three, () => 'check-quorum');
  observer.observeRaft('candidate', null, 2, three, () => 'election');
  observer.observeRaft('leader', 'n2', 2, three, () => 'election');
  const four = { voters: ['n1', 'n2', 'n3'], learners: ['n4'] };
  observer.observeRaft('leader', 'n2', 2, four, () => 'election');
  observer.observeRaft('leader', 'n2', 2, { voters: ['n1', 'n2', 'n3', 'n4'], learners: [] }, () => 'election');
  const events = observer.listEvents({}).events;
  assert.deepEqual(events.map((e) => e.kind), ['leader-change', 'leader-change', 'election', 'election', 'leader-change', 'membership', 'membership']);
  assert.deepEqual(events.filter((e) => e.kind === 'leader-change').map((e) => e.detail['reason']), ['election', 'check-quorum', 'election']);
  assert.match(events[1]!.message, /lost its leader n1.*check-quorum/);
  assert.match(events[5]!.message, /n4 added as a learner/);
  assert.match(events[6]!.message, /n4 promoted to voter/);
  assert.deepEqual(observer.listEvents({ sinceSeq: 6 }).events.map((e) => e.seq), [7]);
  assert.deepEqual(observer.listEvents({ limit: 2 }), { firstSeq: 1, lastSeq: 7, events: events.slice(5) });
});
