// Proposals and their commit levels: every accepted write waits here, by log index, until it is
// acknowledged at its level (synchronous_commit: off, local, on, remote_apply) and, with a
// standby set, confirmed by the standbys (synchronous_standby_names). Errors tell the truth about
// the outcome: CHORUS_LEADER_CHANGED / CHORUS_BUSY when the write certainly did not happen,
// CHORUS_TIMEOUT when it may still commit.
import { evaluateStandbys, writeAcknowledged } from '../core/policy/replication-policy.ts';
import type { MemberState, StandbyEvaluation, SynchronousCommit } from '../core/policy/replication-policy.ts';
import type { Entry } from '../core/raft/types.ts';
import type { ApplyResult } from '../kv/sqlite-state-machine.ts';
import type { WriteAck } from '../shared/operations.ts';
import { ChorusError } from '../shared/errors.ts';
import type { MemberContext } from './member-context.ts';

export interface PendingProposal {
  readonly term: number;
  /** The commit level it is acknowledged at: 'local' once durable in this leader's log; 'on'
   * and 'remote_apply' once applied here and, with a standby set, confirmed by the standbys. */
  readonly level: SynchronousCommit;
  /** Internal proposals (settings, member addresses) wait for commit only, never for the
   * standby set: changing the set must work while it cannot be met. */
  readonly waitForStandbys: boolean;
  readonly startedMs: number;
  readonly deadlineMs: number;
  readonly resolve: (ack: WriteAck) => void;
  readonly reject: (error: Error) => void;
  /** Another proposal at the same index (an earlier term's, overwritten here but possibly still
   * committed elsewhere): only the applied term decides which one succeeded. */
  next: PendingProposal | null;
}

/** A write applied here, waiting for the synchronous standby set to confirm it. */
interface StandbyWait {
  readonly index: number;
  readonly level: SynchronousCommit;
  readonly result: ApplyResult;
  /** min(request deadline, start + syncStandbyTimeoutMs). */
  readonly deadlineMs: number;
  readonly resolve: (ack: WriteAck) => void;
  readonly reject: (error: Error) => void;
}

export function timeoutError(what: string): ChorusError {
  return new ChorusError('CHORUS_TIMEOUT', `${what}: the request deadline passed; the outcome is unknown (the write may still commit)`);
}

function standbyTimeoutError(index: number, standbys: string, why: string): ChorusError {
  return new ChorusError(
    'CHORUS_SYNC_STANDBY_TIMEOUT',
    `the write committed at revision ${index} (durable on a majority; it will not be undone) but the synchronous standby set ${standbys} did not confirm it: ${why}`,
  );
}

export class Proposals {
  /** Accepted proposals by log index. */
  private readonly byIndex = new Map<number, PendingProposal>();
  /** Invariant: counts every chained proposal, standby wait and held waiter; at most
   * config.proposalsPendingMax when a new one is admitted. */
  private pendingCount = 0;
  /** Writes applied here that wait for the standby set. They still count in pendingCount. */
  private standbyWaits: StandbyWait[] = [];
  /** Log indexes holding a proposal at level 'local' (acknowledged once durable here). */
  private readonly localWaits = new Set<number>();

  constructor(private readonly ctx: MemberContext) {}

  get pending(): number {
    return this.pendingCount;
  }

  /** Throws CHORUS_BUSY when no new proposal may be admitted. */
  admit(): void {
    if (this.pendingCount < this.ctx.config.proposalsPendingMax) return;
    this.ctx.observer.noteDropped('proposals', 'pending-max');
    throw new ChorusError('CHORUS_BUSY', `${this.pendingCount} writes are pending (proposalsPendingMax)`);
  }

  /** Waits for an accepted proposal at `index` to be acknowledged at `level`. */
  wait(index: number, term: number, level: SynchronousCommit, waitForStandbys: boolean, startedMs: number, deadlineMs: number): Promise<WriteAck> {
    return new Promise<WriteAck>((resolve, reject) => {
      const pending: PendingProposal = { term, level, waitForStandbys, startedMs, deadlineMs, resolve, reject, next: this.byIndex.get(index) ?? null };
      this.byIndex.set(index, pending);
      this.pendingCount++;
      if (level === 'local') this.localWaits.add(index);
    });
  }

  /** Runs `wait` counted as a pending proposal (which bounds the waiters). */
  async counted<T>(wait: () => Promise<T>): Promise<T> {
    this.pendingCount++;
    try {
      return await wait();
    } finally {
      this.pendingCount--;
    }
  }

  /** Committed entries were applied: answer the proposals waiting on them. */
  applied(entries: readonly Entry[], results: readonly ApplyResult[], committedMs: number): void {
    if (this.byIndex.size === 0) return;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      const head = this.byIndex.get(entry.index);
      if (head === undefined) continue;
      this.byIndex.delete(entry.index);
      this.localWaits.delete(entry.index);
      const result = results[i]!;
      for (let p: PendingProposal | null = head; p !== null; p = p.next) {
        if (p.term === entry.term) this.ctx.observer.noteCommitted(p.level, committedMs - p.startedMs);
        if (p.term !== entry.term) {
          this.pendingCount--;
          p.reject(new ChorusError('CHORUS_LEADER_CHANGED', `another entry committed at index ${entry.index}: the write was not applied`));
        } else if (result.kind === 'error') {
          this.pendingCount--;
          p.reject(new ChorusError(result.code, result.message));
        } else if (result.kind === 'skipped') {
          // Applied before this run (cannot happen on the leader that proposed it); the result
          // is not available.
          this.pendingCount--;
          p.reject(timeoutError(`entry ${entry.index} was applied earlier`));
        } else {
          this.settleApplied(entry.index, p, result);
        }
      }
    }
  }

  /** A proposal's entry is committed and applied here: acknowledge it, or wait for the standbys. */
  private settleApplied(index: number, p: PendingProposal, result: ApplyResult): void {
    if (p.level === 'off' || p.level === 'local') {
      // Not yet acknowledged as durable here (rare: the commit overtook the local fsync report).
      this.pendingCount--;
      p.resolve({ committed: false, revision: index });
      return;
    }
    const standbySet = this.ctx.replication().standbySet;
    const evaluation = p.waitForStandbys ? this.evaluateStandbysNow() : null;
    if (!p.waitForStandbys || standbySet === null || (evaluation !== null && this.standbysAcknowledge(p.level, index, evaluation))) {
      this.pendingCount--;
      p.resolve({ committed: true, result });
      return;
    }
    // Still counted in pendingCount until it settles.
    this.standbyWaits.push({
      index,
      level: p.level,
      result,
      deadlineMs: Math.min(p.deadlineMs, p.startedMs + this.ctx.config.syncStandbyTimeoutMs),
      resolve: p.resolve,
      reject: p.reject,
    });
  }

  /** The standby set as the leader sees it now; null when there is none or this is no leader. */
  evaluateStandbysNow(): StandbyEvaluation | null {
    const set = this.ctx.replication().standbySet;
    const raft = this.ctx.raft;
    if (set === null || raft.currentRole() !== 'leader') return null;
    const status = raft.status();
    const members = new Map<string, MemberState>();
    for (const [id, pr] of status.progress) {
      members.set(id, { durableIndex: pr.match, appliedIndex: pr.applied, connected: pr.ackAgeTicks !== null && pr.ackAgeTicks <= this.ctx.config.electionTicks });
    }
    members.set(this.ctx.id, { durableIndex: status.persistedIndex, appliedIndex: this.ctx.stateMachine.appliedIndex(), connected: true });
    return evaluateStandbys(set, this.ctx.id, members);
  }

  private standbysAcknowledge(level: SynchronousCommit, index: number, standbys: StandbyEvaluation): boolean {
    const log = this.ctx.raft.log;
    return writeAcknowledged(level, {
      index,
      // Applied here, so committed: it is in every later leader's log.
      inLeaderLog: true,
      leaderDurableIndex: log.persisted,
      commitIndex: log.committed,
      leaderAppliedIndex: this.ctx.stateMachine.appliedIndex(),
      standbys,
    });
  }

  /** Acknowledgements from followers arrive between readies: the standby set may be met now. */
  checkStandbyWaits(): void {
    if (this.standbyWaits.length === 0) return;
    const noSet = this.ctx.replication().standbySet === null;
    const evaluation = noSet ? null : this.evaluateStandbysNow();
    // Not leading any more: nobody here can tell; the waits run to their deadline.
    if (!noSet && evaluation === null) return;
    const still: StandbyWait[] = [];
    for (const w of this.standbyWaits) {
      if (noSet || this.standbysAcknowledge(w.level, w.index, evaluation!)) {
        this.pendingCount--;
        w.resolve({ committed: true, result: w.result });
      } else {
        still.push(w);
      }
    }
    this.standbyWaits = still;
  }

  /** After advance(): writes at 'local' whose entry is durable in this leader's log, at its term. */
  ackLocalWrites(): void {
    if (this.localWaits.size === 0) return;
    const log = this.ctx.raft.log;
    const persisted = log.persisted;
    for (const index of this.localWaits) {
      if (index > persisted) continue;
      const term = log.term(index);
      let left = this.settle(index, (p) => {
        if (p.level !== 'local' || p.term !== term) return false;
        p.resolve({ committed: false, revision: index });
        return true;
      });
      while (left !== null && left.level !== 'local') left = left.next;
      if (left === null) this.localWaits.delete(index);
    }
  }

  /**
   * Settles the proposals waiting at `index` that `settle` takes (it resolves or rejects one and
   * returns true), keeping the others in their order; returns the ones left (null: none).
   */
  private settle(index: number, settle: (p: PendingProposal) => boolean): PendingProposal | null {
    let kept: PendingProposal | null = null;
    let tail: PendingProposal | null = null;
    for (let p = this.byIndex.get(index) ?? null; p !== null; ) {
      const next: PendingProposal | null = p.next;
      if (settle(p)) {
        this.pendingCount--;
      } else {
        p.next = null;
        if (tail === null) kept = p;
        else tail.next = p;
        tail = p;
      }
      p = next;
    }
    if (kept === null) this.byIndex.delete(index);
    else this.byIndex.set(index, kept);
    return kept;
  }

  /** An image replaced the log up to `index`: the proposals it covers were decided elsewhere;
   * their results are not known here. */
  imageInstalled(index: number): void {
    for (const [index2, head] of this.byIndex) {
      if (index2 > index) continue;
      this.byIndex.delete(index2);
      this.localWaits.delete(index2);
      for (let p: PendingProposal | null = head; p !== null; p = p.next) {
        this.pendingCount--;
        p.reject(timeoutError('a snapshot replaced the log before the write applied here'));
      }
    }
  }

  expire(now: number): void {
    if (this.pendingCount === 0) return;
    for (const index of this.byIndex.keys()) {
      this.settle(index, (p) => {
        if (p.deadlineMs > now) return false;
        p.reject(timeoutError(`the write at index ${index} did not commit in time`));
        return true;
      });
    }
    if (this.standbyWaits.length === 0) return;
    const names = this.ctx.replication().synchronousStandbyNames;
    const why = this.ctx.raft.currentRole() === 'leader'
      ? `not confirmed within ${this.ctx.config.syncStandbyTimeoutMs} ms (or the request deadline)`
      : 'this member stopped leading before they confirmed it';
    this.standbyWaits = this.standbyWaits.filter((w) => {
      if (w.deadlineMs > now) return true;
      this.pendingCount--;
      w.reject(standbyTimeoutError(w.index, `"${names}"`, why));
      return false;
    });
  }

  /** The member stops or failed: every waiting write learns that its outcome is unknown. */
  failAll(error: () => Error): void {
    for (const head of this.byIndex.values()) {
      for (let p: PendingProposal | null = head; p !== null; p = p.next) p.reject(error());
    }
    this.byIndex.clear();
    this.localWaits.clear();
    for (const w of this.standbyWaits) w.reject(error());
    this.standbyWaits = [];
    this.pendingCount = 0;
  }
}
