import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  evaluateStandbys,
  formatStandbyNames,
  parseStandbyNames,
  parseSynchronousCommit,
  writeAcknowledged,
  type MemberState,
  type WriteProgress,
} from '../../src/core/policy/replication-policy.ts';

test('synchronous_commit levels parse, with remote_write as on and bad values refused', () => {
  assert.equal(parseSynchronousCommit('off'), 'off');
  assert.equal(parseSynchronousCommit(' Remote_Apply '), 'remote_apply');
  assert.equal(parseSynchronousCommit('remote_write'), 'on');
  assert.throws(() => parseSynchronousCommit('sometimes'), { code: 'CHORUS_BAD_CONFIG' });
});

test('synchronous_standby_names parses every PostgreSQL form', () => {
  assert.equal(parseStandbyNames(''), null);
  assert.deepEqual(parseStandbyNames('FIRST 2 (n2, n3, n4)'), { method: 'first', count: 2, names: ['n2', 'n3', 'n4'] });
  assert.deepEqual(parseStandbyNames('any 1 ("n2", n3)'), { method: 'any', count: 1, names: ['n2', 'n3'] });
  assert.deepEqual(parseStandbyNames('2 (a, b)'), { method: 'first', count: 2, names: ['a', 'b'] });
  assert.deepEqual(parseStandbyNames('replica1'), { method: 'first', count: 1, names: ['replica1'] });
  assert.deepEqual(parseStandbyNames('a, b'), { method: 'first', count: 1, names: ['a', 'b'] });
  assert.deepEqual(parseStandbyNames('ANY 2 (*)'), { method: 'any', count: 2, names: ['*'] });
  assert.equal(formatStandbyNames(parseStandbyNames('first 1 (n3)')), 'FIRST 1 (n3)');
  for (const bad of ['FIRST 0 (a)', 'FIRST 3 (a, b)', 'FIRST 1 (a, a)', 'FIRST x (a)', 'SOME 1 (a)', 'FIRST 1 (a b)', '(a)']) {
    assert.throws(() => parseStandbyNames(bad), { code: 'CHORUS_BAD_CONFIG' }, bad);
  }
});

function members(entries: [string, number, number, boolean][]): Map<string, MemberState> {
  return new Map(entries.map(([id, durableIndex, appliedIndex, connected]) => [id, { durableIndex, appliedIndex, connected }]));
}

test('FIRST k picks the first k connected standbys in priority order', () => {
  const set = parseStandbyNames('FIRST 1 (n3, n2)')!;
  const all = members([['n2', 10, 9, true], ['n3', 7, 5, true]]);
  assert.deepEqual(evaluateStandbys(set, 'n1', all), { standbys: ['n3'], satisfiable: true, durableIndex: 7, appliedIndex: 5 });
  const n3Down = members([['n2', 10, 9, true], ['n3', 7, 5, false]]);
  assert.deepEqual(evaluateStandbys(set, 'n1', n3Down).standbys, ['n2']);
  const noneUp = members([['n2', 10, 9, false], ['n3', 7, 5, false]]);
  assert.equal(evaluateStandbys(set, 'n1', noneUp).satisfiable, false);
  assert.equal(evaluateStandbys(set, 'n1', noneUp).durableIndex, 0);
  // A named member that leads counts with its own state (it holds its writes itself).
  const n3Leads = members([['n2', 10, 9, true], ['n3', 12, 11, true]]);
  assert.deepEqual(evaluateStandbys(set, 'n3', n3Leads), { standbys: ['n3'], satisfiable: true, durableIndex: 12, appliedIndex: 11 });
  // '*' never names the leader itself.
  assert.deepEqual(evaluateStandbys(parseStandbyNames('ANY 1 (*)')!, 'n3', n3Leads).standbys, ['n2']);
});

test('ANY k counts any k listed members', () => {
  const set = parseStandbyNames('ANY 2 (n2, n3, n4)')!;
  const state = members([['n2', 10, 10, true], ['n3', 4, 3, false], ['n4', 8, 6, true]]);
  const e = evaluateStandbys(set, 'n1', state);
  assert.equal(e.durableIndex, 8);
  assert.equal(e.appliedIndex, 6);
  // Only one of the listed members exists: two can never confirm.
  assert.equal(evaluateStandbys(set, 'n1', members([['n2', 5, 5, true]])).satisfiable, false);
});

test('commit levels acknowledge exactly when their guarantee holds', () => {
  const base: WriteProgress = { index: 10, inLeaderLog: true, leaderDurableIndex: 9, commitIndex: 8, leaderAppliedIndex: 8, standbys: null };
  assert.equal(writeAcknowledged('off', base), true);
  assert.equal(writeAcknowledged('local', base), false);
  assert.equal(writeAcknowledged('local', { ...base, leaderDurableIndex: 10 }), true);
  assert.equal(writeAcknowledged('on', { ...base, leaderDurableIndex: 10 }), false);
  assert.equal(writeAcknowledged('on', { ...base, commitIndex: 10 }), true);
  const standbys = { standbys: ['n3'], satisfiable: true, durableIndex: 9, appliedIndex: 7 };
  assert.equal(writeAcknowledged('on', { ...base, commitIndex: 10, standbys }), false);
  assert.equal(writeAcknowledged('on', { ...base, commitIndex: 10, standbys: { ...standbys, durableIndex: 10 } }), true);
  const applied = { ...base, commitIndex: 10, leaderAppliedIndex: 10, standbys: { ...standbys, durableIndex: 10, appliedIndex: 9 } };
  assert.equal(writeAcknowledged('remote_apply', applied), false);
  assert.equal(writeAcknowledged('remote_apply', { ...applied, standbys: { ...applied.standbys, appliedIndex: 10 } }), true);
  // A write overwritten in the leader's log is never acknowledged, at any level.
  assert.equal(writeAcknowledged('off', { ...base, inLeaderLog: false }), false);
});
