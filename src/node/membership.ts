// Membership changes (add a voter or learner, promote, remove) and switchover, on the leader.
// Single-server changes, one at a time, each committed and applied here before it resolves.
import type { ConfigChange } from '../core/raft/raft.ts';
import type { Raft } from '../core/raft/raft.ts';
import type { SynchronousCommit } from '../core/policy/replication-policy.ts';
import { validateMemberId, validatePeerAddress } from '../kv/commands.ts';
import type { Command } from '../kv/commands.ts';
import type { WriteAck } from '../shared/operations.ts';
import type { MemberChangeJson, SwitchoverJson } from '../shared/api-types.ts';
import { ChorusError, NotLeaderError } from '../shared/errors.ts';
import type { MemberContext } from './member-context.ts';
import type { Proposals } from './proposals.ts';

/** What membership needs of the member around it. */
export interface MembershipHost {
  checkServing(): void;
  requireLeader(): void;
  proposeEntry(command: Command, deadlineMs: number, level: SynchronousCommit, waitForStandbys: boolean): Promise<WriteAck>;
  /** Resolves at the next tick, counted as a pending proposal. */
  holdOneTick(): Promise<void>;
  peerAddressOf(id: string): string | null;
}

export class Membership {
  constructor(
    private readonly ctx: MemberContext,
    private readonly proposals: Proposals,
    private readonly host: MembershipHost,
  ) {}

  async add(request: { readonly id: string; readonly peerAddress: string; readonly learner: boolean }, deadlineMs: number): Promise<MemberChangeJson> {
    const id = validateMemberId(request.id);
    const peerAddress = validatePeerAddress(request.peerAddress);
    this.host.checkServing();
    this.host.requireLeader();
    const { config } = this.ctx.raft.status();
    if (config.voters.includes(id) || config.learners.includes(id)) {
      throw new ChorusError('CHORUS_MEMBER_EXISTS', `${id} is already a ${config.voters.includes(id) ? 'voter' : 'learner'}`);
    }
    // The address first: once the configuration names the member, every member must be able
    // to dial it. Re-running after a failure is harmless (same record again).
    await this.host.proposeEntry({ kind: 'member-address', id, peerAddress }, deadlineMs, 'on', false);
    const revision = await this.change({ kind: request.learner ? 'add-learner' : 'add-voter', id }, deadlineMs);
    this.ctx.logger.info('member-added', { memberId: id, peerAddress, learner: request.learner, revision });
    return { id, peerAddress, role: request.learner ? 'learner' : 'voter', revision, commitIndex: this.ctx.raft.log.committed };
  }

  async promote(id: string, deadlineMs: number): Promise<MemberChangeJson> {
    validateMemberId(id);
    this.host.checkServing();
    this.host.requireLeader();
    const { config } = this.ctx.raft.status();
    if (config.voters.includes(id)) throw new ChorusError('CHORUS_MEMBER_CHANGE_INVALID', `${id} is already a voter`);
    if (!config.learners.includes(id)) throw new ChorusError('CHORUS_MEMBER_NOT_FOUND', `no learner ${id} in the cluster`);
    const revision = await this.change({ kind: 'promote', id }, deadlineMs);
    this.ctx.logger.info('member-promoted', { memberId: id, revision });
    return { id, peerAddress: this.host.peerAddressOf(id), role: 'voter', revision, commitIndex: this.ctx.raft.log.committed };
  }

  async remove(id: string, deadlineMs: number): Promise<MemberChangeJson> {
    validateMemberId(id);
    this.host.checkServing();
    this.host.requireLeader();
    const { config } = this.ctx.raft.status();
    const isVoter = config.voters.includes(id);
    if (!isVoter && !config.learners.includes(id)) throw new ChorusError('CHORUS_MEMBER_NOT_FOUND', `no member ${id} in the cluster`);
    if (isVoter && config.voters.length === 1) throw new ChorusError('CHORUS_MEMBER_CHANGE_INVALID', `${id} is the last voter; a cluster needs at least one`);
    const replication = this.ctx.replication();
    const set = replication.standbySet;
    if (set !== null) {
      // A set that can never be met again would block every write at on/remote_apply.
      const after = [...config.voters, ...config.learners].filter((m) => m !== id);
      const candidates = new Set<string>();
      for (const name of set.names) {
        for (const m of name === '*' ? after.filter((x) => x !== this.ctx.id) : after.includes(name) ? [name] : []) candidates.add(m);
      }
      if (candidates.size < set.count) {
        throw new ChorusError('CHORUS_MEMBER_CHANGE_INVALID', `removing ${id} leaves synchronous_standby_names "${replication.synchronousStandbyNames}" unsatisfiable; change it first (PUT /v1/config/replication)`);
      }
    }
    if (id === this.ctx.id) {
      // The leader hands over first, so that the cluster keeps serving while the change commits;
      // the API then forwards the request to the new leader, which removes this member.
      const handover = await this.switchover(null, deadlineMs);
      throw new NotLeaderError(handover.leaderId);
    }
    const peerAddress = this.host.peerAddressOf(id);
    const revision = await this.change({ kind: 'remove', id }, deadlineMs);
    this.ctx.logger.info('member-removed', { memberId: id, revision });
    try {
      // Forget its address so that no member keeps dialing it; harmless if this fails.
      await this.host.proposeEntry({ kind: 'member-address', id, peerAddress: null }, deadlineMs, 'on', false);
    } catch (error) {
      this.ctx.logger.warn('member-address-not-forgotten', { memberId: id, error });
    }
    return { id, peerAddress, role: 'removed', revision, commitIndex: this.ctx.raft.log.committed };
  }

  /**
   * Proposes a single-server configuration change and resolves with its index once it is
   * committed and applied here. The core takes one change at a time, and none during a
   * transfer: the change is held (counted as a pending proposal) and proposed again each tick
   * until the deadline.
   */
  private async change(change: ConfigChange, deadlineMs: number): Promise<number> {
    for (;;) {
      this.host.checkServing();
      this.proposals.admit();
      const result = this.ctx.driver.proposeConfigChange(change);
      if (result.kind === 'dropped' && result.reason !== 'invalid-config') {
        if (this.ctx.clock.nowMs() >= deadlineMs) {
          throw new ChorusError('CHORUS_BUSY', `the membership change was not proposed (${result.reason}: another change or a transfer is still in progress); retry`);
        }
        await this.host.holdOneTick();
        continue;
      }
      switch (result.kind) {
        case 'not-leader':
          throw new NotLeaderError(result.leaderId);
        case 'busy':
          throw new ChorusError('CHORUS_BUSY', 'too many uncommitted entries at the leader');
        case 'dropped':
          throw new ChorusError('CHORUS_MEMBER_CHANGE_INVALID', `the change ${change.kind} ${change.id} is not valid for the current configuration`);
        case 'accepted':
          break;
      }
      await this.proposals.wait(result.index, result.term, 'on', false, this.ctx.clock.nowMs(), deadlineMs);
      return result.index;
    }
  }

  async switchover(to: string | null, deadlineMs: number): Promise<SwitchoverJson> {
    if (to !== null) validateMemberId(to);
    this.host.checkServing();
    this.host.requireLeader();
    const raft = this.ctx.raft;
    const status = raft.status();
    const target = to ?? this.bestSuccessor(status);
    if (target === null) throw new ChorusError('CHORUS_MEMBER_CHANGE_INVALID', 'no other voter is reachable and able to lead');
    if (target === this.ctx.id) return { previousLeaderId: this.ctx.id, leaderId: this.ctx.id, term: status.term };
    if (!status.config.voters.includes(target)) {
      if (status.config.learners.includes(target)) throw new ChorusError('CHORUS_MEMBER_CHANGE_INVALID', `${target} is a learner; promote it first`);
      throw new ChorusError('CHORUS_MEMBER_NOT_FOUND', `no voter ${target} in the cluster`);
    }
    const started = this.ctx.driver.transferLeadership(target);
    if (!started.ok) {
      if (started.reason === 'not-leader') throw new NotLeaderError(raft.currentLeader());
      throw new ChorusError('CHORUS_MEMBER_CHANGE_INVALID', `cannot transfer leadership to ${target} (${started.reason})`);
    }
    this.ctx.logger.info('switchover-started', { to: target, term: status.term });
    for (;;) {
      await this.host.holdOneTick();
      this.host.checkServing();
      const leaderId = raft.currentLeader();
      if (raft.currentRole() !== 'leader' && leaderId !== null && leaderId !== this.ctx.id) {
        return { previousLeaderId: this.ctx.id, leaderId, term: raft.currentTerm() };
      }
      const stillTrying = raft.currentRole() === 'leader' && raft.status().transferee === target;
      if ((raft.currentRole() === 'leader' && !stillTrying) || this.ctx.clock.nowMs() >= deadlineMs) {
        // The core gave up after an election timeout, or the deadline passed. A TimeoutNow
        // already sent may still start an election: the outcome is not certain.
        throw new ChorusError('CHORUS_TIMEOUT', `the switchover to ${target} did not complete in time; leadership may still move`);
      }
    }
  }

  /** The reachable voter with the most of the log (ties: lowest id), or null. */
  private bestSuccessor(status: ReturnType<Raft['status']>): string | null {
    let best: { id: string; match: number } | null = null;
    for (const id of [...status.config.voters].sort()) {
      if (id === this.ctx.id) continue;
      const pr = status.progress.get(id);
      if (pr === undefined || pr.ackAgeTicks === null || pr.ackAgeTicks > this.ctx.config.electionTicks) continue;
      if (best === null || pr.match > best.match) best = { id, match: pr.match };
    }
    return best?.id ?? null;
  }
}
