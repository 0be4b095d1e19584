// The receiver rules of Raft Figure 2, one named scenario each, on the real core: AppendEntries
// rules 1-5, RequestVote rules 1-2 and the rules for all servers (the term rule and applying
// what is committed). Most scenarios boot one member from a hand-made disk and step hand-made
// messages into it, so that each rule is met head-on, including by messages this core's own
// leader never sends but another correct leader may (Raft's heartbeat is an empty append at
// nextIndex - 1; a leader may back off one entry at a time): the follower must be safe anyway.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type {
  AppendMessage,
  AppendResponseMessage,
  Entry,
  HardState,
  HeartbeatMessage,
  Message,
  NodeId,
  VoteResponseMessage,
} from '../../src/core/raft/types.ts';
import { Harness, bytes } from './harness.ts';

const voters = ['n1', 'n2', 'n3'];

function entry(index: number, term: number): Entry {
  return { index, term, type: 'normal', data: bytes(`${index}/${term}`) };
}

/** Entries at 1, 2, 3, ... with the given terms. */
function entriesOf(terms: readonly number[]): Entry[] {
  return terms.map((term, i) => entry(i + 1, term));
}

/**
 * n2 alone, booted from a disk that holds entries of the given terms and this hard state; n1
 * and n3 exist only in its configuration, so every message it gets is the test's. No
 * check-quorum: a vote request is answered on its merits, never ignored for a leader lease.
 */
function follower(terms: readonly number[], hardState: HardState): Harness {
  const h = new Harness({ ids: ['n2'], initialConfig: { voters, learners: [] }, raft: { checkQuorum: false, preVote: false } });
  const member = h.member('n2');
  member.disk.entries = entriesOf(terms);
  member.disk.hardState = hardState;
  h.restart('n2');
  return h;
}

function append(term: number, prevIndex: number, prevTerm: number, entries: readonly Entry[], commit: number, from: NodeId = 'n1'): AppendMessage {
  return { type: 'Append', from, to: 'n2', term, seq: 0, sentTick: 0, prevIndex, prevTerm, entries, commit };
}

/** Steps `m` into n2, runs its readies, and returns what it sent. */
function deliver(h: Harness, m: Message): Message[] {
  h.step('n2', m);
  h.flush();
  return h.takePending();
}

function appendReplies(sent: readonly Message[]): AppendResponseMessage[] {
  return sent.filter((m): m is AppendResponseMessage => m.type === 'AppendResp');
}

function onlyAppendReply(sent: readonly Message[]): AppendResponseMessage {
  const replies = appendReplies(sent);
  assert.equal(replies.length, 1, `one append reply, got ${replies.length}`);
  return replies[0]!;
}

function onlyVoteReply(sent: readonly Message[]): VoteResponseMessage {
  const replies = sent.filter((m): m is VoteResponseMessage => m.type === 'VoteResp');
  assert.equal(replies.length, 1, `one vote reply, got ${replies.length}`);
  return replies[0]!;
}

function termsIn(h: Harness, id: NodeId): number[] {
  const log = h.node(id).log;
  const out: number[] = [];
  for (let i = log.firstIndex(); i <= log.lastIndex(); i++) out.push(log.term(i)!);
  return out;
}

/** What n2's state machine applied, as index/term of each entry. */
function appliedOf(h: Harness): string[] {
  return h.applied('n2');
}

// ---------------------------------------------------------------- AppendEntries

test('AppendEntries rule 1: an append of an older term is refused, with the receiver’s term, and changes nothing', () => {
  const h = follower([1, 1, 2], { term: 3, vote: null, commit: 1 });
  const sent = deliver(h, append(2, 2, 1, [entry(3, 2), entry(4, 2)], 4, 'n3'));
  const reply = onlyAppendReply(sent);
  assert.equal(reply.reject, true);
  assert.equal(reply.term, 3, 'the reply teaches the stale leader the current term');
  const raft = h.node('n2');
  assert.deepEqual(termsIn(h, 'n2'), [1, 1, 2]);
  assert.equal(raft.log.committed, 1);
  assert.equal(raft.currentTerm(), 3);
  assert.equal(raft.currentLeader(), null, 'a stale leader is not recognised');
});

test('AppendEntries rule 2: refused when the log holds no entry at prevIndex whose term is prevTerm', () => {
  const h = follower([1, 1, 2, 2], { term: 3, vote: null, commit: 1 });
  // prevIndex beyond the log: the hint says where the log ends.
  const beyond = onlyAppendReply(deliver(h, append(3, 6, 3, [entry(7, 3)], 6)));
  assert.deepEqual([beyond.reject, beyond.index, beyond.conflictTerm, beyond.conflictIndex], [true, 6, 0, 5]);
  // An entry at prevIndex of another term: the hint names that term and where it starts.
  const other = onlyAppendReply(deliver(h, append(3, 4, 3, [entry(5, 3)], 6)));
  assert.deepEqual([other.reject, other.index, other.conflictTerm, other.conflictIndex], [true, 4, 2, 3]);
  assert.deepEqual(termsIn(h, 'n2'), [1, 1, 2, 2], 'a refused append changes no entry');
  assert.equal(h.node('n2').log.committed, 1, 'nor the commit index');
  assert.equal(h.node('n2').currentLeader(), 'n1', 'the leader of the current term is recognised all the same');
});

test('AppendEntries rule 3: a conflicting entry is deleted with every entry after it', () => {
  // 3/2, 4/2 and 5/2 came from a deposed leader; the term-3 leader holds 3/2 and then 4/3.
  const h = follower([1, 1, 2, 2, 2], { term: 3, vote: null, commit: 2 });
  const reply = onlyAppendReply(deliver(h, append(3, 2, 1, [entry(3, 2), entry(4, 3)], 2)));
  assert.deepEqual([reply.reject, reply.index], [false, 4]);
  assert.deepEqual(termsIn(h, 'n2'), [1, 1, 2, 3], '5/2 goes too, though the append does not reach index 5');
  // The driver is told to overwrite from the conflict on, and the disk holds no stale entry.
  const ready = h.member('n2').readies.at(-1)!;
  assert.deepEqual(ready.entries.map((e) => `${e.index}/${e.term}`), ['4/3']);
  assert.deepEqual(h.member('n2').disk.entries.map((e) => `${e.index}/${e.term}`), ['1/1', '2/1', '3/2', '4/3']);
});

test('AppendEntries rule 4: new entries are appended; entries already held stay, and a shorter late append truncates nothing', () => {
  const h = follower([1, 1], { term: 3, vote: null, commit: 2 });
  const first = onlyAppendReply(deliver(h, append(3, 2, 1, [entry(3, 3), entry(4, 3)], 2)));
  assert.deepEqual([first.reject, first.index], [false, 4]);
  const second = onlyAppendReply(deliver(h, append(3, 4, 3, [entry(5, 3)], 2)));
  assert.deepEqual([second.reject, second.index], [false, 5]);
  assert.deepEqual(termsIn(h, 'n2'), [1, 1, 3, 3, 3]);
  // The first append again, late: its entries are held already, and what follows them matches
  // the leader too, so nothing is rewritten or cut (the reply claims only what it proved).
  const readies = h.member('n2').readies.length;
  const late = onlyAppendReply(deliver(h, append(3, 2, 1, [entry(3, 3), entry(4, 3)], 2)));
  assert.deepEqual([late.reject, late.index], [false, 4]);
  assert.deepEqual(termsIn(h, 'n2'), [1, 1, 3, 3, 3]);
  assert.ok(h.member('n2').readies.slice(readies).every((r) => r.entries.length === 0), 'no entry handed out again');
  assert.equal(h.member('n2').disk.entries.length, 5);
});

// Rule 5: if leaderCommit > commitIndex, commitIndex = min(leaderCommit, index of last new entry).
// The scenarios below share one shape: n2 holds 3/2 (which the term-3 leader holds too) and a
// longer stale tail 4/2, 5/2 from the deposed term-2 leader; the term-3 leader's log is
// 1/1 2/1 3/2 4/3 5/3 6/3, all committed. Committing "up to leaderCommit" or "up to my last
// index" would commit and apply 4/2 and 5/2, which no other member ever applies.
const staleTail = [1, 1, 2, 2, 2];
const leaderLog = entriesOf([1, 1, 2, 3, 3, 3]);

test('AppendEntries rule 5: a follower with a longer stale tail commits only up to the append’s last entry while the next append is delayed', () => {
  const h = follower(staleTail, { term: 3, vote: null, commit: 1 });
  // The leader (one entry per append) sent 3/2 and then 4/3, both carrying its commit index 6;
  // the second is delayed, so the first arrives alone.
  const delayed = append(3, 3, 2, [leaderLog[3]!], 6);
  const reply = onlyAppendReply(deliver(h, append(3, 2, 1, [leaderLog[2]!], 6)));
  assert.deepEqual([reply.reject, reply.index], [false, 3]);
  const raft = h.node('n2');
  assert.equal(raft.log.committed, 3, 'min(leaderCommit 6, last new entry 3), not the stale last index 5');
  assert.deepEqual(termsIn(h, 'n2'), staleTail, 'the unproven tail stays until an entry contradicts it');
  assert.deepEqual(appliedOf(h), ['1/1', '2/1', '3/2']);
  // The delayed append arrives: the tail is replaced, and commit follows the new last entry.
  deliver(h, delayed);
  assert.equal(raft.log.committed, 4);
  assert.deepEqual(termsIn(h, 'n2'), [1, 1, 2, 3]);
  deliver(h, append(3, 4, 3, leaderLog.slice(4), 6));
  assert.equal(raft.log.committed, 6);
  assert.deepEqual(appliedOf(h), ['1/1', '2/1', '3/2', '4/3', '5/3', '6/3']);
});

test('AppendEntries rule 5: a duplicated append whose entries are all held already commits no further than its last entry', () => {
  const h = follower(staleTail, { term: 3, vote: null, commit: 1 });
  // 3/2 is held already: the append adds nothing, yet its last entry (3), not the log's last
  // index (5), bounds the commit. The network delivers it twice.
  const dup = append(3, 2, 1, [leaderLog[2]!], 6);
  for (let copy = 1; copy <= 2; copy++) {
    const reply = onlyAppendReply(deliver(h, dup));
    assert.deepEqual([reply.reject, reply.index], [false, 3], `copy ${copy}`);
    assert.equal(h.node('n2').log.committed, 3, `copy ${copy}`);
    assert.deepEqual(termsIn(h, 'n2'), staleTail, `copy ${copy}`);
  }
  // An empty append at the matching entry (Raft's heartbeat, sent at nextIndex - 1) proves
  // only the prefix up to prevIndex.
  for (let copy = 1; copy <= 2; copy++) {
    onlyAppendReply(deliver(h, append(3, 3, 2, [], 6)));
    assert.equal(h.node('n2').log.committed, 3, `empty append, copy ${copy}`);
  }
  assert.deepEqual(appliedOf(h), ['1/1', '2/1', '3/2']);
  // The repair arrives, then a third copy of the old append: the log keeps the leader's
  // entries and the commit index does not move back.
  deliver(h, append(3, 3, 2, leaderLog.slice(3), 6));
  assert.equal(h.node('n2').log.committed, 6);
  onlyAppendReply(deliver(h, dup));
  assert.equal(h.node('n2').log.committed, 6);
  assert.deepEqual(termsIn(h, 'n2'), [1, 1, 2, 3, 3, 3]);
  assert.deepEqual(appliedOf(h), ['1/1', '2/1', '3/2', '4/3', '5/3', '6/3']);
});

test('AppendEntries rule 5: an append whose leaderCommit is below the follower’s commit leaves the commit index alone', () => {
  const h = follower([1, 1, 3, 3], { term: 3, vote: null, commit: 4 });
  const reply = onlyAppendReply(deliver(h, append(3, 4, 3, [entry(5, 3)], 2)));
  assert.deepEqual([reply.reject, reply.index], [false, 5]);
  assert.equal(h.node('n2').log.committed, 4, 'commit never moves back');
  assert.equal(h.node('n2').log.lastIndex(), 5);
});

test('heartbeat commit: a follower commits what the heartbeat carries, min(its match, leader commit), never its stale tail', () => {
  // The follower side: the heartbeat carries no position, so the commit it carries is all the
  // follower may trust; it is below the stale tail here.
  const h = follower(staleTail, { term: 3, vote: null, commit: 1 });
  const heartbeat: HeartbeatMessage = { type: 'Heartbeat', from: 'n1', to: 'n2', term: 3, seq: 1, sentTick: 0, commit: 3, leaderCommit: 6 };
  const sent = deliver(h, heartbeat);
  assert.equal(sent.filter((m) => m.type === 'HeartbeatResp').length, 1);
  assert.equal(h.node('n2').log.committed, 3, 'leaderCommit 6 is for freshness, not for committing');
  assert.deepEqual(appliedOf(h), ['1/1', '2/1', '3/2']);

  // The leader side: a follower whose appends are lost gets heartbeats carrying its own match,
  // while the leader's commit moves on with the other follower.
  const c = new Harness({ seed: 5, raft: { checkQuorum: false } });
  const leader = c.elect();
  const [behind, current] = c.ids().filter((id) => id !== leader) as [NodeId, NodeId];
  const raft = c.node(leader);
  const match = raft.status().progress.get(behind)!.match;
  const lostAppends = (m: Message): boolean => m.to === behind && m.type === 'Append';
  for (const payload of ['a', 'b', 'c']) raft.propose(bytes(payload));
  c.deliverAll({ drop: lostAppends });
  assert.deepEqual(c.applied(current), ['a', 'b', 'c']);
  assert.ok(raft.log.committed > match);
  const sentBefore = c.traffic.length;
  c.tickAll(raft.heartbeatTicks, { drop: lostAppends });
  const heartbeats = c.traffic.slice(sentBefore).map((t) => t.m).filter((m): m is HeartbeatMessage => m.type === 'Heartbeat');
  const toBehind = heartbeats.filter((m) => m.to === behind);
  const toCurrent = heartbeats.filter((m) => m.to === current);
  assert.ok(toBehind.length > 0 && toCurrent.length > 0, 'heartbeats went out');
  assert.ok(toBehind.every((m) => m.commit === match), `heartbeat commit to the lagging follower: ${toBehind.map((m) => m.commit).join(',')}, match ${match}`);
  assert.ok(toCurrent.every((m) => m.commit === raft.log.committed), 'the follower that holds everything gets the full commit index');
  assert.equal(c.node(behind).log.committed, match);
});

// ---------------------------------------------------------------- RequestVote

test('RequestVote rule 1: a vote request of an older term is refused; the receiver keeps its term and casts no vote', () => {
  const h = follower([1, 1, 2], { term: 5, vote: null, commit: 1 });
  // Figure 2 answers false; this core, like etcd, stays silent to a stale Vote (the candidate
  // learns the term from the next leader's messages), and answers a stale PreVote with a refusal.
  const sent = deliver(h, { type: 'Vote', from: 'n3', to: 'n2', term: 4, lastIndex: 10, lastTerm: 4, transfer: false });
  assert.equal(sent.filter((m) => m.type === 'VoteResp' && m.granted).length, 0, 'no vote granted');
  const raft = h.node('n2');
  assert.deepEqual([raft.currentTerm(), raft.status().vote, raft.currentRole()], [5, null, 'follower']);
  assert.equal(h.member('n2').disk.hardState?.vote ?? null, null, 'no vote persisted');
  const pre = deliver(h, { type: 'PreVote', from: 'n3', to: 'n2', term: 4, lastIndex: 10, lastTerm: 4 });
  const preReplies = pre.filter((m): m is VoteResponseMessage => m.type === 'PreVoteResp');
  assert.deepEqual(preReplies.map((m) => [m.granted, m.term]), [[false, 5]]);
});

test('RequestVote rule 2: granted only when votedFor is null or the candidate, and the candidate’s log is at least as up to date', () => {
  // n2's log ends at 3/2.
  const vote = (from: NodeId, term: number, lastIndex: number, lastTerm: number): boolean => {
    const h = follower([1, 1, 2], { term: 4, vote: null, commit: 1 });
    return onlyVoteReply(deliver(h, { type: 'Vote', from, to: 'n2', term, lastIndex, lastTerm, transfer: false })).granted;
  };
  assert.equal(vote('n3', 4, 3, 2), true, 'same last entry');
  assert.equal(vote('n3', 5, 2, 3), true, 'a later last term, though shorter');
  assert.equal(vote('n3', 4, 9, 2), true, 'same last term, longer');
  assert.equal(vote('n3', 4, 2, 2), false, 'same last term, shorter');
  assert.equal(vote('n3', 5, 9, 1), false, 'an earlier last term, though longer');

  // votedFor: one vote per term, asked again by the same candidate it is granted again.
  const h = follower([1, 1, 2], { term: 4, vote: null, commit: 1 });
  const ask = (from: NodeId, term: number): VoteResponseMessage =>
    onlyVoteReply(deliver(h, { type: 'Vote', from, to: 'n2', term, lastIndex: 3, lastTerm: 2, transfer: false }));
  assert.equal(ask('n3', 4).granted, true);
  assert.equal(h.member('n2').disk.hardState?.vote, 'n3', 'the vote is durable before the reply leaves');
  assert.equal(ask('n1', 4).granted, false, 'another candidate, same term');
  assert.equal(ask('n3', 4).granted, true, 'the same candidate again (a lost reply)');
  assert.equal(ask('n1', 5).granted, true, 'a new term clears votedFor');
  assert.deepEqual([h.node('n2').currentTerm(), h.node('n2').status().vote], [5, 'n1']);

  // A vote booted from disk counts as cast: a restart does not allow a second one.
  const restarted = follower([1, 1, 2], { term: 4, vote: 'n3', commit: 1 });
  assert.equal(onlyVoteReply(deliver(restarted, { type: 'Vote', from: 'n1', to: 'n2', term: 4, lastIndex: 3, lastTerm: 2, transfer: false })).granted, false);
});

// ---------------------------------------------------------------- all servers

test('all servers, term rule: a request or response of a higher term sets currentTerm, clears the vote and makes the receiver a follower', () => {
  // A follower that voted in term 4 sees a vote request of term 6: it adopts 6 and may vote.
  const f = follower([1, 1, 2], { term: 4, vote: 'n3', commit: 1 });
  const granted = onlyVoteReply(deliver(f, { type: 'Vote', from: 'n1', to: 'n2', term: 6, lastIndex: 3, lastTerm: 2, transfer: false }));
  assert.deepEqual([granted.granted, granted.term], [true, 6]);
  assert.deepEqual([f.node('n2').currentTerm(), f.node('n2').status().vote], [6, 'n1']);
  assert.equal(f.member('n2').disk.hardState?.term, 6);

  // A leader that hears an answer of a higher term steps down to follower of that term.
  const h = new Harness({ seed: 11, raft: { checkQuorum: false, preVote: false } });
  const leader = h.elect();
  const term = h.node(leader).currentTerm();
  const other = h.ids().find((id) => id !== leader)!;
  h.step(leader, {
    type: 'AppendResp', from: other, to: leader, term: term + 2, reject: true, index: 0,
    conflictTerm: 0, conflictIndex: 0, seq: 0, sentTick: 0, applied: 0,
  });
  const raft = h.node(leader);
  assert.deepEqual([raft.currentRole(), raft.currentTerm(), raft.status().vote, raft.currentLeader()], ['follower', term + 2, null, null]);

  // A candidate that hears an append of a higher term follows its sender.
  const c = follower([1, 1, 2], { term: 4, vote: null, commit: 1 });
  c.campaign('n2');
  assert.deepEqual([c.node('n2').currentRole(), c.node('n2').currentTerm()], ['candidate', 5]);
  c.takePending();
  onlyAppendReply(deliver(c, append(7, 3, 2, [], 3, 'n3')));
  const n2 = c.node('n2');
  assert.deepEqual([n2.currentRole(), n2.currentTerm(), n2.status().vote, n2.currentLeader()], ['follower', 7, null, 'n3']);
});

test('all servers, apply rule: entries are applied in log order, each once, and only once committed (and durable)', () => {
  const h = follower([1, 1], { term: 3, vote: null, commit: 0 });
  deliver(h, append(3, 2, 1, [entry(3, 3), entry(4, 3), entry(5, 3)], 2));
  assert.deepEqual(appliedOf(h), ['1/1', '2/1'], 'nothing beyond the commit index');
  deliver(h, append(3, 5, 3, [], 4));
  assert.deepEqual(appliedOf(h), ['1/1', '2/1', '3/3', '4/3']);
  deliver(h, append(3, 5, 3, [], 5));
  assert.deepEqual(appliedOf(h), ['1/1', '2/1', '3/3', '4/3', '5/3']);
  // Every ready hands out the next entries after those applied, never one twice.
  const handed = h.member('n2').readies.flatMap((r) => r.committedEntries.map((e) => e.index));
  assert.deepEqual(handed, [1, 2, 3, 4, 5]);
  for (const ready of h.member('n2').readies) {
    const last = ready.committedEntries.at(-1);
    if (last !== undefined) assert.ok(last.index <= (ready.hardState?.commit ?? Number.POSITIVE_INFINITY));
  }
  assert.equal(h.node('n2').log.applied, 5);
});
