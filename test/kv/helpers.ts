// Shared helpers of the key-value tests.
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { encodeCommand, KvError } from '../../src/kv/commands.ts';
import type { Command, KvErrorCode } from '../../src/kv/commands.ts';
import type { ApplyEntry } from '../../src/kv/sqlite-state-machine.ts';

const encoder = new TextEncoder();

export function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Bytes as hex, so that Buffer and Uint8Array compare equal and diffs stay readable. */
export function hex(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('hex');
}

/** A JSON-able copy with every byte array replaced by its hex, for deep comparisons. */
export function plain(value: unknown): unknown {
  // Not JSON.stringify with a replacer: Buffer.toJSON runs before the replacer sees it.
  if (value instanceof Uint8Array) return `hex:${hex(value)}`;
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

export function assertKvError(fn: () => unknown, code: KvErrorCode): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof KvError, `expected a KvError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return true;
  });
}

/** Builds consecutive log entries from index `next`. */
export class EntryLog {
  next: number;

  constructor(first = 1) {
    this.next = first;
  }

  normal(cmd: Command): ApplyEntry {
    return { index: this.next++, type: 'normal', data: encodeCommand(cmd) };
  }

  raw(data: Uint8Array | undefined): ApplyEntry {
    return data === undefined ? { index: this.next++, type: 'normal' } : { index: this.next++, type: 'normal', data };
  }

  noop(): ApplyEntry {
    return { index: this.next++, type: 'noop' };
  }

  config(): ApplyEntry {
    return { index: this.next++, type: 'config' };
  }
}

/** A small deterministic generator (xorshift32) for fuzzing without flaky seeds. */
export function xorshift(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
}
