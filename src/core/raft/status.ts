// What a member reports about itself (Raft.status()): plain data for the driver, the
// observability pages and the tests.
import type { ProgressState } from './progress.ts';
import type { Membership, NodeId, Role } from './types.ts';

export type LeaderChangeReason = 'election' | 'transfer' | 'check-quorum' | 'higher-term' | 'removed' | 'boot';

export interface ProgressStatus {
  readonly match: number;
  readonly next: number;
  readonly state: ProgressState;
  readonly voter: boolean;
  /** The follower's applied index as last reported. */
  readonly applied: number;
  /** Ticks since this follower last acknowledged the leader (null: never in this term). */
  readonly ackAgeTicks: number | null;
}

export interface RaftStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly vote: NodeId | null;
  readonly leaderId: NodeId | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  readonly persistedIndex: number;
  readonly snapshotIndex: number;
  readonly config: Membership;
  readonly progress: ReadonlyMap<NodeId, ProgressStatus>;
  readonly leaseValid: boolean;
  /** This leader can vouch that its commit index is the cluster's latest (bounded-staleness reads
   * on the leader itself are then fresh). */
  readonly commitAttested: boolean;
  readonly transferee: NodeId | null;
  readonly tick: number;
  readonly lastLeaderChangeReason: LeaderChangeReason;
}
