// Membership changes: one server at a time (Raft thesis §4.1), each taking effect once appended.
import type { Membership, NodeId } from './types.ts';

export type ConfigChange =
  | { readonly kind: 'add-voter'; readonly id: NodeId }
  | { readonly kind: 'add-learner'; readonly id: NodeId }
  | { readonly kind: 'promote'; readonly id: NodeId }
  | { readonly kind: 'remove'; readonly id: NodeId };

/** Voters first, then learners. */
export function membersOf(config: Membership): NodeId[] {
  return [...config.voters, ...config.learners];
}

/**
 * Whether a leader may propose a change now. Changes go one at a time, and only after an entry
 * of the leader's term committed (Raft thesis §4.1 and the 2015 fix on raft-dev): otherwise two
 * configurations can diverge.
 */
export function configChangeAllowed(pendingConfigIndex: number, committed: number, termStartIndex: number): boolean {
  return pendingConfigIndex <= committed && committed >= termStartIndex;
}

/** The membership after a single-server change, or null when the change is not valid. */
export function applyConfigChange(config: Membership, change: ConfigChange): Membership | null {
  const voters = config.voters.filter((v) => v !== change.id);
  const learners = config.learners.filter((l) => l !== change.id);
  const isVoter = config.voters.includes(change.id);
  const isLearner = config.learners.includes(change.id);
  switch (change.kind) {
    case 'add-voter':
      if (isVoter) return null;
      return { voters: [...voters, change.id], learners };
    case 'add-learner':
      if (isVoter || isLearner) return null;
      return { voters, learners: [...learners, change.id] };
    case 'promote':
      if (!isLearner) return null;
      return { voters: [...voters, change.id], learners };
    case 'remove':
      if (!isVoter && !isLearner) return null;
      if (isVoter && voters.length === 0) return null;
      return { voters, learners };
  }
}
