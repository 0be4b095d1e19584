// The Chorus binary client protocol (docs/api.md, "Binary protocol"): the key operations of
// /v1/kv over one TCP connection with many requests in flight, for clients that make many small
// requests. Each frame is [u32 big-endian length][msgpack payload], as the peer transport's.
//
//   request:  [id, op, key, value?, options?]   id: uint >= 1, chosen by the client
//             op 'put': [id, 'put', key, value: bin, { commit? }]
//             op 'get': [id, 'get', key, { consistency?, min_revision?, max_staleness_ms? }]
//             op 'del': [id, 'del', key, { commit? }]
//   response: [id, status, body]                 status as the HTTP API's, body a map:
//             put 200 { revision, committed }
//             get 200 { value: bin, revision, createRevision, version }
//             del 200 { revision, deleted, committed }
//             an error: { code, message } (id 0 when the request could not be read: the
//             server then closes the connection)
//
// Responses come in any order; the id matches them to requests. A connection is a pipeline: a
// client need not wait for an answer before sending the next request.
import { isUtf8 } from 'node:buffer';
import { Packr, Unpackr } from 'msgpackr';

export const BINARY_FRAME_HEADER_BYTES = 4;

/** Options given with an operation; absent fields take the HTTP API's defaults. */
export interface BinaryRequestOptions {
  readonly commit?: string;
  readonly consistency?: string;
  readonly min_revision?: number;
  readonly max_staleness_ms?: number;
}

export type BinaryOp = 'put' | 'get' | 'del';

export interface BinaryRequest {
  readonly id: number;
  readonly op: BinaryOp;
  readonly key: string;
  readonly value: Uint8Array | undefined;
  readonly options: BinaryRequestOptions;
}

export type BinaryResponse = readonly [id: number, status: number, body: Record<string, unknown>];

// Plain maps and arrays only (no msgpackr records or structures), so that any msgpack library
// can speak the protocol; byte fields decode as Uint8Array views of a copy (never of a socket
// buffer that is reused).
const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, copyBuffers: true });

/** One frame: the length prefix and the msgpack payload, in one buffer. */
export function encodeBinaryFrame(message: unknown): Buffer {
  const payload = packr.pack(message);
  const frame = Buffer.allocUnsafe(BINARY_FRAME_HEADER_BYTES + payload.length);
  frame.writeUInt32BE(payload.length, 0);
  payload.copy(frame, BINARY_FRAME_HEADER_BYTES);
  return frame;
}

export function decodeBinaryPayload(payload: Uint8Array): unknown {
  return unpackr.unpack(payload);
}

/** Why a request frame is unusable: `id` is the request's id when it could be read (the error
 * is then that request's answer), else 0 (the connection cannot be trusted any further). */
export class BinaryRequestError extends Error {
  constructor(readonly id: number, readonly code: 'CHORUS_BAD_REQUEST' | 'CHORUS_BAD_KEY', message: string) {
    super(message);
    this.name = 'BinaryRequestError';
  }
}

function isId(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1;
}

const OPTION_NAMES: Readonly<Record<BinaryOp, readonly string[]>> = {
  put: ['commit'],
  del: ['commit'],
  get: ['consistency', 'min_revision', 'max_staleness_ms'],
};

/** Checks the shape of a decoded request; values (key length, commit levels) are checked by the
 * member as for HTTP. */
export function parseBinaryRequest(message: unknown, payload: Uint8Array): BinaryRequest {
  if (!Array.isArray(message) || !isId(message[0])) {
    throw new BinaryRequestError(0, 'CHORUS_BAD_REQUEST', 'a request is an array [id, op, key, ...] with id a positive integer');
  }
  const id: number = message[0];
  const op: unknown = message[1];
  if (op !== 'put' && op !== 'get' && op !== 'del') {
    const shown = typeof op === 'string' ? JSON.stringify(op.slice(0, 40)) : `of type ${typeof op}`;
    throw new BinaryRequestError(id, 'CHORUS_BAD_REQUEST', `unknown op ${shown}: put, get or del`);
  }
  const key: unknown = message[2];
  if (typeof key !== 'string') throw new BinaryRequestError(id, 'CHORUS_BAD_KEY', 'the key must be a string');
  // msgpack decoders let invalid UTF-8 through (replaced or mangled), which would store the
  // value under another key: the key's own bytes must be valid UTF-8, as HTTP requires.
  const raw = rawKeyBytes(payload);
  if (raw === null || !isUtf8(raw)) throw new BinaryRequestError(id, 'CHORUS_BAD_KEY', 'the key is not valid UTF-8');
  let value: Uint8Array | undefined;
  let options: unknown;
  if (op === 'put') {
    if (!(message[3] instanceof Uint8Array)) throw new BinaryRequestError(id, 'CHORUS_BAD_REQUEST', 'put needs a value of msgpack type bin');
    value = message[3];
    options = message[4];
  } else {
    options = message[3];
  }
  const length = op === 'put' ? 5 : 4;
  if (message.length > length) throw new BinaryRequestError(id, 'CHORUS_BAD_REQUEST', `${op} takes at most ${length} elements`);
  if (options === undefined || options === null) return { id, op, key, value, options: {} };
  if (typeof options !== 'object' || Object.getPrototypeOf(options) !== Object.prototype) {
    throw new BinaryRequestError(id, 'CHORUS_BAD_REQUEST', 'options must be a map');
  }
  const given = options as Record<string, unknown>;
  for (const [name, v] of Object.entries(given)) {
    if (!OPTION_NAMES[op].includes(name)) throw new BinaryRequestError(id, 'CHORUS_BAD_REQUEST', `${op} has no option ${name.slice(0, 40)}`);
    const numeric = name === 'min_revision' || name === 'max_staleness_ms';
    if (numeric ? !(typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) : typeof v !== 'string') {
      throw new BinaryRequestError(id, 'CHORUS_BAD_REQUEST', `option ${name} must be ${numeric ? 'a non-negative integer' : 'a string'}`);
    }
  }
  return { id, op, key, value, options: given as BinaryRequestOptions };
}

/** Bytes a msgpack item starting with `marker` takes before its payload, and its payload length
 * (for the integer and string forms a request's first three elements may use); null otherwise. */
function itemAt(bytes: Uint8Array, at: number): { readonly header: number; readonly length: number } | null {
  const marker = bytes[at];
  if (marker === undefined) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (marker <= 0x7f || marker >= 0xe0) return { header: 1, length: 0 }; // fixint
  if (marker >= 0xa0 && marker <= 0xbf) return { header: 1, length: marker & 0x1f }; // fixstr
  switch (marker) {
    case 0xcc: case 0xd0: return { header: 1, length: 1 };
    case 0xcd: case 0xd1: return { header: 1, length: 2 };
    case 0xce: case 0xd2: case 0xca: return { header: 1, length: 4 };
    case 0xcf: case 0xd3: case 0xcb: return { header: 1, length: 8 };
    case 0xd9: return at + 1 < bytes.length ? { header: 2, length: view.getUint8(at + 1) } : null;
    case 0xda: return at + 3 <= bytes.length ? { header: 3, length: view.getUint16(at + 1) } : null;
    case 0xdb: return at + 5 <= bytes.length ? { header: 5, length: view.getUint32(at + 1) } : null;
    default: return null;
  }
}

/** The raw bytes of a request's key (its third element, a msgpack str), or null when the
 * request is not laid out as [id, op, key, ...] with an integer id and string op and key. */
function rawKeyBytes(payload: Uint8Array): Uint8Array | null {
  const first = payload[0];
  if (first === undefined) return null;
  let at = first >= 0x90 && first <= 0x9f ? 1 : first === 0xdc ? 3 : first === 0xdd ? 5 : -1;
  if (at < 0) return null;
  for (let element = 0; element < 3; element++) {
    const item = itemAt(payload, at);
    if (item === null) return null;
    if (element === 2) {
      const start = at + item.header;
      return start + item.length <= payload.length ? payload.subarray(start, start + item.length) : null;
    }
    at += item.header + item.length;
  }
  return null;
}
