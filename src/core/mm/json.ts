// JSON values carried by CRDT operations (set elements, register values). They are stored as
// canonical JSON text: equal values have equal text on every member, so set membership,
// merges and digests never depend on key order or on how a client spelled a number.
import { MmError } from './errors.ts';

export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };

/** Nesting deeper than this is refused: canonicalization recurses, and the stack is finite. */
export const JSON_DEPTH_MAX = 32;

/** The canonical JSON text of a plain JSON value (object keys sorted, no whitespace), or an
 * MmError CHORUS_BAD_CRDT_OP when the value is not plain JSON (undefined, NaN, functions,
 * class instances, cycles, too deep). */
export function canonicalJson(value: unknown, what = 'value'): string {
  return encode(value, 0, what);
}

function encode(value: unknown, depth: number, what: string): string {
  if (depth > JSON_DEPTH_MAX) throw new MmError('CHORUS_BAD_CRDT_OP', `${what} is nested deeper than ${JSON_DEPTH_MAX}`);
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new MmError('CHORUS_BAD_CRDT_OP', `${what} contains a non-finite number`);
      // -0 and 0 are one JSON number.
      return JSON.stringify(value === 0 ? 0 : value);
    case 'string':
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v) => encode(v, depth + 1, what)).join(',')}]`;
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) throw new MmError('CHORUS_BAD_CRDT_OP', `${what} is not plain JSON`);
      const keys = Object.keys(value).sort();
      const parts: string[] = [];
      for (const key of keys) {
        const v = (value as Record<string, unknown>)[key];
        if (v === undefined) continue;
        parts.push(`${JSON.stringify(key)}:${encode(v, depth + 1, what)}`);
      }
      return `{${parts.join(',')}}`;
    }
    default:
      throw new MmError('CHORUS_BAD_CRDT_OP', `${what} is not JSON (${typeof value})`);
  }
}

/** Parses canonical text back into a value (text this module produced, so it never throws). */
export function parseCanonical(text: string): JsonValue {
  return JSON.parse(text) as JsonValue;
}
