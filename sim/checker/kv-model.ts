// The key-value register model the simulator's histories are checked against. Keys are
// independent registers, so the history is partitioned by key and the state of one partition is
// a single key's value: a string, or null when the key is absent.
import type { Model, Operation } from './linearizability.ts';

export type KvInput =
  | { kind: 'put'; key: string; value: string }
  | { kind: 'get'; key: string }
  | { kind: 'delete'; key: string }
  /** Sets value if the current value equals expected (null: only if the key is absent). */
  | { kind: 'cas'; key: string; expected: string | null; value: string };

export type KvOutput =
  | { kind: 'put' }
  | { kind: 'get'; value: string | null }
  | { kind: 'delete' }
  | { kind: 'cas'; succeeded: boolean };

type KvOperation = Operation<KvInput, KvOutput>;

export const kvModel: Model<string | null, KvInput, KvOutput> = {
  init: () => null,

  // `next` is computed from state and input alone, never from output, as the checker requires
  // for operations whose outcome is unknown.
  step(state, input, output) {
    switch (input.kind) {
      case 'put':
        return { ok: output.kind === 'put', next: input.value };
      case 'get':
        return { ok: output.kind === 'get' && output.value === state, next: state };
      case 'delete':
        return { ok: output.kind === 'delete', next: null };
      case 'cas': {
        const succeeded = state === input.expected;
        return { ok: output.kind === 'cas' && output.succeeded === succeeded, next: succeeded ? input.value : state };
      }
    }
  },

  // JSON keeps null ('null') apart from the string "null" ('"null"').
  hashState: (state) => JSON.stringify(state),

  partition(ops) {
    // Partitions in order of each key's first appearance; ops keep their order within a key.
    const byKey = new Map<string, KvOperation[]>();
    for (const op of ops) {
      const group = byKey.get(op.input.key);
      if (group === undefined) byKey.set(op.input.key, [op]);
      else group.push(op);
    }
    return [...byKey.values()];
  },

  describeOperation(op) {
    const unknown = op.returnTime === Infinity;
    const span = `[${op.callTime}, ${unknown ? '?' : op.returnTime}]`;
    return `client ${op.clientId} ${span} ${describeInput(op.input)} -> ${unknown ? '? (outcome unknown)' : describeOutput(op.output)}`;
  },
};

function describeInput(input: KvInput): string {
  const key = JSON.stringify(input.key);
  switch (input.kind) {
    case 'put':
      return `put(${key}, ${JSON.stringify(input.value)})`;
    case 'get':
      return `get(${key})`;
    case 'delete':
      return `delete(${key})`;
    case 'cas':
      return `cas(${key}, expected ${JSON.stringify(input.expected)}, ${JSON.stringify(input.value)})`;
  }
}

function describeOutput(output: KvOutput): string {
  switch (output.kind) {
    case 'put':
    case 'delete':
      return 'ok';
    case 'get':
      return JSON.stringify(output.value);
    case 'cas':
      return output.succeeded ? 'succeeded' : 'failed';
  }
}
