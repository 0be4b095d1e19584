// Request and response translation of the HTTP API: keys from URL paths, transactions from
// JSON, results to JSON. Pure functions, tested without a server.
import { Buffer } from 'node:buffer';
import type { FastifyReply } from 'fastify';
import { keyFromBytes } from '../kv/commands.ts';
import type { Compare, KvLimits, Op, TxnCommand } from '../kv/commands.ts';
import { KvError } from '../kv/errors.ts';
import { RESERVED_KEY_MARK } from '../kv/sqlite-state-machine.ts';
import type { KvRecord, TxnOpResult } from '../kv/sqlite-state-machine.ts';
import { ChorusError } from '../shared/errors.ts';
import type { KvListItem, TxnResultJson } from '../shared/api-types.ts';

export const KV_PATH_PREFIX = '/v1/kv/';

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x41 + 10;
  if (code >= 0x61 && code <= 0x66) return code - 0x61 + 10;
  return -1;
}

/**
 * The key of a /v1/kv/{key} URL: everything after the prefix up to the query, percent-decoded
 * to bytes, which must be valid UTF-8. Works on the raw request target, so that '/' (and '%2F')
 * inside keys survive and no lenient decoder substitutes U+FFFD. Characters that arrive
 * unencoded are taken as the bytes Node's HTTP parser read them as (latin1).
 */
export function keyFromUrl(rawUrl: string, limits: KvLimits, pathPrefix = KV_PATH_PREFIX): string {
  const query = rawUrl.indexOf('?');
  const path = query < 0 ? rawUrl : rawUrl.slice(0, query);
  if (!path.startsWith(pathPrefix)) throw new KvError('CHORUS_BAD_KEY', `the key path must start with ${pathPrefix}`);
  const encoded = path.slice(pathPrefix.length);
  // The percent-encoded form is at most 3 bytes per key byte: reject far longer paths at once.
  if (encoded.length > 3 * limits.keyBytesMax) throw new KvError('CHORUS_KEY_TOO_LARGE', `key exceeds ${limits.keyBytesMax} bytes`);
  const bytes = Buffer.allocUnsafe(encoded.length * 3);
  let n = 0;
  for (let i = 0; i < encoded.length; i++) {
    const c = encoded.charCodeAt(i);
    if (c === 0x25) {
      const hi = hexValue(encoded.charCodeAt(i + 1));
      const lo = hexValue(encoded.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) throw new KvError('CHORUS_BAD_KEY', 'the key has an invalid percent-encoding');
      bytes[n++] = hi * 16 + lo;
      i += 2;
    } else if (c <= 0xff) {
      bytes[n++] = c;
    } else {
      // Only an in-process caller (inject) can pass such a URL; take the character's UTF-8.
      n += bytes.write(String.fromCharCode(c), n, 'utf8');
    }
  }
  return keyFromBytes(bytes.subarray(0, n), limits);
}

/** Keys starting with U+0000 hold the catalog's consensus keyspaces: clients cannot name them. */
export function rejectReservedKey(key: string): string {
  if (key.startsWith(RESERVED_KEY_MARK)) throw new KvError('CHORUS_BAD_KEY', 'keys starting with U+0000 are reserved for keyspaces (use /v1/ks/{keyspace}/kv)');
  return key;
}

/** Percent-encodes a key for a URL path, keeping '/' as is (clients use this). */
export function encodeKeyPath(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}

function badRequest(message: string): KvError {
  return new KvError('CHORUS_BAD_REQUEST', message);
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function decodeBase64(text: unknown, where: string): Uint8Array {
  if (typeof text !== 'string' || !BASE64.test(text)) throw badRequest(`${where} must be a base64 string`);
  return Buffer.from(text, 'base64');
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** A value given as UTF-8 text (`value`) or as base64 bytes (`valueBase64`), exactly one. */
function bytesField(o: Record<string, unknown>, where: string): Uint8Array {
  const text = o['value'];
  const b64 = o['valueBase64'];
  if (text !== undefined && b64 !== undefined) throw badRequest(`${where}: give value or valueBase64, not both`);
  if (b64 !== undefined) return decodeBase64(b64, `${where}.valueBase64`);
  if (typeof text !== 'string') throw badRequest(`${where}.value must be a string (or use valueBase64)`);
  return Buffer.from(text, 'utf8');
}

/** Key fields are validated later (validateCommand); only the reserved mark is refused here. */
function reservedChecked(key: unknown): string {
  return typeof key === 'string' ? rejectReservedKey(key) : (key as string);
}

function parseCompare(x: unknown, i: number): Compare {
  const where = `compare[${i}]`;
  if (!isRecord(x)) throw badRequest(`${where} must be an object`);
  const target = x['target'];
  const key = reservedChecked(x['key']);
  const op = x['op'] as Compare['op'];
  if (target === 'value') return { key, target, op, value: bytesField(x, where) };
  if (target === 'version' || target === 'modRevision' || target === 'createRevision') {
    const value = x['value'];
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw badRequest(`${where}.value must be an integer when target is ${target}`);
    return { key, target, op, value };
  }
  throw badRequest(`${where}.target must be one of value, version, modRevision, createRevision`);
}

function parseOp(x: unknown, where: string): Op {
  if (!isRecord(x)) throw badRequest(`${where} must be an object`);
  const key = reservedChecked(x['key']);
  switch (x['op']) {
    case 'put':
      return { op: 'put', key, value: bytesField(x, where) };
    case 'delete':
      return { op: 'delete', key };
    case 'get':
      return { op: 'get', key };
    default:
      throw badRequest(`${where}.op must be one of put, delete, get`);
  }
}

function parseArray<T>(x: unknown, name: string, limit: number, parse: (item: unknown, i: number) => T): T[] {
  if (x === undefined) return [];
  if (!Array.isArray(x)) throw badRequest(`${name} must be an array`);
  // Checked before parsing so that a huge array costs nothing; validateCommand checks it too.
  if (x.length > limit) throw badRequest(`${name} has ${x.length} items, more than ${limit}`);
  return x.map(parse);
}

/** Parses the POST /v1/txn body. Field-level limits are checked by validateCommand after. */
export function parseTxnBody(body: Buffer | undefined, limits: KvLimits): TxnCommand {
  if (body === undefined || body.length === 0) throw new ChorusError('CHORUS_BAD_JSON', 'the request body must be a JSON object');
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new ChorusError('CHORUS_BAD_JSON', `the request body is not valid JSON: ${(error as Error).message}`);
  }
  if (!isRecord(doc)) throw new ChorusError('CHORUS_BAD_JSON', 'the request body must be a JSON object');
  for (const field of Object.keys(doc)) {
    if (field !== 'compare' && field !== 'success' && field !== 'failure') throw badRequest(`unknown field ${JSON.stringify(field.slice(0, 40))}`);
  }
  return {
    kind: 'txn',
    compare: parseArray(doc['compare'], 'compare', limits.txnOpsMax, parseCompare),
    success: parseArray(doc['success'], 'success', limits.txnOpsMax, (x, i) => parseOp(x, `success[${i}]`)),
    failure: parseArray(doc['failure'], 'failure', limits.txnOpsMax, (x, i) => parseOp(x, `failure[${i}]`)),
  };
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function asText(bytes: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

export function txnResultJson(r: TxnOpResult): TxnResultJson {
  switch (r.op) {
    case 'put':
      return { op: 'put', key: r.key };
    case 'delete':
      return { op: 'delete', key: r.key, deleted: r.deleted };
    case 'get': {
      if ('absent' in r) return { op: 'get', key: r.key, found: false };
      const text = asText(r.value);
      return {
        op: 'get',
        key: r.key,
        found: true,
        ...(text === undefined ? {} : { value: text }),
        valueBase64: toBase64(r.value),
        createRevision: r.createRevision,
        modRevision: r.modRevision,
        version: r.version,
      };
    }
  }
}

/** Answers a GET of a consensus key: the raw value, its revisions in headers. */
export function sendRecord(reply: FastifyReply, record: KvRecord): FastifyReply {
  return reply
    .header('content-type', 'application/octet-stream')
    .header('chorus-revision', String(record.modRevision))
    .header('chorus-create-revision', String(record.createRevision))
    .header('chorus-version', String(record.version))
    .send(Buffer.from(record.value.buffer, record.value.byteOffset, record.value.byteLength));
}

export function listItemJson(r: KvRecord): KvListItem {
  return { key: r.key, value: toBase64(r.value), createRevision: r.createRevision, modRevision: r.modRevision, version: r.version };
}
