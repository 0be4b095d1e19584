// Linearizability checker for histories recorded by the deterministic simulator.
//
// The search is Wing & Gong's: walk the history in real-time order and, at each point, try to
// linearize one of the operations that have been called but whose return has not yet been passed;
// when a return is reached whose operation is still unlinearized, undo the most recent choice and
// try the next candidate. Lowe's memoization makes it practical: a configuration is the set of
// linearized operations together with the model state they produced, and a configuration seen
// before is never explored again (the future of the search depends on nothing else). This is the
// algorithm Porcupine uses. The history is first split into independent partitions (per key for a
// key-value model), which keeps each search small.
//
// The checker is deterministic: no clocks, no randomness; the same history gives the same result
// and the same description.

/** One client operation in a history. */
export interface Operation<I, O> {
  clientId: number;
  input: I;
  /** Ignored when the operation's outcome is unknown (returnTime is Infinity). */
  output: O;
  /** When it was invoked (simulated ms, or any monotonic number). Finite. */
  callTime: number;
  /**
   * When it returned; >= callTime. Infinity when the outcome is unknown: the operation may have
   * taken effect at any time after callTime, or never.
   */
  returnTime: number;
}

/** A sequential specification of the object under test. */
export interface Model<S, I, O> {
  init(): S;
  /**
   * Applies input to state; returns whether output is legal and the next state. `next` must be
   * the state after applying input even when `ok` is false: for an operation whose outcome is
   * unknown the checker ignores the output and `ok`, and uses `next` alone. States must be treated
   * as immutable (the checker keeps earlier states to backtrack to).
   */
  step(state: S, input: I, output: O): { ok: boolean; next: S };
  /** A string key of the state, for the memo cache. Equal keys must mean equal states. */
  hashState(state: S): string;
  /** Splits a history into independent sub-histories (per key); default: one partition. */
  partition?(ops: readonly Operation<I, O>[]): Operation<I, O>[][];
  describeOperation?(op: Operation<I, O>): string;
}

export type CheckResult =
  | { result: 'ok' }
  /** partition indexes the array model.partition returned (0 without partition()).
   * description: the shortest failing partition's ops, one per line, and the longest linearizable
   * prefix found. */
  | { result: 'illegal'; partition: number; description: string }
  /** The step budget ran out before every partition was decided. */
  | { result: 'unknown'; reason: string };

/**
 * The default budget of model steps for one whole check (all partitions together). Bounds the
 * running time of a check; well-behaved histories need a few steps per operation.
 */
export const STEPS_MAX_DEFAULT = 10_000_000;

/**
 * Checks whether the history is linearizable with respect to the model.
 *
 * Operations whose returnTime equals another's callTime count as concurrent (the permissive
 * reading: simulated clocks have coarse ticks, and a false alarm costs more than a missed race
 * at exactly one instant).
 *
 * options.stepsMax: the budget of model steps shared by all partitions. Partitions are checked
 * from the smallest up, so an 'illegal' result names the shortest failing partition, and a
 * pathological large partition is reached last.
 *
 * Throws RangeError for a malformed history (non-finite callTime, returnTime before callTime).
 */
export function checkLinearizability<S, I, O>(
  model: Model<S, I, O>,
  ops: readonly Operation<I, O>[],
  options?: { stepsMax?: number },
): CheckResult {
  const stepsMax = options?.stepsMax ?? STEPS_MAX_DEFAULT;
  if (!(stepsMax >= 0)) throw new RangeError(`stepsMax must be a non-negative number, got ${stepsMax}`);
  ops.forEach(validateOperation);

  const partitions = model.partition ? model.partition(ops) : [ops.slice()];
  // Smallest first, ties by position, so the first failure found is the shortest one.
  const order = partitions.map((_, index) => index);
  order.sort((a, b) => (partitions[a]?.length ?? 0) - (partitions[b]?.length ?? 0) || a - b);

  let stepsLeft = stepsMax;
  for (let checked = 0; checked < order.length; checked++) {
    const partitionIndex = order[checked] ?? 0;
    const partitionOps = sortByCallTime(partitions[partitionIndex] ?? []);
    const outcome = searchPartition(model, partitionOps, stepsLeft);
    stepsLeft -= outcome.steps;
    if (outcome.kind === 'illegal') {
      return {
        result: 'illegal',
        partition: partitionIndex,
        description: describeFailure(model, partitionIndex, partitionOps, outcome.longestPrefix),
      };
    }
    if (outcome.kind === 'exhausted') {
      return {
        result: 'unknown',
        reason:
          `step budget of ${stepsMax} ran out in partition ${partitionIndex} ` +
          `(${partitionOps.length} operations); ${checked} of ${partitions.length} partitions were verified`,
      };
    }
  }
  return { result: 'ok' };
}

function validateOperation(op: Operation<unknown, unknown>, index: number): void {
  if (!Number.isFinite(op.callTime)) {
    throw new RangeError(`operation ${index}: callTime must be finite, got ${op.callTime}`);
  }
  if (!(op.returnTime >= op.callTime)) {
    throw new RangeError(
      `operation ${index}: returnTime ${op.returnTime} must be >= callTime ${op.callTime} (or Infinity)`,
    );
  }
}

function sortByCallTime<I, O>(ops: readonly Operation<I, O>[]): Operation<I, O>[] {
  // Array.prototype.sort is stable, so equal call times keep the caller's order.
  return ops.slice().sort((a, b) => a.callTime - b.callTime);
}

type PartitionOutcome =
  | { kind: 'ok'; steps: number }
  /** longestPrefix: operation indexes (into the sorted partition), in linearization order. */
  | { kind: 'illegal'; steps: number; longestPrefix: number[] }
  | { kind: 'exhausted'; steps: number };

/** The list head; entries 1..n are the call entries of ops 0..n-1, the rest are return entries. */
const HEAD = 0;
/** "No entry": the end of the list, or no return entry (outcome unknown). */
const NONE = -1;

/**
 * Searches for a linearization of one partition (ops sorted by call time).
 *
 * The history is kept as a doubly linked list of call and return entries in real-time order.
 * Linearizing an operation lifts its call and return entries out of the list; backtracking puts
 * them back (in reverse order of removal, so the stored links are still valid). The candidates
 * at any point are the call entries before the first remaining return entry. An operation with an
 * unknown outcome has no return entry: nothing ever forces it to be linearized, so it is optional,
 * and the search succeeds once every operation with a return has been linearized.
 */
function searchPartition<S, I, O>(
  model: Model<S, I, O>,
  ops: readonly Operation<I, O>[],
  stepsAvailable: number,
): PartitionOutcome {
  const opCount = ops.length;
  let finiteCount = 0;
  for (const op of ops) if (op.returnTime !== Infinity) finiteCount++;
  if (finiteCount === 0) return { kind: 'ok', steps: 0 };

  const entryCount = 1 + opCount + finiteCount;
  const nextEntry = new Int32Array(entryCount);
  const prevEntry = new Int32Array(entryCount);
  // For a call entry (1..opCount): its return entry, or NONE when the outcome is unknown.
  // Return entries are recognised by index > opCount.
  const returnEntryOf = new Int32Array(opCount + 1).fill(NONE);

  // Real-time order: by time, calls before returns at the same time (equal instants overlap),
  // then by entry number so that the order is total and deterministic.
  const events: { entry: number; time: number }[] = [];
  let returnEntry = opCount + 1;
  for (let i = 0; i < opCount; i++) {
    const op = ops[i] as Operation<I, O>;
    events.push({ entry: i + 1, time: op.callTime });
    if (op.returnTime !== Infinity) {
      returnEntryOf[i + 1] = returnEntry;
      events.push({ entry: returnEntry, time: op.returnTime });
      returnEntry++;
    }
  }
  events.sort((a, b) => a.time - b.time || Number(a.entry > opCount) - Number(b.entry > opCount) || a.entry - b.entry);
  let previous = HEAD;
  for (const event of events) {
    nextEntry[previous] = event.entry;
    prevEntry[event.entry] = previous;
    previous = event.entry;
  }
  nextEntry[previous] = NONE;

  const lift = (call: number): void => {
    unlink(call);
    const ret = returnEntryOf[call] ?? NONE;
    if (ret !== NONE) unlink(ret);
  };
  const unlink = (entry: number): void => {
    const before = prevEntry[entry] ?? HEAD;
    const after = nextEntry[entry] ?? NONE;
    nextEntry[before] = after;
    if (after !== NONE) prevEntry[after] = before;
  };
  const unlift = (call: number): void => {
    const ret = returnEntryOf[call] ?? NONE;
    if (ret !== NONE) relink(ret);
    relink(call);
  };
  const relink = (entry: number): void => {
    const before = prevEntry[entry] ?? HEAD;
    const after = nextEntry[entry] ?? NONE;
    nextEntry[before] = entry;
    if (after !== NONE) prevEntry[after] = entry;
  };

  const linearized = new LinearizedSet(opCount);
  const cache = new MemoCache();
  // The current path of the search. Invariant: stackCalls[k] was linearized from state
  // stackStates[k]; the ops on the stack are exactly the members of `linearized`.
  const stackCalls: number[] = [];
  const stackStates: S[] = [];
  const stackStateKeys: string[] = [];
  let state = model.init();
  let stateKey = model.hashState(state);
  let finiteLeft = finiteCount;
  let longestPrefix: number[] = [];
  let steps = 0;

  let entry = nextEntry[HEAD] ?? NONE;
  while (finiteLeft > 0) {
    // Some completed op is unlinearized, so its return entry lies ahead of the scan position and
    // the scan cannot run off the end of the list.
    if (entry === NONE) throw new Error('linearizability search: scan passed every return entry');
    if (entry <= opCount) {
      if (steps >= stepsAvailable) return { kind: 'exhausted', steps };
      steps++;
      const opIndex = entry - 1;
      const op = ops[opIndex] as Operation<I, O>;
      const outcomeUnknown = returnEntryOf[entry] === NONE;
      const { ok, next } = model.step(state, op.input, op.output);
      if (ok || outcomeUnknown) {
        const nextKey = model.hashState(next);
        // An optional op that leaves the state as it was can always be dropped from a
        // linearization, so trying it would only multiply configurations.
        const pointless = outcomeUnknown && nextKey === stateKey;
        if (!pointless) {
          linearized.add(opIndex);
          if (cache.addIfAbsent(linearized, nextKey)) {
            stackCalls.push(entry);
            stackStates.push(state);
            stackStateKeys.push(stateKey);
            state = next;
            stateKey = nextKey;
            lift(entry);
            if (!outcomeUnknown) finiteLeft--;
            entry = nextEntry[HEAD] ?? NONE;
            continue;
          }
          linearized.remove(opIndex);
        }
      }
      entry = nextEntry[entry] ?? NONE;
    } else {
      // A return entry whose op is still unlinearized: this path is dead, undo the last choice.
      if (stackCalls.length === 0) return { kind: 'illegal', steps, longestPrefix };
      // The path only grows between backtracks, so its longest versions are seen right here.
      if (stackCalls.length > longestPrefix.length) longestPrefix = stackCalls.map((call) => call - 1);
      const call = stackCalls.pop() as number;
      state = stackStates.pop() as S;
      stateKey = stackStateKeys.pop() as string;
      linearized.remove(call - 1);
      unlift(call);
      if (returnEntryOf[call] !== NONE) finiteLeft++;
      entry = nextEntry[call] ?? NONE;
    }
  }
  return { kind: 'ok', steps };
}

/**
 * A bitset of linearized operations with an incrementally maintained 64-bit fingerprint
 * (two XOR-combined 32-bit hashes), so that cache lookups do not hash the whole set each step.
 */
class LinearizedSet {
  readonly words: Uint32Array;
  /** Invariant: hashLow/hashHigh are the XOR of opHash(i, 0/1) over all members i. */
  hashLow = 0;
  hashHigh = 0;

  constructor(size: number) {
    this.words = new Uint32Array(Math.ceil(size / 32));
  }

  add(index: number): void {
    this.toggle(index);
  }

  /** Precondition: index is a member (add and remove both toggle). */
  remove(index: number): void {
    this.toggle(index);
  }

  private toggle(index: number): void {
    const word = index >>> 5;
    this.words[word] = (this.words[word] ?? 0) ^ (1 << (index & 31));
    this.hashLow = (this.hashLow ^ mix32(2 * index)) >>> 0;
    this.hashHigh = (this.hashHigh ^ mix32(2 * index + 1)) >>> 0;
  }
}

/** The configurations (linearized set, state) already explored. */
class MemoCache {
  // Keyed by fingerprint and state key; the bucket holds the exact sets, so a fingerprint
  // collision costs a comparison, never a wrong answer.
  private readonly buckets = new Map<string, Uint32Array[]>();

  /** Records the configuration; returns false when it had been recorded before. */
  addIfAbsent(set: LinearizedSet, stateKey: string): boolean {
    const key = `${set.hashLow}:${set.hashHigh}:${stateKey}`;
    const bucket = this.buckets.get(key);
    if (bucket === undefined) {
      this.buckets.set(key, [set.words.slice()]);
      return true;
    }
    for (const words of bucket) if (equalWords(words, set.words)) return false;
    bucket.push(set.words.slice());
    return true;
  }
}

function equalWords(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A 32-bit integer finalizer (good avalanche), used to fingerprint operation indexes. */
function mix32(value: number): number {
  let x = value >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

function describeFailure<S, I, O>(
  model: Model<S, I, O>,
  partitionIndex: number,
  ops: readonly Operation<I, O>[],
  longestPrefix: readonly number[],
): string {
  const describe = (index: number): string => {
    const op = ops[index] as Operation<I, O>;
    return `  #${index} ${model.describeOperation ? model.describeOperation(op) : describeOperationDefault(op)}`;
  };
  const lines = [`partition ${partitionIndex}: ${ops.length} operations, no linearization exists`];
  lines.push('operations (by call time):');
  for (let i = 0; i < ops.length; i++) lines.push(describe(i));
  lines.push(`longest linearizable prefix found (${longestPrefix.length} operations, in linearization order):`);
  if (longestPrefix.length === 0) lines.push('  (none)');
  for (const index of longestPrefix) lines.push(describe(index));
  return lines.join('\n');
}

function describeOperationDefault(op: Operation<unknown, unknown>): string {
  const unknown = op.returnTime === Infinity;
  return (
    `client ${op.clientId} [${op.callTime}, ${unknown ? '?' : op.returnTime}] ` +
    `${show(op.input)} -> ${unknown ? '? (outcome unknown)' : show(op.output)}`
  );
}

function show(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
