// The simulator's application: a small key-value map, applied from committed entries. Its
// commands carry the client operation id so the checkers can tie entries to operations.
import type { Entry } from '../src/core/raft/index.ts';

export type SimCommand =
  | { readonly op: 'put'; readonly id: string; readonly key: string; readonly value: string }
  | { readonly op: 'cas'; readonly id: string; readonly key: string; readonly expected: string | null; readonly value: string };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeCommand(cmd: SimCommand): Uint8Array {
  return encoder.encode(JSON.stringify(cmd));
}

export function decodeCommand(data: Uint8Array): SimCommand {
  return JSON.parse(decoder.decode(data)) as SimCommand;
}

export interface ApplyOutcome {
  readonly index: number;
  readonly term: number;
  readonly commandId: string | null;
  /** For cas: whether it took effect. */
  readonly succeeded: boolean;
}

export class SimStateMachine {
  private values = new Map<string, string>();
  // Invariant: applied only grows, except when a snapshot replaces the whole state.
  applied = 0;

  get(key: string): string | null {
    return this.values.get(key) ?? null;
  }

  apply(entry: Entry): ApplyOutcome {
    if (entry.index !== this.applied + 1) throw new Error(`state machine: apply ${entry.index} after ${this.applied}`);
    this.applied = entry.index;
    if (entry.type !== 'normal' || entry.data === undefined) {
      return { index: entry.index, term: entry.term, commandId: null, succeeded: true };
    }
    const cmd = decodeCommand(entry.data);
    let succeeded = true;
    if (cmd.op === 'put') {
      this.values.set(cmd.key, cmd.value);
    } else {
      succeeded = (this.values.get(cmd.key) ?? null) === cmd.expected;
      if (succeeded) this.values.set(cmd.key, cmd.value);
    }
    return { index: entry.index, term: entry.term, commandId: cmd.id, succeeded };
  }

  snapshot(): Uint8Array {
    const pairs = [...this.values.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return encoder.encode(JSON.stringify({ applied: this.applied, pairs }));
  }

  restore(data: Uint8Array, index: number): void {
    const parsed = JSON.parse(decoder.decode(data)) as { applied: number; pairs: [string, string][] };
    if (parsed.applied !== index) throw new Error(`snapshot data at ${parsed.applied}, meta says ${index}`);
    this.values = new Map(parsed.pairs);
    this.applied = parsed.applied;
  }

  digest(): string {
    return `${this.applied}:${JSON.stringify([...this.values.entries()].sort())}`;
  }
}
