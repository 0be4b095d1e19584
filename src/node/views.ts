// What a member shows of itself: /v1/cluster, /readyz, /replica, the staleness bound of
// follower reads, and the trackers behind them (leader heartbeats, lag, progress).
import type { StandbyEvaluation } from '../core/policy/replication-policy.ts';
import type { Raft } from '../core/raft/raft.ts';
import type { Entry, Message, Role } from '../core/raft/types.ts';
import type { ClusterMember, ClusterView, MemberRole, Readiness, ReplicaHealth, ReplicationConfigJson } from '../shared/api-types.ts';
import { LagTracker, ProgressWatch } from '../observe/lag.ts';
import { FreshnessTracker } from './freshness.ts';
import type { MemberContext } from './member-context.ts';

/** /readyz: a member is caught up when it has applied all but this many committed entries. */
const READY_APPLY_LAG_MAX = 100;
/** A member whose applied index has not moved for this many election timeouts while behind is
 * reported as not progressing. */
const STALL_ELECTION_TIMEOUTS = 5;

/** What the views need of the member around them. */
export interface ViewsHost {
  /** 'running' while serving. */
  state(): string;
  advertisedClient(): string | null;
  peerAddressOf(id: string): string | null;
  peerClientAddress(id: string): string | null;
  peerConnected(id: string): boolean;
  /** Test faults: an isolated member cannot reach the leader by HTTP either. */
  isolated(): boolean;
  replicationConfig(): ReplicationConfigJson;
  evaluateStandbysNow(): StandbyEvaluation | null;
}

function memberRole(role: Role): MemberRole {
  return role === 'pre-candidate' ? 'candidate' : role;
}

export class MemberViews {
  /** Attested leader heartbeats, for max_staleness_ms reads. */
  private readonly freshness = new FreshnessTracker();
  /** The attested heartbeats this member sent while leading, timed when they left. */
  private readonly ownFreshness = new FreshnessTracker();
  /** The leader's append times and sizes, for lag in seconds and bytes. */
  private readonly lagTracker = new LagTracker();
  private readonly progressWatch = new ProgressWatch();

  constructor(private readonly ctx: MemberContext, private readonly host: ViewsHost) {}

  /** A message arrived and was stepped: an attested heartbeat of our current leader bounds the
   * staleness of what we applied. */
  received(m: Message, nowMs: number): void {
    const raft = this.ctx.raft;
    if (m.type === 'Heartbeat' && m.leaderCommit >= 0 && m.term === raft.currentTerm() && raft.currentLeader() === m.from) {
      this.freshness.note(m.leaderCommit, nowMs);
    }
  }

  /** The leader's own messages left: its attested heartbeats and its appends are noted. */
  sent(messages: readonly Message[], nowMs: number): void {
    for (const m of messages) {
      if (m.type === 'Heartbeat' && m.leaderCommit >= 0) {
        // One broadcast carries one leaderCommit: note it once.
        this.ownFreshness.note(m.leaderCommit, nowMs);
        break;
      }
    }
  }

  /** The leader's own appends: lag in seconds and bytes is measured from here. */
  appending(entries: readonly Entry[], nowMs: number): void {
    if (entries.length === 0 || this.ctx.raft.currentRole() !== 'leader') return;
    for (const entry of entries) this.lagTracker.noteAppended(entry.index, entry.data?.byteLength ?? 0, nowMs);
  }

  forget(id: string): void {
    this.progressWatch.forget(id);
  }

  stalenessBoundMs(): number {
    if (this.host.state() !== 'running') return Number.POSITIVE_INFINITY;
    const applied = this.ctx.stateMachine.appliedIndex();
    const now = this.ctx.clock.nowMs();
    const raft = this.ctx.raft;
    if (raft.currentRole() === 'leader') {
      const status = raft.status();
      if (status.commitAttested && applied >= status.commitIndex) return 0;
      // Our own attested heartbeats, timed when they left: no delay to assume.
      return this.ownFreshness.boundMs(applied, now, 0);
    }
    return this.freshness.boundMs(applied, now, this.ctx.config.heartbeatDelayMaxMs);
  }

  replicaHealth(): ReplicaHealth {
    const status = this.ctx.raft.status();
    const role = this.roleOf(this.ctx.id, status);
    const latest = this.freshness.latest();
    const now = this.ctx.clock.nowMs();
    const config = this.ctx.config;
    const recent = latest !== null && now - latest.arrivedMs <= config.electionTicks * config.tickMs;
    const applied = this.host.state() === 'running' ? this.ctx.stateMachine.appliedIndex() : 0;
    const lagEntries = recent && status.leaderId !== null && role !== 'leader'
      ? Math.max(0, Math.max(latest.leaderCommit, status.commitIndex) - applied)
      : null;
    return { id: this.ctx.id, role, leaderId: status.leaderId, lagEntries };
  }

  readiness(): Readiness {
    const raft = this.ctx.raft;
    const state = this.host.state();
    const leaderId = raft.currentLeader();
    const commitIndex = raft.log.committed;
    const appliedIndex = state === 'running' ? this.ctx.stateMachine.appliedIndex() : 0;
    let reason: string | undefined;
    if (state !== 'running') reason = `member is ${state}`;
    else if (leaderId === null) reason = 'no leader is known';
    else if (commitIndex - appliedIndex > READY_APPLY_LAG_MAX) reason = `applied ${appliedIndex} lags commit ${commitIndex}`;
    return { ready: reason === undefined, leaderId, commitIndex, appliedIndex, ...(reason === undefined ? {} : { reason }) };
  }

  leader(): { leaderId: string | null; clientAddress: string | null } {
    const leaderId = this.ctx.raft.currentLeader();
    if (leaderId === null) return { leaderId, clientAddress: null };
    if (leaderId === this.ctx.id) return { leaderId, clientAddress: this.host.advertisedClient() };
    if (this.host.isolated()) return { leaderId, clientAddress: null };
    return { leaderId, clientAddress: this.host.peerClientAddress(leaderId) };
  }

  /** A member's role as the API names it: learners are members outside the voters. */
  roleOf(id: string, status: ReturnType<Raft['status']>): MemberRole {
    if (id === status.leaderId) return 'leader';
    if (status.config.learners.includes(id)) return 'learner';
    if (id === this.ctx.id) return memberRole(status.role);
    return 'follower';
  }

  clusterView(): ClusterView {
    const { config, id: selfId } = this.ctx;
    const status = this.ctx.raft.status();
    const isLeader = status.role === 'leader';
    const ids = [...status.config.voters, ...status.config.learners];
    const now = this.ctx.clock.nowMs();
    const stallMs = STALL_ELECTION_TIMEOUTS * config.electionTicks * config.tickMs;
    const appliedHere = this.ctx.stateMachine.appliedIndex();
    const members: ClusterMember[] = ids.map((id) => {
      const voter = status.config.voters.includes(id);
      const self = id === selfId;
      const role = this.roleOf(id, status);
      let reachable: boolean;
      let matchIndex: number | null = null;
      let appliedIndex: number | null = null;
      if (self) {
        reachable = true;
        if (isLeader) {
          matchIndex = status.persistedIndex;
          appliedIndex = appliedHere;
        }
      } else if (isLeader) {
        const pr = status.progress.get(id);
        reachable = pr !== undefined && pr.ackAgeTicks !== null && pr.ackAgeTicks <= config.electionTicks;
        matchIndex = pr?.match ?? 0;
        appliedIndex = pr?.applied ?? 0;
      } else {
        reachable = this.host.peerConnected(id);
      }
      let lag = null;
      let progressing: boolean | null = null;
      let canLead: boolean | null = null;
      let whyNot: string | null = null;
      if (appliedIndex !== null && matchIndex !== null) {
        // Lag is what the member can serve: its applied state against the leader's log.
        lag = this.lagTracker.lag(appliedIndex, status.lastIndex, now);
        progressing = this.progressWatch.observe(id, appliedIndex, appliedIndex >= status.commitIndex, now, stallMs);
        const behind = status.commitIndex - matchIndex;
        whyNot = !voter ? 'learner' : !reachable ? 'unreachable' : behind > 0 ? `behind by ${behind} entries` : null;
        canLead = whyNot === null;
      }
      return {
        id,
        peerAddress: this.host.peerAddressOf(id),
        clientAddress: self ? this.host.advertisedClient() : this.host.peerClientAddress(id),
        role,
        voter,
        reachable,
        matchIndex,
        appliedIndex,
        lagEntries: lag === null ? null : lag.entries,
        lagBytes: lag === null ? null : lag.bytes,
        lagSeconds: lag === null ? null : Math.round(lag.seconds * 1000) / 1000,
        progressing,
        canLead,
        whyNot,
      };
    });
    const evaluation = this.host.evaluateStandbysNow();
    return {
      clusterId: config.clusterId,
      term: status.term,
      leaderId: status.leaderId,
      self: {
        id: selfId,
        role: this.roleOf(selfId, status),
        commitIndex: status.commitIndex,
        appliedIndex: appliedHere,
        lastIndex: status.lastIndex,
        snapshotIndex: status.snapshotIndex,
        clientAddress: this.host.advertisedClient(),
        peerAddress: this.host.peerAddressOf(selfId),
      },
      members,
      membersSource: isLeader ? 'leader' : 'local',
      replication: {
        ...this.host.replicationConfig(),
        standbys: evaluation?.standbys ?? [],
        satisfiable: isLeader ? (evaluation === null ? true : evaluation.satisfiable) : null,
      },
    };
  }
}
