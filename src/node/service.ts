// What the HTTP and binary APIs need of a member. ChorusNode implements it; API tests use fakes.
import type { LocalWrite, ReadView } from '../core/mm/index.ts';
import type { Command, KvLimits } from '../kv/commands.ts';
import type { KeyspaceDef, KvRecord, RangeOptions, RangeResult } from '../kv/sqlite-state-machine.ts';
import type { MultiMasterWriteResult } from '../mm-node/host.ts';
import type { ClusterView, MemberChangeJson, Readiness, ReplicaHealth, ReplicationConfigJson, SwitchoverJson, TestFaults } from '../shared/api-types.ts';
import type { ReadMode, ReplicationPatch, WriteAck, WriteOptions } from '../shared/operations.ts';

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

/** Keyspaces: the catalog and multi-master reads and writes (the /v1/keyspaces and /v1/ks routes). */
export interface KeyspaceService {
  keyspaces(): KeyspaceDef[];
  keyspace(name: string): KeyspaceDef | undefined;
  createKeyspace(request: { readonly name: string; readonly mode: 'consensus' | 'multi-master'; readonly conflicts: '' | 'lww' | 'versions' | 'crdt' }, deadlineMs: number): Promise<{ readonly keyspace: KeyspaceDef; readonly created: boolean }>;
  mmWrite(keyspace: string, key: string, write: LocalWrite, w: number, deadlineMs: number): Promise<MultiMasterWriteResult>;
  mmRead(keyspace: string, key: string): ReadView;
  mmList(keyspace: string, prefix: string, limit: number): { readonly items: readonly { readonly key: string; readonly view: ReadView }[]; readonly more: boolean };
  get(key: string): KvRecord | undefined;
  range(options: RangeOptions): RangeResult;
}
