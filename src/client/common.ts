// What the HTTP client (index.ts) and the binary client (binary.ts) share: the error both throw,
// the result of a read, and the consistency and commit levels they accept.

export class ChorusClientError extends Error {
  /** The server's code (CHORUS_...), or a client-side one: CHORUS_UNAVAILABLE (no endpoint could
   * be reached; nothing was delivered), CHORUS_TIMEOUT (deadline passed or the connection broke
   * after sending: the outcome of a write is unknown). */
  readonly code: string;
  /** The HTTP status, or 0 when no response was received. */
  readonly status: number;
  readonly endpoint: string | null;

  constructor(code: string, status: number, message: string, endpoint: string | null, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ChorusClientError';
    this.code = code;
    this.status = status;
    this.endpoint = endpoint;
  }
}

export interface GetResult {
  readonly value: Uint8Array;
  /** The key's mod revision (0 in a multi-master keyspace). */
  readonly revision: number;
  readonly createRevision: number;
  readonly version: number;
  /** Multi-master keyspaces: the winning write's HLC stamp (lww). */
  readonly stamp?: string;
  /** Multi-master keyspaces (versions): the causal context to give back with the next write. */
  readonly context?: string;
  /** Multi-master keyspaces (versions, crdt): the answer is JSON (siblings, or a CRDT's value). */
  readonly json?: unknown;
}

export type Consistency = 'linearizable' | 'lease' | 'stale';

/** synchronous_commit levels (docs/replication.md). */
export type CommitLevel = 'off' | 'local' | 'on' | 'remote_apply';
