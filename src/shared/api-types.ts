// The JSON shapes of the HTTP API (docs/api.md). The typed client imports these as types only.

export type MemberRole = 'leader' | 'follower' | 'candidate' | 'learner';

export interface ClusterMember {
  readonly id: string;
  /** Node-to-node address from the initial cluster. */
  readonly peerAddress: string | null;
  /** HTTP address, as the member advertised it in the transport handshake; null until learned. */
  readonly clientAddress: string | null;
  readonly role: MemberRole;
  readonly voter: boolean;
  /** The leader heard from it within an election timeout (leader's view), or the transport
   * connection to it is up (a follower's own view). */
  readonly reachable: boolean;
  /** From the leader's progress; null when the answer was not the leader's view. */
  readonly matchIndex: number | null;
  /** The member's applied index as last reported to the leader (null outside the leader's view). */
  readonly appliedIndex: number | null;
  /** How far behind the leader's log the member's applied state is: entries, bytes (of entry
   * payloads) and seconds (since the leader appended the oldest entry it has not applied); null
   * outside the leader's view. */
  readonly lagEntries: number | null;
  readonly lagBytes: number | null;
  readonly lagSeconds: number | null;
  /** Caught up, or its applied index moved recently (null outside the leader's view). */
  readonly progressing: boolean | null;
  /** Whether it could lead now: a voter the leader heard from within an election timeout whose
   * log holds every committed entry. null outside the leader's view. */
  readonly canLead: boolean | null;
  /** Why not: 'learner', 'unreachable' or 'behind by N entries' (null when it can). */
  readonly whyNot: string | null;
}

export interface ReplicationConfigJson {
  readonly synchronous_commit: string;
  readonly synchronous_standby_names: string;
  /** 'replicated' (set through PUT /v1/config/replication: every member agrees) or 'config'
   * (this member's flags or config file, until a value is replicated). */
  readonly source: 'replicated' | 'config';
  /** Revision of the replicated value (0 for a seed from the configuration). */
  readonly revision: number;
}

export interface ReplicationStatusJson extends ReplicationConfigJson {
  /** The members whose confirmation counts now (leader's view only; [] elsewhere). */
  readonly standbys: readonly string[];
  /** Whether enough standbys are connected for writes at on/remote_apply to complete (null
   * outside the leader's view). */
  readonly satisfiable: boolean | null;
}

export interface MemberChangeJson {
  readonly id: string;
  readonly peerAddress: string | null;
  readonly role: 'voter' | 'learner' | 'removed';
  /** The log index of the configuration change. */
  readonly revision: number;
  /** The leader's commit index when the change committed: a new member has caught up once it
   * applied this much (chorus member add waits for it). */
  readonly commitIndex: number;
}

export interface SwitchoverJson {
  readonly previousLeaderId: string;
  readonly leaderId: string;
  readonly term: number;
}

export interface ReplicaHealth {
  readonly id: string;
  readonly role: MemberRole;
  readonly leaderId: string | null;
  /** Entries this member still has to apply to reach the leader's latest commit index it knows
   * of; null when it heard from no leader recently. */
  readonly lagEntries: number | null;
}

export interface ClusterView {
  readonly clusterId: string;
  readonly term: number;
  readonly leaderId: string | null;
  readonly self: {
    readonly id: string;
    readonly role: MemberRole;
    readonly commitIndex: number;
    readonly appliedIndex: number;
    readonly lastIndex: number;
    readonly snapshotIndex: number;
    readonly clientAddress: string | null;
    readonly peerAddress: string | null;
  };
  readonly members: readonly ClusterMember[];
  /** 'leader': members (roles, match, lag) come from the leader's progress; 'local': from this
   * member's own knowledge (no leader known, or it could not be asked). */
  readonly membersSource: 'leader' | 'local';
  /** The replication settings in force (standbys and satisfiable from the leader's view). */
  readonly replication: ReplicationStatusJson;
}

export interface Readiness {
  readonly ready: boolean;
  readonly leaderId: string | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly reason?: string;
}

/** Test-only network faults of one member (POST /v1/test/faults, with --enable-test-faults). */
export interface TestFaults {
  /** Drop every message to and from every other member. */
  readonly isolate?: boolean;
  /** Drop messages to these members. */
  readonly dropTo?: readonly string[];
  /** Drop messages from these members. */
  readonly dropFrom?: readonly string[];
}

export interface KvListItem {
  readonly key: string;
  /** base64 */
  readonly value: string;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
}

export type TxnCompareJson = {
  readonly key: string;
  readonly target: 'value' | 'version' | 'modRevision' | 'createRevision';
  readonly op: '==' | '!=' | '<' | '>';
  readonly value?: string | number;
  readonly valueBase64?: string;
};

export type TxnOpJson =
  | { readonly op: 'put'; readonly key: string; readonly value?: string; readonly valueBase64?: string }
  | { readonly op: 'delete'; readonly key: string }
  | { readonly op: 'get'; readonly key: string };

export interface TxnRequestJson {
  readonly compare?: readonly TxnCompareJson[];
  readonly success?: readonly TxnOpJson[];
  readonly failure?: readonly TxnOpJson[];
}

export type TxnResultJson =
  | { readonly op: 'put'; readonly key: string }
  | { readonly op: 'delete'; readonly key: string; readonly deleted: 0 | 1 }
  | {
      readonly op: 'get';
      readonly key: string;
      readonly found: true;
      /** The value as UTF-8 text, present only when the bytes are valid UTF-8. */
      readonly value?: string;
      readonly valueBase64: string;
      readonly createRevision: number;
      readonly modRevision: number;
      readonly version: number;
    }
  | { readonly op: 'get'; readonly key: string; readonly found: false };

export interface TxnResponseJson {
  readonly succeeded: boolean;
  readonly revision: number;
  readonly results: readonly TxnResultJson[];
}

export interface ErrorJson {
  readonly code: string;
  readonly message: string;
}
