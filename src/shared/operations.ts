// What a write or a read asks of a member, and what an acknowledged write reports. Shared by the
// HTTP and binary APIs, the member and its driver.
import type { SynchronousCommit } from '../core/policy/replication-policy.ts';
import type { ApplyResult } from '../kv/sqlite-state-machine.ts';

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
