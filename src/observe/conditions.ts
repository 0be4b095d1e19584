// What a member observes of itself and (when it leads) of the others, and the alert conditions
// that hold in it. Pure: the observer samples the runtime into an Observation; the alert engine
// decides when a holding condition becomes an alert.
import type { AlertCondition, AlertRules } from './alerts.ts';

export interface FollowerObservation {
  readonly id: string;
  readonly voter: boolean;
  /** The leader heard from it within an election timeout. */
  readonly reachable: boolean;
  readonly matchIndex: number;
  readonly appliedIndex: number;
  readonly lagEntries: number;
  readonly lagBytes: number;
  readonly lagSeconds: number;
  /** Behind, and its applied index has not moved for stallSeconds. */
  readonly stalled: boolean;
}

export interface Observation {
  readonly self: string;
  readonly role: 'leader' | 'follower' | 'candidate' | 'learner';
  readonly term: number;
  readonly leaderId: string | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  readonly snapshotIndex: number;
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  /** The other members as the leader sees them; empty on any other member. */
  readonly followers: readonly FollowerObservation[];
  /** synchronous_standby_names ('' for none), the members that count now, and whether the set
   * can be met (null outside the leader's view). */
  readonly standby: { readonly names: string; readonly standbys: readonly string[]; readonly satisfiable: boolean | null };
  readonly proposalsPending: number;
  readonly readsPending: number;
}

/** The slowest WAL sync within the fsync window, if any was over the threshold. */
export interface SlowFsync {
  readonly seconds: number;
  readonly agoSeconds: number;
}

/** A peer of one of this member's multi-master keyspaces, as the member sees it (fed by
 * src/mm-node/host.ts through ChorusNode). */
export interface PeerObservation {
  readonly id: string;
  readonly keyspace: string;
  /** How long it has been unreachable (0 when reachable). */
  readonly unreachableSeconds: number;
}

export interface ConditionInputs {
  readonly observation: Observation;
  readonly slowFsync: SlowFsync | null;
  readonly peers: readonly PeerObservation[];
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

/** Every condition that holds now, each with the time it must hold before it raises. */
export function alertConditions(inputs: ConditionInputs, rules: AlertRules): AlertCondition[] {
  const o = inputs.observation;
  const out: AlertCondition[] = [];
  const member = o.self;
  for (const f of o.followers) {
    // Seconds and bytes together: a follower missing only empty entries (a new term's no-op) is
    // not behind in any way a reader notices, and an idle cluster shows no lag in seconds.
    if (f.lagSeconds > rules.lagSecondsMax && f.lagBytes >= rules.lagBytesMin && f.lagEntries > 0) {
      out.push({
        id: `replication-lag:${f.id}`,
        rule: 'replication-lag',
        severity: 'warning',
        message: `${f.id} is ${f.lagSeconds.toFixed(1)} s behind the leader (${f.lagEntries} entries, ${formatBytes(f.lagBytes)}; threshold ${rules.lagSecondsMax} s)`,
        forMs: 0,
        labels: { member, follower: f.id },
      });
    }
    if (f.stalled) {
      out.push({
        id: `replication-stalled:${f.id}`,
        rule: 'replication-stalled',
        severity: 'warning',
        message: `${f.id} is not progressing: ${f.lagEntries} entries behind and its applied index ${f.appliedIndex} has not moved for ${rules.stallSeconds} s${f.reachable ? '' : ' (unreachable)'}`,
        forMs: 0,
        labels: { member, follower: f.id },
      });
    }
  }
  if (o.leaderId === null) {
    out.push({
      id: 'no-leader',
      rule: 'no-leader',
      severity: 'critical',
      message: `${member} has known no leader for ${rules.noLeaderSeconds} s (term ${o.term}): writes and linearizable reads fail`,
      forMs: rules.noLeaderSeconds * 1000,
      labels: { member },
    });
  }
  if (o.standby.names !== '' && o.standby.satisfiable === false) {
    out.push({
      id: 'sync-standby-unmet',
      rule: 'sync-standby-unmet',
      severity: 'critical',
      message: `the synchronous standby set "${o.standby.names}" cannot be met (standbys now: ${o.standby.standbys.join(', ') || 'none'}): writes at on/remote_apply wait and then fail`,
      forMs: rules.syncStandbyUnmetSeconds * 1000,
      labels: { member },
    });
  }
  if (inputs.slowFsync !== null && inputs.slowFsync.seconds > rules.fsyncSecondsMax) {
    out.push({
      id: 'slow-fsync',
      rule: 'slow-fsync',
      severity: 'warning',
      message: `a WAL sync took ${inputs.slowFsync.seconds.toFixed(3)} s (threshold ${rules.fsyncSecondsMax} s), ${Math.round(inputs.slowFsync.agoSeconds)} s ago`,
      forMs: 0,
      labels: { member },
    });
  }
  for (const peer of inputs.peers) {
    if (peer.unreachableSeconds <= rules.peerUnreachableSeconds) continue;
    out.push({
      id: `peer-unreachable:${peer.keyspace}:${peer.id}`,
      rule: 'peer-unreachable',
      severity: 'warning',
      message: `multi-master peer ${peer.id} (keyspace ${peer.keyspace}) has been unreachable for ${Math.round(peer.unreachableSeconds)} s`,
      forMs: 0,
      labels: { member, peer: peer.id, keyspace: peer.keyspace },
    });
  }
  return out;
}
