// The replication routes and parameters on a fake member: commit levels (query and header,
// forwarded to the leader), read levels and their bounds, the settings, membership and
// switchover endpoints (forwarded when this member does not lead), the health checks, and the
// status of every new error code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { httpStatusOf } from '../../src/api/errors.ts';
import { ChorusError } from '../../src/shared/errors.ts';
import { FakeService, apiFor, listening } from './fake-service.ts';

function json(body: string): Record<string, unknown> {
  return JSON.parse(body) as Record<string, unknown>;
}

test('the new error codes map to their statuses in one place', () => {
  assert.equal(httpStatusOf('CHORUS_SYNC_STANDBY_TIMEOUT'), 504);
  assert.equal(httpStatusOf('CHORUS_TOO_STALE'), 503);
  assert.equal(httpStatusOf('CHORUS_BAD_CONFIG'), 400);
  assert.equal(httpStatusOf('CHORUS_MEMBER_NOT_FOUND'), 404);
  assert.equal(httpStatusOf('CHORUS_MEMBER_EXISTS'), 409);
  assert.equal(httpStatusOf('CHORUS_MEMBER_CHANGE_INVALID'), 409);
});

test('?commit= and the chorus-commit header choose the level; txn refuses off and local; unknown levels are CHORUS_BAD_CONFIG', async (t) => {
  const service = new FakeService();
  const app = apiFor(t, service);
  const off = await app.inject({ method: 'PUT', url: '/v1/kv/a?commit=off', payload: 'v' });
  assert.deepEqual(json(off.body), { revision: 1, committed: false });
  const local = await app.inject({ method: 'DELETE', url: '/v1/kv/a', headers: { 'chorus-commit': 'local' } });
  assert.deepEqual(json(local.body), { revision: 2, committed: false });
  const ra = await app.inject({ method: 'PUT', url: '/v1/kv/a?commit=REMOTE_APPLY', payload: 'v' });
  assert.deepEqual(json(ra.body), { revision: 3, committed: true });
  await app.inject({ method: 'PUT', url: '/v1/kv/a', payload: 'v' });
  assert.deepEqual(service.proposeOptions, [{ level: 'off' }, { level: 'local' }, { level: 'remote_apply' }, {}]);

  for (const level of ['off', 'local']) {
    const txn = await app.inject({ method: 'POST', url: `/v1/txn?commit=${level}`, payload: '{}' });
    assert.equal(txn.statusCode, 400);
    assert.equal(json(txn.body)['code'], 'CHORUS_BAD_REQUEST');
  }
  const txnOn = await app.inject({ method: 'POST', url: '/v1/txn', payload: '{}', headers: { 'chorus-commit': 'on' } });
  assert.equal(json(txnOn.body)['committed'], true);
  const bad = await app.inject({ method: 'PUT', url: '/v1/kv/a?commit=fast', payload: 'v' });
  assert.equal(bad.statusCode, 400);
  assert.equal(json(bad.body)['code'], 'CHORUS_BAD_CONFIG');
  const twice = await app.inject({ method: 'PUT', url: '/v1/kv/a?commit=on&commit=off', payload: 'v' });
  assert.equal(json(twice.body)['code'], 'CHORUS_BAD_REQUEST');
  const conflict = await app.inject({ method: 'PUT', url: '/v1/kv/a?commit=on', payload: 'v', headers: { 'chorus-commit': 'local' } });
  assert.equal(json(conflict.body)['code'], 'CHORUS_BAD_REQUEST');
  assert.equal(service.proposeCalls, 5, 'refused requests proposed nothing');
});

test('a follower forwards the commit level (query or header) to the leader', async (t) => {
  const leaderService = new FakeService('n2');
  const leader = await listening(t, leaderService);
  leaderService.leaderAddress = leader.address;
  const follower = new FakeService('n1');
  follower.notLeader = { leaderId: 'n2' };
  follower.leaderAddress = leader.address;
  const app = apiFor(t, follower);
  const viaQuery = await app.inject({ method: 'PUT', url: '/v1/kv/q?commit=local', payload: 'v' });
  assert.deepEqual(json(viaQuery.body), { revision: 1, committed: false });
  const viaHeader = await app.inject({ method: 'PUT', url: '/v1/kv/h', payload: 'v', headers: { 'chorus-commit': 'off' } });
  assert.deepEqual(json(viaHeader.body), { revision: 2, committed: false });
  assert.deepEqual(leaderService.proposeOptions, [{ level: 'local' }, { level: 'off' }]);
});

test('read levels: linearizable and lease ask for a barrier, stale bounds wait or refuse, and nothing else is read', async (t) => {
  const service = new FakeService();
  const app = apiFor(t, service);
  await app.inject({ method: 'PUT', url: '/v1/kv/k', payload: 'v' });
  assert.equal((await app.inject({ method: 'GET', url: '/v1/kv/k' })).body, 'v');
  assert.equal((await app.inject({ method: 'GET', url: '/v1/kv/k?consistency=lease' })).body, 'v');
  assert.equal((await app.inject({ method: 'GET', url: '/v1/kv?consistency=lease' })).statusCode, 200);
  assert.deepEqual(service.barrierModes, ['quorum', 'lease', 'lease']);
  assert.equal((await app.inject({ method: 'GET', url: '/v1/kv/k?consistency=stale' })).body, 'v');

  service.stalenessMs = 120;
  assert.equal((await app.inject({ method: 'GET', url: '/v1/kv/k?max_staleness_ms=500' })).body, 'v');
  const tooStale = await app.inject({ method: 'GET', url: '/v1/kv/k?max_staleness_ms=100' });
  assert.equal(tooStale.statusCode, 503);
  assert.equal(json(tooStale.body)['code'], 'CHORUS_TOO_STALE');
  assert.match(String(json(tooStale.body)['message']), /at most 120 ms old/);
  service.stalenessMs = Number.POSITIVE_INFINITY;
  const unknown = await app.inject({ method: 'GET', url: '/v1/kv?max_staleness_ms=100000' });
  assert.equal(json(unknown.body)['code'], 'CHORUS_TOO_STALE');
  assert.match(String(json(unknown.body)['message']), /cannot show/);

  service.appliedIndex = 5;
  assert.equal((await app.inject({ method: 'GET', url: '/v1/kv/k?min_revision=5' })).statusCode, 200);
  const notYet = await app.inject({ method: 'GET', url: '/v1/kv/k?min_revision=6&consistency=stale' });
  assert.equal(notYet.statusCode, 504);
  assert.equal(json(notYet.body)['code'], 'CHORUS_TIMEOUT');
  assert.deepEqual(service.appliedWaits, [5, 6]);
  assert.deepEqual(service.barrierModes, ['quorum', 'lease', 'lease'], 'bounded reads never ask for a barrier');

  for (const url of ['/v1/kv/k?consistency=strong', '/v1/kv/k?min_revision=-3', '/v1/kv/k?consistency=lease&min_revision=1', '/v1/kv?max_staleness_ms=1e3']) {
    const answer = await app.inject({ method: 'GET', url });
    assert.equal(answer.statusCode, 400, url);
    assert.equal(json(answer.body)['code'], 'CHORUS_BAD_REQUEST', url);
  }
});

test('GET and PUT /v1/config/replication: canonical values, partial updates, CHORUS_BAD_CONFIG, forwarding', async (t) => {
  const service = new FakeService();
  const app = apiFor(t, service);
  assert.deepEqual(json((await app.inject({ method: 'GET', url: '/v1/config/replication' })).body), service.replication);
  const set = await app.inject({ method: 'PUT', url: '/v1/config/replication', payload: JSON.stringify({ synchronous_standby_names: 'any 2 ( n2 ,"n3", n4)' }) });
  assert.equal(set.statusCode, 200, set.body);
  assert.equal(json(set.body)['synchronous_standby_names'], 'ANY 2 (n2, n3, n4)');
  assert.equal(json(set.body)['synchronous_commit'], 'on');
  assert.deepEqual(service.adminCalls, ['replication - ANY 2 (n2, n3, n4)']);
  const cases: [string, string][] = [
    ['{"synchronous_commit":"maybe"}', 'CHORUS_BAD_CONFIG'],
    ['{"synchronous_standby_names":"FIRST 0 (n2)"}', 'CHORUS_BAD_CONFIG'],
    ['{"synchronous_standby_names":"FIRST 1 (n2"}', 'CHORUS_BAD_CONFIG'],
    ['{"synchronous_standby_names":["n2"]}', 'CHORUS_BAD_CONFIG'],
    ['{"max_wal_senders":3}', 'CHORUS_BAD_REQUEST'],
    ['[]', 'CHORUS_BAD_REQUEST'],
    ['not json', 'CHORUS_BAD_JSON'],
  ];
  for (const [payload, code] of cases) {
    const answer = await app.inject({ method: 'PUT', url: '/v1/config/replication', payload });
    assert.equal(answer.statusCode, 400, payload);
    assert.equal(json(answer.body)['code'], code, payload);
  }
  assert.equal(service.adminCalls.length, 1, 'refused documents changed nothing');
});

test('membership and switchover endpoints validate their input, call the leader, and forward from a follower', async (t) => {
  const leaderService = new FakeService('n2');
  const leader = await listening(t, leaderService);
  leaderService.leaderAddress = leader.address;
  const follower = new FakeService('n1');
  follower.notLeader = { leaderId: 'n2' };
  follower.leaderAddress = leader.address;
  const app = apiFor(t, follower);
  const add = await app.inject({ method: 'POST', url: '/v1/members', payload: JSON.stringify({ id: 'n4', peerAddress: '10.0.0.4:7001', learner: true }) });
  assert.equal(add.statusCode, 200, add.body);
  assert.equal(json(add.body)['role'], 'learner');
  assert.equal((await app.inject({ method: 'POST', url: '/v1/members/n4/promote' })).statusCode, 200);
  assert.equal((await app.inject({ method: 'DELETE', url: '/v1/members/n4' })).statusCode, 200);
  const sw = await app.inject({ method: 'POST', url: '/v1/switchover', payload: JSON.stringify({ to: 'n3' }) });
  assert.deepEqual(json(sw.body), { previousLeaderId: 'n2', leaderId: 'n3', term: 4 });
  assert.equal((await app.inject({ method: 'POST', url: '/v1/switchover' })).statusCode, 200, 'an empty body picks the best voter');
  const set = await app.inject({ method: 'PUT', url: '/v1/config/replication', payload: '{"synchronous_commit":"local"}' });
  assert.equal(json(set.body)['synchronous_commit'], 'local');
  assert.deepEqual(leaderService.adminCalls, ['add n4 10.0.0.4:7001 true', 'promote n4', 'remove n4', 'switchover n3', 'switchover (any)', 'replication local -']);

  const invalid: [string, string, string][] = [
    ['/v1/members', '{"peerAddress":"10.0.0.4:7001"}', 'CHORUS_BAD_REQUEST'],
    ['/v1/members', '{"id":"n4"}', 'CHORUS_BAD_REQUEST'],
    ['/v1/members', '{"id":"n4","peerAddress":"10.0.0.4:7001","learner":1}', 'CHORUS_BAD_REQUEST'],
    ['/v1/members', '{', 'CHORUS_BAD_JSON'],
    ['/v1/switchover', '{"to":["n3"]}', 'CHORUS_BAD_REQUEST'],
  ];
  for (const [url, payload, code] of invalid) {
    const answer = await app.inject({ method: 'POST', url, payload });
    assert.equal(answer.statusCode, 400, `${url} ${payload}`);
    assert.equal(json(answer.body)['code'], code, `${url} ${payload}`);
  }
  // The leader's refusals come back as they are.
  leaderService.adminHook = async () => {
    throw new ChorusError('CHORUS_MEMBER_CHANGE_INVALID', 'n2 is already a voter');
  };
  const refused = await app.inject({ method: 'POST', url: '/v1/members/n2/promote' });
  assert.equal(refused.statusCode, 409);
  assert.equal(json(refused.body)['code'], 'CHORUS_MEMBER_CHANGE_INVALID');
});

test('/primary answers 200 only on the leader; /replica?lag=N only on a replica within N entries of it', async (t) => {
  const service = new FakeService();
  const app = apiFor(t, service);
  service.health = { id: 'n1', role: 'leader', leaderId: 'n1', lagEntries: null };
  assert.equal((await app.inject({ method: 'GET', url: '/primary' })).statusCode, 200);
  assert.equal((await app.inject({ method: 'GET', url: '/replica' })).statusCode, 503);
  service.health = { id: 'n1', role: 'learner', leaderId: 'n2', lagEntries: 7 };
  const notPrimary = await app.inject({ method: 'GET', url: '/primary' });
  assert.equal(notPrimary.statusCode, 503);
  assert.match(String(json(notPrimary.body)['reason']), /learner/);
  assert.equal((await app.inject({ method: 'GET', url: '/replica' })).statusCode, 200);
  assert.equal((await app.inject({ method: 'GET', url: '/replica?lag=7' })).statusCode, 200);
  const behind = await app.inject({ method: 'GET', url: '/replica?lag=6' });
  assert.equal(behind.statusCode, 503);
  assert.match(String(json(behind.body)['reason']), /7 entries behind/);
  service.health = { id: 'n1', role: 'follower', leaderId: null, lagEntries: null };
  assert.match(String(json((await app.inject({ method: 'GET', url: '/replica' })).body)['reason']), /no recent contact/);
  service.health = { id: 'n1', role: 'candidate', leaderId: null, lagEntries: null };
  assert.equal((await app.inject({ method: 'GET', url: '/replica' })).statusCode, 503);
  assert.equal((await app.inject({ method: 'GET', url: '/replica?lag=-1' })).statusCode, 400);
});
