// The deterministic multi-master simulator: N members of the real MultiMasterReplica on a
// simulated network (drops, delays, duplicates, reordering, partitions), with skewed and jumping
// clocks, crashes that lose everything not persisted, and clients writing at random members.
// Members replicate with the change stream, push writes directly, hand off hints for members
// they cannot reach, run periodic anti-entropy and collect tombstones. Everything is driven
// from one seed.
import {
  ClockDriftError,
  MultiMasterReplica,
  differingKeys,
  dotText,
  type CrdtRecord,
  type Dot,
  type DurableState,
  type ReplicaMeta,
  type ReplicaMessage,
  type ReplicaOptions,
  type ShippedRecord,
  type StoreOp,
  type StoredRecord,
} from '../../src/core/mm/index.ts';
import { Prng } from '../prng.ts';
import type { MmFaultKind, MmSimConfig } from './config.ts';
import { EventHeap } from '../heap.ts';
import { Oracle, type CrdtSimOp } from './oracle.ts';

export class MmViolation extends Error {
  constructor(readonly kind: string, message: string) {
    super(`${kind}: ${message}`);
    this.name = 'MmViolation';
  }
}

type Msg = ReplicaMessage;

interface SimEvent {
  readonly timeMs: number;
  readonly seq: number;
  readonly run: () => void;
}

interface Durable {
  meta: ReplicaMeta | null;
  readonly records: Map<string, StoredRecord>;
}

class Member {
  up = true;
  epoch = 0;
  replica!: MultiMasterReplica;
  readonly durable: Durable = { meta: null, records: new Map() };
  clockOffsetMs = 0;
  clockRate = 1;
  readonly lastHeardMs = new Map<string, number>();
  constructor(readonly id: string) {}
}

export interface MmSimStats {
  timeMs: number;
  events: number;
  writesOk: number;
  writesRefused: number;
  messagesSent: number;
  messagesDropped: number;
  crashes: number;
  partitions: number;
  clockJumps: number;
  driftRefusals: number;
  batchesRefused: number;
  repairs: number;
  hintsQueued: number;
  hintsDropped: number;
  hintsRefused: number;
  hintsApplied: number;
  tombstonesCollected: number;
  lwwOverwrites: number;
  convergedAtMs: number;
}

/** A large epoch so that physical times look like real ones (and HLC fields are exercised). */
const EPOCH_MS = 1_700_000_000_000;

export class MmSimulation {
  readonly members: Member[];
  readonly oracle = new Oracle();
  private readonly byId = new Map<string, Member>();
  private readonly heap = new EventHeap<SimEvent>();
  private readonly prng: Prng;
  private readonly net: Prng;
  private readonly work: Prng;
  private readonly nemesisPrng: Prng;
  private nowMs = 0;
  private seq = 0;
  private writeId = 0;
  /** Directed links that drop everything (from>to). */
  private readonly cut = new Set<string>();
  private workloadOn = false;
  private nemesisOn = false;
  /** versions: which write a sibling value stands for. */
  private readonly dotOfValue = new Map<string, Dot>();
  readonly stats: MmSimStats = {
    timeMs: 0, events: 0, writesOk: 0, writesRefused: 0, messagesSent: 0, messagesDropped: 0, crashes: 0, partitions: 0,
    clockJumps: 0, driftRefusals: 0, batchesRefused: 0, repairs: 0, hintsQueued: 0, hintsDropped: 0, hintsRefused: 0,
    hintsApplied: 0, tombstonesCollected: 0, lwwOverwrites: 0, convergedAtMs: -1,
  };

  constructor(
    readonly config: MmSimConfig,
    private readonly trace: ((line: string) => void) | null = null,
  ) {
    this.prng = new Prng(config.seed);
    this.net = this.prng.fork();
    this.work = this.prng.fork();
    this.nemesisPrng = this.prng.fork();
    this.members = config.members.map((id) => new Member(id));
    for (const m of this.members) {
      this.byId.set(m.id, m);
      m.clockOffsetMs = (this.prng.float() * 2 - 1) * config.clockOffsetMsMax;
      m.clockRate = 1 + (this.prng.float() * 2 - 1) * config.clockRateSpread;
      this.boot(m);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Scheduling

  private at(timeMs: number, run: () => void): void {
    this.heap.push({ timeMs, seq: this.seq++, run });
  }

  /** A timer of a member's current incarnation: dropped if the member crashed since. */
  private memberTimer(m: Member, delayMs: number, run: () => void): void {
    const epoch = m.epoch;
    this.at(this.nowMs + delayMs, () => {
      if (m.up && m.epoch === epoch) run();
    });
  }

  runFor(durationMs: number): void {
    this.runUntil(() => false, durationMs);
  }

  /** Runs until `done` holds (checked every 10ms of simulated time) or the time is up. */
  runUntil(done: () => boolean, durationMs: number): boolean {
    const endMs = this.nowMs + durationMs;
    let nextCheckMs = this.nowMs;
    while (true) {
      if (this.nowMs >= nextCheckMs) {
        if (done()) return true;
        nextCheckMs = this.nowMs + 10;
      }
      const next = this.heap.peek();
      if (next === undefined || next.timeMs > endMs) {
        this.nowMs = endMs;
        return done();
      }
      this.heap.pop();
      this.nowMs = Math.max(this.nowMs, next.timeMs);
      this.stats.events++;
      next.run();
    }
  }

  /** Trace lines are built only when tracing. */
  private log(text: () => string): void {
    if (this.trace !== null) this.trace(`${this.nowMs.toFixed(2).padStart(9)} ${text()}`);
  }

  private clockOf(m: Member): number {
    return EPOCH_MS + this.nowMs * m.clockRate + m.clockOffsetMs;
  }

  // -------------------------------------------------------------------------------------------
  // Members

  private options(m: Member): ReplicaOptions {
    const c = this.config;
    return {
      keyspace: 'sim',
      mode: c.mode,
      self: m.id,
      members: c.members,
      maxClockDriftMs: c.maxClockDriftMs,
      keysMax: c.keysMax,
      siblingsMax: c.siblingsMax,
      hintsMax: c.hintsMax,
      hintsBytesMax: c.hintsBytesMax,
      hintsPolicy: c.hintsPolicy,
      digestLeafBits: c.digestLeafBits,
      clockPersistIntervalMs: c.clockPersistIntervalMs,
    };
  }

  /** Starts (or restarts) a member from what it persisted. */
  private boot(m: Member): void {
    const durable: DurableState = { meta: m.durable.meta, records: m.durable.records };
    const opened = MultiMasterReplica.open(this.options(m), durable);
    m.replica = opened.replica;
    this.persist(m, opened.persist);
    m.up = true;
    for (const p of this.config.members) m.lastHeardMs.set(p, this.nowMs);
    this.log(() => `${m.id} boot incarnation=${m.replica.stats().incarnation} keys=${m.durable.records.size}`);
    this.memberTimer(m, this.net.float() * this.config.replIntervalMs, () => this.replicate(m));
    this.memberTimer(m, this.net.float() * this.config.aeIntervalMs, () => this.antiEntropy(m));
    this.memberTimer(m, this.net.float() * this.config.hintIntervalMs, () => this.deliverHints(m));
    this.memberTimer(m, this.net.float() * this.config.tickIntervalMs, () => this.housekeeping(m));
  }

  /** The member's store: ops land atomically before anything the call produced leaves. */
  private persist(m: Member, ops: readonly StoreOp[]): void {
    for (const op of ops) {
      if (op.op === 'put') m.durable.records.set(op.key, op.record);
      else if (op.op === 'delete') m.durable.records.delete(op.key);
      else m.durable.meta = op.meta;
    }
  }

  private crash(m: Member): void {
    m.up = false;
    m.epoch++;
    this.stats.crashes++;
    this.log(() => `${m.id} CRASH (hints ${m.replica.stats().hintsQueued} and unpersisted acks lost)`);
  }

  private suspected(m: Member, peer: string): boolean {
    return this.nowMs - (m.lastHeardMs.get(peer) ?? 0) > this.config.suspectAfterMs;
  }

  // -------------------------------------------------------------------------------------------
  // Network

  private send(from: Member, to: string, msg: Msg): void {
    this.stats.messagesSent++;
    const c = this.config;
    const copies = this.net.chance(c.duplicateRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      if (this.cut.has(`${from.id}>${to}`) || this.net.chance(c.dropRate)) {
        this.stats.messagesDropped++;
        continue;
      }
      const delay = this.net.chance(c.longDelayRate)
        ? this.net.float() * c.longDelayMsMax
        : c.delayMsMin + this.net.float() * (c.delayMsMax - c.delayMsMin);
      // No copy is needed: receivers rebuild every record they get (validation), and records,
      // bytes included, are never mutated in place.
      this.at(this.nowMs + delay, () => this.deliver(from.id, to, msg));
    }
  }

  private deliver(from: string, to: string, msg: Msg): void {
    const m = this.byId.get(to)!;
    if (!m.up) return;
    m.lastHeardMs.set(from, this.nowMs);
    const r = m.replica;
    const clock = this.clockOf(m);
    try {
      switch (msg.t) {
        case 'batch': {
          const res = r.applyRemote(msg.batch, clock);
          this.persist(m, res.persist);
          this.oracle.lwwOverwritten(res.overwritten);
          if (!res.applied) this.stats.batchesRefused++;
          if (res.changed > 0 || !res.applied) this.log(() => `${to} <- ${from} batch #${msg.batch.batchNo} (${msg.batch.fromSeq},${msg.batch.toSeq}]${msg.batch.complete ? ' complete' : ''} records=${msg.batch.records.length} ${res.applied ? `changed=${res.changed}` : 'REFUSED'}${res.overwritten.length > 0 ? ` lost=${res.overwritten.map(dotText).join(',')}` : ''}`);
          this.send(m, from, { t: 'ack', ack: res.ack });
          return;
        }
        case 'ack':
          r.onAck(msg.ack);
          return;
        case 'push':
        case 'ae-records':
        case 'hints': {
          const records = msg.t === 'hints' ? msg.batch.hints : msg.records;
          const source = msg.t === 'push' ? 'push' : msg.t === 'hints' ? 'hint' : 'anti-entropy';
          const res = r.applyRepair(records, clock, source);
          this.persist(m, res.persist);
          this.oracle.lwwOverwritten(res.overwritten);
          if (res.changed > 0) this.log(() => `${to} <- ${from} ${msg.t} changed=${res.changed} [${records.map((x) => x.key).join(',')}]${res.overwritten.length > 0 ? ` lost=${res.overwritten.map(dotText).join(',')}` : ''}`);
          if (msg.t === 'hints') this.send(m, from, { t: 'hints-ack', delivered: msg.batch.hints.map((h) => ({ key: h.key, version: h.version })) });
          if (msg.t === 'ae-records' && msg.want.length > 0) {
            const back = r.recordsFor(msg.want, this.config.aeBytesMax);
            if (back.records.length > 0) this.send(m, from, { t: 'ae-records', records: back.records, want: [] });
          }
          return;
        }
        case 'handoff': {
          if (msg.target === to) {
            const res = r.applyRepair([msg.record], clock, 'hint');
            this.persist(m, res.persist);
            this.oracle.lwwOverwritten(res.overwritten);
            return;
          }
          const added = r.addHint(msg.target, msg.record);
          if (added !== 'refused') this.stats.hintsQueued++;
          this.log(() => `${to} holds hint ${msg.record.key} for ${msg.target} from ${from}: ${added}`);
          return;
        }
        case 'hints-ack':
          r.ackHints(from, msg.delivered);
          return;
        case 'ae-digest': {
          let handled = 0;
          for (const d of msg.digests) {
            const mine = r.digest(1, d.range)[0]!;
            if (mine.hash === d.hash) continue;
            if (handled++ >= this.config.aeRangesMax) break;
            const width = d.range.end - d.range.start;
            if (width > 1 && Math.max(mine.keys, d.keys) > this.config.aeKeysMax) {
              this.send(m, from, { t: 'ae-digest', digests: r.digest(this.config.aeFanout, d.range) });
            } else {
              this.send(m, from, { t: 'ae-keys', range: d.range, afterKey: null, keys: r.keysInRange(d.range, this.config.aeKeysMax) });
            }
          }
          return;
        }
        case 'ae-keys': {
          const mine = r.keysInRange(msg.range, this.config.aeKeysMax, msg.afterKey);
          const diff = differingKeys(mine, msg.keys);
          if (diff.length > 0) {
            const recs = r.recordsFor(diff, this.config.aeBytesMax);
            this.send(m, from, { t: 'ae-records', records: recs.records, want: diff });
          }
          if (!mine.complete || !msg.keys.complete) {
            // Page on: both sides list the range again from the smaller of the two last keys.
            const lasts = [mine, msg.keys].filter((k) => !k.complete).map((k) => k.entries[k.entries.length - 1]?.key ?? '');
            const afterKey = lasts.sort()[0]!;
            this.send(m, from, { t: 'ae-keys', range: msg.range, afterKey, keys: r.keysInRange(msg.range, this.config.aeKeysMax, afterKey) });
          }
          return;
        }
      }
    } catch (error) {
      if (error instanceof ClockDriftError) {
        this.stats.driftRefusals++;
        this.log(() => `${to} refused ${msg.t} from ${from}: ${error.message}`);
        return;
      }
      throw error;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Member activities

  private replicate(m: Member): void {
    for (const peer of this.config.members) {
      if (peer === m.id) continue;
      this.send(m, peer, { t: 'batch', batch: m.replica.changesSince(peer, this.config.batchCountMax, this.config.batchBytesMax) });
    }
    this.memberTimer(m, this.config.replIntervalMs, () => this.replicate(m));
  }

  private antiEntropy(m: Member): void {
    const peers = this.config.members.filter((p) => p !== m.id);
    const peer = this.net.pick(peers);
    this.send(m, peer, { t: 'ae-digest', digests: m.replica.digest(this.config.aeFanout) });
    this.memberTimer(m, this.config.aeIntervalMs, () => this.antiEntropy(m));
  }

  private deliverHints(m: Member): void {
    for (const peer of this.config.members) {
      if (peer === m.id || this.suspected(m, peer)) continue;
      const batch = m.replica.hintsFor(peer, 16, 4096);
      if (batch !== null) this.send(m, peer, { t: 'hints', batch });
    }
    this.memberTimer(m, this.config.hintIntervalMs, () => this.deliverHints(m));
  }

  private housekeeping(m: Member): void {
    this.persist(m, m.replica.tick(this.clockOf(m)).persist);
    const gc = m.replica.collectGarbage(this.config.gcCountMax);
    this.persist(m, gc.persist);
    if (gc.collected > 0) this.log(() => `${m.id} collected ${gc.collected} tombstones`);
    this.memberTimer(m, this.config.tickIntervalMs, () => this.housekeeping(m));
  }

  /** After a local write: push the record to every peer; for a peer that looks unreachable,
   * hand it to another peer as a hint (or keep the hint here when nobody is reachable). */
  private fanOut(m: Member, record: ShippedRecord): void {
    for (const peer of this.config.members) {
      if (peer === m.id) continue;
      if (!this.suspected(m, peer)) {
        this.send(m, peer, { t: 'push', records: [record] });
        continue;
      }
      const helpers = this.config.members.filter((h) => h !== m.id && h !== peer && !this.suspected(m, h));
      if (helpers.length > 0) this.send(m, this.net.pick(helpers), { t: 'handoff', target: peer, record });
      else {
        const added = m.replica.addHint(peer, record);
        if (added !== 'refused') this.stats.hintsQueued++;
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Workload

  startWorkload(): void {
    this.workloadOn = true;
    this.scheduleOp();
  }

  stopWorkload(): void {
    this.workloadOn = false;
  }

  private scheduleOp(): void {
    const delay = -Math.log(1 - this.work.float()) * this.config.opIntervalMs;
    this.at(this.nowMs + delay, () => {
      if (!this.workloadOn) return;
      this.clientOp();
      this.scheduleOp();
    });
  }

  private clientOp(): void {
    const up = this.members.filter((m) => m.up);
    if (up.length === 0) return;
    const m = this.work.pick(up);
    const key = `k${this.work.int(this.config.keys)}`;
    switch (this.config.mode) {
      case 'lww':
        return this.lwwOp(m, key);
      case 'versions':
        return this.versionsOp(m, key);
      case 'crdt':
        return this.crdtOp(m, key);
    }
  }

  private lwwOp(m: Member, key: string): void {
    const id = ++this.writeId;
    const del = this.work.chance(this.config.deleteRate);
    const value = del ? null : `${key}:w${id}`;
    const before = m.replica.inspect(key);
    const pred = before?.mode === 'lww' ? before.dot : null;
    const res = this.write(m, key, () => (value === null ? m.replica.delete(key, this.clockOf(m)) : m.replica.put(key, encoder.encode(value), this.clockOf(m))));
    if (res === null) return;
    this.oracle.lwwWrite(id, key, res.dot, res.stamp, value, pred);
  }

  private versionsOp(m: Member, key: string): void {
    const del = this.work.chance(this.config.deleteRate);
    if (!this.work.chance(this.config.tokenRate)) {
      // Blind: a put without a token joins the siblings; a delete without one deletes every
      // sibling this member holds.
      const id = ++this.writeId;
      const value = del ? null : `${key}:w${id}`;
      const res = this.write(m, key, () => (value === null ? m.replica.delete(key, this.clockOf(m)) : m.replica.put(key, encoder.encode(value), this.clockOf(m))));
      if (res === null) return;
      if (value !== null) this.dotOfValue.set(value, res.dot);
      this.oracle.versionsWrite(key, res.dot, res.stamp, value, res.replaced);
      return;
    }
    // Read at one member, write back with the token at the same or another member, later.
    const view = m.replica.get(key);
    if (view.mode !== 'versions') return;
    const seenDots = view.siblings.map((s) => this.dotOfValue.get(decoder.decode(s.value))!);
    const target = this.work.chance(0.5) ? m : this.work.pick(this.members);
    this.at(this.nowMs + this.work.float() * 20, () => {
      if (!target.up || !this.workloadOn) return;
      const id = ++this.writeId;
      const value = del ? null : `${key}:w${id}`;
      const res = this.write(target, key, () =>
        value === null ? target.replica.delete(key, this.clockOf(target), view.token) : target.replica.put(key, encoder.encode(value), this.clockOf(target), view.token),
      );
      if (res === null) return;
      if (value !== null) this.dotOfValue.set(value, res.dot);
      // The write replaces the read siblings its (clamped) context covers.
      const ctx = res.clientContext ?? [];
      const observed = seenDots.filter((d) => ctx.some(([mm, s]) => mm === d.member && s >= d.seq));
      this.oracle.versionsWrite(key, res.dot, res.stamp, value, observed);
    });
  }

  private crdtOp(m: Member, key: string): void {
    const keyIndex = Number(key.slice(1));
    const type = (['counter', 'set', 'register', 'map'] as const)[keyIndex % 4]!;
    let op: CrdtSimOp | 'delete';
    if (this.work.chance(this.config.deleteRate)) op = 'delete';
    else if (type === 'map') {
      const field = this.work.pick(['c', 's', 'r']);
      if (this.work.chance(this.config.fieldRemoveRate)) op = { type: 'map', op: 'remove', field };
      else op = { type: 'map', op: 'update', field, value: this.fieldOp(field === 'c' ? 'counter' : field === 's' ? 'set' : 'register') };
    } else op = this.fieldOp(type);
    const before = m.replica.inspect(key) as CrdtRecord | null;
    const json = op === 'delete' ? null : toJson(op);
    const res = this.write(m, key, () => (json === null ? m.replica.delete(key, this.clockOf(m)) : m.replica.crdt(key, json, this.clockOf(m))));
    if (res === null) return;
    this.oracle.crdtWrite(key, m.id, op, res.dot, res.stamp, before);
  }

  private fieldOp(type: 'counter' | 'set' | 'register'): CrdtSimOp {
    const w = this.work;
    switch (type) {
      case 'counter':
        return { type, op: w.chance(0.7) ? 'incr' : 'decr', by: w.range(1, 5) };
      case 'set':
        return { type, op: w.chance(0.65) ? 'add' : 'remove', value: JSON.stringify(w.pick(['a', 'b', 'c', 'd'])) };
      case 'register':
        return { type, op: 'set', value: JSON.stringify({ w: ++this.writeId }) };
    }
  }

  private write<T extends { readonly dot: Dot; readonly record: ShippedRecord; readonly persist: readonly StoreOp[] }>(m: Member, key: string, run: () => T): T | null {
    let res: T;
    try {
      res = run();
    } catch (error) {
      if (error instanceof Error && 'code' in error && (error.code === 'CHORUS_TOO_MANY_SIBLINGS' || error.code === 'CHORUS_KEYSPACE_FULL')) {
        this.stats.writesRefused++;
        this.log(() => `${m.id} write ${key} refused: ${error.code}`);
        return null;
      }
      throw error;
    }
    this.persist(m, res.persist);
    this.stats.writesOk++;
    this.log(() => `${m.id} write ${key} dot=${dotText(res.dot)} -> ${JSON.stringify(m.replica.get(key), bytesAsText)}`);
    this.fanOut(m, res.record);
    return res;
  }

  // -------------------------------------------------------------------------------------------
  // Nemesis

  startNemesis(): void {
    if (this.config.faults.length === 0) return;
    this.nemesisOn = true;
    this.scheduleFault();
  }

  /** Stops faults: heals every cut, restarts crashed members, stops clock jumps. */
  stopNemesis(): void {
    this.nemesisOn = false;
    this.cut.clear();
    for (const m of this.members) if (!m.up) this.boot(m);
    this.log(() => 'nemesis stopped: network healed, members up');
  }

  private scheduleFault(): void {
    const c = this.config;
    const delay = c.faultIntervalMsMin + this.nemesisPrng.float() * (c.faultIntervalMsMax - c.faultIntervalMsMin);
    this.at(this.nowMs + delay, () => {
      if (!this.nemesisOn) return;
      this.fault(this.nemesisPrng.pick(c.faults));
      this.scheduleFault();
    });
  }

  private fault(kind: MmFaultKind): void {
    const p = this.nemesisPrng;
    const ids = this.config.members;
    const heal = (delayMs: number, run: () => void): void =>
      this.at(this.nowMs + delayMs, () => {
        if (this.nemesisOn) run();
      });
    switch (kind) {
      case 'partition': {
        const side = new Set(p.shuffle(ids).slice(0, p.range(1, ids.length - 1)));
        const links: string[] = [];
        for (const a of ids) for (const b of ids) if (side.has(a) !== side.has(b)) links.push(`${a}>${b}`);
        for (const l of links) this.cut.add(l);
        this.stats.partitions++;
        this.log(() => `PARTITION {${[...side].join(',')}} | rest`);
        heal(50 + p.float() * 800, () => {
          for (const l of links) this.cut.delete(l);
          this.log(() => `heal {${[...side].join(',')}}`);
        });
        return;
      }
      case 'link': {
        const [a, b] = p.shuffle(ids) as [string, string];
        const link = `${a}>${b}`;
        this.cut.add(link);
        this.log(() => `CUT ${link}`);
        heal(50 + p.float() * 800, () => this.cut.delete(link));
        return;
      }
      case 'crash': {
        const up = this.members.filter((m) => m.up);
        if (up.length === 0) return;
        const m = p.pick(up);
        this.crash(m);
        heal(20 + p.float() * 600, () => {
          if (!m.up) this.boot(m);
        });
        return;
      }
      case 'clock': {
        const m = p.pick(this.members);
        const max = this.config.clockOffsetMsMax;
        const jump = (p.float() * 2 - 1) * Math.max(200, max / 2);
        m.clockOffsetMs = Math.max(-max - 200, Math.min(max + 200, m.clockOffsetMs + jump));
        this.stats.clockJumps++;
        this.log(() => `CLOCK ${m.id} jumps ${jump.toFixed(0)}ms (offset ${m.clockOffsetMs.toFixed(0)}ms)`);
        return;
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Checks

  private allKeys(): string[] {
    const keys = new Set<string>(this.oracle.keysTouched);
    for (const m of this.members) for (const k of m.replica.keys()) keys.add(k);
    return [...keys].sort();
  }

  converged(): boolean {
    const hashes = new Set(this.members.map((m) => m.replica.stateHash()));
    return hashes.size === 1 && this.members.every((m) => m.replica.stats().tombstones === 0);
  }

  /** After faults stop: every member holds the same records, and every tombstone is collected,
   * within the bound. Then the state is checked against the model of acknowledged writes. */
  checkConvergence(boundMs: number): void {
    const startMs = this.nowMs;
    if (!this.runUntil(() => this.converged(), boundMs)) {
      const hashes = this.members.map((m) => `${m.id}=${m.replica.stateHash()}/tombstones=${m.replica.stats().tombstones}`);
      const diverging = this.allKeys().filter((k) => new Set(this.members.map((m) => JSON.stringify(m.replica.inspect(k), bytesAsText))).size > 1);
      const sample = diverging.slice(0, 3).map((k) => `${k}: ${this.members.map((m) => `${m.id}=${JSON.stringify(m.replica.inspect(k), bytesAsText)}`).join(' ')}`);
      throw new MmViolation('convergence', `not converged ${boundMs}ms after faults stopped: ${hashes.join(' ')}; diverging keys ${diverging.join(',')}\n  ${sample.join('\n  ')}`);
    }
    this.stats.convergedAtMs = this.nowMs - startMs;
    this.log(() => `converged after ${this.stats.convergedAtMs.toFixed(0)}ms`);
  }

  checkModel(): void {
    const first = this.members[0]!;
    const keys = this.allKeys();
    for (const m of this.members.slice(1)) {
      for (const k of keys) {
        const a = JSON.stringify(first.replica.get(k), bytesAsText);
        const b = JSON.stringify(m.replica.get(k), bytesAsText);
        if (a !== b) throw new MmViolation('convergence', `${k} reads ${a} at ${first.id} but ${b} at ${m.id}`);
      }
    }
    const counters = this.members.reduce((s, m) => s + m.replica.stats().lwwOverwrites, 0);
    const problems = this.oracle.check(this.config.mode, (k) => first.replica.get(k), (k) => first.replica.inspect(k), counters);
    if (problems.length > 0) {
      const first = problems[0]!;
      const colon = first.indexOf(': ');
      throw new MmViolation(first.slice(0, colon), [first.slice(colon + 2), ...problems.slice(1, 5)].join('\n  '));
    }
  }

  statsNow(): MmSimStats {
    const s = this.stats;
    s.timeMs = this.nowMs;
    s.repairs = 0;
    s.hintsDropped = 0;
    s.hintsRefused = 0;
    s.hintsApplied = 0;
    s.tombstonesCollected = 0;
    s.lwwOverwrites = 0;
    for (const m of this.members) {
      const r = m.replica.stats();
      s.repairs += r.repairs;
      s.hintsDropped += r.hintsDropped;
      s.hintsRefused += r.hintsRefused;
      s.hintsApplied += r.hintsApplied;
      s.tombstonesCollected += r.tombstonesCollected;
      s.lwwOverwrites += r.lwwOverwrites;
    }
    return s;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function bytesAsText(_key: string, value: unknown): unknown {
  return value instanceof Uint8Array ? decoder.decode(value) : value;
}

/** The JSON a client would send for a simulated op (values are canonical JSON text). */
function toJson(op: CrdtSimOp): unknown {
  switch (op.type) {
    case 'counter':
      return { type: 'counter', op: op.op, by: op.by };
    case 'set':
      return { type: 'set', op: op.op, value: JSON.parse(op.value) as unknown };
    case 'register':
      return { type: 'register', op: 'set', value: JSON.parse(op.value) as unknown };
    case 'map':
      return op.op === 'remove' ? { type: 'map', op: 'remove', field: op.field } : { type: 'map', op: 'update', field: op.field, value: toJson(op.value) };
  }
}
