// What the HTTP API needs of a member. ChorusNode implements it; API tests use fakes.
import type { SynchronousCommit } from '../core/policy/replication-policy.ts';
import type { Command, KvLimits } from '../kv/commands.ts';
import type { ApplyResult, KvRecord, RangeOptions, RangeResult } from '../kv/sqlite-state-machine.ts';
import type { KeyspaceService } from './keyspace-routes.ts';
import type { ClusterView, MemberChangeJson, Readiness, ReplicaHealth, ReplicationConfigJson, SwitchoverJson, TestFaults } from './types.ts';

export interface WriteOptions {
  /** The commit level asked for; undefined: the cluster default (a txn gets at least 'on'). */
  readonly level?: SynchronousCommit;
}

/** What an acknowledged write reports. At off/local the entry is only appended (or durable) in
 * the leader's log and may still be lost, so there is no state-machine result yet. */
export type WriteAck =
  | { readonly committed: true; readonly result: ApplyResult }
  | { readonly committed: false; readonly revision: number };

/** linearizable reads confirm leadership with a heartbeat round (quorum) or trust the leader's
 * lease (lease; falls back to a round when the lease is off or not valid). */
export type ReadMode = 'quorum' | 'lease';

export interface ReplicationPatch {
  readonly synchronousCommit?: SynchronousCommit;
  /** Canonical form. */
  readonly synchronousStandbyNames?: string;
}

export interface MemberService {
  readonly id: string;
  readonly limits: KvLimits;
  /** Largest encoded command; a larger write gets 413 CHORUS_REQUEST_TOO_LARGE. */
  readonly commandBytesMax: number;
  /** A monotonic clock in milliseconds; deadlines are on it. */
  nowMs(): number;
  /**
   * Proposes a write and resolves with its result once applied here. Rejects with
   * NotLeaderError (nothing was proposed), or a ChorusError: CHORUS_BUSY / CHORUS_LEADER_CHANGED
   * (certainly not applied), CHORUS_TIMEOUT (deadline passed, outcome unknown), a KvError code
   * (the command is invalid).
   */
  propose(command: Command, deadlineMs: number, options?: WriteOptions): Promise<WriteAck>;
  /** Resolves once this member's state machine reflects every write committed before the call
   * (ReadIndex, or the leader lease with mode 'lease'): reads made right after are linearizable. */
  readBarrier(deadlineMs: number, mode?: ReadMode): Promise<void>;
  /** Resolves once this member has applied `index` (min_revision reads); CHORUS_TIMEOUT at the
   * deadline. */
  waitForApplied(index: number, deadlineMs: number): Promise<void>;
  /** How stale this member's applied state may be, in ms (+Infinity: it cannot show a bound). */
  stalenessBoundMs(): number;
  /** For GET /replica: this member's role and how far its applied state is behind the leader. */
  replicaHealth(): ReplicaHealth;
  /** The replication settings in force here. */
  replicationConfig(): ReplicationConfigJson;
  /** Replicates new settings through the log (leader only: NotLeaderError elsewhere). */
  setReplicationConfig(patch: ReplicationPatch, deadlineMs: number): Promise<ReplicationConfigJson>;
  /** Membership changes and switchover (leader only: NotLeaderError elsewhere). */
  addMember(request: { readonly id: string; readonly peerAddress: string; readonly learner: boolean }, deadlineMs: number): Promise<MemberChangeJson>;
  promoteMember(id: string, deadlineMs: number): Promise<MemberChangeJson>;
  removeMember(id: string, deadlineMs: number): Promise<MemberChangeJson>;
  switchover(to: string | null, deadlineMs: number): Promise<SwitchoverJson>;
  /** Local reads of the applied state. */
  get(key: string): KvRecord | undefined;
  range(options: RangeOptions): RangeResult;
  /** The leader as this member knows it, and its advertised client address when learned. */
  leader(): { readonly leaderId: string | null; readonly clientAddress: string | null };
  /** This member's own view of the cluster (members' match and lag only when it leads). */
  clusterView(): ClusterView;
  readiness(): Readiness;
  /** Keyspaces (catalog and multi-master); the /v1/keyspaces and /v1/ks routes exist only with it. */
  readonly keyspaceService?: KeyspaceService;
  /** Present only when test faults are enabled. */
  setTestFaults?(faults: TestFaults): void;
}
