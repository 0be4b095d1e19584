// The replication settings in force on a member: synchronous_commit and
// synchronous_standby_names, from the configuration (flags or file: the seed) until a value is
// replicated through the log (PUT /v1/config/replication), which then wins on every member.
import { formatStandbyNames, parseStandbyNames, parseSynchronousCommit, PolicyError } from '../core/policy/replication-policy.ts';
import type { StandbySet, SynchronousCommit } from '../core/policy/replication-policy.ts';
import { KvError } from '../kv/errors.ts';
import type { ReplicationSettings } from '../kv/sqlite-state-machine.ts';

export interface ReplicationState {
  readonly synchronousCommit: SynchronousCommit;
  /** Canonical form; '' for no standby set. */
  readonly synchronousStandbyNames: string;
  readonly standbySet: StandbySet | null;
  /** 'replicated': set through the log (it wins); 'config': the member's own flags or file. */
  readonly source: 'replicated' | 'config';
  /** The revision of the replicated value, 0 for the seed. */
  readonly revision: number;
}

export function resolveReplication(
  seed: { readonly synchronousCommit: SynchronousCommit; readonly synchronousStandbyNames: string },
  replicated: ReplicationSettings | null,
): ReplicationState {
  const source = replicated ?? seed;
  return {
    synchronousCommit: source.synchronousCommit,
    synchronousStandbyNames: source.synchronousStandbyNames,
    standbySet: parseStandbyNames(source.synchronousStandbyNames),
    source: replicated === null ? 'config' : 'replicated',
    revision: replicated?.revision ?? 0,
  };
}

/** A commit level from a request or a settings document: CHORUS_BAD_CONFIG when unknown. */
export function parseCommitLevel(text: string): SynchronousCommit {
  try {
    return parseSynchronousCommit(text);
  } catch (error) {
    if (error instanceof PolicyError) throw new KvError('CHORUS_BAD_CONFIG', error.message);
    throw error;
  }
}

/** Standby names in canonical form: CHORUS_BAD_CONFIG when they do not parse. */
export function canonicalStandbyNames(text: string): string {
  try {
    return formatStandbyNames(parseStandbyNames(text));
  } catch (error) {
    if (error instanceof PolicyError) throw new KvError('CHORUS_BAD_CONFIG', error.message);
    throw error;
  }
}

/**
 * Whether this member should report each apply to the leader at once (Raft
 * setEagerAppliedReports). remote_apply waits for the standbys' applied index, which followers
 * otherwise report only with their next heartbeat answer. Only a named standby's reports count,
 * and a member cannot see which level each request asks for, so: on when remote_apply is the
 * default, or when this member is in the standby set (then a per-request remote_apply is fast
 * too). Without a standby set remote_apply waits for nobody but the leader.
 */
export function eagerAppliedReportsWanted(state: ReplicationState, selfId: string): boolean {
  if (state.synchronousCommit === 'remote_apply') return true;
  const names = state.standbySet?.names ?? [];
  return names.includes(selfId) || names.includes('*');
}
