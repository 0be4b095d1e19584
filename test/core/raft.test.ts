// Unit tests of the Raft core on the synchronous in-memory harness: elections, pre-vote,
// check-quorum, lease, votes, the commit rule, replication flow control, snapshots,
// membership, leadership transfer, ReadIndex, restarts and the transcript format.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Raft } from '../../src/core/raft/raft.ts';
import { InvariantError } from '../../src/core/raft/assert.ts';
import { describeMessage, describeReady } from '../../src/core/raft/describe.ts';
import type {
  AppendMessage,
  Entry,
  Message,
  MessageType,
  NodeId,
  Ready,
  SnapshotChunkMessage,
  VoteMessage,
} from '../../src/core/raft/types.ts';
import { Prng } from '../../sim/prng.ts';
import { Harness, bytes, text } from './harness.ts';

function isAppend(m: Message): m is AppendMessage {
  return m.type === 'Append';
}

function others(h: Harness, id: NodeId): NodeId[] {
  return h.ids().filter((other) => other !== id);
}

function payloadBytes(entries: readonly Entry[]): number {
  return entries.reduce((sum, e) => sum + (e.data?.byteLength ?? 0), 0);
}

/** A vote request as `from` would send it, built by hand. */
function voteRequest(from: NodeId, to: NodeId, term: number, lastIndex: number, lastTerm: number): VoteMessage {
  return { type: 'Vote', from, to, term, lastIndex, lastTerm, transfer: false };
}

/** The vote responses `from` sent to `to` that the network carried or that are queued. */
function voteResponses(h: Harness, from: NodeId, to: NodeId, type: 'VoteResp' | 'PreVoteResp' = 'VoteResp'): Message[] {
  return [...h.messages(), ...h.pending].filter((m) => m.type === type && m.from === from && m.to === to);
}

// ---------------------------------------------------------------- election and replication

test('a 3-member cluster elects one leader, starts its term with a no-op and applies proposals in order', () => {
  const h = new Harness({ seed: 7 });
  const leader = h.elect();
  const term = h.node(leader).currentTerm();
  const leaders = h.ids().filter((id) => h.node(id).currentRole() === 'leader');
  assert.deepEqual(leaders, [leader]);
  for (const id of others(h, leader)) {
    const status = h.node(id).status();
    assert.equal(status.role, 'follower');
    assert.equal(status.leaderId, leader);
    assert.equal(status.term, term);
  }
  // The first entry of the leader's term is its no-op.
  const log = h.node(leader).log;
  let first = log.lastIndex();
  while (first > 1 && log.term(first - 1) === term) first--;
  assert.equal(log.entry(first)?.type, 'noop');

  for (const payload of ['a', 'b', 'c']) assert.equal(h.propose(leader, payload).kind, 'accepted');
  h.deliverAll();
  for (const id of h.ids()) {
    assert.deepEqual(h.applied(id), ['a', 'b', 'c'], `${id} applied`);
    assert.equal(h.node(id).status().commitIndex, log.lastIndex());
  }
});

test('propose answers not-leader on a follower, busy at uncommittedEntriesMax, dropped during a transfer', () => {
  const h = new Harness({ raft: { uncommittedEntriesMax: 3 } });
  const leader = h.elect();
  const [f1, f2] = others(h, leader) as [NodeId, NodeId];
  assert.deepEqual(h.propose(f1, 'x'), { kind: 'not-leader', leaderId: leader });

  h.isolate(f1);
  h.isolate(f2);
  for (const payload of ['p1', 'p2', 'p3']) assert.equal(h.propose(leader, payload).kind, 'accepted');
  h.deliverAll();
  assert.deepEqual(h.propose(leader, 'p4'), { kind: 'busy' });
  h.heal();
  h.tickUntil(() => h.applied(f2).length === 3, 20);
  assert.equal(h.propose(leader, 'p4').kind, 'accepted');
  h.deliverAll();

  // During a transfer the leader takes no proposals; once the transfer is abandoned it does.
  h.isolate(f2);
  assert.deepEqual(h.node(leader).transferLeadership(f2), { ok: true });
  assert.deepEqual(h.propose(leader, 'p5'), { kind: 'dropped', reason: 'transfer-in-progress' });
  h.tickUntil(() => h.node(leader).status().transferee === null, 2 * h.node(leader).electionTicks);
  assert.equal(h.leader(), leader);
  assert.equal(h.propose(leader, 'p5').kind, 'accepted');
});

// ---------------------------------------------------------------- pre-vote and check-quorum

test('pre-vote: an isolated member does not raise its term and does not disrupt the leader after heal', () => {
  const h = new Harness({ seed: 3 });
  const leader = h.elect();
  const term = h.node(leader).currentTerm();
  const lonely = others(h, leader)[0]!;
  const trafficBefore = h.traffic.length;
  h.isolate(lonely);
  for (let i = 0; i < 10 * h.node(lonely).electionTicks; i++) {
    h.tickAll(1);
    assert.equal(h.node(lonely).currentTerm(), term, `term raised after ${i + 1} ticks`);
  }
  assert.equal(h.node(lonely).currentRole(), 'pre-candidate');
  const sent = h.traffic.slice(trafficBefore).map((t) => t.m);
  const preVotes = sent.filter((m) => m.type === 'PreVote' && m.from === lonely);
  assert.ok(preVotes.length >= 10, `expected repeated pre-vote campaigns, saw ${preVotes.length}`);
  assert.ok(preVotes.every((m) => m.term === term + 1), 'pre-votes ask for the next term only');
  assert.equal(sent.filter((m) => m.type === 'Vote').length, 0, 'no real vote request may leave');

  h.heal();
  h.tickAll(3 * h.node(leader).electionTicks);
  assert.equal(h.leader(), leader);
  assert.equal(h.node(leader).currentTerm(), term);
  assert.equal(h.node(lonely).currentRole(), 'follower');
  assert.equal(h.node(lonely).currentLeader(), leader);
});

test('without pre-vote, the same isolated member raises its term and deposes the leader (contrast)', () => {
  const h = new Harness({ seed: 3, raft: { preVote: false } });
  const leader = h.elect();
  const term = h.node(leader).currentTerm();
  const lonely = others(h, leader)[0]!;
  h.isolate(lonely);
  h.tickAll(5 * h.node(lonely).electionTicks);
  assert.ok(h.node(lonely).currentTerm() > term);
  h.heal();
  h.tickAll(3 * h.node(leader).electionTicks);
  assert.ok(h.node(leader).currentTerm() > term, 'the higher term reached the old leader');
});

test('check-quorum: an isolated leader steps down within about an election timeout', () => {
  const h = new Harness({ seed: 5 });
  const leader = h.elect();
  const electionTicks = h.node(leader).electionTicks;
  h.isolate(leader);
  let ticks = 0;
  while (h.node(leader).currentRole() === 'leader') {
    h.tickAll(1);
    ticks++;
    assert.ok(ticks <= electionTicks + 2, `still leader after ${ticks} ticks in isolation`);
  }
  assert.ok(ticks >= electionTicks, `stepped down too early, after ${ticks} ticks`);
  assert.equal(h.node(leader).status().lastLeaderChangeReason, 'check-quorum');
  assert.equal(h.node(leader).currentLeader(), null);
});

test('without check-quorum an isolated leader stays leader (contrast)', () => {
  const h = new Harness({ seed: 5, raft: { checkQuorum: false } });
  const leader = h.elect();
  h.isolate(leader);
  h.tick(leader, 10 * h.node(leader).electionTicks);
  assert.equal(h.node(leader).currentRole(), 'leader');
});

// ---------------------------------------------------------------- leader lease

test('lease: valid while a quorum acknowledged recently, invalid once isolated for more than leaseTicks', () => {
  const leaseTicks = 5;
  const h = new Harness({ seed: 11, raft: { leaseTicks, electionTicks: 10 } });
  const leader = h.elect();
  h.tickAll(2);
  assert.equal(h.node(leader).status().leaseValid, true);
  for (const id of others(h, leader)) assert.equal(h.node(id).status().leaseValid, false, 'only a leader holds the lease');

  // A lease read is answered at once, without a heartbeat round.
  h.node(leader).readIndex('lease-1', 'lease');
  h.flush();
  assert.deepEqual(h.member(leader).readStates, [{ readId: 'lease-1', index: h.node(leader).log.committed }]);
  assert.equal(h.takePending().filter((m) => m.type === 'Heartbeat').length, 0);

  h.isolate(leader);
  for (let k = 1; k <= leaseTicks + 1; k++) {
    h.tick(leader);
    const valid = h.node(leader).status().leaseValid;
    if (k <= leaseTicks) assert.equal(valid, true, `lease lost after only ${k} ticks`);
    else assert.equal(valid, false, `lease still valid after ${k} ticks in isolation`);
  }
  assert.notEqual(h.node(leader).currentRole(), 'leader');
});

test('lease: a leader whose term has not committed an entry holds no lease', () => {
  const h = new Harness({ seed: 11, raft: { leaseTicks: 5 } });
  const leader = h.elect();
  const target = others(h, leader)[0]!;
  const fromTarget = (m: Message): boolean => m.from === target && m.type === 'Append';
  h.node(leader).transferLeadership(target);
  h.deliverAll({ drop: fromTarget });
  h.tickAll(2, { drop: fromTarget });
  assert.equal(h.leader(), target);
  assert.equal(h.node(target).status().leaseValid, false);
  // Without a lease, a lease read falls back to a quorum round (held until the no-op commits).
  h.node(target).readIndex('no-lease', 'lease');
  h.flush();
  assert.deepEqual(h.member(target).readStates, []);
  h.tickAll(3);
  assert.equal(h.member(target).readStates[0]?.readId, 'no-lease');
  assert.equal(h.node(target).status().leaseValid, true);
});

test('lease: none during a transfer, and after an aborted one only once a quorum acknowledges anew', () => {
  const h = new Harness({ seed: 28, raft: { leaseTicks: 5 } });
  const leader = h.elect();
  h.tickAll(2);
  assert.equal(h.node(leader).status().leaseValid, true);
  const target = others(h, leader)[0]!;
  h.isolate(target);
  // The target falls behind, so no TimeoutNow is ever sent (it would end the lease for the term).
  assert.equal(h.propose(leader, 'behind').kind, 'accepted');
  h.deliverAll();
  assert.deepEqual(h.node(leader).transferLeadership(target), { ok: true });
  assert.equal(h.node(leader).status().leaseValid, false, 'lease held while handing leadership over');
  let aborted = false;
  for (let i = 0; i < 3 * h.node(leader).electionTicks && !aborted; i++) {
    for (const id of h.ids()) h.tick(id);
    if (h.node(leader).status().transferee === null) {
      aborted = true;
      // Acknowledgements so far are of messages sent before the abort: they do not count.
      assert.equal(h.node(leader).status().leaseValid, false, 'lease trusted right after an aborted transfer');
    } else {
      assert.equal(h.node(leader).status().leaseValid, false);
    }
    h.deliverAll();
  }
  assert.ok(aborted, 'the transfer was never abandoned');
  assert.equal(h.leader(), leader);
  assert.equal(h.node(leader).status().leaseValid, true, 'a fresh quorum acknowledgement restores the lease');
});

test('lease: a TimeoutNow that arrives after the transfer was abandoned must not leave a stale lease behind', () => {
  const h = new Harness({ seed: 30, raft: { leaseTicks: 5 } });
  const leader = h.elect();
  const [target, other] = others(h, leader) as [NodeId, NodeId];
  h.tickAll(2);
  // The transfer starts; its TimeoutNow is held up in the network.
  assert.deepEqual(h.node(leader).transferLeadership(target), { ok: true });
  h.flush();
  const held = h.takePending().filter((m) => {
    if (m.type === 'TimeoutNow') return true;
    h.deliver(m);
    return false;
  });
  assert.equal(held.length, 1);
  h.tickUntil(() => h.node(leader).status().transferee === null, 3 * h.node(leader).electionTicks);
  h.tickAll(1);
  assert.equal(h.node(leader).status().leaseValid, false, 'a TimeoutNow left in this term: no lease until the next');

  // The old leader is cut off; the late TimeoutNow (sent before the cut) arrives, and the
  // target is elected at once: the voters waive their lease for a transfer.
  h.isolate(leader);
  for (const m of held) h.step(target, m);
  h.deliverAll();
  assert.equal(h.node(target).currentRole(), 'leader');
  const write = h.propose(target, 'w');
  assert.equal(write.kind, 'accepted');
  h.deliverAll();
  assert.deepEqual(h.applied(other), ['w'], 'the write committed');
  const writeIndex = write.kind === 'accepted' ? write.index : Infinity;

  // A read that starts after the write completed must see it, or fail.
  h.node(leader).readIndex('after-w', 'lease');
  h.flush();
  for (const state of h.member(leader).readStates) {
    assert.ok(state.index >= writeIndex, `lease read served at ${state.index}, missing the write committed at ${writeIndex} in term ${h.node(target).currentTerm()}`);
  }
});

test('lease: leaseTicks >= electionTicks, or a lease without checkQuorum, is refused', () => {
  const base = { id: 'n1', random: new Prng(1), electionTicks: 10 };
  const boot = { initialConfig: { voters: ['n1'], learners: [] } };
  assert.throws(() => new Raft({ ...base, leaseTicks: 10 }, boot), InvariantError);
  assert.throws(() => new Raft({ ...base, leaseTicks: 12 }, boot), InvariantError);
  assert.throws(() => new Raft({ ...base, leaseTicks: 5, checkQuorum: false }, boot), InvariantError);
  assert.doesNotThrow(() => new Raft({ ...base, leaseTicks: 9 }, boot));
});

// ---------------------------------------------------------------- votes

test('votes: one vote per term; a second candidate of the same term is refused', () => {
  const h = new Harness({ seed: 2, raft: { preVote: false, checkQuorum: false } });
  h.campaign('n1');
  h.campaign('n2');
  assert.equal(h.node('n1').currentTerm(), 1);
  assert.equal(h.node('n2').currentTerm(), 1);
  h.deliverAll();
  assert.equal(h.node('n3').status().vote, 'n1');
  const toN1 = voteResponses(h, 'n3', 'n1');
  const toN2 = voteResponses(h, 'n3', 'n2');
  assert.deepEqual(toN1.map((m) => m.type === 'VoteResp' && m.granted), [true]);
  assert.deepEqual(toN2.map((m) => m.type === 'VoteResp' && m.granted), [false]);
  assert.equal(h.leader(), 'n1');
  assert.equal(h.node('n2').currentRole(), 'follower');

  // Asked again by hand in the same term, the answer stays no.
  h.step('n3', voteRequest('n2', 'n3', 1, 100, 1));
  h.flush();
  const again = h.takePending().filter((m) => m.type === 'VoteResp' && m.to === 'n2');
  assert.deepEqual(again.map((m) => m.type === 'VoteResp' && m.granted), [false]);
  assert.equal(h.node('n3').status().vote, 'n1');
});

test('votes: a candidate whose log is shorter or older is refused (§5.4.1)', () => {
  const h = new Harness({ seed: 4, raft: { preVote: false, checkQuorum: false } });
  const leader = h.elect();
  const [behind, ahead] = others(h, leader) as [NodeId, NodeId];
  h.isolate(behind);
  for (const payload of ['a', 'b', 'c']) h.propose(leader, payload);
  h.deliverAll();
  assert.deepEqual(h.applied(ahead), ['a', 'b', 'c']);
  assert.equal(h.node(behind).log.lastIndex() < h.node(ahead).log.lastIndex(), true);

  // The leader goes away; the member that missed the writes times out first and asks.
  h.crash(leader);
  h.heal();
  h.campaign(behind);
  h.deliverAll();
  const refusals = voteResponses(h, ahead, behind);
  assert.ok(refusals.length > 0, 'the up-to-date member answered');
  assert.ok(refusals.every((m) => m.type === 'VoteResp' && !m.granted), 'a shorter log got a vote');
  assert.notEqual(h.node(behind).currentRole(), 'leader');

  h.tickUntil(() => h.leader() !== null, 10 * h.node(ahead).electionTicks);
  assert.equal(h.leader(), ahead);
  h.deliverAll();
  h.tickAll(2);
  assert.deepEqual(h.applied(behind), ['a', 'b', 'c']);

  // Older last term but longer log: refused too. Same log: granted.
  const voter = h.node(behind);
  const lastIndex = voter.log.lastIndex();
  const lastTerm = voter.log.lastTerm();
  let term = voter.currentTerm();
  const answer = (lastIdx: number, lastT: number): boolean => {
    term++;
    h.step(behind, voteRequest('nX', behind, term, lastIdx, lastT));
    h.flush();
    const replies = h.takePending().filter((m) => m.type === 'VoteResp' && m.to === 'nX');
    assert.equal(replies.length, 1);
    return replies[0]!.type === 'VoteResp' && replies[0]!.granted;
  };
  assert.equal(answer(lastIndex + 50, lastTerm - 1), false, 'older last term');
  assert.equal(answer(lastIndex - 1, lastTerm), false, 'same term, shorter');
  assert.equal(answer(lastIndex, lastTerm), true, 'equally up to date');
});

// ---------------------------------------------------------------- the commit rule

test('§5.4.2: an entry of an earlier term on a majority is not committed until an entry of the leader term is', () => {
  const h = new Harness({ seed: 9, raft: { preVote: false, checkQuorum: false, appendEntriesMax: 1 } });
  const leader = h.elect();
  const [f1, f2] = others(h, leader) as [NodeId, NodeId];
  const oldTerm = h.node(leader).currentTerm();
  const base = h.node(leader).log.lastIndex();

  // The leader appends x in its term; nobody else hears of it.
  h.isolate(leader);
  assert.equal(h.propose(leader, 'x').kind, 'accepted');
  h.deliverAll();
  h.heal();

  // f1 campaigns: the leader (longer log) refuses it and steps down; f2 never hears of it.
  h.campaign(f1);
  h.deliverAll({ drop: (m) => m.type === 'Vote' && m.to === f2 });
  assert.equal(h.node(leader).currentRole(), 'follower');
  assert.equal(h.node(f1).currentRole(), 'candidate');

  // The old leader wins a later term; appends that would land an entry of its new term on a
  // follower are dropped, the rest (x, of the earlier term) get through.
  const newTerm = h.node(f1).currentTerm() + 1;
  const landsNewTerm = (m: Message): boolean =>
    isAppend(m) && m.entries.some((e) => e.term === newTerm) && h.node(m.to).log.matchTerm(m.prevIndex, m.prevTerm);
  h.campaign(leader);
  h.deliverAll({ drop: landsNewTerm });
  h.tickAll(3, { drop: landsNewTerm });
  const raft = h.node(leader);
  assert.equal(raft.currentRole(), 'leader');
  assert.equal(raft.currentTerm(), newTerm);
  assert.equal(raft.log.term(base + 1), oldTerm);
  for (const id of [f1, f2]) assert.equal(h.node(id).log.term(base + 1), oldTerm, `${id} holds x`);
  assert.equal(raft.status().progress.get(f1)?.match, base + 1);
  assert.equal(raft.status().commitIndex, base, 'x committed by counting replicas of an earlier term');
  assert.deepEqual(h.applied(leader), []);

  // Once the no-op of the new term reaches a majority, both commit.
  h.tickAll(h.node(leader).electionTicks);
  assert.equal(raft.status().commitIndex, base + 2);
  for (const id of h.ids()) assert.deepEqual(h.applied(id), ['x'], `${id} applied`);
});

test('a follower commits no further than the last entry the append proved to match (Figure 2)', () => {
  // n2 holds 4/2 and 5/2 from a deposed leader; the term-3 leader's log has 4/3 instead.
  const h = new Harness({ ids: ['n2'], initialConfig: { voters: ['n1', 'n2', 'n3'], learners: [] }, raft: { checkQuorum: false } });
  const member = h.member('n2');
  member.disk.entries = [1, 2, 2, 2, 2].map((term, i) => ({ index: i + 1, term, type: 'normal' as const, data: bytes(`t${term}`) }));
  member.disk.hardState = { term: 3, vote: null, commit: 1 };
  h.restart('n2');
  const append = (prevIndex: number, prevTerm: number, entries: Entry[], commit: number): void => {
    h.step('n2', { type: 'Append', from: 'n1', to: 'n2', term: 3, seq: 0, sentTick: 0, prevIndex, prevTerm, entries, commit });
    h.flush();
  };
  // Entry 3 matches; the leader's commit index is 6, but nothing beyond 3 is known to match.
  append(2, 2, [{ index: 3, term: 2, type: 'normal', data: bytes('t2') }], 6);
  assert.equal(h.node('n2').log.committed, 3);
  assert.equal(h.node('n2').log.lastIndex(), 5, 'the unproven suffix stays until contradicted');
  // The leader's next append replaces the stale suffix, and only then may commit advance.
  append(3, 2, [{ index: 4, term: 3, type: 'noop' }], 6);
  assert.equal(h.node('n2').log.committed, 4);
  assert.equal(h.node('n2').log.term(4), 3);
  assert.equal(h.node('n2').log.lastIndex(), 4);
});

test('Ready contract: vote requests and granted votes leave only after the vote is in the persisted hard state', () => {
  const h = new Harness({ seed: 29, raft: { preVote: false, checkQuorum: false } });
  h.campaign('n1');
  h.deliverAll();
  assert.equal(h.leader(), 'n1');
  let votes = 0;
  for (const member of h.members.values()) {
    for (const ready of member.readies) {
      for (const m of ready.messagesBeforePersist) {
        assert.ok(m.type !== 'Vote' && !(m.type === 'VoteResp' && m.granted), `${member.id} sent ${describeMessage(m)} before persisting`);
      }
      for (const m of ready.messages) {
        if (m.type === 'Vote' || (m.type === 'VoteResp' && m.granted)) {
          votes++;
          // The same ready carries the hard state that records the vote.
          const expectedVote = m.type === 'Vote' ? m.from : m.to;
          assert.deepEqual([ready.hardState?.term, ready.hardState?.vote], [m.term, expectedVote], describeMessage(m));
        }
      }
    }
  }
  assert.ok(votes >= 3, `saw ${votes} votes`);
  // The leader's appends, on the other hand, may leave before its own write (thesis §10.2.1).
  assert.ok(h.member('n1').readies.some((r) => r.messagesBeforePersist.some(isAppend) && r.entries.length > 0));
});

// ---------------------------------------------------------------- replication flow control

test('fast back-off: a long divergent suffix is repaired in few round trips', () => {
  const h = new Harness({ seed: 6 });
  const oldLeader = h.elect();
  for (let i = 0; i < 3; i++) h.propose(oldLeader, `common-${i}`);
  h.deliverAll();
  const common = h.node(oldLeader).log.lastIndex();

  // The old leader, cut off, appends a long suffix of its term that nobody else has.
  const divergent = 30;
  h.isolate(oldLeader);
  for (let i = 0; i < divergent; i++) assert.equal(h.propose(oldLeader, `lost-${i}`).kind, 'accepted');
  h.deliverAll();
  // The others move on for two terms, so that the leader that finally repairs the old one starts
  // probing far above the divergence point.
  const [a, b] = others(h, oldLeader) as [NodeId, NodeId];
  const second = h.elect(a);
  for (let i = 0; i < 20; i++) h.propose(second, `kept-${i}`);
  h.deliverAll();
  const third = h.elect(b);
  const naiveRoundTrips = h.node(third).log.lastIndex() - common;
  assert.ok(naiveRoundTrips >= 20);
  const trafficBefore = h.traffic.length;

  h.heal();
  h.tickUntil(() => h.applied(oldLeader).length === 23, 5 * h.node(third).electionTicks);
  const rejections = h.traffic
    .slice(trafficBefore)
    .filter((t) => t.m.type === 'AppendResp' && t.m.from === oldLeader && t.m.reject && t.m.index > 0);
  assert.ok(rejections.length >= 1, 'the divergent suffix was noticed');
  assert.ok(rejections.length < divergent, `${rejections.length} rejections for ${divergent} divergent entries`);
  assert.ok(rejections.length <= 2, `${rejections.length} rejections (one per entry would be ${naiveRoundTrips}): not skipping by term`);
  assert.deepEqual(h.applied(oldLeader), h.applied(third));
  assert.equal(h.node(oldLeader).log.lastIndex(), h.node(third).log.lastIndex());
  assert.ok(!h.applied(oldLeader).some((t) => t.startsWith('lost-')));
});

test('in-flight window: inflightMsgsMax 2 and appendEntriesMax 1 allow at most 2 appends per follower', () => {
  const h = new Harness({ seed: 8, raft: { inflightMsgsMax: 2, appendEntriesMax: 1 } });
  const leader = h.elect();
  for (let i = 0; i < 10; i++) assert.equal(h.propose(leader, `e${i}`).kind, 'accepted');
  h.flush();
  const sent = h.takePending();
  for (const id of others(h, leader)) {
    const appends = sent.filter((m) => isAppend(m) && m.to === id && m.entries.length > 0);
    assert.equal(appends.length, 2, `appends to ${id}`);
    for (const m of appends) assert.equal(isAppend(m) && m.entries.length, 1);
  }
  // Round by round (a round's replies arrive only in the next), the window never exceeds 2.
  let batch = sent;
  for (let round = 0; batch.length > 0; round++) {
    assert.ok(round < 100, 'replication did not settle');
    for (const id of others(h, leader)) {
      const appends = batch.filter((m) => isAppend(m) && m.to === id && m.entries.length > 0);
      assert.ok(appends.length <= 2, `round ${round}: ${appends.length} appends in flight to ${id}`);
    }
    for (const m of batch) h.deliver(m);
    h.flush();
    batch = h.takePending();
  }
  for (const id of h.ids()) assert.deepEqual(h.applied(id), Array.from({ length: 10 }, (_, i) => `e${i}`));
});

test('batching by bytes: an append never carries more payload than appendBytesMax unless one entry does', () => {
  const limit = 10;
  const h = new Harness({ seed: 12, raft: { appendBytesMax: limit } });
  const leader = h.elect();
  const sizes = [3, 3, 3, 3, 7, 2, 25, 1, 1, 9, 4, 4, 4];
  h.isolate(others(h, leader)[0]!);
  sizes.forEach((size, i) => h.propose(leader, String(i % 10).repeat(size)));
  h.deliverAll();
  h.heal();
  h.tickAll(10);
  const appends = h.messages(isAppend).filter(isAppend);
  let batched = 0;
  for (const m of appends) {
    const payload = payloadBytes(m.entries);
    if (m.entries.length > 1) {
      batched++;
      assert.ok(payload <= limit, `append of ${m.entries.length} entries carries ${payload} bytes`);
    }
  }
  assert.ok(batched > 0, 'some appends carried more than one entry');
  assert.ok(appends.some((m) => m.entries.length === 1 && payloadBytes(m.entries) === 25), 'the oversized entry went alone');
  const expected = sizes.map((size, i) => String(i % 10).repeat(size));
  for (const id of h.ids()) assert.deepEqual(h.applied(id), expected);
});

// ---------------------------------------------------------------- snapshots

test('snapshots: a lagging follower receives the snapshot in chunks, installs it, then catches up', () => {
  const chunkBytes = 16;
  const h = new Harness({ seed: 13, raft: { snapshotChunkBytes: chunkBytes } });
  const leader = h.elect();
  const lagging = others(h, leader)[0]!;
  h.isolate(lagging);
  const written = Array.from({ length: 8 }, (_, i) => `value-${i}`);
  for (const payload of written) h.propose(leader, payload);
  h.deliverAll();
  const snapshot = h.compact(leader);
  assert.ok(snapshot.data.byteLength > 3 * chunkBytes, 'the snapshot spans several chunks');
  assert.equal(h.node(leader).log.snapshotIndex(), snapshot.meta.index);

  h.heal();
  const trafficBefore = h.traffic.length;
  h.tickUntil(() => h.applied(lagging).length === written.length, 50);
  const chunks = h.traffic
    .slice(trafficBefore)
    .filter((t) => t.delivered && t.m.type === 'Snapshot' && t.m.to === lagging)
    .map((t) => t.m as SnapshotChunkMessage);
  assert.equal(chunks.length, Math.ceil(snapshot.data.byteLength / chunkBytes));
  let offset = 0;
  for (const chunk of chunks) {
    assert.equal(chunk.offset, offset);
    assert.ok(chunk.chunk.byteLength <= chunkBytes);
    offset += chunk.chunk.byteLength;
  }
  assert.equal(offset, snapshot.data.byteLength);
  const installs = h.member(lagging).installed;
  assert.equal(installs.length, 1);
  assert.equal(installs[0]!.meta.index, snapshot.meta.index);
  assert.deepEqual(installs[0]!.data, snapshot.data);
  assert.equal(h.node(lagging).log.snapshotIndex(), snapshot.meta.index);
  assert.deepEqual(h.applied(lagging), written);

  // Then it follows with plain entries.
  h.propose(leader, 'after');
  h.tickAll(2);
  assert.deepEqual(h.applied(lagging), [...written, 'after']);
  assert.equal(h.member(lagging).readies.filter((r) => r.snapshot !== null).length, 1);
  const appendsAfter = h.messages((m) => isAppend(m) && m.to === lagging && m.entries.some((e) => text(e.data) === 'after'));
  assert.ok(appendsAfter.length > 0, 'the entry after the snapshot came as an append');
});

/**
 * Elects a leader and cuts one follower off while eight entries commit; the leader then compacts
 * past them (with an image, or without one as the real member does) and the network heals.
 */
function lagBehindCompaction(h: Harness, image: 'image' | 'no-image'): { leader: NodeId; lagging: NodeId } {
  const leader = h.elect();
  const lagging = others(h, leader)[0]!;
  h.isolate(lagging);
  for (let i = 0; i < 8; i++) h.propose(leader, `value-${i}`);
  h.deliverAll();
  if (image === 'image') h.compact(leader);
  else h.compactWithoutImage(leader);
  h.heal();
  return { leader, lagging };
}

test('snapshots: once a follower installed a snapshot, new entries reach it without waiting for a heartbeat', () => {
  const h = new Harness({ seed: 13, raft: { snapshotChunkBytes: 16 } });
  const { leader, lagging } = lagBehindCompaction(h, 'image');
  h.tickUntil(() => h.applied(lagging).length === 8, 50);
  // The snapshot exchange is over: the follower acknowledged an append at the snapshot index.
  const progress = h.node(leader).status().progress.get(lagging);
  assert.equal(progress?.match, h.node(leader).log.snapshotIndex());
  assert.equal(progress?.state, 'replicate', 'a probe acknowledged at the match index should resume replication');
  h.propose(leader, 'after');
  h.deliverAll();
  assert.deepEqual(h.applied(lagging).slice(-1), ['after']);
});

test('snapshots stream: the follower hands the image out in order and keeps none of it; as leader it asks for one', () => {
  const h = new Harness({ seed: 13, raft: { snapshotChunkBytes: 16 } });
  const { leader, lagging } = lagBehindCompaction(h, 'image');
  h.tickUntil(() => h.applied(lagging).length === 8, 50);
  const image = h.node(leader).latestSnapshot()!;
  const chunks = h.member(lagging).readies.flatMap((r) => r.snapshotChunks);
  assert.ok(chunks.length >= Math.ceil(image.data.byteLength / 16), `${chunks.length} pieces`);
  let next = 0;
  for (const chunk of chunks) {
    assert.equal(chunk.offset, next, 'in order, each continuing the last');
    assert.equal(chunk.totalBytes, image.data.byteLength);
    assert.ok(chunk.data.byteLength <= 16);
    next += chunk.data.byteLength;
  }
  assert.equal(next, image.data.byteLength);
  const install = h.member(lagging).readies.find((r) => r.snapshot !== null)!;
  assert.deepEqual(install.snapshot, { meta: image.meta, totalBytes: image.data.byteLength });
  assert.equal(h.node(lagging).latestSnapshot(), null, 'the core kept none of the bytes');

  // As leader it has no image for a member behind its log: it asks the driver for one.
  h.elect(lagging);
  const behind = others(h, lagging).find((id) => id !== leader)!;
  h.isolate(behind);
  for (let i = 0; i < 4; i++) h.propose(lagging, `more-${i}`);
  h.deliverAll();
  h.compactWithoutImage(lagging);
  h.heal();
  h.tickUntil(() => h.node(lagging).snapshotWanted(), 10);
  h.offerImage(lagging);
  h.tickUntil(() => h.applied(behind).length === 12, 50);
});

test('snapshots stream: a chunk of a newer image is not handed out with the install of the one just completed', () => {
  const h = new Harness({ seed: 5 });
  const leader = h.elect();
  const follower = others(h, leader)[0]!;
  const raft = h.node(follower);
  const term = raft.currentTerm();
  const config = raft.log.configAt(raft.log.lastIndex());
  const committed = raft.log.committed;
  const chunk = (index: number, data: Uint8Array): Message => ({
    type: 'Snapshot', from: leader, to: follower, term, seq: 1, sentTick: 0,
    meta: { index, term, config }, offset: 0, totalBytes: data.byteLength, chunk: data,
  });
  // Both arrive before the member takes its next ready (it was busy with the previous one).
  raft.step(chunk(committed + 5, bytes('image A')));
  raft.step(chunk(committed + 9, bytes('image B, newer')));
  const ready = raft.ready();
  assert.deepEqual(ready.snapshot, { meta: { index: committed + 5, term, config }, totalBytes: 7 });
  assert.deepEqual(ready.snapshotChunks.map((c) => c.meta.index), [committed + 5], 'only the chunks of the image it installs');
  raft.advance(ready);
  // Sent again (the leader does when the transfer stalls), B is taken now.
  raft.step(chunk(committed + 9, bytes('image B, newer')));
  const next = raft.ready();
  assert.deepEqual(next.snapshotChunks.map((c) => c.meta.index), [committed + 9]);
  assert.equal(next.snapshot?.meta.index, committed + 9);
});

test('images on demand: compaction keeps no image; a follower behind it makes the leader ask for one, then gets it', () => {
  const h = new Harness({ seed: 13, raft: { snapshotChunkBytes: 16 } });
  const leader = h.elect();
  const lagging = others(h, leader)[0]!;
  h.isolate(lagging);
  for (let i = 0; i < 8; i++) h.propose(leader, `value-${i}`);
  h.deliverAll();
  h.compactWithoutImage(leader);
  assert.equal(h.node(leader).latestSnapshot(), null, 'no image is kept');
  assert.equal(h.node(leader).snapshotWanted(), false, 'nobody needs one yet');

  h.heal();
  h.tickUntil(() => h.node(leader).snapshotWanted(), 10);
  assert.equal(h.messages((m) => m.type === 'Snapshot').length, 0, 'nothing to send before the image');
  // The follower is probed while it waits, not left in replicate state with nothing to send.
  assert.equal(h.node(leader).status().progress.get(lagging)?.state, 'probe');

  const image = h.offerImage(leader);
  assert.equal(h.node(leader).snapshotWanted(), false, 'the offer answers the request');
  h.tickUntil(() => h.applied(lagging).length === 8, 50);
  const installs = h.member(lagging).readies.filter((r) => r.snapshot !== null);
  assert.equal(installs.length, 1);
  assert.equal(installs[0]!.snapshot!.meta.index, image.meta.index);
  h.propose(leader, 'after');
  h.tickAll(2);
  assert.deepEqual(h.applied(lagging).slice(-1), ['after']);
});

test('images on demand: a compaction while an image is sent keeps the entries after it, so the transfer completes', () => {
  const h = new Harness({ seed: 13, raft: { snapshotChunkBytes: 8 } });
  const { leader, lagging } = lagBehindCompaction(h, 'no-image');
  h.tickUntil(() => h.node(leader).snapshotWanted(), 10);
  const image = h.offerImage(leader);
  // The first chunk is lost; meanwhile the leader commits more and compacts past the image.
  for (let i = 8; i < 12; i++) h.propose(leader, `value-${i}`);
  h.deliverAll({ drop: (m) => m.to === lagging || m.from === lagging });
  assert.ok(h.member(leader).appliedIndex > image.meta.index);
  const firstKept = h.node(leader).compact(h.member(leader).appliedIndex, null);
  assert.ok(firstKept <= image.meta.index + 1, `the log keeps the entries after the image (kept from ${firstKept})`);
  assert.equal(h.node(leader).latestSnapshot()?.meta.index, image.meta.index, 'the image being sent is kept');
  h.tickUntil(() => h.applied(lagging).length === 12, 80);
  assert.equal(h.member(lagging).readies.filter((r) => r.snapshot !== null).length, 1, 'one image, not restarted');

  // The transfer is over: the next compaction lets both the image and the entries go.
  h.propose(leader, 'more');
  h.tickAll(2);
  const next = h.node(leader).compact(h.member(leader).appliedIndex, null);
  assert.equal(next, h.member(leader).appliedIndex + 1);
  assert.equal(h.node(leader).latestSnapshot(), null);
});

test('images on demand: a follower that does not answer neither asks for an image nor holds the log back', () => {
  const h = new Harness({ seed: 13, raft: { snapshotChunkBytes: 16, electionTicks: 10 } });
  const leader = h.elect();
  const [down, up] = others(h, leader) as [NodeId, NodeId];
  h.isolate(down);
  for (let i = 0; i < 8; i++) h.propose(leader, `value-${i}`);
  h.tickAll(12); // longer than an election timeout without an answer from `down`
  h.compactWithoutImage(leader);
  h.tickAll(5);
  assert.equal(h.node(leader).snapshotWanted(), false, 'no image for a member that does not answer');
  assert.equal(h.node(leader).currentRole(), 'leader');
  assert.deepEqual(h.applied(up).length, 8);
  // It is back: now it gets one.
  h.heal();
  h.tickUntil(() => h.node(leader).snapshotWanted(), 10);
  h.offerImage(leader);
  h.tickUntil(() => h.applied(down).length === 8, 50);
});

test('snapshots stream: several chunks leave before the first acknowledgement; a lost one is sent again after a stall', () => {
  const chunkBytes = 8;
  const h = new Harness({ seed: 13, raft: { snapshotChunkBytes: chunkBytes, snapshotChunksInflightMax: 3 } });
  const leader = h.elect();
  const lagging = others(h, leader)[0]!;
  h.isolate(lagging);
  for (let i = 0; i < 8; i++) h.propose(leader, `value-${i}`);
  h.deliverAll();
  const snapshot = h.compact(leader);
  assert.ok(snapshot.data.byteLength > 6 * chunkBytes, 'the image spans more than two windows');
  h.heal();
  // Rounds until the leader starts the transfer: its first burst is a whole window.
  let burst: SnapshotChunkMessage[] = [];
  for (let round = 0; round < 20 && burst.length === 0; round++) {
    h.tick(leader);
    h.flush();
    const pending = h.takePending();
    burst = pending.filter((m): m is SnapshotChunkMessage => m.type === 'Snapshot' && m.to === lagging);
    for (const m of pending) if (m.type !== 'Snapshot') h.deliver(m);
    h.flush();
    for (const m of h.takePending()) h.deliver(m);
  }
  assert.deepEqual(burst.map((m) => m.offset), [0, chunkBytes, 2 * chunkBytes], 'three chunks in flight at once');
  // The second chunk is lost: the follower holds the first and cannot take the third.
  h.deliver(burst[0]!);
  h.deliver(burst[2]!);
  h.flush();
  const answers = h.takePending();
  for (const m of answers) h.deliver(m);
  // Nothing is resent per answer; a stall rewinds to what the follower acknowledged.
  h.tickUntil(() => h.applied(lagging).length === 8, 50);
  const installs = h.member(lagging).installed;
  assert.equal(installs.length, 1);
  assert.deepEqual(installs[0]!.data, snapshot.data, 'the image arrived intact');
  // (The lost copy never reached the network's record: only the resend is in it.)
  const resent = h.messages((m) => m.type === 'Snapshot' && m.to === lagging && m.offset === chunkBytes);
  assert.equal(resent.length, 1, 'the lost chunk was sent again, once');
});

test('images on demand: a follower silent while it restores keeps the log after the image; one silent for good does not', () => {
  const h = new Harness({ seed: 13, raft: { snapshotChunkBytes: 8, electionTicks: 10 } });
  const { leader, lagging } = lagBehindCompaction(h, 'no-image');
  h.tickUntil(() => h.node(leader).snapshotWanted(), 10);
  const image = h.offerImage(leader);
  // The follower takes the chunks and installs, then says nothing for longer than an election
  // timeout (a large restore blocks it); meanwhile the leader commits more and compacts.
  const installed = (): boolean => h.member(lagging).readies.some((r) => r.snapshot !== null);
  const silent = { drop: (m: Message) => m.from === lagging && installed() };
  for (let i = 0; i < 15; i++) {
    h.propose(leader, `more-${i}`);
    h.tickAll(1, silent);
  }
  assert.equal(h.member(lagging).readies.filter((r) => r.snapshot !== null).length, 1, 'it installed the image');
  const firstKept = h.node(leader).compact(h.member(leader).appliedIndex, null);
  assert.ok(firstKept <= image.meta.index + 1, `the entries after the image stay (kept from ${firstKept})`);
  h.tickUntil(() => h.applied(lagging).length === 23, 60);
  assert.equal(h.member(lagging).readies.filter((r) => r.snapshot !== null).length, 1, 'no second image');

  // Another transfer to a follower that goes silent for good: the leader stops holding the log.
  const second = others(h, leader)[1]!;
  h.isolate(second);
  for (let i = 0; i < 5; i++) h.propose(leader, `late-${i}`);
  h.tickAll(12);
  h.compactWithoutImage(leader);
  h.heal();
  h.tickUntil(() => h.node(leader).snapshotWanted(), 10);
  h.offerImage(leader);
  h.isolate(second); // gone again, mid-transfer
  h.propose(leader, 'last');
  h.tickAll(20 * 10 + 5);
  const kept = h.node(leader).compact(h.member(leader).appliedIndex, null);
  assert.equal(kept, h.member(leader).appliedIndex + 1, 'nothing kept for a member silent past the hold');
  assert.equal(h.node(leader).latestSnapshot(), null, 'and its image is gone');
});

/** A follower (n2) booted with `entries` receives a one-chunk snapshot from n1. */
function installOnFollower(entries: readonly Entry[], metaIndex: number, metaTerm: number): { h: Harness; ready: Ready } {
  const h = new Harness({ ids: ['n2'], initialConfig: { voters: ['n1', 'n2', 'n3'], learners: [] } });
  const member = h.member('n2');
  member.disk.entries = [...entries];
  member.disk.hardState = { term: metaTerm, vote: null, commit: 0 };
  h.restart('n2');
  const data = bytes('[]');
  h.step('n2', {
    type: 'Snapshot', from: 'n1', to: 'n2', term: metaTerm, seq: 1, sentTick: 0,
    meta: { index: metaIndex, term: metaTerm, config: { voters: ['n1', 'n2', 'n3'], learners: [] } },
    offset: 0, totalBytes: data.byteLength, chunk: data,
  });
  h.flush();
  const ready = h.member('n2').readies.find((r) => r.snapshot !== null);
  assert.ok(ready !== undefined, 'the snapshot was installed');
  return { h, ready };
}

const entryOf = (index: number, term: number): Entry => ({ index, term, type: 'normal', data: bytes(`e${index}`) });

test('snapshots (Figure 13): a log holding the snapshot’s last entry keeps what follows it', () => {
  const entries = [1, 2, 3, 4, 5].map((i) => entryOf(i, 1));
  const { h, ready } = installOnFollower(entries, 3, 1);
  assert.equal(ready.logAfterSnapshot, 'keep');
  const log = h.node('n2').log;
  assert.equal(log.snapshotIndex(), 3);
  assert.equal(log.lastIndex(), 5);
  assert.equal(log.term(5), 1);
  assert.deepEqual(h.member('n2').disk.entries.map((e) => e.index), [4, 5]);
  const replies = h.takePending().filter((m) => m.type === 'SnapshotResp');
  assert.equal(replies.length, 1);
  assert.equal(replies[0]!.type === 'SnapshotResp' && replies[0]!.done, true);
});

test('snapshots (Figure 13): a divergent log is discarded', () => {
  const entries = [1, 2, 3, 4, 5].map((i) => entryOf(i, 1));
  const { h, ready } = installOnFollower(entries, 3, 2);
  assert.equal(ready.logAfterSnapshot, 'discard');
  const log = h.node('n2').log;
  assert.equal(log.snapshotIndex(), 3);
  assert.equal(log.lastIndex(), 3);
  assert.equal(log.lastTerm(), 2);
  assert.deepEqual(h.member('n2').disk.entries, []);
  // A short log that does not reach the snapshot is discarded too.
  const short = installOnFollower([entryOf(1, 1)], 3, 1);
  assert.equal(short.ready.logAfterSnapshot, 'discard');
  assert.equal(short.h.node('n2').log.lastIndex(), 3);
});

test('snapshots: a follower whose acknowledgements were lost keeps its log when the snapshot arrives', () => {
  const h = new Harness({ seed: 14, raft: { snapshotChunkBytes: 64 } });
  const leader = h.elect();
  const slow = others(h, leader)[0]!;
  // slow receives the entries but its replies are lost, and so is the news of their commit: the
  // leader thinks it lags behind the snapshot, while its log holds the snapshot's last entry.
  const lostReplies = (m: Message): boolean =>
    (m.from === slow && (m.type === 'AppendResp' || m.type === 'HeartbeatResp')) ||
    (m.to === slow && isAppend(m) && m.entries.length === 0);
  for (let i = 0; i < 6; i++) h.propose(leader, `v${i}`);
  h.deliverAll({ drop: lostReplies });
  assert.equal(h.node(slow).log.lastIndex(), h.node(leader).log.lastIndex());
  assert.ok(h.node(slow).log.committed < h.node(leader).log.committed);
  const snapshot = h.compact(leader);
  h.tickUntil(() => h.member(slow).readies.some((r) => r.snapshot !== null), 20, { drop: lostReplies });
  const install = h.member(slow).readies.find((r) => r.snapshot !== null)!;
  assert.equal(install.snapshot!.meta.index, snapshot.meta.index);
  assert.equal(install.logAfterSnapshot, 'keep');
  h.tickAll(5);
  assert.deepEqual(h.applied(slow), h.applied(leader));
});

// ---------------------------------------------------------------- membership

test('membership: a learner receives entries but never votes or campaigns; promote and remove', () => {
  const h = new Harness({ seed: 15 });
  const leader = h.elect();
  h.propose(leader, 'before-join');
  h.deliverAll();
  h.addNode('n4');
  assert.equal(h.node(leader).proposeConfigChange({ kind: 'add-learner', id: 'n4' }).kind, 'accepted');
  h.tickAll(5);
  assert.deepEqual(h.node(leader).status().config, { voters: ['n1', 'n2', 'n3'], learners: ['n4'] });
  assert.deepEqual(h.node('n4').status().config, { voters: ['n1', 'n2', 'n3'], learners: ['n4'] });
  h.propose(leader, 'after-join');
  h.deliverAll();
  assert.deepEqual(h.applied('n4'), ['before-join', 'after-join']);

  // Cut off from everyone, the learner never campaigns.
  h.isolate('n4');
  h.tick('n4', 10 * h.node('n4').electionTicks);
  h.flush();
  assert.equal(h.node('n4').currentRole(), 'follower');
  assert.ok(!h.takePending().some((m) => m.type === 'PreVote' || m.type === 'Vote'), 'a learner campaigned');
  h.heal();
  h.tickAll(3);

  // An election among the voters never asks the learner.
  h.isolate(leader);
  h.tickUntil(() => h.leader() !== null && h.leader() !== leader, 10 * h.node(leader).electionTicks);
  assert.equal(h.messages((m) => (m.type === 'PreVote' || m.type === 'Vote') && m.to === 'n4').length, 0);
  assert.equal(h.messages((m) => (m.type === 'PreVoteResp' || m.type === 'VoteResp') && m.from === 'n4').length, 0);
  h.heal();
  const next = h.mustLeader();
  h.tickAll(3);

  // Promote it: it now counts as a voter everywhere.
  assert.equal(h.node(next).proposeConfigChange({ kind: 'promote', id: 'n4' }).kind, 'accepted');
  h.tickAll(3);
  for (const id of h.ids()) assert.deepEqual(h.node(id).status().config, { voters: ['n1', 'n2', 'n3', 'n4'], learners: [] }, id);
  assert.equal(h.node(next).status().progress.get('n4')?.voter, true);

  // Remove a voter that is not the leader.
  const victim = others(h, next).find((id) => id !== 'n4')!;
  assert.equal(h.node(next).proposeConfigChange({ kind: 'remove', id: victim }).kind, 'accepted');
  h.tickAll(3);
  const remaining = ['n1', 'n2', 'n3', 'n4'].filter((id) => id !== victim);
  assert.deepEqual(h.node(next).status().config.voters, remaining);
  assert.equal(h.node(next).status().progress.has(victim), false);
  h.propose(next, 'after-remove');
  h.deliverAll();
  assert.ok(h.applied('n4').includes('after-remove'));
  assert.ok(!h.applied(victim).includes('after-remove'), 'a removed member still gets entries');
});

test('membership: a learner that joins after compaction starts from the snapshot', () => {
  const h = new Harness({ seed: 26, raft: { snapshotChunkBytes: 32 } });
  const leader = h.elect();
  for (let i = 0; i < 5; i++) h.propose(leader, `old-${i}`);
  h.deliverAll();
  const snapshot = h.compact(leader);
  h.addNode('n4');
  assert.equal(h.node(leader).proposeConfigChange({ kind: 'add-learner', id: 'n4' }).kind, 'accepted');
  h.propose(leader, 'new');
  h.tickAll(5);
  const installs = h.member('n4').readies.filter((r) => r.snapshot !== null);
  assert.equal(installs.length, 1);
  assert.equal(installs[0]!.snapshot!.meta.index, snapshot.meta.index);
  assert.ok(h.messages((m) => m.type === 'Snapshot' && m.to === 'n4').length >= Math.ceil(snapshot.data.byteLength / 32));
  assert.deepEqual(h.applied('n4'), ['old-0', 'old-1', 'old-2', 'old-3', 'old-4', 'new']);
  assert.deepEqual(h.node('n4').status().config, { voters: ['n1', 'n2', 'n3'], learners: ['n4'] });
});

test('membership: one change at a time; invalid changes are dropped', () => {
  const h = new Harness({ seed: 16 });
  const leader = h.elect();
  const raft = h.node(leader);
  assert.deepEqual(raft.proposeConfigChange({ kind: 'add-voter', id: 'n1' }), { kind: 'dropped', reason: 'invalid-config' });
  assert.deepEqual(raft.proposeConfigChange({ kind: 'promote', id: 'n2' }), { kind: 'dropped', reason: 'invalid-config' });
  assert.deepEqual(raft.proposeConfigChange({ kind: 'remove', id: 'n9' }), { kind: 'dropped', reason: 'invalid-config' });
  assert.deepEqual(raft.proposeConfigChange({ kind: 'promote', id: 'n9' }), { kind: 'dropped', reason: 'invalid-config' });

  h.addNode('n4');
  h.addNode('n5');
  assert.equal(raft.proposeConfigChange({ kind: 'add-learner', id: 'n4' }).kind, 'accepted');
  assert.deepEqual(raft.proposeConfigChange({ kind: 'add-learner', id: 'n5' }), { kind: 'dropped', reason: 'config-change-pending' });
  assert.deepEqual(raft.proposeConfigChange({ kind: 'add-learner', id: 'n4' }), { kind: 'dropped', reason: 'config-change-pending' });
  h.deliverAll();
  assert.deepEqual(raft.proposeConfigChange({ kind: 'add-learner', id: 'n4' }), { kind: 'dropped', reason: 'invalid-config' });
  assert.equal(raft.proposeConfigChange({ kind: 'add-learner', id: 'n5' }).kind, 'accepted');
  h.deliverAll();
  assert.deepEqual(raft.status().config.learners, ['n4', 'n5']);
  // Followers cannot change the membership.
  assert.equal(h.node(others(h, leader)[0]!).proposeConfigChange({ kind: 'remove', id: 'n5' }).kind, 'not-leader');

  // A new leader changes nothing before an entry of its own term has committed.
  const target = others(h, leader).find((id) => h.node(leader).status().config.voters.includes(id))!;
  const noAppends = (m: Message): boolean => m.from === target && m.type === 'Append';
  h.node(leader).transferLeadership(target);
  h.deliverAll({ drop: noAppends });
  assert.equal(h.leader(), target);
  assert.deepEqual(h.node(target).proposeConfigChange({ kind: 'remove', id: 'n5' }), { kind: 'dropped', reason: 'config-change-pending' });
  h.tickAll(3);
  assert.equal(h.node(target).proposeConfigChange({ kind: 'remove', id: 'n5' }).kind, 'accepted');
});

test('membership: the last voter cannot be removed', () => {
  const h = new Harness({ ids: ['solo'] });
  const leader = h.elect();
  assert.equal(leader, 'solo');
  assert.deepEqual(h.node(leader).proposeConfigChange({ kind: 'remove', id: 'solo' }), { kind: 'dropped', reason: 'invalid-config' });
  assert.equal(h.propose(leader, 'alone').kind, 'accepted');
  h.deliverAll();
  assert.deepEqual(h.applied('solo'), ['alone']);
});

test('membership: a leader that removes itself steps down once the change commits', () => {
  const h = new Harness({ seed: 17 });
  const leader = h.elect();
  h.isolate(others(h, leader)[0]!);
  h.isolate(others(h, leader)[1]!);
  assert.equal(h.node(leader).proposeConfigChange({ kind: 'remove', id: leader }).kind, 'accepted');
  h.deliverAll();
  assert.equal(h.node(leader).currentRole(), 'leader', 'stepped down before the removal committed');
  h.heal();
  h.tickUntil(() => h.node(leader).currentRole() !== 'leader', 20);
  const status = h.node(leader).status();
  assert.equal(status.lastLeaderChangeReason, 'removed');
  assert.ok(!status.config.voters.includes(leader));
  const term = status.term;

  const rest = others(h, leader);
  h.tickUntil(() => h.leader() !== null, 10 * h.node(leader).electionTicks);
  assert.ok(rest.includes(h.mustLeader()));
  h.tickAll(5 * h.node(leader).electionTicks);
  assert.equal(h.node(leader).currentRole(), 'follower');
  assert.equal(h.messages((m) => (m.type === 'PreVote' || m.type === 'Vote') && m.from === leader && m.term > term).length, 0);
});

// ---------------------------------------------------------------- leadership transfer

test('leadership transfer: the target takes over in the next term once caught up; non-voters are refused', () => {
  const h = new Harness({ seed: 18 });
  const leader = h.elect();
  const term = h.node(leader).currentTerm();
  const target = others(h, leader)[0]!;
  h.isolate(target);
  for (let i = 0; i < 5; i++) h.propose(leader, `w${i}`);
  h.deliverAll();
  h.heal();

  let caughtUpAtTimeoutNow: boolean | null = null;
  const watch = (m: Message): boolean => {
    if (m.type === 'TimeoutNow') caughtUpAtTimeoutNow = h.node(target).log.lastIndex() === h.node(leader).log.lastIndex();
    return false;
  };
  assert.deepEqual(h.node(leader).transferLeadership(target), { ok: true });
  assert.equal(h.node(leader).status().transferee, target);
  h.deliverAll({ drop: watch });
  h.tickUntil(() => h.leader() === target, 20, { drop: watch });
  assert.equal(caughtUpAtTimeoutNow, true);
  assert.equal(h.node(target).currentTerm(), term + 1);
  assert.equal(h.node(target).status().lastLeaderChangeReason, 'transfer');
  assert.equal(h.node(leader).currentRole(), 'follower');
  assert.equal(h.node(leader).currentLeader(), target);
  h.tickAll(2);
  for (const id of h.ids()) assert.deepEqual(h.applied(id), ['w0', 'w1', 'w2', 'w3', 'w4']);

  h.addNode('n4');
  assert.equal(h.node(target).proposeConfigChange({ kind: 'add-learner', id: 'n4' }).kind, 'accepted');
  h.tickAll(3);
  assert.deepEqual(h.node(target).transferLeadership('n4'), { ok: false, reason: 'not-a-voter' });
  assert.deepEqual(h.node(target).transferLeadership('n9'), { ok: false, reason: 'not-a-voter' });
  assert.deepEqual(h.node(target).transferLeadership(target), { ok: false, reason: 'already-leader' });
  assert.deepEqual(h.node(leader).transferLeadership(target), { ok: false, reason: 'not-leader' });
  assert.equal(h.node(target).status().transferee, null);
});

// ---------------------------------------------------------------- ReadIndex

test('ReadIndex: a leader read is confirmed by a quorum heartbeat round, not before; reads share a round', () => {
  const h = new Harness({ seed: 19 });
  const leader = h.elect();
  const [f1, f2] = others(h, leader) as [NodeId, NodeId];
  h.propose(leader, 'x');
  h.deliverAll();
  const commit = h.node(leader).status().commitIndex;

  h.isolate(f1);
  h.isolate(f2);
  for (const readId of ['r1', 'r2', 'r3', 'r4']) h.node(leader).readIndex(readId);
  h.flush();
  const round = h.takePending().filter((m) => m.type === 'Heartbeat');
  assert.equal(round.filter((m) => m.to === f1).length, 1, 'one heartbeat round for all reads');
  assert.equal(round.filter((m) => m.to === f2).length, 1, 'one heartbeat round for all reads');
  for (const m of round) h.deliver(m);
  h.deliverAll();
  assert.deepEqual(h.member(leader).readStates, [], 'read confirmed without a quorum');

  // One acknowledgement (of two followers) completes the quorum.
  h.heal();
  const deliverOnly = (m: Message): boolean => m.from === f2 || m.to === f2;
  for (const m of round) h.deliver(m, { drop: deliverOnly });
  h.deliverAll({ drop: deliverOnly });
  assert.deepEqual(
    h.member(leader).readStates,
    ['r1', 'r2', 'r3', 'r4'].map((readId) => ({ readId, index: commit })),
  );
});

test('ReadIndex: in five members one acknowledgement is not a quorum, and acks of earlier heartbeats do not count', () => {
  const h = new Harness({ ids: ['n1', 'n2', 'n3', 'n4', 'n5'], seed: 27 });
  const leader = h.elect();
  const [, b, c, d] = others(h, leader) as [NodeId, NodeId, NodeId, NodeId];
  h.propose(leader, 'x');
  h.deliverAll();
  const commit = h.node(leader).log.committed;

  // A heartbeat round leaves before the read is registered; its acks must not confirm the read.
  h.tick(leader);
  h.flush();
  const earlier = h.takePending();
  assert.ok(earlier.some((m) => m.type === 'Heartbeat'));
  h.node(leader).readIndex('r');
  h.flush();
  const ownRound = h.takePending();
  for (const m of earlier) h.deliver(m);
  h.deliverAll();
  assert.deepEqual(h.member(leader).readStates, [], 'confirmed by acknowledgements of an earlier round');

  // Its own round: with only one of four followers (the first) answering, still no quorum.
  const onlyA = (m: Message): boolean => [b, c, d].includes(m.from) || [b, c, d].includes(m.to);
  for (const m of ownRound) h.deliver(m, { drop: onlyA });
  h.deliverAll({ drop: onlyA });
  assert.deepEqual(h.member(leader).readStates, [], 'confirmed by two of five');
  // A second answer makes three of five.
  const alsoB = (m: Message): boolean => [c, d].includes(m.from) || [c, d].includes(m.to);
  for (const m of ownRound) if (m.to === b) h.deliver(m, { drop: alsoB });
  h.deliverAll({ drop: alsoB });
  assert.deepEqual(h.member(leader).readStates, [{ readId: 'r', index: commit }]);
});

test('ReadIndex: a read on a follower is forwarded to the leader and answered', () => {
  const h = new Harness({ seed: 20 });
  const leader = h.elect();
  const follower = others(h, leader)[0]!;
  h.propose(leader, 'x');
  h.deliverAll();
  h.node(follower).readIndex('f1');
  h.deliverAll();
  assert.equal(h.messages((m) => m.type === 'ReadIndex' && m.from === follower && m.to === leader).length, 1);
  assert.deepEqual(h.member(follower).readStates, [{ readId: 'f1', index: h.node(leader).status().commitIndex }]);
  assert.deepEqual(h.member(leader).readStates, []);
});

test('ReadIndex: a new leader holds reads until its no-op commits', () => {
  const h = new Harness({ seed: 21 });
  const leader = h.elect();
  h.propose(leader, 'x');
  h.deliverAll();
  const target = others(h, leader)[0]!;
  const noAppends = (m: Message): boolean => m.from === target && m.type === 'Append';
  h.node(leader).transferLeadership(target);
  h.deliverAll({ drop: noAppends });
  assert.equal(h.leader(), target);
  const raft = h.node(target);
  const noopIndex = raft.log.lastIndex();
  assert.equal(raft.log.entry(noopIndex)?.type, 'noop');

  raft.readIndex('early');
  h.tickAll(3, { drop: noAppends });
  assert.ok(h.messages((m) => m.type === 'HeartbeatResp' && m.to === target).length > 0, 'heartbeats were acknowledged');
  assert.ok(raft.status().commitIndex < noopIndex);
  assert.deepEqual(h.member(target).readStates, [], 'read served before the no-op committed');

  h.tickUntil(() => h.member(target).readStates.length > 0, 20);
  assert.equal(h.member(target).readStates[0]!.readId, 'early');
  assert.ok(h.member(target).readStates[0]!.index >= noopIndex);
});

test('ReadIndex: an isolated leader fails its pending reads when it steps down', () => {
  const h = new Harness({ seed: 22 });
  const leader = h.elect();
  const follower = others(h, leader)[0]!;
  h.isolate(leader);
  h.node(leader).readIndex('lost');
  h.tickUntil(() => h.node(leader).currentRole() !== 'leader', 2 * h.node(leader).electionTicks);
  h.flush();
  assert.deepEqual(h.member(leader).readStates, []);
  assert.deepEqual(h.member(leader).readFailures.map((f) => [f.readId, f.reason]), [['lost', 'stepped-down']]);

  // A read forwarded by a follower whose leader then changes fails as not-leader.
  h.heal();
  h.tickUntil(() => h.leader() !== null && h.node(follower).currentLeader() === h.leader(), 50);
  const current = h.mustLeader();
  const asker = others(h, current)[0]!;
  h.isolate(current);
  h.node(asker).readIndex('orphan');
  h.tickUntil(() => h.member(asker).readFailures.length > 0, 5 * h.node(asker).electionTicks);
  assert.deepEqual(h.member(asker).readFailures.map((f) => [f.readId, f.reason]), [['orphan', 'not-leader']]);
  assert.deepEqual(h.member(asker).readStates, []);
});

// ---------------------------------------------------------------- restart

test('restart: a member rebuilt from its disk keeps term, vote and log, and does not vote twice', () => {
  const h = new Harness({ seed: 23, raft: { preVote: false, checkQuorum: false } });
  h.campaign('n1');
  h.deliverAll({ drop: (m) => m.to === 'n2' });
  assert.equal(h.leader(), 'n1');
  const voter = 'n3';
  assert.deepEqual([h.node(voter).currentTerm(), h.node(voter).status().vote], [1, 'n1']);
  h.heal();
  h.propose('n1', 'a');
  h.propose('n1', 'b');
  h.deliverAll();
  const before = h.node(voter).status();

  h.crash(voter);
  h.restart(voter);
  const after = h.node(voter).status();
  assert.equal(after.term, before.term);
  assert.equal(after.vote, 'n1');
  assert.equal(after.lastIndex, before.lastIndex);
  assert.equal(after.commitIndex, before.commitIndex);
  // Committed entries are applied again by the rebuilt state machine.
  h.flush();
  assert.deepEqual(h.applied(voter), ['a', 'b']);

  // A different candidate of the same term asks: refused, even with a better log.
  h.step(voter, voteRequest('n2', voter, before.term, before.lastIndex + 10, before.term));
  h.flush();
  const replies = h.takePending().filter((m) => m.type === 'VoteResp' && m.to === 'n2');
  assert.deepEqual(replies.map((m) => m.type === 'VoteResp' && m.granted), [false]);
  assert.equal(h.node(voter).status().vote, 'n1');

  // Contrast: a member that lost its hard state would have granted it.
  const amnesiac = new Raft({ id: voter, random: new Prng(1), preVote: false, checkQuorum: false }, {
    initialConfig: { voters: ['n1', 'n2', 'n3'], learners: [] },
    entries: h.member(voter).disk.entries,
  });
  amnesiac.step(voteRequest('n2', voter, before.term, before.lastIndex + 10, before.term));
  const ready = amnesiac.ready();
  assert.deepEqual(ready.messages.map((m) => m.type === 'VoteResp' && m.granted), [true]);
});

test('restart: a member rebuilt from a snapshot and later entries recovers its state', () => {
  const h = new Harness({ seed: 24 });
  const leader = h.elect();
  const follower = others(h, leader)[0]!;
  for (let i = 0; i < 4; i++) h.propose(leader, `s${i}`);
  h.deliverAll();
  h.compact(follower);
  for (let i = 0; i < 3; i++) h.propose(leader, `t${i}`);
  h.deliverAll();
  const before = h.node(follower).status();
  h.crash(follower);
  h.restart(follower);
  const after = h.node(follower).status();
  assert.equal(after.snapshotIndex, before.snapshotIndex);
  assert.ok(after.snapshotIndex > 0);
  assert.equal(after.lastIndex, before.lastIndex);
  assert.equal(after.term, before.term);
  h.tickAll(3);
  assert.deepEqual(h.applied(follower), ['s0', 's1', 's2', 's3', 't0', 't1', 't2']);
});

// ---------------------------------------------------------------- transcript format

const sampleMeta = { index: 7, term: 2, config: { voters: ['n1', 'n2'], learners: ['n3'] } };
const sampleEntries: Entry[] = [
  { index: 5, term: 2, type: 'noop' },
  { index: 6, term: 2, type: 'config', config: { voters: ['n1', 'n2'], learners: ['n3'] } },
  { index: 7, term: 2, type: 'normal', data: bytes('line one\nline two') },
];
const lc = { seq: 4, sentTick: 17 };
const sampleMessages: Record<MessageType, Message> = {
  PreVote: { type: 'PreVote', from: 'n1', to: 'n2', term: 3, lastIndex: 7, lastTerm: 2 },
  Vote: { type: 'Vote', from: 'n1', to: 'n2', term: 3, lastIndex: 7, lastTerm: 2, transfer: true },
  PreVoteResp: { type: 'PreVoteResp', from: 'n2', to: 'n1', term: 3, granted: true },
  VoteResp: { type: 'VoteResp', from: 'n2', to: 'n1', term: 3, granted: false },
  Append: { type: 'Append', from: 'n1', to: 'n2', term: 3, ...lc, prevIndex: 4, prevTerm: 1, entries: sampleEntries, commit: 4 },
  AppendResp: { type: 'AppendResp', from: 'n2', to: 'n1', term: 3, ...lc, reject: true, index: 4, conflictTerm: 1, conflictIndex: 2, applied: 3 },
  Heartbeat: { type: 'Heartbeat', from: 'n1', to: 'n2', term: 3, ...lc, commit: 4, leaderCommit: 6 },
  HeartbeatResp: { type: 'HeartbeatResp', from: 'n2', to: 'n1', term: 3, ...lc, applied: 3 },
  Snapshot: { type: 'Snapshot', from: 'n1', to: 'n2', term: 3, ...lc, meta: sampleMeta, offset: 16, totalBytes: 40, chunk: bytes('chunk\nwith newline') },
  SnapshotResp: { type: 'SnapshotResp', from: 'n2', to: 'n1', term: 3, ...lc, snapshotIndex: 7, nextOffset: 40, done: true, reject: false },
  TimeoutNow: { type: 'TimeoutNow', from: 'n1', to: 'n2', term: 3 },
  ReadIndex: { type: 'ReadIndex', from: 'n2', to: 'n1', term: 3, readId: 'r-1' },
  ReadIndexResp: { type: 'ReadIndexResp', from: 'n1', to: 'n2', term: 3, readId: 'r-1', index: 7 },
};

test('describeMessage: deterministic, single-line, and naming the type for every message type', () => {
  const seen = new Set<string>();
  for (const [type, m] of Object.entries(sampleMessages)) {
    const line = describeMessage(m);
    assert.ok(!/[\r\n]/.test(line), `${type}: ${JSON.stringify(line)}`);
    assert.ok(line.startsWith(`${m.from}->${m.to} ${type} term=${m.term}`), line);
    assert.equal(describeMessage(structuredClone(m)), line, `${type} is not deterministic`);
    seen.add(line);
  }
  assert.equal(seen.size, Object.keys(sampleMessages).length);
  // Long batches stay one short line.
  const many = Array.from({ length: 1000 }, (_, i): Entry => ({ index: i + 1, term: 1, type: 'normal', data: bytes('x') }));
  const line = describeMessage({ ...(sampleMessages.Append as AppendMessage), entries: many });
  assert.ok(line.length < 200, line);
});

test('describeReady: deterministic and single-line; every line of a real transcript is one line', () => {
  const ready: Ready = {
    hardState: { term: 3, vote: 'n1', commit: 4 },
    hardStateMustSync: true,
    entries: sampleEntries,
    snapshotChunks: [{ meta: sampleMeta, offset: 0, totalBytes: 3, data: bytes('a\nb') }],
    snapshot: { meta: sampleMeta, totalBytes: 3 },
    logAfterSnapshot: 'keep',
    messagesBeforePersist: [sampleMessages.Append],
    messages: [sampleMessages.VoteResp, sampleMessages.HeartbeatResp],
    committedEntries: sampleEntries,
    readStates: [{ readId: 'r1', index: 4 }],
    readFailures: [{ readId: 'r2', reason: 'stepped-down', leaderId: null }],
  };
  const line = describeReady(ready);
  assert.equal(describeReady(structuredClone(ready)), line);
  assert.ok(!/[\r\n]/.test(line), JSON.stringify(line));
  const empty: Ready = { ...ready, hardState: null, entries: [], snapshot: null, messagesBeforePersist: [], messages: [], committedEntries: [], readStates: [], readFailures: [] };
  assert.equal(describeReady(empty), 'ready{}');

  const run = (): string[] => {
    const h = new Harness({ seed: 25, raft: { snapshotChunkBytes: 8 } });
    const leader = h.elect();
    const lagging = others(h, leader)[0]!;
    h.isolate(lagging);
    for (let i = 0; i < 5; i++) h.propose(leader, `multi\nline ${i}`);
    h.deliverAll();
    h.compact(leader);
    h.heal();
    h.tickAll(10);
    h.node(lagging).readIndex('rx');
    h.deliverAll();
    return h.log;
  };
  const first = run();
  assert.deepEqual(run(), first, 'the same seed gives the same transcript');
  assert.ok(first.some((l) => l.includes(' Snapshot ')));
  for (const l of first) assert.ok(!/[\r\n]/.test(l), JSON.stringify(l));
});
