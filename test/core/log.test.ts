// Unit tests of RaftLog: merging with conflicts, the never-truncate-committed rule, config
// tracking, compaction, snapshot installation and persistence tracking across overwrites.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RaftLog } from '../../src/core/raft/log.ts';
import { InvariantError } from '../../src/core/raft/assert.ts';
import type { Entry, Membership, Snapshot } from '../../src/core/raft/types.ts';

const boot: Membership = { voters: ['n1', 'n2', 'n3'], learners: [] };
const withLearner: Membership = { voters: ['n1', 'n2', 'n3'], learners: ['n4'] };
const withFour: Membership = { voters: ['n1', 'n2', 'n3', 'n4'], learners: [] };

function normal(index: number, term: number, payload = `e${index}t${term}`): Entry {
  return { index, term, type: 'normal', data: new TextEncoder().encode(payload) };
}

function config(index: number, term: number, membership: Membership): Entry {
  return { index, term, type: 'config', config: membership };
}

/** A log with entries of the given terms at 1, 2, 3, ... */
function logOf(terms: readonly number[]): RaftLog {
  const log = new RaftLog(boot, null, []);
  terms.forEach((term, i) => log.appendNew(normal(i + 1, term)));
  return log;
}

function termsOf(log: RaftLog): number[] {
  const out: number[] = [];
  for (let i = log.firstIndex(); i <= log.lastIndex(); i++) out.push(log.term(i)!);
  return out;
}

/** Marks everything appended so far as handed to the driver and durable. */
function persistAll(log: RaftLog): void {
  log.handedOut(log.lastIndex());
  log.persistedTo(log.lastIndex(), log.lastTerm());
}

test('an empty log: index 0 has term 0, nothing else exists', () => {
  const log = new RaftLog(boot, null, []);
  assert.equal(log.lastIndex(), 0);
  assert.equal(log.lastTerm(), 0);
  assert.equal(log.firstIndex(), 1);
  assert.equal(log.term(0), 0);
  assert.equal(log.term(1), undefined);
  assert.equal(log.matchTerm(0, 0), true);
  assert.deepEqual(log.config(), boot);
  log.checkInvariants();
});

test('boot entries must be contiguous', () => {
  assert.throws(() => new RaftLog(boot, null, [normal(1, 1), normal(3, 1)]), InvariantError);
  const log = new RaftLog(boot, null, [normal(1, 1), normal(2, 1)]);
  assert.equal(log.persisted, 2);
  assert.equal(log.unstableFrom, 3);
  assert.deepEqual(log.unstableEntries(), []);
});

test('merge: a conflicting entry truncates the log from there and reports where', () => {
  const log = logOf([1, 1, 1, 1, 1]);
  assert.equal(log.merge([normal(3, 2), normal(4, 2)]), 3);
  assert.deepEqual(termsOf(log), [1, 1, 2, 2]);
  assert.equal(log.lastIndex(), 4);
  // The truncated suffix is gone for good; entries before it are untouched.
  assert.equal(log.entry(2)?.term, 1);
  assert.equal(log.entry(5), undefined);
  log.checkInvariants();
});

test('merge: entries already present are skipped; new ones extend; nothing is reported', () => {
  const log = logOf([1, 1, 2]);
  assert.equal(log.merge([normal(2, 1), normal(3, 2)]), null);
  assert.deepEqual(termsOf(log), [1, 1, 2]);
  assert.equal(log.merge([normal(3, 2), normal(4, 2), normal(5, 3)]), null);
  assert.deepEqual(termsOf(log), [1, 1, 2, 2, 3]);
  // A stale, shorter append (a prefix of what we hold) truncates nothing.
  assert.equal(log.merge([normal(2, 1)]), null);
  assert.equal(log.lastIndex(), 5);
});

test('merge: the conflict is found after matching entries, and only from the first conflict on', () => {
  const log = logOf([1, 1, 1, 1, 1, 1]);
  assert.equal(log.merge([normal(4, 1), normal(5, 3), normal(6, 3), normal(7, 3)]), 5);
  assert.deepEqual(termsOf(log), [1, 1, 1, 1, 3, 3, 3]);
});

test('merge: a gap is an invariant violation', () => {
  const log = logOf([1, 1]);
  assert.throws(() => log.merge([normal(4, 1)]), InvariantError);
});

test('merge never truncates committed entries: an InvariantError', () => {
  const log = logOf([1, 1, 1, 1]);
  persistAll(log);
  log.commitTo(3);
  assert.throws(() => log.merge([normal(3, 2)]), (error: unknown) => error instanceof InvariantError && /committed/.test(error.message));
  assert.throws(() => log.merge([normal(2, 2), normal(3, 2)]), InvariantError);
  // Above the commit index a conflict is fine.
  assert.equal(log.merge([normal(4, 2)]), 4);
  assert.equal(log.committed, 3);
});

test('commitTo: never backwards, never beyond the log', () => {
  const log = logOf([1, 1, 1]);
  assert.equal(log.commitTo(2), true);
  assert.equal(log.commitTo(1), false);
  assert.equal(log.committed, 2);
  assert.throws(() => log.commitTo(4), InvariantError);
});

test('config: the last config entry is in force, and truncation restores the previous one', () => {
  const log = logOf([1, 1]);
  log.appendNew(config(3, 1, withLearner));
  log.appendNew(normal(4, 1));
  log.appendNew(config(5, 1, withFour));
  assert.deepEqual(log.config(), withFour);
  assert.equal(log.configIndex(), 5);
  assert.deepEqual(log.configAt(4), withLearner);
  assert.deepEqual(log.configAt(2), boot);

  // A new leader's entry at 5 replaces the second change.
  assert.equal(log.merge([normal(5, 2)]), 5);
  assert.deepEqual(log.config(), withLearner);
  assert.equal(log.configIndex(), 3);
  // And one at 3 replaces the first as well.
  assert.equal(log.merge([normal(3, 3)]), 3);
  assert.deepEqual(log.config(), boot);
  assert.equal(log.configIndex(), 0);
  // A config entry arriving by merge takes effect at once.
  log.merge([config(4, 3, withFour)]);
  assert.deepEqual(log.config(), withFour);
  assert.equal(log.configIndex(), 4);
});

test('config: an entry typed config without a membership is an invariant violation', () => {
  const log = logOf([1]);
  assert.throws(() => log.appendNew({ index: 2, term: 1, type: 'config' }), InvariantError);
});

test('slice: bounded by count and by bytes, but always at least one entry', () => {
  const log = new RaftLog(boot, null, []);
  const sizes = [4, 4, 4, 20, 1];
  sizes.forEach((size, i) => log.appendNew(normal(i + 1, 1, 'x'.repeat(size))));
  assert.deepEqual(log.slice(1, 5, 2, 1000).map((e) => e.index), [1, 2]);
  assert.deepEqual(log.slice(1, 5, 100, 8).map((e) => e.index), [1, 2]);
  assert.deepEqual(log.slice(1, 5, 100, 11).map((e) => e.index), [1, 2]);
  assert.deepEqual(log.slice(4, 5, 100, 8).map((e) => e.index), [4]);
  assert.deepEqual(log.slice(3, 4, 100, 8).map((e) => e.index), [3]);
  assert.deepEqual(log.slice(2, 3, 100, 1000).map((e) => e.index), [2, 3]);
  assert.deepEqual(log.slice(5, 9, 100, 1000).map((e) => e.index), [5]);
});

test('isUpToDate: a higher last term wins, then a longer log (§5.4.1)', () => {
  const log = logOf([1, 2, 2]);
  assert.equal(log.isUpToDate(3, 2), true);
  assert.equal(log.isUpToDate(4, 2), true);
  assert.equal(log.isUpToDate(1, 3), true);
  assert.equal(log.isUpToDate(2, 2), false);
  assert.equal(log.isUpToDate(10, 1), false);
});

test('nextToApply: only entries both committed and durable, in bounded batches', () => {
  const log = logOf([1, 1, 1, 1, 1, 1]);
  log.handedOut(6);
  log.persistedTo(3, 1);
  log.commitTo(5);
  assert.deepEqual(log.nextToApply(1, 100).map((e) => e.index), [1, 2, 3], 'applied beyond what is durable');
  log.persistedTo(6, 1);
  assert.deepEqual(log.nextToApply(1, 100).map((e) => e.index), [1, 2, 3, 4, 5], 'applied beyond the commit index');
  assert.deepEqual(log.nextToApply(2, 2).map((e) => e.index), [2, 3]);
  assert.deepEqual(log.nextToApply(6, 100), []);
});

test('compact: drops the prefix and keeps terms and membership of the snapshot point', () => {
  const log = logOf([1, 1]);
  log.appendNew(config(3, 1, withLearner));
  log.appendNew(normal(4, 2));
  log.appendNew(normal(5, 2));
  persistAll(log);
  log.commitTo(5);
  log.applied = 4;
  assert.throws(() => log.compact({ index: 5, term: 2, config: withLearner }), InvariantError, 'beyond applied');
  assert.throws(() => log.compact({ index: 4, term: 1, config: withLearner }), InvariantError, 'term mismatch');
  log.compact({ index: 4, term: 2, config: withLearner });
  assert.equal(log.snapshotIndex(), 4);
  assert.equal(log.snapshotTerm(), 2);
  assert.equal(log.firstIndex(), 5);
  assert.equal(log.lastIndex(), 5);
  assert.equal(log.term(4), 2);
  assert.equal(log.term(3), undefined);
  assert.equal(log.entry(4), undefined);
  assert.equal(log.entry(5)?.term, 2);
  assert.deepEqual(log.config(), withLearner);
  assert.equal(log.configIndex(), 4);
  assert.throws(() => log.slice(4, 5, 10, 1000), InvariantError);
  // Compacting to an older point changes nothing.
  log.compact({ index: 2, term: 1, config: boot });
  assert.equal(log.snapshotIndex(), 4);
  log.checkInvariants();
});

function snapshotAt(index: number, term: number, membership: Membership = withLearner): Snapshot {
  return { meta: { index, term, config: membership }, data: new Uint8Array([1, 2, 3]) };
}

test('installSnapshot: a log holding the snapshot’s last entry keeps what follows (Figure 13)', () => {
  const log = logOf([1, 1, 2, 2, 2]);
  persistAll(log);
  log.commitTo(1);
  log.applied = 1;
  assert.equal(log.installSnapshot(snapshotAt(3, 2).meta), true);
  assert.equal(log.snapshotIndex(), 3);
  assert.equal(log.lastIndex(), 5);
  assert.deepEqual(termsOf(log), [2, 2]);
  assert.equal(log.committed, 3);
  assert.equal(log.applied, 3);
  assert.equal(log.persisted, 5);
  assert.deepEqual(log.config(), withLearner);
  log.checkInvariants();
});

test('installSnapshot: a divergent log is discarded entirely', () => {
  const log = logOf([1, 1, 1, 1, 1]);
  persistAll(log);
  assert.equal(log.installSnapshot(snapshotAt(3, 2).meta), false);
  assert.equal(log.snapshotIndex(), 3);
  assert.equal(log.lastIndex(), 3);
  assert.equal(log.lastTerm(), 2);
  assert.equal(log.term(4), undefined);
  assert.equal(log.persisted, 3);
  assert.equal(log.unstableFrom, 4);
  assert.equal(log.committed, 3);
  assert.deepEqual(log.config(), withLearner);
  log.checkInvariants();
});

test('installSnapshot: a log too short to hold the snapshot’s last entry is discarded', () => {
  const log = logOf([1, 1]);
  persistAll(log);
  assert.equal(log.installSnapshot(snapshotAt(6, 1).meta), false);
  assert.equal(log.lastIndex(), 6);
  assert.equal(log.lastTerm(), 1);
  // Nothing at or below 6 is durable here until the driver saves the snapshot.
  assert.equal(log.persisted, 2);
  log.snapshotPersisted(6);
  assert.equal(log.persisted, 6);
  log.checkInvariants();
});

test('installSnapshot drops config entries the snapshot covers, even when keeping the log', () => {
  const log = logOf([1]);
  log.appendNew(config(2, 1, withLearner));
  log.appendNew(normal(3, 1));
  log.appendNew(config(4, 1, withFour));
  persistAll(log);
  assert.equal(log.installSnapshot(snapshotAt(3, 1, withLearner).meta), true);
  assert.equal(log.configIndex(), 4);
  // Truncating the later change falls back to the snapshot's membership, not the boot one.
  assert.equal(log.merge([normal(4, 2)]), 4);
  assert.deepEqual(log.config(), withLearner);
  assert.equal(log.configIndex(), 3);
});

test('persistedTo: an overwrite between hand-out and durability counts only the surviving prefix', () => {
  const log = logOf([1, 1, 1, 1, 1]);
  assert.deepEqual(log.unstableEntries().map((e) => e.index), [1, 2, 3, 4, 5]);
  log.handedOut(5);
  assert.deepEqual(log.unstableEntries(), []);
  // While 1..5 are being written, a new leader overwrites from 4.
  assert.equal(log.merge([normal(4, 2), normal(5, 2), normal(6, 2)]), 4);
  assert.equal(log.unstableFrom, 4);
  log.persistedTo(5, 1);
  assert.equal(log.persisted, 3, 'the overwritten 4 and 5 of term 1 are not the entries now in the log');
  assert.deepEqual(log.unstableEntries().map((e) => `${e.index}/${e.term}`), ['4/2', '5/2', '6/2']);
  log.handedOut(6);
  log.persistedTo(6, 2);
  assert.equal(log.persisted, 6);
  log.checkInvariants();
});

test('persistedTo: a stale write whose last entry was replaced does not count', () => {
  const log = logOf([1, 1, 1]);
  log.handedOut(3);
  log.merge([normal(3, 2)]);
  log.handedOut(3);
  // The first write (ending 3/1) completes after the second one was handed out.
  log.persistedTo(3, 1);
  assert.equal(log.persisted, 0);
  log.persistedTo(3, 2);
  assert.equal(log.persisted, 3);
});

test('persistedTo never moves backwards', () => {
  const log = logOf([1, 1, 1]);
  persistAll(log);
  log.persistedTo(2, 1);
  assert.equal(log.persisted, 3);
});

test('compact can retain entries below the snapshot (wal_keep), and a reboot keeps them', () => {
  const log = logOf([1, 1, 1, 2, 2, 2, 2, 2]);
  persistAll(log);
  log.commitTo(8);
  log.applied = 8;
  log.compact({ index: 6, term: 2, config: boot }, 4);
  assert.equal(log.snapshotIndex(), 6);
  assert.equal(log.firstIndex(), 4, 'entries from 4 are kept for laggards');
  assert.equal(log.term(4), 2);
  assert.equal(log.term(3), undefined, 'entry 3 is gone');
  assert.deepEqual(log.slice(4, 8, 10, 1 << 20).map((e) => e.index), [4, 5, 6, 7, 8]);
  assert.equal(log.lastIndex(), 8);
  log.checkInvariants();
  // A later compaction with no retention drops everything up to the snapshot.
  log.compact({ index: 8, term: 2, config: boot });
  assert.equal(log.firstIndex(), 9);
  assert.equal(log.lastIndex(), 8);
  // Rebooting from a snapshot plus retained entries keeps them, when they agree with it.
  const entries = [4, 5, 6, 7, 8].map((i) => normal(i, i >= 4 ? 2 : 1));
  const rebooted = new RaftLog(boot, { index: 6, term: 2, config: boot }, entries);
  assert.equal(rebooted.firstIndex(), 4);
  assert.equal(rebooted.lastIndex(), 8);
  rebooted.checkInvariants();
  // Retained entries that disagree with the snapshot at its index are dropped below it.
  const disagreeing = new RaftLog(boot, { index: 6, term: 3, config: boot }, entries);
  assert.equal(disagreeing.firstIndex(), 7);
});
