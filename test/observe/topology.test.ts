// The topology document: Markdown tables and a Mermaid diagram of a /v1/cluster answer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClusterMember, ClusterView } from '../../src/shared/api-types.ts';
import { topologyMarkdown, topologyMermaid } from '../../src/observe/topology.ts';

function member(id: string, overrides: Partial<ClusterMember> = {}): ClusterMember {
  const n = Number(id.slice(1));
  return {
    id, peerAddress: `127.0.0.1:700${n}`, clientAddress: `127.0.0.1:800${n}`, role: 'follower', voter: true, reachable: true,
    matchIndex: 50, appliedIndex: 50, lagEntries: 0, lagBytes: 0, lagSeconds: 0, progressing: true, canLead: true, whyNot: null,
    ...overrides,
  };
}

const view: ClusterView = {
  clusterId: 'abc123', term: 4, leaderId: 'n1',
  self: { id: 'n2', role: 'follower', commitIndex: 50, appliedIndex: 50, lastIndex: 50, snapshotIndex: 0, clientAddress: '127.0.0.1:8002', peerAddress: '127.0.0.1:7002' },
  members: [
    member('n1', { role: 'leader' }),
    member('n2'),
    member('n3', { reachable: false, lagEntries: 20, lagBytes: 4096, lagSeconds: 7.5, progressing: false, canLead: false, whyNot: 'unreachable' }),
    member('n4', { role: 'learner', voter: false, canLead: false, whyNot: 'learner' }),
  ],
  membersSource: 'leader',
  replication: { synchronous_commit: 'on', synchronous_standby_names: 'FIRST 1 (n2, n3)', source: 'replicated', revision: 12, standbys: ['n2'], satisfiable: true },
};

test('the Mermaid diagram: the leader replicates to each member; learners dashed; standbys and down members marked', () => {
  const diagram = topologyMermaid(view);
  assert.match(diagram, /^flowchart LR\n/);
  assert.match(diagram, /m0\["<b>n1<\/b><br\/>leader<br\/>client 127\.0\.0\.1:8001<br\/>peer 127\.0\.0\.1:7001"\]/);
  assert.match(diagram, /m0 -->\|"lag 0 entries · 0\.0 s"\| m1/);
  assert.match(diagram, /m0 -->\|"lag 20 entries · 7\.5 s"\| m2/);
  assert.match(diagram, /m0 -\.->\|"lag 0 entries · 0\.0 s"\| m3/, 'a learner gets a dashed arrow');
  assert.match(diagram, /class m0 leader/);
  assert.match(diagram, /class m1 standby/);
  assert.match(diagram, /class m2 down/);
  assert.match(diagram, /class m3 learner/);
  assert.doesNotMatch(topologyMermaid({ ...view, leaderId: null }), /-->/, 'no leader, no replication arrows');
});

test('the Markdown document: members, replication settings, standby set, keyspaces, diagram, alerts', () => {
  const md = topologyMarkdown({
    view, endpoint: 'http://127.0.0.1:8002', generatedAt: new Date('2025-01-02T03:04:05Z'),
    alerts: [{ id: 'replication-lag:n3', rule: 'replication-lag', severity: 'warning', message: 'n3 is 7.5 s behind', since: '2025-01-02T03:04:00Z', member: 'n1' }],
    keyspaces: [
      { name: 'default', mode: 'consensus', builtin: true },
      { name: 'carts', mode: 'multi-master', conflicts: 'versions', members: ['n1', 'n2', 'n3'] },
      { name: 'orders', mode: 'consensus' },
    ],
  });
  assert.match(md, /^# Chorus cluster abc123\n/);
  assert.match(md, /Generated 2025-01-02T03:04:05\.000Z from http:\/\/127\.0\.0\.1:8002/);
  assert.match(md, /\| Leader \| n1 \(term 4\) \|/);
  assert.match(md, /\| Voters \| n1, n2, n3 \|/);
  assert.match(md, /\| Learners \| n4 \|/);
  assert.match(md, /\| n3 \| follower \| yes \| 127\.0\.0\.1:8003 \| 127\.0\.0\.1:7003 \| no \| 50 \| 50 \| 20 entries, 4\.0 KiB, 7\.5 s \| down \| no \(unreachable\) \|/);
  assert.match(md, /\| synchronous_standby_names \| FIRST 1 \(n2, n3\) \|/);
  assert.match(md, /\| Synchronous standbys now \| n2 \|/);
  assert.match(md, /\| default \(\/v1\/kv\) \| consensus: one Raft log, linearizable \| n1, n2, n3, n4 \|/);
  assert.match(md, /\| carts \| multi-master \(versions\): every member accepts writes \| n1, n2, n3 \|/);
  assert.match(md, /\| orders \| consensus: one Raft log, linearizable \| n1, n2, n3, n4 \|/);
  assert.equal(md.match(/\| default/g)?.length, 1, 'the built-in keyspace once');
  assert.match(md, /```mermaid\nflowchart LR\n[\s\S]*```/);
  assert.match(md, /- \*\*warning\*\* replication-lag \(raised by n1 since 2025-01-02T03:04:00Z\): n3 is 7\.5 s behind/);
  const local = topologyMarkdown({ view: { ...view, membersSource: 'local' }, endpoint: 'x', generatedAt: new Date(0) });
  assert.match(local, /no leader could be asked/);
  assert.doesNotMatch(local, /## Active alerts/, 'alerts only when they were fetched');
});
