// How each system under test spells a put and a get over HTTP. Both get the same keys and the
// same 100-byte values; only the encoding differs: Chorus takes the raw value in a PUT body,
// etcd's v3 gateway takes JSON with base64 key and value. (Redis gets the same keys and values
// as a RESP SET: bench/resp.ts, bench/mm-phases.ts.)
import type { HttpAnswer, HttpRequestSpec } from './load.ts';

/** Every system the bench measures; Chorus is compared with one peer per row. */
export type SystemName = 'chorus' | PeerName;
/** The systems Chorus is compared with: etcd (consensus rows), Redis (multi-master rows). */
export type PeerName = 'etcd' | 'redis';
/** The systems driven over HTTP with a KvProtocol. */
export type HttpSystemName = 'chorus' | 'etcd';

export const VALUE_BYTES = 100;

/** The key of write number n: fixed width, so every key has the same size on both systems. */
export function benchKey(n: number): string {
  return `bench-${n.toString().padStart(10, '0')}`;
}

/** The value written under key n: 100 bytes that name the key, so a read-back can check it. */
export function benchValue(n: number): Buffer {
  const head = `value-${n}-`;
  return Buffer.from(head.repeat(Math.ceil(VALUE_BYTES / head.length)).slice(0, VALUE_BYTES), 'latin1');
}

export interface PutOptions {
  /** Chorus only: ask for ?commit=LEVEL (e.g. 'local'). */
  readonly commit?: string;
  /** Chorus only: write to this keyspace (/v1/ks/{keyspace}/kv/{key}) instead of /v1/kv. */
  readonly keyspace?: string;
  /** Chorus only, multi-master keyspaces: ?w=N, the members that must hold the write durably
   * before it is acknowledged (1: the member that took it). */
  readonly w?: number;
}

export interface KvProtocol {
  readonly name: HttpSystemName;
  put(endpoint: number, key: string, value: Buffer, options?: PutOptions): HttpRequestSpec;
  putSucceeded(answer: HttpAnswer): boolean;
  /** A read; `stale` = Chorus ?consistency=stale, etcd serializable: true. */
  get(endpoint: number, key: string, stale: boolean): HttpRequestSpec;
  /** The value of a successful read that found the key; null when the key was not found or the
   * read failed. */
  valueOf(answer: HttpAnswer): Buffer | null;
}

const JSON_TYPE = 'application/json';

export const chorusProtocol: KvProtocol = {
  name: 'chorus',
  put(endpoint, key, value, options) {
    const params = new URLSearchParams();
    if (options?.commit !== undefined) params.set('commit', options.commit);
    if (options?.w !== undefined) params.set('w', String(options.w));
    const query = params.toString() === '' ? '' : `?${params.toString()}`;
    const base = options?.keyspace === undefined ? '/v1/kv' : `/v1/ks/${encodeURIComponent(options.keyspace)}/kv`;
    return { endpoint, method: 'PUT', path: `${base}/${encodeURIComponent(key)}${query}`, body: value, contentType: 'application/octet-stream' };
  },
  putSucceeded(answer) {
    return answer.status === 200;
  },
  get(endpoint, key, stale) {
    return { endpoint, method: 'GET', path: `/v1/kv/${encodeURIComponent(key)}${stale ? '?consistency=stale' : ''}` };
  },
  valueOf(answer) {
    return answer.status === 200 ? answer.body : null;
  },
};

export const etcdProtocol: KvProtocol = {
  name: 'etcd',
  put(endpoint, key, value) {
    const body = JSON.stringify({ key: Buffer.from(key, 'utf8').toString('base64'), value: value.toString('base64') });
    return { endpoint, method: 'POST', path: '/v3/kv/put', body: Buffer.from(body, 'utf8'), contentType: JSON_TYPE };
  },
  putSucceeded(answer) {
    // The gateway answers errors with a non-200 status and {"error": ..., "code": ...}.
    return answer.status === 200 && answer.body.includes('"header"');
  },
  get(endpoint, key, stale) {
    const doc: Record<string, unknown> = { key: Buffer.from(key, 'utf8').toString('base64') };
    if (stale) doc['serializable'] = true;
    return { endpoint, method: 'POST', path: '/v3/kv/range', body: Buffer.from(JSON.stringify(doc), 'utf8'), contentType: JSON_TYPE };
  },
  valueOf(answer) {
    if (answer.status !== 200) return null;
    const doc = JSON.parse(answer.body.toString('utf8')) as { kvs?: { value?: string }[] };
    const value = doc.kvs?.[0]?.value;
    // etcd omits empty fields: a found key with an empty value has no "value".
    if (doc.kvs === undefined || doc.kvs.length === 0) return null;
    return Buffer.from(value ?? '', 'base64');
  },
};

export function protocolOf(name: HttpSystemName): KvProtocol {
  return name === 'chorus' ? chorusProtocol : etcdProtocol;
}
