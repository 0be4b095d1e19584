// The member-wide invariants the core checks after every input when asked to (tests and the
// simulator do): the log's own, the leader's bookkeeping, and one vote per term, which needs
// the vote seen at the previous check.
import { assert } from './assert.ts';
import { membersOf } from './confchange.ts';
import type { RaftLog } from './log.ts';
import type { Progress } from './progress.ts';
import type { Image, NodeId, Role } from './types.ts';

/** What the checks look at, as the member holds it now. */
export interface InvariantSubject {
  readonly id: NodeId;
  readonly log: RaftLog;
  readonly term: number;
  readonly vote: NodeId | null;
  readonly role: Role;
  readonly leaderId: NodeId | null;
  readonly image: Image | null;
  readonly progress: ReadonlyMap<NodeId, Progress>;
}

export class RaftInvariants {
  private votedTermSeen = 0;
  private voteSeen: NodeId | null = null;

  check(s: InvariantSubject): void {
    s.log.checkInvariants();
    assert(s.log.lastTerm() <= s.term, `last log term ${s.log.lastTerm()} above current term ${s.term}`);
    if (s.image !== null) {
      assert(s.image.meta.index >= s.log.firstIndex() - 1, `the image at ${s.image.meta.index} is below the log's start ${s.log.firstIndex()}`);
    }
    if (s.role === 'leader') {
      assert(s.leaderId === s.id, 'a leader must name itself as leader');
      for (const member of membersOf(s.log.config())) {
        if (member !== s.id) assert(s.progress.has(member), `leader lacks progress for ${member}`);
      }
      for (const pr of s.progress.values()) pr.checkInvariants();
    }
    // At most one vote per term.
    if (s.term === this.votedTermSeen && this.voteSeen !== null) {
      assert(s.vote === this.voteSeen, `vote changed within term ${s.term}: ${this.voteSeen} -> ${s.vote}`);
    }
    this.votedTermSeen = s.term;
    this.voteSeen = s.vote;
  }
}
