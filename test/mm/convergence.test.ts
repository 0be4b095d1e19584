// Seeded convergence: random edits at 3-5 replicas while messages (stream batches, pushes,
// hints, anti-entropy repairs) are delivered at random: duplicated, reordered, dropped, cut by
// disconnects, and replicas crash and restart from what they persisted. Then the network
// heals and a bounded sync loop must leave every replica with identical records.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChangeBatch, ConflictMode, ShippedRecord } from '../../src/core/mm/index.ts';
import { Prng } from '../../sim/prng.ts';
import { Cluster } from './harness.ts';

type Message =
  | { readonly kind: 'batch'; readonly batch: ChangeBatch }
  | { readonly kind: 'repair'; readonly to: number; readonly records: readonly ShippedRecord[] };

type Workload = 'lww' | 'versions' | 'counter' | 'set' | 'register' | 'map';

const SEEDS = 12;
const SYNC_ROUNDS_MAX = 6;

function modeOf(w: Workload): ConflictMode {
  return w === 'lww' || w === 'versions' ? w : 'crdt';
}

function randomWrite(c: Cluster, p: Prng, w: Workload, i: number, key: string): ShippedRecord | null {
  const v = `v${p.int(1000)}`;
  if (p.chance(0.15)) {
    if (w === 'versions' && p.chance(0.5)) {
      const read = c.r(p.int(c.ids.length)).get(key);
      return c.del(i, key, read.mode === 'versions' ? read.token : null).record;
    }
    return c.del(i, key).record;
  }
  switch (w) {
    case 'lww':
      return c.put(i, key, v).record;
    case 'versions': {
      // A client reads at some member (maybe another one) and writes back with the token.
      const read = c.r(p.int(c.ids.length)).get(key);
      const token = read.mode === 'versions' && p.chance(0.7) ? read.token : null;
      try {
        return c.put(i, key, v, token).record;
      } catch {
        return null; // siblingsMax: a blind write refused
      }
    }
    case 'counter':
      return c.crdt(i, key, { type: 'counter', op: p.chance(0.7) ? 'incr' : 'decr', by: p.range(1, 9) }).record;
    case 'set':
      return c.crdt(i, key, { type: 'set', op: p.chance(0.6) ? 'add' : 'remove', value: p.pick(['a', 'b', 'c', 1, 2]) }).record;
    case 'register':
      return c.crdt(i, key, { type: 'register', op: 'set', value: { v } }).record;
    case 'map': {
      const field = p.pick(['n', 's', 'r']);
      if (p.chance(0.2)) return c.crdt(i, key, { type: 'map', op: 'remove', field }).record;
      const inner =
        field === 'n'
          ? { type: 'counter', op: 'incr', by: p.range(1, 3) }
          : field === 's'
            ? { type: 'set', op: p.chance(0.6) ? 'add' : 'remove', value: p.pick(['x', 'y']) }
            : { type: 'register', op: 'set', value: v };
      return c.crdt(i, key, { type: 'map', op: 'update', field, value: inner }).record;
    }
  }
}

function run(w: Workload, seed: number): void {
  const p = new Prng(seed * 7919 + w.length);
  const n = p.range(3, 5);
  const c = new Cluster(modeOf(w), n, { siblingsMax: 6, digestLeafBits: 3 });
  const keys = ['a', 'b', 'c', 'd'];
  const inFlight: Message[] = [];
  const cut = new Set<string>();
  const up = (i: number, j: number): boolean => !cut.has(`${i}>${j}`);

  for (let step = 0; step < 250; step++) {
    c.advance(p.range(0, 5));
    const roll = p.float();
    if (roll < 0.35) {
      const i = p.int(n);
      const record = randomWrite(c, p, w, i, p.pick(keys));
      // Pushed to a random subset of peers (as `?w=N` fan-out would).
      if (record !== null) for (let j = 0; j < n; j++) if (j !== i && p.chance(0.4) && up(i, j)) inFlight.push({ kind: 'repair', to: j, records: [record] });
    } else if (roll < 0.6) {
      const i = p.int(n);
      const j = (i + 1 + p.int(n - 1)) % n;
      if (up(i, j)) inFlight.push({ kind: 'batch', batch: c.batch(i, j, p.pick([1, 2, 100])) });
    } else if (roll < 0.85 && inFlight.length > 0) {
      // Deliver a random message (reordering); sometimes keep a copy (duplication) or lose it.
      const at = p.int(inFlight.length);
      const msg = inFlight[at]!;
      if (!p.chance(0.3)) inFlight.splice(at, 1);
      if (p.chance(0.1)) continue;
      if (msg.kind === 'batch') c.deliver(msg.batch, p.chance(0.2));
      else c.persist(msg.to, c.r(msg.to).applyRepair(msg.records, c.now(msg.to), 'push').persist);
    } else if (roll < 0.9) {
      const i = p.int(n);
      const j = (i + 1 + p.int(n - 1)) % n;
      if (p.chance(0.5)) {
        cut.add(`${i}>${j}`);
        cut.add(`${j}>${i}`);
      } else cut.clear();
    } else if (roll < 0.94) {
      c.restart(p.int(n));
    } else if (roll < 0.97) {
      const i = p.int(n);
      const j = (i + 1 + p.int(n - 1)) % n;
      if (up(i, j)) c.antiEntropy(i, j);
    } else {
      c.housekeeping();
    }
  }

  // Heal: the bounded sync loop.
  for (let round = 0; round < SYNC_ROUNDS_MAX; round++) {
    c.advance(100);
    c.syncAll();
    if (c.replicas.every((r) => r.stateHash() === c.r(0).stateHash() && r.stats().tombstones === 0)) break;
  }
  c.assertConverged(keys);
  for (const r of c.replicas) assert.equal(r.stats().tombstones, 0, `tombstones collected at ${r.self}`);
}

for (const w of ['lww', 'versions', 'counter', 'set', 'register', 'map'] as const) {
  test(`convergence: ${w} on 3-5 replicas under random delivery, duplication, reordering, disconnects and crashes`, () => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      try {
        run(w, seed);
      } catch (error) {
        assert.fail(`seed ${seed}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  });
}
