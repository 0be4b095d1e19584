// Majorities: the value a quorum of voters reaches (commit index, confirmed read rounds, the
// lease) and the outcome of an election.
import type { NodeId } from './types.ts';

/** The largest value that a quorum (majority) of the given values reaches. */
export function quorumValue(values: readonly number[]): number {
  if (values.length === 0) return Number.NEGATIVE_INFINITY;
  const sorted = [...values].sort((a, b) => b - a);
  return sorted[Math.floor(values.length / 2)]!;
}

/** The value a quorum of `voters` reaches, each voter's given by `valueOf`. */
export function votersQuorumValue(voters: readonly NodeId[], valueOf: (voter: NodeId) => number): number {
  return quorumValue(voters.map(valueOf));
}

export type ElectionOutcome = 'won' | 'lost' | 'pending';

/** A (pre-)election among `voters`: won once a majority granted, lost once a majority refused. */
export function electionOutcome(voters: readonly NodeId[], granted: ReadonlySet<NodeId>, rejected: ReadonlySet<NodeId>): ElectionOutcome {
  const quorum = Math.floor(voters.length / 2) + 1;
  if (voters.filter((v) => granted.has(v)).length >= quorum) return 'won';
  if (voters.filter((v) => rejected.has(v)).length >= quorum) return 'lost';
  return 'pending';
}
