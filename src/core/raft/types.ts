// Wire and storage types of the Raft core. Everything here is plain data: no classes, no
// methods, so that the transport and storage can encode it (msgpack) and the simulator can
// copy it freely.

export type NodeId = string;

/** Cluster membership. A member is either a voter or a learner, never both. */
export interface Membership {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

export type EntryType = 'normal' | 'noop' | 'config';

export interface Entry {
  readonly index: number;
  readonly term: number;
  readonly type: EntryType;
  /** Application payload for 'normal' entries. Opaque to the core. */
  readonly data?: Uint8Array;
  /** The complete new membership for 'config' entries; it takes effect once appended. */
  readonly config?: Membership;
}

/** State that must be durable before any message of the same ready leaves the member. */
export interface HardState {
  readonly term: number;
  /** The member voted for in `term`, or null. Invariant: at most one vote per term. */
  readonly vote: NodeId | null;
  readonly commit: number;
}

export interface SnapshotMeta {
  /** The last log index the snapshot covers. */
  readonly index: number;
  readonly term: number;
  /** The membership in force at `index`. */
  readonly config: Membership;
}

export interface Snapshot {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

/** The bytes of an image a leader sends: a Uint8Array, or the driver's view of a file that it
 * reads a chunk at a time (so that a leader need not hold its state in memory to send it). The
 * bytes must not change while the core holds the image; `subarray` may copy. */
export interface ImageBytes {
  readonly byteLength: number;
  subarray(begin: number, end: number): Uint8Array;
}

/** An image this member holds to send to followers behind its log. */
export interface Image {
  readonly meta: SnapshotMeta;
  readonly data: ImageBytes;
}

/** A piece of an image a follower is receiving, in order: `offset` 0 starts a new image (what
 * was received of another one is abandoned), each next chunk continues at the bytes so far. */
export interface SnapshotChunk {
  readonly meta: SnapshotMeta;
  readonly offset: number;
  readonly totalBytes: number;
  readonly data: Uint8Array;
}

/** A received image is complete: its chunks, in `Ready.snapshotChunks` of this ready and the
 * ones before, make `totalBytes` bytes. The core does not keep the bytes (an image may be larger
 * than memory): the driver writes the chunks where it restores from. */
export interface SnapshotInstall {
  readonly meta: SnapshotMeta;
  readonly totalBytes: number;
}

interface MessageBase {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
}

/** Leader-originated messages carry a sequence number and the leader's tick at sending; the
 * reply echoes both. `seq` confirms ReadIndex rounds; `sentTick` measures the lease and
 * check-quorum from the time of sending, which bounds the time of receipt from below. */
interface LeaderContext {
  readonly seq: number;
  readonly sentTick: number;
}

export interface PreVoteMessage extends MessageBase {
  readonly type: 'PreVote';
  readonly lastIndex: number;
  readonly lastTerm: number;
}
export interface VoteMessage extends MessageBase {
  readonly type: 'Vote';
  readonly lastIndex: number;
  readonly lastTerm: number;
  /** Set when the campaign follows a leadership transfer: voters ignore their leader lease. */
  readonly transfer: boolean;
}
export interface VoteResponseMessage extends MessageBase {
  readonly type: 'PreVoteResp' | 'VoteResp';
  readonly granted: boolean;
}
export interface AppendMessage extends MessageBase, LeaderContext {
  readonly type: 'Append';
  readonly prevIndex: number;
  readonly prevTerm: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
}
export interface AppendResponseMessage extends MessageBase, LeaderContext {
  readonly type: 'AppendResp';
  readonly reject: boolean;
  /** On success: the highest index known to match the leader. On reject: the prevIndex refused. */
  readonly index: number;
  /** On reject: the term of the follower's entry at the refused index (0 when it has none)... */
  readonly conflictTerm: number;
  /** ...and the first index of that term in its log, or its last index + 1 when the log is short. */
  readonly conflictIndex: number;
  /** The follower's applied index: the leader tracks it for remote_apply commit levels. */
  readonly applied: number;
}
export interface HeartbeatMessage extends MessageBase, LeaderContext {
  readonly type: 'Heartbeat';
  /** min(the follower's match, the leader's commit): what the follower may commit. */
  readonly commit: number;
  /** The leader's own commit index when it sent this, or -1 when it cannot vouch that no other
   * leader has committed more (see Raft.commitAttested). A follower that has applied it holds
   * every write acknowledged before that moment (bounded-staleness reads build on this). */
  readonly leaderCommit: number;
}
export interface HeartbeatResponseMessage extends MessageBase, LeaderContext {
  readonly type: 'HeartbeatResp';
  /** The follower's applied index. A follower with eager applied reports also sends this
   * message unsolicited (seq 0) whenever it applies more. */
  readonly applied: number;
}
export interface SnapshotChunkMessage extends MessageBase, LeaderContext {
  readonly type: 'Snapshot';
  readonly meta: SnapshotMeta;
  readonly offset: number;
  readonly totalBytes: number;
  readonly chunk: Uint8Array;
}
export interface SnapshotResponseMessage extends MessageBase, LeaderContext {
  readonly type: 'SnapshotResp';
  readonly snapshotIndex: number;
  /** The next byte offset the follower expects, or totalBytes once installed. */
  readonly nextOffset: number;
  readonly done: boolean;
  readonly reject: boolean;
}
export interface TimeoutNowMessage extends MessageBase {
  readonly type: 'TimeoutNow';
}
/** A follower asks the leader to confirm a read index for one of its reads. */
export interface ReadIndexMessage extends MessageBase {
  readonly type: 'ReadIndex';
  readonly readId: string;
}
export interface ReadIndexResponseMessage extends MessageBase {
  readonly type: 'ReadIndexResp';
  readonly readId: string;
  /** -1 when the leader refused (not leader, or not yet able to serve reads). */
  readonly index: number;
}

export type Message =
  | PreVoteMessage
  | VoteMessage
  | VoteResponseMessage
  | AppendMessage
  | AppendResponseMessage
  | HeartbeatMessage
  | HeartbeatResponseMessage
  | SnapshotChunkMessage
  | SnapshotResponseMessage
  | TimeoutNowMessage
  | ReadIndexMessage
  | ReadIndexResponseMessage;

export type MessageType = Message['type'];

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

/** The answer to every proposal. */
export type ProposeResult =
  | { readonly kind: 'accepted'; readonly index: number; readonly term: number }
  | { readonly kind: 'not-leader'; readonly leaderId: NodeId | null }
  | { readonly kind: 'dropped'; readonly reason: 'transfer-in-progress' | 'config-change-pending' | 'invalid-config' }
  | { readonly kind: 'busy' };

/** A read whose index is confirmed: serve it once the state machine has applied `index`. */
export interface ReadState {
  readonly readId: string;
  readonly index: number;
}

/** A read the core could not confirm, with the reason, so the driver can fail it at once. */
export interface ReadFailure {
  readonly readId: string;
  /** not-leader: no leader known, or it changed; stepped-down: this leader lost its role;
   * dropped: too many reads pending; expired: a forwarded read got no answer in time. */
  readonly reason: 'not-leader' | 'stepped-down' | 'dropped' | 'expired';
  readonly leaderId: NodeId | null;
}

/**
 * What the driver must do, in this order:
 *  1. send `messagesBeforePersist` (the leader's appends: Raft thesis 10.2.1 lets the leader
 *     replicate while it writes its own disk; it counts itself only once `advance` says so);
 *     write `snapshotChunks` in order into the image being received;
 *  2. make `snapshot` (if any: the image those chunks made), then `entries` and `hardState`
 *     durable (fsync);
 *  3. send `messages`;
 *  4. apply `committedEntries` (and restore `snapshot` into the state machine first, if any);
 *  5. serve `readStates` once applied >= index, fail `readFailures`;
 *  6. call `advance(ready)`.
 * `entries[0].index` may be at or below the last stored index: the store then truncates
 * from that index before appending (the leader overwrote a divergent suffix).
 */
export interface Ready {
  readonly hardState: HardState | null;
  /** etcd's MustSync: the hard state's term or vote changed, so it must be durable before
   * `messages` leave (a vote or a term promised to a peer). False when only the commit index
   * moved: that is a hint for recovery (the core re-learns it from the leader), which the driver
   * may save later, but never ahead of the entries it covers. False when hardState is null. */
  readonly hardStateMustSync: boolean;
  readonly entries: readonly Entry[];
  /** Pieces of an image being received, to write before anything else of this ready. A ready
   * that installs an image (`snapshot`) holds no piece of another one. */
  readonly snapshotChunks: readonly SnapshotChunk[];
  readonly snapshot: SnapshotInstall | null;
  /** With a snapshot: whether the stored log after the snapshot's index stays ('keep': the log
   * held the snapshot's last entry, Raft Figure 13) or is discarded entirely ('discard'). */
  readonly logAfterSnapshot: 'keep' | 'discard';
  readonly messagesBeforePersist: readonly Message[];
  readonly messages: readonly Message[];
  readonly committedEntries: readonly Entry[];
  readonly readStates: readonly ReadState[];
  readonly readFailures: readonly ReadFailure[];
}
