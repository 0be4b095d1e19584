// Small pure helpers the multi-master core needs without Node's Buffer or crypto: UTF-8
// lengths, base64url, a canonical text form of plain data, its approximate wire size, and a
// 64-bit (two-lane) non-cryptographic hash for anti-entropy digests.

/** The UTF-8 length of a string, without allocating. Lone surrogates count as U+FFFD (3 bytes). */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B64URL_INDEX = new Map<string, number>([...B64URL].map((ch, i) => [ch, i]));

/** base64url without padding of an ASCII string (tokens are ASCII by construction). */
export function base64urlFromAscii(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i += 3) {
    const a = text.charCodeAt(i);
    const b = i + 1 < text.length ? text.charCodeAt(i + 1) : 0;
    const c = i + 2 < text.length ? text.charCodeAt(i + 2) : 0;
    const n = (a << 16) | (b << 8) | c;
    out += B64URL[(n >> 18) & 63]! + B64URL[(n >> 12) & 63]!;
    if (i + 1 < text.length) out += B64URL[(n >> 6) & 63]!;
    if (i + 2 < text.length) out += B64URL[n & 63]!;
  }
  return out;
}

/** The inverse of base64urlFromAscii; null when the text is not canonical unpadded base64url. */
export function asciiFromBase64url(encoded: string): string | null {
  if (encoded.length % 4 === 1) return null;
  let out = '';
  for (let i = 0; i < encoded.length; i += 4) {
    const chunk = encoded.slice(i, i + 4);
    let n = 0;
    for (let j = 0; j < 4; j++) {
      const ch = chunk[j];
      const v = ch === undefined ? 0 : B64URL_INDEX.get(ch);
      if (v === undefined) return null;
      n = (n << 6) | v;
    }
    out += String.fromCharCode((n >> 16) & 255);
    if (chunk.length > 2) out += String.fromCharCode((n >> 8) & 255);
    if (chunk.length > 3) out += String.fromCharCode(n & 255);
  }
  // Reject non-canonical encodings (stray low bits), so one context has exactly one token.
  return base64urlFromAscii(out) === encoded ? out : null;
}

/** A canonical text form of plain data: object keys sorted, bytes as hex. Two equal values
 * have equal forms on every member, which is what digests compare. */
export function canonicalText(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return JSON.stringify(value);
  if (value instanceof Uint8Array) {
    let hex = 'x"';
    for (const byte of value) hex += byte.toString(16).padStart(2, '0');
    return `${hex}"`;
  }
  if (Array.isArray(value)) return `[${value.map(canonicalText).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalText(v)}`).join(',')}}`;
  }
  throw new TypeError(`canonicalText: unsupported ${typeof value}`);
}

/** The approximate encoded (msgpack-like) size of plain data, for batch and queue byte limits. */
export function approxBytes(value: unknown): number {
  if (value === null || value === undefined || typeof value === 'boolean') return 1;
  if (typeof value === 'number') return 9;
  if (typeof value === 'string') return utf8Length(value) + 2;
  if (value instanceof Uint8Array) return value.byteLength + 3;
  if (Array.isArray(value)) {
    let n = 3;
    for (const item of value) n += approxBytes(item);
    return n;
  }
  if (typeof value === 'object') {
    let n = 3;
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) n += utf8Length(k) + 2 + approxBytes(v);
    return n;
  }
  return 9;
}

/** A 64-bit hash as two independent 32-bit lanes (FNV-1a and a multiplicative mix), each
 * finished with an avalanche step. Not collision resistant against an adversary: anti-entropy
 * only needs accidental divergence to show. */
export function hashText(text: string): Hash64 {
  let a = 0x811c9dc5;
  let b = 0x9747b28c ^ text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 13;
  }
  return [fmix32(a), fmix32(b ^ Math.imul(a, 0x27d4eb2d))];
}

/** Two unsigned 32-bit lanes. */
export type Hash64 = readonly [number, number];

export const ZERO_HASH: Hash64 = [0, 0];

/** XOR combines set members order-independently, and removing a member is XOR again. */
export function xorHash(x: Hash64, y: Hash64): Hash64 {
  return [(x[0] ^ y[0]) >>> 0, (x[1] ^ y[1]) >>> 0];
}

export function hashHex(h: Hash64): string {
  return h[0].toString(16).padStart(8, '0') + h[1].toString(16).padStart(8, '0');
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Bytes equality (values in records are compared when dots collide, which is a bug guard). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}
