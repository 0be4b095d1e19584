// What the HTTP API needs of a member. ChorusNode implements it; API tests use fakes.
import type { Command, KvLimits } from '../kv/commands.ts';
import type { ApplyResult, KvRecord, RangeOptions, RangeResult } from '../kv/sqlite-state-machine.ts';
import type { ClusterView, Readiness, TestFaults } from './types.ts';

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
  propose(command: Command, deadlineMs: number): Promise<ApplyResult>;
  /** Resolves once this member's state machine reflects every write committed before the call
   * (ReadIndex): reads made right after are linearizable. */
  readBarrier(deadlineMs: number): Promise<void>;
  /** Local reads of the applied state. */
  get(key: string): KvRecord | undefined;
  range(options: RangeOptions): RangeResult;
  /** The leader as this member knows it, and its advertised client address when learned. */
  leader(): { readonly leaderId: string | null; readonly clientAddress: string | null };
  /** This member's own view of the cluster (members' match and lag only when it leads). */
  clusterView(): ClusterView;
  readiness(): Readiness;
  /** Present only when test faults are enabled. */
  setTestFaults?(faults: TestFaults): void;
}
