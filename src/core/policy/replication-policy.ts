// PostgreSQL-style replication policies: `synchronous_commit` levels and
// `synchronous_standby_names` sets (FIRST k / ANY k), evaluated against the leader's view of
// its followers. Pure: the driver feeds it the progress it reads from the Raft core.

export type SynchronousCommit = 'off' | 'local' | 'on' | 'remote_apply';

export const synchronousCommitLevels: readonly SynchronousCommit[] = ['off', 'local', 'on', 'remote_apply'];

export interface StandbySet {
  /** 'first': the first `count` connected members in priority order must confirm;
   * 'any': any `count` of the listed members (quorum commit). */
  readonly method: 'first' | 'any';
  readonly count: number;
  /** Member ids in priority order; '*' stands for every other member (in id order). */
  readonly names: readonly string[];
}

export class PolicyError extends Error {
  readonly code = 'CHORUS_BAD_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'PolicyError';
  }
}

export function parseSynchronousCommit(text: string): SynchronousCommit {
  const level = text.trim().toLowerCase();
  // PostgreSQL also accepts remote_write; Chorus has no separate write-without-fsync step on
  // followers, so it means the same as `on`.
  if (level === 'remote_write') return 'on';
  if ((synchronousCommitLevels as readonly string[]).includes(level)) return level as SynchronousCommit;
  throw new PolicyError(`synchronous_commit must be one of ${synchronousCommitLevels.join(', ')}; got "${text}"`);
}

const namePattern = /^(?:"([^"]+)"|([A-Za-z0-9_.*-]+))$/;

/**
 * Parses `synchronous_standby_names` as PostgreSQL writes it: `FIRST k (a, b)`, `ANY k (a, b)`,
 * `k (a, b)` (FIRST), or a bare list `a, b` (FIRST 1). An empty string means no standby set.
 */
export function parseStandbyNames(text: string): StandbySet | null {
  const source = text.trim();
  if (source === '') return null;
  const full = /^(?:(first|any)\s+)?(\d+)\s*\((.*)\)$/is.exec(source);
  let method: 'first' | 'any' = 'first';
  let count = 1;
  let list = source;
  if (full !== null) {
    method = (full[1]?.toLowerCase() ?? 'first') as 'first' | 'any';
    count = Number(full[2]);
    list = full[3] ?? '';
  } else if (/[()]/.test(source)) {
    throw new PolicyError(`synchronous_standby_names: expected FIRST k (names), ANY k (names) or a list of names; got "${text}"`);
  }
  const names = list.split(',').map((raw) => {
    const match = namePattern.exec(raw.trim());
    if (match === null) throw new PolicyError(`synchronous_standby_names: bad member name "${raw.trim()}"`);
    return match[1] ?? match[2]!;
  });
  if (!Number.isSafeInteger(count) || count < 1) throw new PolicyError('synchronous_standby_names: k must be at least 1');
  if (new Set(names).size !== names.length) throw new PolicyError('synchronous_standby_names: a name is listed twice');
  if (count > names.length && !names.includes('*')) {
    throw new PolicyError(`synchronous_standby_names: k=${count} exceeds the ${names.length} names listed`);
  }
  return { method, count, names };
}

export function formatStandbyNames(set: StandbySet | null): string {
  if (set === null) return '';
  return `${set.method.toUpperCase()} ${set.count} (${set.names.join(', ')})`;
}

/** What the leader knows of one member. */
export interface MemberState {
  /** The highest index durable on the member (its match index). */
  readonly durableIndex: number;
  readonly appliedIndex: number;
  /** Whether it acknowledged the leader recently (within an election timeout). */
  readonly connected: boolean;
}

export interface StandbyEvaluation {
  /** The members whose confirmation counts now (FIRST: the chosen ones; ANY: every candidate). */
  readonly standbys: readonly string[];
  /** Whether enough members are available for the set to be met at all. */
  readonly satisfiable: boolean;
  /** The highest index durable on the set, and applied on it (0 when not satisfiable). */
  readonly durableIndex: number;
  readonly appliedIndex: number;
}

/**
 * Evaluates a standby set. `members` holds every member the leader knows, the leader included
 * (with its own durable and applied index, always connected). A named member that is the leader
 * counts with its own state: after a failover the old standby may lead, and its own log then
 * holds the write; blocking every write until the set is edited would turn a failover into an
 * outage. '*' stands for every member but the leader.
 */
export function evaluateStandbys(set: StandbySet, leaderId: string, members: ReadonlyMap<string, MemberState>): StandbyEvaluation {
  const candidates: string[] = [];
  for (const name of set.names) {
    const expanded = name === '*' ? [...members.keys()].filter((id) => id !== leaderId).sort() : [name];
    for (const id of expanded) if (members.has(id) && !candidates.includes(id)) candidates.push(id);
  }
  if (set.method === 'first') {
    // PostgreSQL's priority rule: the first k connected standbys in list order are synchronous.
    const chosen = candidates.filter((id) => members.get(id)!.connected).slice(0, set.count);
    if (chosen.length < set.count) return { standbys: chosen, satisfiable: false, durableIndex: 0, appliedIndex: 0 };
    const states = chosen.map((id) => members.get(id)!);
    return {
      standbys: chosen,
      satisfiable: true,
      durableIndex: Math.min(...states.map((s) => s.durableIndex)),
      appliedIndex: Math.min(...states.map((s) => s.appliedIndex)),
    };
  }
  // ANY k: an index counts once any k listed members hold it, connected now or not (what a
  // member made durable stays durable).
  if (candidates.length < set.count) return { standbys: candidates, satisfiable: false, durableIndex: 0, appliedIndex: 0 };
  const kth = (values: number[]): number => values.sort((a, b) => b - a)[set.count - 1]!;
  const states = candidates.map((id) => members.get(id)!);
  const connected = states.filter((s) => s.connected).length;
  return {
    standbys: candidates,
    satisfiable: connected >= set.count || kth(states.map((s) => s.durableIndex)) > 0,
    durableIndex: kth(states.map((s) => s.durableIndex)),
    appliedIndex: kth(states.map((s) => s.appliedIndex)),
  };
}

export interface WriteProgress {
  /** The write's log position. */
  readonly index: number;
  /** Whether the leader's own log still holds the write at that position. */
  readonly inLeaderLog: boolean;
  readonly leaderDurableIndex: number;
  readonly commitIndex: number;
  readonly leaderAppliedIndex: number;
  /** The standby set's evaluation, or null when no standby names are set. */
  readonly standbys: StandbyEvaluation | null;
}

/**
 * Whether a write may be acknowledged at `level`:
 * - off: once appended by the leader (not yet durable anywhere);
 * - local: once durable in the leader's log;
 * - on: once committed (durable on a majority) and durable on the standby set;
 * - remote_apply: as on, and applied on the standby set (and on the leader, so it is readable).
 * off and local acknowledge uncommitted writes; callers report `committed: false` for them.
 */
export function writeAcknowledged(level: SynchronousCommit, w: WriteProgress): boolean {
  if (!w.inLeaderLog) return false;
  switch (level) {
    case 'off':
      return true;
    case 'local':
      return w.leaderDurableIndex >= w.index;
    case 'on':
      return w.commitIndex >= w.index && (w.standbys === null || w.standbys.durableIndex >= w.index);
    case 'remote_apply':
      return w.commitIndex >= w.index && w.leaderAppliedIndex >= w.index && (w.standbys === null || w.standbys.appliedIndex >= w.index);
  }
}
