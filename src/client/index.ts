// A typed client of the Chorus HTTP API. It knows several endpoints, sends writes to the leader
// it last heard of (members name the leader in the chorus-leader-address header), and retries
// only what is safe to retry:
//   - a request that could not be delivered (connection refused) goes to the next endpoint;
//   - a 503 (the write certainly did not happen: no leader, busy, leader changed) is retried on
//     another endpoint after a short pause, until the deadline;
//   - a 504, or a connection that failed after the request went out, is an unknown outcome and
//     is never retried for writes: the caller gets CHORUS_TIMEOUT.
// It uses the global fetch (undici), which keeps connections alive between requests.
import type {
  ClusterView, KvListItem, MemberChangeJson, ReplicaHealth, ReplicationConfigJson, SwitchoverJson, TxnRequestJson, TxnResponseJson,
} from '../shared/api-types.ts';
import { ChorusClientError } from './common.ts';
import type { CommitLevel, Consistency, GetResult } from './common.ts';

export { ChorusClientError } from './common.ts';
export type { CommitLevel, Consistency, GetResult } from './common.ts';
export type {
  ClusterView, ClusterMember, MemberChangeJson, ReplicaHealth, ReplicationConfigJson, ReplicationStatusJson, SwitchoverJson,
  TxnRequestJson, TxnResponseJson, TxnResultJson, TxnCompareJson, TxnOpJson,
} from '../shared/api-types.ts';

export interface ChorusClientOptions {
  /** Base URLs ("http://127.0.0.1:8001") or "host:port" strings; a comma-separated string works too. */
  readonly endpoints: readonly string[] | string;
  /** Deadline of each operation, retries included (default 10,000 ms). */
  readonly timeoutMs?: number;
  /** Pause before retrying after a 503 (default 100 ms, doubling up to 1 s). */
  readonly retryDelayMs?: number;
}

/** A keyspace of the catalog (GET/POST /v1/keyspaces). */
export interface KeyspaceJson {
  readonly name: string;
  readonly mode: 'consensus' | 'multi-master';
  readonly conflicts?: 'lww' | 'versions' | 'crdt';
  readonly members?: readonly string[];
  readonly revision?: number;
  readonly builtin?: boolean;
}

/** The answer to a write in a multi-master keyspace. */
export interface MultiMasterWriteJson {
  readonly keyspace: string;
  readonly key: string;
  /** The write's event ("member:seq") and HLC stamp. */
  readonly dot: string;
  readonly stamp: string;
  readonly w: number;
  /** Members known to hold the write durably when it was acknowledged. */
  readonly durableMembers: number;
  /** versions: siblings left and the new causal context. */
  readonly siblings?: number;
  readonly context?: string;
  /** crdt: the merged value after the operation. */
  readonly value?: unknown;
}

export interface ListItem {
  readonly key: string;
  readonly value: Uint8Array;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
}

export interface WriteOptions {
  /** Commit level of this write; the cluster default (synchronous_commit) when absent. */
  readonly commit?: CommitLevel;
  /** Write into this keyspace of the catalog instead of /v1/kv. */
  readonly keyspace?: string;
  /** Multi-master keyspaces: acknowledge once this many members hold the write (default 1). */
  readonly w?: number;
  /** Multi-master keyspaces (versions): the context of a read; the write replaces what it saw. */
  readonly context?: string;
}

export interface ReadOptions {
  /** Read from this keyspace of the catalog instead of /v1/kv. */
  readonly keyspace?: string;
  /** linearizable (default), lease, or stale (this member's own state). */
  readonly consistency?: Consistency;
  /** Serve only if the member can show its state is at most this old (implies stale); a member
   * that cannot answers 503 CHORUS_TOO_STALE and the client tries the next endpoint. */
  readonly maxStalenessMs?: number;
  /** Serve once the member has applied this revision (read-your-writes; implies stale). */
  readonly minRevision?: number;
}

/** What a write acknowledged: `committed` is false at off/local (the write may still be lost). */
export interface WriteResult {
  readonly revision: number;
  readonly committed: boolean;
}

/** 503 codes: the request was not carried out, so it is safe to send again elsewhere. */
const RETRYABLE_CODES: ReadonlySet<string> = new Set(['CHORUS_NO_LEADER', 'CHORUS_BUSY', 'CHORUS_LEADER_CHANGED', 'CHORUS_STOPPING', 'CHORUS_FATAL', 'CHORUS_TOO_STALE']);
/** Connection errors that happen before any byte of the request left. */
const NOT_DELIVERED_CAUSES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);
const LEADER_HEADER = 'chorus-leader-address';
const RETRY_DELAY_MS_MAX = 1000;

export function normalizeEndpoint(endpoint: string): string {
  const trimmed = endpoint.trim().replace(/\/+$/, '');
  return /^https?:\/\//.test(trimmed) ? trimmed : `http://${trimmed}`;
}

/** Percent-encodes a key for the URL path; '/' stays as is. */
export function keyPath(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}

function writeQuery(options: WriteOptions): string {
  const params = new URLSearchParams();
  if (options.commit !== undefined) params.set('commit', options.commit);
  if (options.w !== undefined) params.set('w', String(options.w));
  if (options.context !== undefined) params.set('context', options.context);
  return params.size > 0 ? `?${params.toString()}` : '';
}

/** The path of a key: /v1/kv/{key}, or /v1/ks/{keyspace}/kv/{key}. */
function kvPath(key: string, keyspace: string | undefined): string {
  return keyspace === undefined ? `/v1/kv/${keyPath(key)}` : `/v1/ks/${encodeURIComponent(keyspace)}/kv/${keyPath(key)}`;
}

function readParams(options: ReadOptions): URLSearchParams {
  const params = new URLSearchParams();
  if (options.consistency !== undefined && options.consistency !== 'linearizable') params.set('consistency', options.consistency);
  if (options.maxStalenessMs !== undefined) params.set('max_staleness_ms', String(options.maxStalenessMs));
  if (options.minRevision !== undefined) params.set('min_revision', String(options.minRevision));
  return params;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface RawResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Uint8Array;
  readonly endpoint: string;
}

function causeCode(error: unknown): string | undefined {
  let e: unknown = error;
  for (let depth = 0; depth < 4 && e instanceof Error; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = e.cause;
  }
  return undefined;
}

export class ChorusClient {
  private readonly endpoints: string[];
  private readonly timeoutMs: number;
  private readonly retryDelayMs: number;
  /** Where writes go first: the leader as last reported, else the first endpoint. */
  private preferred: string;

  constructor(options: ChorusClientOptions) {
    const list = typeof options.endpoints === 'string' ? options.endpoints.split(',') : [...options.endpoints];
    this.endpoints = list.map((e) => e.trim()).filter((e) => e !== '').map(normalizeEndpoint);
    if (this.endpoints.length === 0) throw new TypeError('ChorusClient needs at least one endpoint');
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.retryDelayMs = options.retryDelayMs ?? 100;
    this.preferred = this.endpoints[0]!;
  }

  /** The endpoint writes are sent to first. */
  get leaderEndpoint(): string {
    return this.preferred;
  }

  async put(key: string, value: string | Uint8Array, options: WriteOptions = {}): Promise<WriteResult> {
    const res = await this.request('write', 'PUT', `${kvPath(key, options.keyspace)}${writeQuery(options)}`, typeof value === 'string' ? new TextEncoder().encode(value) : value, 'application/octet-stream');
    return this.json(res) as WriteResult;
  }

  async get(key: string, options: ReadOptions = {}): Promise<GetResult | null> {
    const params = readParams(options);
    const query = params.size > 0 ? `?${params.toString()}` : '';
    let res: RawResponse;
    try {
      res = await this.request('read', 'GET', `${kvPath(key, options.keyspace)}${query}`);
    } catch (error) {
      if (error instanceof ChorusClientError && error.code === 'CHORUS_KEY_NOT_FOUND') return null;
      throw error;
    }
    const header = (name: string): number => Number(res.headers.get(name) ?? '0');
    const stamp = res.headers.get('chorus-stamp');
    const context = res.headers.get('chorus-context');
    const isJson = (res.headers.get('content-type') ?? '').startsWith('application/json');
    return {
      value: res.body, revision: header('chorus-revision'), createRevision: header('chorus-create-revision'), version: header('chorus-version'),
      ...(stamp === null ? {} : { stamp }),
      ...(context === null ? {} : { context }),
      ...(isJson ? { json: this.json(res) } : {}),
    };
  }

  /** The value as UTF-8 text, or null when the key is absent. */
  async getText(key: string, options: ReadOptions = {}): Promise<string | null> {
    const result = await this.get(key, options);
    return result === null ? null : new TextDecoder().decode(result.value);
  }

  /** `deleted` is absent at off/local (the delete is not applied yet). */
  async delete(key: string, options: WriteOptions = {}): Promise<WriteResult & { deleted?: 0 | 1 }> {
    const res = await this.request('write', 'DELETE', `${kvPath(key, options.keyspace)}${writeQuery(options)}`);
    return this.json(res) as WriteResult & { deleted?: 0 | 1 };
  }

  async list(prefix = '', options: ReadOptions & { limit?: number } = {}): Promise<{ items: ListItem[]; more: boolean }> {
    const params = readParams(options);
    if (prefix !== '') params.set('prefix', prefix);
    if (options.limit !== undefined) params.set('limit', String(options.limit));
    const query = params.size > 0 ? `?${params.toString()}` : '';
    const res = await this.request('read', 'GET', `${options.keyspace === undefined ? '/v1/kv' : `/v1/ks/${encodeURIComponent(options.keyspace)}/kv`}${query}`);
    const items = (this.json(res) as KvListItem[]).map((item) => ({ ...item, value: new Uint8Array(Buffer.from(item.value, 'base64')) }));
    return { items, more: res.headers.get('chorus-more') === 'true' };
  }

  /** A multi-master write (PUT or DELETE) in `keyspace`: the answer names the write's event. */
  async mmPut(keyspace: string, key: string, value: string | Uint8Array, options: Omit<WriteOptions, 'keyspace' | 'commit'> = {}): Promise<MultiMasterWriteJson> {
    return this.json(await this.request('write', 'PUT', `${kvPath(key, keyspace)}${writeQuery(options)}`, typeof value === 'string' ? new TextEncoder().encode(value) : value, 'application/octet-stream')) as MultiMasterWriteJson;
  }

  async mmDelete(keyspace: string, key: string, options: Omit<WriteOptions, 'keyspace' | 'commit'> = {}): Promise<MultiMasterWriteJson> {
    return this.json(await this.request('write', 'DELETE', `${kvPath(key, keyspace)}${writeQuery(options)}`)) as MultiMasterWriteJson;
  }

  /** A CRDT operation, e.g. {type: 'counter', op: 'incr', by: 5}. */
  async crdt(keyspace: string, key: string, op: unknown, options: { w?: number } = {}): Promise<MultiMasterWriteJson> {
    const path = `/v1/ks/${encodeURIComponent(keyspace)}/crdt/${keyPath(key)}${writeQuery(options)}`;
    return this.json(await this.jsonRequest('POST', path, op)) as MultiMasterWriteJson;
  }

  /** A CRDT's merged value ({type, value}), or null when the key is absent. */
  async crdtGet(keyspace: string, key: string): Promise<{ type: string; value: unknown } | null> {
    try {
      return this.json(await this.request('read', 'GET', `/v1/ks/${encodeURIComponent(keyspace)}/crdt/${keyPath(key)}`)) as { type: string; value: unknown };
    } catch (error) {
      if (error instanceof ChorusClientError && error.code === 'CHORUS_KEY_NOT_FOUND') return null;
      throw error;
    }
  }

  /** The items of a keyspace listing as JSON (their shape depends on the keyspace's mode). */
  async listJson(keyspace: string, prefix = '', options: { limit?: number } = {}): Promise<{ items: unknown[]; more: boolean }> {
    const params = new URLSearchParams();
    if (prefix !== '') params.set('prefix', prefix);
    if (options.limit !== undefined) params.set('limit', String(options.limit));
    const query = params.size > 0 ? `?${params.toString()}` : '';
    const res = await this.request('read', 'GET', `/v1/ks/${encodeURIComponent(keyspace)}/kv${query}`);
    return { items: this.json(res) as unknown[], more: res.headers.get('chorus-more') === 'true' };
  }

  async keyspaces(): Promise<KeyspaceJson[]> {
    return (this.json(await this.request('read', 'GET', '/v1/keyspaces')) as { keyspaces: KeyspaceJson[] }).keyspaces;
  }

  /** Adds a keyspace to the catalog (idempotent: `created` is false when it existed). */
  async createKeyspace(spec: { name: string; mode: 'consensus' | 'multi-master'; conflicts?: 'lww' | 'versions' | 'crdt' }): Promise<KeyspaceJson & { created: boolean }> {
    return this.json(await this.jsonRequest('POST', '/v1/keyspaces', spec)) as KeyspaceJson & { created: boolean };
  }

  /** Transactions need their result: only on and remote_apply are accepted. */
  async txn(request: TxnRequestJson, options: { commit?: 'on' | 'remote_apply' } = {}): Promise<TxnResponseJson & { committed: boolean }> {
    const res = await this.request('write', 'POST', `/v1/txn${writeQuery(options)}`, new TextEncoder().encode(JSON.stringify(request)), 'application/json');
    return this.json(res) as TxnResponseJson & { committed: boolean };
  }

  async replicationConfig(): Promise<ReplicationConfigJson> {
    return this.json(await this.request('read', 'GET', '/v1/config/replication')) as ReplicationConfigJson;
  }

  /** Replicates new settings through the log; every member then agrees on them. */
  async setReplicationConfig(settings: { synchronous_commit?: string; synchronous_standby_names?: string }): Promise<ReplicationConfigJson> {
    return this.json(await this.jsonRequest('PUT', '/v1/config/replication', settings)) as ReplicationConfigJson;
  }

  async addMember(member: { id: string; peerAddress: string; learner?: boolean }): Promise<MemberChangeJson> {
    return this.json(await this.jsonRequest('POST', '/v1/members', member)) as MemberChangeJson;
  }

  async promoteMember(id: string): Promise<MemberChangeJson> {
    return this.json(await this.jsonRequest('POST', `/v1/members/${encodeURIComponent(id)}/promote`, {})) as MemberChangeJson;
  }

  async removeMember(id: string): Promise<MemberChangeJson> {
    return this.json(await this.request('write', 'DELETE', `/v1/members/${encodeURIComponent(id)}`)) as MemberChangeJson;
  }

  /** Planned leadership transfer; `to` absent: the most caught-up reachable voter. */
  async switchover(to?: string): Promise<SwitchoverJson> {
    return this.json(await this.jsonRequest('POST', '/v1/switchover', to === undefined ? {} : { to })) as SwitchoverJson;
  }

  /** GET /replica or /primary of one endpoint: the health answer and whether it was 200. */
  async health(endpoint: string, check: 'primary' | 'replica', lagEntriesMax?: number): Promise<{ ok: boolean; health: ReplicaHealth & { reason?: string } }> {
    const path = check === 'primary' ? '/primary' : `/replica${lagEntriesMax === undefined ? '' : `?lag=${lagEntriesMax}`}`;
    const res = await this.once(normalizeEndpoint(endpoint), 'GET', path, undefined, undefined, Math.min(this.timeoutMs, 2000));
    return { ok: res.status === 200, health: this.json(res) as ReplicaHealth & { reason?: string } };
  }

  private jsonRequest(method: string, path: string, doc: unknown): Promise<RawResponse> {
    return this.request('write', method, path, new TextEncoder().encode(JSON.stringify(doc)), 'application/json');
  }

  /** The cluster as the first reachable member sees it (members from the leader's view). */
  async cluster(): Promise<ClusterView> {
    return this.json(await this.request('read', 'GET', '/v1/cluster')) as ClusterView;
  }

  /** One member's own view, from a given endpoint (no failover). */
  async memberView(endpoint: string): Promise<ClusterView> {
    const res = await this.once(normalizeEndpoint(endpoint), 'GET', '/v1/cluster?scope=local', undefined, undefined, Math.min(this.timeoutMs, 2000));
    if (res.status !== 200) throw this.errorFrom(res);
    return this.json(res) as ClusterView;
  }

  private json(res: RawResponse): unknown {
    try {
      return JSON.parse(new TextDecoder().decode(res.body)) as unknown;
    } catch (cause) {
      throw new ChorusClientError('CHORUS_BAD_RESPONSE', res.status, 'the server answered with invalid JSON', res.endpoint, { cause });
    }
  }

  private errorFrom(res: RawResponse): ChorusClientError {
    let code = 'CHORUS_HTTP_ERROR';
    let message = `HTTP ${res.status}`;
    try {
      const body = JSON.parse(new TextDecoder().decode(res.body)) as { code?: unknown; message?: unknown };
      if (typeof body.code === 'string') code = body.code;
      if (typeof body.message === 'string') message = body.message;
    } catch {
      // not our JSON error body; keep the generic code
    }
    return new ChorusClientError(code, res.status, message, res.endpoint);
  }

  private async once(endpoint: string, method: string, path: string, body: Uint8Array | undefined, contentType: string | undefined, timeoutMs: number): Promise<RawResponse> {
    const headers: Record<string, string> = {};
    if (contentType !== undefined) headers['content-type'] = contentType;
    const res = await fetch(`${endpoint}${path}`, { method, body, headers, signal: AbortSignal.timeout(Math.max(1, timeoutMs)) });
    const bytes = new Uint8Array(await res.arrayBuffer());
    return { status: res.status, headers: res.headers, body: bytes, endpoint };
  }

  private async request(kind: 'read' | 'write', method: string, path: string, body?: Uint8Array, contentType?: string): Promise<RawResponse> {
    const deadline = Date.now() + this.timeoutMs;
    const order = [this.preferred, ...this.endpoints.filter((e) => e !== this.preferred)];
    let lastError: ChorusClientError | null = null;
    let delayMs = this.retryDelayMs;
    for (let attempt = 0; ; attempt++) {
      const endpoint = order[attempt % order.length]!;
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      // A full round over every endpoint without success: pause before the next round.
      if (attempt > 0 && attempt % order.length === 0) {
        await sleep(Math.min(delayMs, Math.max(0, deadline - Date.now())));
        delayMs = Math.min(delayMs * 2, RETRY_DELAY_MS_MAX);
        if (Date.now() >= deadline) break;
      }
      let res: RawResponse;
      try {
        res = await this.once(endpoint, method, path, body, contentType, deadline - Date.now());
      } catch (error) {
        const cause = causeCode(error);
        const delivered = cause === undefined || !NOT_DELIVERED_CAUSES.has(cause);
        if (kind === 'write' && delivered) {
          throw new ChorusClientError('CHORUS_TIMEOUT', 0, `the request to ${endpoint} failed after it was sent (${cause ?? (error as Error).name}); the outcome is unknown`, endpoint, { cause: error });
        }
        lastError = new ChorusClientError('CHORUS_UNAVAILABLE', 0, `${endpoint} is unreachable (${cause ?? (error as Error).message})`, endpoint, { cause: error });
        continue;
      }
      if (res.status >= 200 && res.status < 300) {
        if (kind === 'write') {
          const leader = res.headers.get(LEADER_HEADER);
          if (leader !== null && leader !== '') this.preferred = normalizeEndpoint(leader);
        }
        return res;
      }
      const error = this.errorFrom(res);
      if (res.status === 503 && RETRYABLE_CODES.has(error.code)) {
        lastError = error;
        continue;
      }
      throw error;
    }
    throw lastError ?? new ChorusClientError('CHORUS_TIMEOUT', 0, 'the deadline passed before any endpoint answered', null);
  }
}

export { ChorusBinaryClient } from './binary.ts';
export type { BinaryWriteResult, ChorusBinaryClientOptions } from './binary.ts';
