// How a Raft member is built: its options with their defaults and checks, and the durable state
// it boots from.
import { assert } from './assert.ts';
import type { Entry, HardState, Membership, NodeId, Snapshot, SnapshotMeta } from './types.ts';

export interface Random {
  int(maxExclusive: number): number;
}

export interface RaftOptions {
  readonly id: NodeId;
  readonly random: Random;
  /** A follower that hears no leader for a randomized [electionTicks, 2*electionTicks) campaigns. */
  readonly electionTicks?: number;
  readonly heartbeatTicks?: number;
  readonly preVote?: boolean;
  /** A leader that has not heard from a quorum within the window steps down; voters that heard
   * from a leader within electionTicks ignore vote requests (the leader lease). */
  readonly checkQuorum?: boolean;
  /** Lease reads: 0 disables them. Requires checkQuorum and must be below electionTicks, leaving
   * room for clock drift between members (documented in docs/guarantees.md). */
  readonly leaseTicks?: number;
  readonly appendEntriesMax?: number;
  readonly appendBytesMax?: number;
  readonly inflightMsgsMax?: number;
  readonly snapshotChunkBytes?: number;
  /** Snapshot chunks sent to one follower and not yet acknowledged, at most (default 4): the
   * transfer streams instead of waiting a round trip per chunk. */
  readonly snapshotChunksInflightMax?: number;
  /** Proposals beyond this many uncommitted entries are answered `busy`. */
  readonly uncommittedEntriesMax?: number;
  readonly readsPendingMax?: number;
  readonly applyEntriesMax?: number;
  /** Check the core's invariants after every input (tests and the simulator turn this on). */
  readonly assertInvariants?: boolean;
}

export interface RaftBootState {
  /** The membership the cluster was bootstrapped with; empty for a member that joins later. */
  readonly initialConfig: Membership;
  readonly hardState?: HardState | null;
  /** The stored snapshot with its image. */
  readonly snapshot?: Snapshot | null;
  /** Or only the stored snapshot's position, when the driver's state machine is durable on its
   * own and keeps no image (it makes one when snapshotWanted() asks). Ignored with `snapshot`. */
  readonly snapshotMeta?: SnapshotMeta | null;
  readonly entries?: readonly Entry[];
}

/** Every option but the identity, with its default filled in. */
export type RaftSettings = Required<Omit<RaftOptions, 'id' | 'random'>>;

/** The options with their defaults, checked: a setting the core cannot run with throws. */
export function resolveOptions(options: RaftOptions): RaftSettings {
  const settings: RaftSettings = {
    electionTicks: options.electionTicks ?? 10,
    heartbeatTicks: options.heartbeatTicks ?? 1,
    preVote: options.preVote ?? true,
    checkQuorum: options.checkQuorum ?? true,
    leaseTicks: options.leaseTicks ?? 0,
    appendEntriesMax: options.appendEntriesMax ?? 512,
    appendBytesMax: options.appendBytesMax ?? 1024 * 1024,
    inflightMsgsMax: options.inflightMsgsMax ?? 64,
    snapshotChunkBytes: options.snapshotChunkBytes ?? 1024 * 1024,
    snapshotChunksInflightMax: options.snapshotChunksInflightMax ?? 4,
    uncommittedEntriesMax: options.uncommittedEntriesMax ?? 50_000,
    readsPendingMax: options.readsPendingMax ?? 50_000,
    applyEntriesMax: options.applyEntriesMax ?? 4096,
    assertInvariants: options.assertInvariants ?? false,
  };
  assert(settings.snapshotChunksInflightMax >= 1, 'snapshotChunksInflightMax must be at least 1');
  assert(settings.electionTicks > settings.heartbeatTicks, 'electionTicks must exceed heartbeatTicks');
  assert(settings.heartbeatTicks >= 1, 'heartbeatTicks must be at least 1');
  if (settings.leaseTicks > 0) {
    assert(settings.checkQuorum, 'lease reads require checkQuorum');
    assert(settings.leaseTicks < settings.electionTicks, 'leaseTicks must be below electionTicks');
  }
  return settings;
}
