// A tiny synchronous cluster of MultiMasterReplicas for tests: each member's durable state is
// exactly what it persisted; messages move only when a test moves them.
import assert from 'node:assert/strict';
import {
  MultiMasterReplica,
  differingKeys,
  differingRanges,
  type ApplyRemoteResult,
  type ChangeBatch,
  type ConflictMode,
  type KeyRange,
  type ReplicaMeta,
  type ReplicaOptions,
  type StoreOp,
  type StoredRecord,
} from '../../src/core/mm/index.ts';

export const enc = new TextEncoder();
export const dec = new TextDecoder();

export interface Durable {
  meta: ReplicaMeta | null;
  readonly records: Map<string, StoredRecord>;
}

export class Cluster {
  readonly ids: string[];
  readonly replicas: MultiMasterReplica[] = [];
  readonly durables: Durable[] = [];
  /** Physical time per member (tests move it; each member may be skewed). */
  readonly clocks: number[];

  constructor(
    readonly mode: ConflictMode,
    count: number,
    readonly extra: Partial<ReplicaOptions> = {},
  ) {
    this.ids = Array.from({ length: count }, (_, i) => `n${i + 1}`);
    this.clocks = this.ids.map(() => 1_000_000);
    for (let i = 0; i < count; i++) {
      this.durables.push({ meta: null, records: new Map() });
      this.replicas.push(null as unknown as MultiMasterReplica);
      this.restart(i);
    }
  }

  options(i: number): ReplicaOptions {
    return { keyspace: 'ks', mode: this.mode, self: this.ids[i]!, members: this.ids, ...this.extra };
  }

  r(i: number): MultiMasterReplica {
    return this.replicas[i]!;
  }

  persist(i: number, ops: readonly StoreOp[]): void {
    const d = this.durables[i]!;
    for (const op of ops) {
      if (op.op === 'put') d.records.set(op.key, op.record);
      else if (op.op === 'delete') d.records.delete(op.key);
      else d.meta = op.meta;
    }
  }

  /** Crash and restart: everything not persisted is gone. */
  restart(i: number): void {
    const d = this.durables[i]!;
    const opened = MultiMasterReplica.open(this.options(i), { meta: d.meta, records: d.records });
    this.replicas[i] = opened.replica;
    this.persist(i, opened.persist);
  }

  now(i: number): number {
    return this.clocks[i]!;
  }

  advance(ms: number): void {
    for (let i = 0; i < this.clocks.length; i++) this.clocks[i]! += ms;
  }

  put(i: number, key: string, value: string, token: string | null = null) {
    const res = this.r(i).put(key, enc.encode(value), this.now(i), token);
    this.persist(i, res.persist);
    return res;
  }

  del(i: number, key: string, token: string | null = null) {
    const res = this.r(i).delete(key, this.now(i), token);
    this.persist(i, res.persist);
    return res;
  }

  crdt(i: number, key: string, op: unknown) {
    const res = this.r(i).crdt(key, op, this.now(i));
    this.persist(i, res.persist);
    return res;
  }

  batch(from: number, to: number, countMax = 1000, bytesMax = 1 << 20): ChangeBatch {
    return this.r(from).changesSince(this.ids[to]!, countMax, bytesMax);
  }

  /** Delivers a batch to its target and, unless `loseAck`, its ack back to the origin. */
  deliver(batch: ChangeBatch, loseAck = false): ApplyRemoteResult {
    const to = this.ids.indexOf(batch.target);
    const from = this.ids.indexOf(batch.origin);
    const res = this.r(to).applyRemote(batch, this.now(to));
    this.persist(to, res.persist);
    if (!loseAck) this.r(from).onAck(res.ack);
    return res;
  }

  /** Streams from `from` to `to` until a complete batch has been applied. */
  stream(from: number, to: number, countMax = 1000): void {
    for (let n = 0; n < 10_000; n++) {
      const b = this.batch(from, to, countMax);
      this.deliver(b);
      if (b.complete) return;
    }
    assert.fail('stream did not complete');
  }

  /** Every member streams to every other, then persists its clock and collects garbage. */
  syncAll(): void {
    for (let i = 0; i < this.ids.length; i++) for (let j = 0; j < this.ids.length; j++) if (i !== j) this.stream(i, j);
    this.housekeeping();
  }

  housekeeping(): void {
    for (let i = 0; i < this.ids.length; i++) {
      this.persist(i, this.r(i).tick(this.now(i)).persist);
      this.persist(i, this.r(i).collectGarbage(1000).persist);
    }
  }

  /** A full anti-entropy exchange between a and b: descend into differing ranges, compare
   * keys (paging), exchange the differing records both ways. Returns the records moved. */
  antiEntropy(a: number, b: number, fanout = 4, keysMax = 3): number {
    const ra = this.r(a);
    const rb = this.r(b);
    let moved = 0;
    const visit = (range: KeyRange): void => {
      const da = ra.digest(1, range)[0]!;
      const db = rb.digest(1, range)[0]!;
      if (da.hash === db.hash) return;
      if (range.end - range.start > 1 && Math.max(da.keys, db.keys) > keysMax) {
        for (const sub of differingRanges(ra.digest(fanout, range), rb.digest(fanout, range))) visit(sub);
        return;
      }
      let afterKey: string | null = null;
      for (;;) {
        const ka = ra.keysInRange(range, keysMax, afterKey);
        const kb = rb.keysInRange(range, keysMax, afterKey);
        const diff = differingKeys(ka, kb);
        const toB = ra.recordsFor(diff, 1 << 20).records;
        const toA = rb.recordsFor(diff, 1 << 20).records;
        const resB = rb.applyRepair(toB, this.now(b));
        this.persist(b, resB.persist);
        const resA = ra.applyRepair(toA, this.now(a));
        this.persist(a, resA.persist);
        moved += toA.length + toB.length;
        if (ka.complete && kb.complete) return;
        const lasts = [ka, kb].filter((k) => !k.complete).map((k) => k.entries[k.entries.length - 1]!.key).sort();
        afterKey = lasts[0]!;
      }
    };
    visit({ start: 0, end: ra.digest(1)[0]!.range.end });
    return moved;
  }

  /** Every member's records are identical (and so are their reads). */
  assertConverged(keys: readonly string[] = []): void {
    const hashes = this.replicas.map((r) => r.stateHash());
    const views = (r: MultiMasterReplica): string => JSON.stringify([...new Set([...keys, ...r.keys()])].sort().map((k) => [k, r.get(k)]), (_k, v: unknown) => (v instanceof Uint8Array ? dec.decode(v) : v));
    for (let i = 1; i < this.replicas.length; i++) {
      assert.equal(views(this.r(i)), views(this.r(0)), `${this.ids[i]} reads differ from ${this.ids[0]}`);
      assert.equal(hashes[i], hashes[0], `${this.ids[i]} records differ from ${this.ids[0]}`);
    }
  }
}

export function text(view: unknown): string {
  return JSON.stringify(view, (_k, v: unknown) => (v instanceof Uint8Array ? dec.decode(v) : v));
}
