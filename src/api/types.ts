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
  /** The leader's last index minus matchIndex; null as matchIndex. */
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
