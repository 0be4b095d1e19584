// The runtime of this member's multi-master keyspaces: one MultiMasterReplica (the pure core,
// src/core/mm) per keyspace, driven with the wall clock, persisted in MultiMasterStore, and
// connected to the peers over the member transport (MultiMaster messages). The wiring is the
// one the multi-master simulator checks (sim/mm/cluster.ts): the change stream with a cursor
// per peer, hinted handoff for peers that look unreachable, periodic anti-entropy over range
// hashes, and garbage collection of tombstones.
//
// Durability: every StoreOp the core hands out goes through one ordered queue. Local writes
// are grouped: the queue is flushed (one SQLite transaction, one fsync) at the next turn of the
// event loop, and the write is acknowledged after that. Everything else flushes the queue at
// once, and nothing is ever sent while the queue holds ops: a peer must never hold an event of
// ours that we could lose (a restarted member would reuse its seq).
import {
  ClockDriftError,
  MmError,
  MultiMasterReplica,
  differingKeys,
  encodeStamp,
  type ConflictMode,
  type KeyHashes,
  type KeyRange,
  type LocalWrite,
  type LocalWriteResult,
  type RangeDigest,
  type ReadView,
  type ReplicaMessage,
  type ReplicaOptions,
  type ShippedRecord,
  type StoreOp,
} from '../core/mm/index.ts';
import { ChorusError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import type { KeyspaceDef } from '../kv/sqlite-state-machine.ts';
import type { MultiMasterMessage } from '../transport/types.ts';
import type { KeyspaceOps, MultiMasterStore } from './store.ts';

export interface MultiMasterTuning {
  /** How often each keyspace looks for changes to stream, heartbeats and expired batches. */
  readonly replIntervalMs: number;
  /** Largest change batch, in records and approximate bytes. */
  readonly batchCountMax: number;
  readonly batchBytesMax: number;
  /** A batch not acknowledged within this is presumed lost: the next one resends from the cursor. */
  readonly ackTimeoutMs: number;
  /** An empty batch (frontier and stability marks, for garbage collection) at least this often. */
  readonly heartbeatMs: number;
  /** A peer not heard from for this long is suspected: writes meant for it become hints. */
  readonly suspectAfterMs: number;
  readonly hintIntervalMs: number;
  readonly hintBatchCountMax: number;
  readonly hintBatchBytesMax: number;
  /** Anti-entropy with one random peer this often (jittered by up to a half). */
  readonly aeIntervalMs: number;
  /** Ranges per digest, keys per listing page, ranges explored per digest, bytes per repair. */
  readonly aeFanout: number;
  readonly aeKeysMax: number;
  readonly aeRangesMax: number;
  readonly aeBytesMax: number;
  readonly housekeepingMs: number;
  readonly gcCountMax: number;
  /** Local writes waiting for their fsync or for ?w=N, all keyspaces together. */
  readonly writesPendingMax: number;
}

/** A batch unanswered this long by a peer silent as long was most likely lost (see briefCut). */
const PEER_SILENCE_MS = 500;

export const DEFAULT_MM_TUNING: MultiMasterTuning = {
  replIntervalMs: 20,
  batchCountMax: 1000,
  batchBytesMax: 1024 * 1024,
  ackTimeoutMs: 2000,
  heartbeatMs: 1000,
  suspectAfterMs: 3000,
  hintIntervalMs: 500,
  hintBatchCountMax: 256,
  hintBatchBytesMax: 1024 * 1024,
  aeIntervalMs: 5000,
  aeFanout: 16,
  aeKeysMax: 512,
  aeRangesMax: 16,
  aeBytesMax: 1024 * 1024,
  housekeepingMs: 1000,
  gcCountMax: 10_000,
  writesPendingMax: 10_000,
};

export interface MultiMasterHostOptions {
  readonly self: string;
  readonly store: MultiMasterStore;
  readonly send: (message: MultiMasterMessage) => void;
  /** Wall-clock milliseconds (HLC physical time). */
  readonly wallClockMs: () => number;
  /** Monotonic milliseconds (deadlines and timers). */
  readonly monotonicMs: () => number;
  readonly random: () => number;
  readonly logger: Logger;
  /** Called when the store fails: the member must stop (its memory is ahead of its disk). */
  readonly onFatal: (error: unknown) => void;
  readonly tuning?: Partial<MultiMasterTuning>;
  /** Limits of every replica (keysMax, valueBytesMax, maxClockDriftMs, ...). */
  readonly replicaOptions?: Partial<Omit<ReplicaOptions, 'keyspace' | 'mode' | 'self' | 'members'>>;
}

/** The body of a MultiMaster message. The node streams writes instead of pushing them, but
 * applies a push it receives like any repair. */
type Body = ReplicaMessage;

export interface MultiMasterWriteResult {
  readonly key: string;
  /** The write's event, "member:seq". */
  readonly dot: string;
  /** Its HLC stamp (sortable text). */
  readonly stamp: string;
  /** Members known to hold it durably when answered (this one included). */
  readonly durableMembers: number;
  readonly view: ReadView;
}

interface WriteWait {
  readonly seq: number;
  readonly w: number;
  readonly deadlineMs: number;
  readonly resolve: (durableMembers: number) => void;
  readonly reject: (error: Error) => void;
}

interface PeerState {
  /** When the batch in flight was sent (monotonic), or null. */
  inFlightSinceMs: number | null;
  lastSentMs: number;
  lastHeardMs: number;
}

class KeyspaceRuntime {
  readonly peers: readonly string[];
  readonly peerState = new Map<string, PeerState>();
  waits: WriteWait[] = [];
  nextAeMs = 0;
  nextHintsMs = 0;
  nextHousekeepingMs = 0;
  messagesRefused = 0;
  driftRefusals = 0;

  constructor(readonly def: KeyspaceDef, readonly replica: MultiMasterReplica, self: string, nowMs: number) {
    this.peers = def.members.filter((m) => m !== self);
    for (const p of this.peers) this.peerState.set(p, { inFlightSinceMs: null, lastSentMs: -Infinity, lastHeardMs: nowMs });
  }
}

export interface KeyspacePeerStats {
  readonly peer: string;
  readonly backlogSeqs: number;
  readonly ackedSeq: number;
  readonly suspected: boolean;
  /** Since the last message from the peer in this keyspace. */
  readonly silentMs: number;
  readonly hintsQueued: number;
}

export interface KeyspaceStats {
  readonly name: string;
  readonly conflicts: ConflictMode;
  readonly keys: number;
  readonly tombstones: number;
  readonly lastSeq: number;
  readonly lwwOverwrites: number;
  readonly repairs: number;
  readonly hintsApplied: number;
  readonly hintsDropped: number;
  readonly hintsRefused: number;
  readonly tombstonesCollected: number;
  readonly clockDriftRejections: number;
  readonly messagesRefused: number;
  readonly stateHash: string;
  readonly peers: readonly KeyspacePeerStats[];
}

export class MultiMasterHost {
  readonly tuning: MultiMasterTuning;
  private readonly runtimes = new Map<string, KeyspaceRuntime>();
  /** Catalog entries this member does not replicate (created before it joined). */
  private readonly foreign = new Map<string, KeyspaceDef>();
  private readonly queue: KeyspaceOps[] = [];
  private flushWaiters: { resolve: () => void; reject: (error: Error) => void }[] = [];
  private flushScheduled = false;
  private failed: Error | null = null;
  private writesPending = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(private readonly options: MultiMasterHostOptions) {
    this.tuning = { ...DEFAULT_MM_TUNING, ...options.tuning };
  }

  /** Starts the periodic work (streaming, hints, anti-entropy, housekeeping). */
  start(): void {
    if (this.timer !== null || this.stopped) return;
    this.timer = setInterval(() => this.onTimer(), this.tuning.replIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    const stopping = new ChorusError('CHORUS_STOPPING', 'the member is stopping');
    for (const rt of this.runtimes.values()) {
      for (const wait of rt.waits) wait.reject(timeoutError(wait, 0, 'the member stopped'));
      rt.waits = [];
    }
    try {
      this.flushNow();
    } catch {
      // Reported by flushNow through onFatal; waiters were rejected there.
    }
    for (const waiter of this.flushWaiters) waiter.reject(stopping);
    this.flushWaiters = [];
  }

  /** A keyspace of the catalog (at boot, and whenever the catalog gains one). Idempotent. */
  ensure(def: KeyspaceDef): void {
    if (def.mode !== 'multi-master' || this.runtimes.has(def.name) || this.foreign.has(def.name)) return;
    if (!def.members.includes(this.options.self)) {
      this.foreign.set(def.name, def);
      return;
    }
    const { replica, persist } = MultiMasterReplica.open(
      { ...this.options.replicaOptions, keyspace: def.name, mode: def.conflicts as ConflictMode, self: this.options.self, members: def.members },
      this.options.store.load(def.name),
    );
    this.runtimes.set(def.name, new KeyspaceRuntime(def, replica, this.options.self, this.options.monotonicMs()));
    this.enqueue(def.name, persist);
    this.flushNow();
    this.options.logger.info('keyspace-opened', { keyspace: def.name, conflicts: def.conflicts, members: def.members, ...replica.stats() });
  }

  // ------------------------------------------------------------------ client operations

  private runtime(keyspace: string): KeyspaceRuntime {
    const rt = this.runtimes.get(keyspace);
    if (rt !== undefined) return rt;
    if (this.foreign.has(keyspace)) {
      throw new ChorusError('CHORUS_NOT_KEYSPACE_MEMBER', `keyspace ${keyspace} is replicated on ${this.foreign.get(keyspace)!.members.join(', ')}, not on ${this.options.self}`);
    }
    throw new ChorusError('CHORUS_KEYSPACE_NOT_FOUND', `no multi-master keyspace ${keyspace} on this member`);
  }

  conflictsOf(keyspace: string): ConflictMode {
    return this.runtime(keyspace).replica.mode;
  }

  /**
   * A local write: applied here, made durable (grouped fsync), then acknowledged; with `w` > 1,
   * acknowledged once `w` members in total hold it durably. Errors: MmError (bad input: nothing
   * was written), CHORUS_BUSY (nothing was written), CHORUS_TIMEOUT (written and durable here,
   * fewer than w members confirmed it in time; replication goes on), CHORUS_FATAL.
   */
  async write(keyspace: string, key: string, write: LocalWrite, w: number, deadlineMs: number): Promise<MultiMasterWriteResult> {
    if (this.stopped) throw new ChorusError('CHORUS_STOPPING', 'the member is stopping');
    if (this.failed !== null) throw new ChorusError('CHORUS_FATAL', 'the multi-master store failed; the member is stopping');
    const rt = this.runtime(keyspace);
    if (!Number.isSafeInteger(w) || w < 1 || w > rt.def.members.length) {
      throw new ChorusError('CHORUS_BAD_REQUEST', `w must be an integer from 1 to ${rt.def.members.length} (the keyspace's members)`);
    }
    if (this.writesPending >= this.tuning.writesPendingMax) {
      throw new ChorusError('CHORUS_BUSY', `${this.writesPending} multi-master writes are pending (writesPendingMax); nothing was written`);
    }
    // Throws MmError on bad input, before anything changed.
    const result: LocalWriteResult = rt.replica.applyLocal(key, write, this.options.wallClockMs());
    this.writesPending++;
    try {
      this.enqueue(keyspace, result.persist);
      await this.flushSoon();
      this.fanOut(rt, result.record);
      this.replicate(rt);
      const seq = result.dot.seq;
      let durableMembers = this.durableCount(rt, seq);
      if (durableMembers < w) durableMembers = await this.waitFor(rt, seq, w, deadlineMs);
      return { key, dot: `${result.dot.member}:${result.dot.seq}`, stamp: encodeStamp(result.stamp), durableMembers, view: result.view };
    } finally {
      this.writesPending--;
    }
  }

  private waitFor(rt: KeyspaceRuntime, seq: number, w: number, deadlineMs: number): Promise<number> {
    return new Promise<number>((resolve, reject) => rt.waits.push({ seq, w, deadlineMs, resolve, reject }));
  }

  read(keyspace: string, key: string): ReadView {
    return this.runtime(keyspace).replica.get(key);
  }

  /** Live keys (no tombstones) starting with `prefix`, sorted, at most `limit`. */
  list(keyspace: string, prefix: string, limit: number): { readonly items: { readonly key: string; readonly view: ReadView }[]; readonly more: boolean } {
    const replica = this.runtime(keyspace).replica;
    const items: { key: string; view: ReadView }[] = [];
    for (const key of replica.keys()) {
      if (!key.startsWith(prefix)) continue;
      const view = replica.get(key);
      if (!view.found) continue;
      if (items.length >= limit) return { items, more: true };
      items.push({ key, view });
    }
    return { items, more: false };
  }

  stats(): KeyspaceStats[] {
    const now = this.options.monotonicMs();
    return [...this.runtimes.values()].map((rt) => {
      const s = rt.replica.stats();
      return {
        name: rt.def.name,
        conflicts: rt.replica.mode,
        keys: s.keys,
        tombstones: s.tombstones,
        lastSeq: s.lastSeq,
        lwwOverwrites: s.lwwOverwrites,
        repairs: s.repairs,
        hintsApplied: s.hintsApplied,
        hintsDropped: s.hintsDropped,
        hintsRefused: s.hintsRefused,
        tombstonesCollected: s.tombstonesCollected,
        clockDriftRejections: s.clockDriftRejections + rt.driftRefusals,
        messagesRefused: rt.messagesRefused,
        stateHash: rt.replica.stateHash(),
        peers: rt.peers.map((peer) => ({
          peer,
          backlogSeqs: rt.replica.backlogOf(peer),
          ackedSeq: rt.replica.ackedBy(peer),
          suspected: this.suspected(rt, peer, now),
          silentMs: now - rt.peerState.get(peer)!.lastHeardMs,
          hintsQueued: rt.replica.hintsPending(peer).count,
        })),
      };
    });
  }

  // ------------------------------------------------------------------ durability

  private enqueue(keyspace: string, ops: readonly StoreOp[]): void {
    if (ops.length > 0) this.queue.push({ keyspace, ops });
  }

  /** Resolves once everything queued so far is durable (grouped with other writes). */
  private flushSoon(): Promise<void> {
    const done = new Promise<void>((resolve, reject) => this.flushWaiters.push({ resolve, reject }));
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        try {
          this.flushNow();
        } catch {
          // flushNow rejected the waiters and reported the failure.
        }
      });
    }
    return done;
  }

  /** Writes the queue in one transaction (throws after reporting a store failure). */
  private flushNow(): void {
    const waiters = this.flushWaiters;
    this.flushWaiters = [];
    if (this.failed !== null) {
      for (const w of waiters) w.reject(new ChorusError('CHORUS_FATAL', 'the multi-master store failed'));
      throw this.failed;
    }
    if (this.queue.length > 0) {
      const batches = this.queue.splice(0, this.queue.length);
      try {
        this.options.store.write(batches);
      } catch (error) {
        this.failed = error instanceof Error ? error : new Error(String(error));
        // The transaction rolled back: none of these writes is durable, and none was sent or
        // acknowledged. The replica's memory is now ahead of its disk: the member must stop.
        for (const w of waiters) w.reject(new ChorusError('CHORUS_FATAL', 'the multi-master store failed; the write was not made durable'));
        this.options.onFatal(error);
        throw this.failed;
      }
    }
    for (const w of waiters) w.resolve();
  }

  private send(rt: KeyspaceRuntime, to: string, body: Body): void {
    this.flushNow(); // never send what is not durable
    const state = rt.peerState.get(to);
    if (state !== undefined) state.lastSentMs = this.options.monotonicMs();
    this.options.send({ type: 'MultiMaster', from: this.options.self, to, term: 0, keyspace: rt.def.name, body: body as unknown as Record<string, unknown> });
  }

  // ------------------------------------------------------------------ periodic work

  private onTimer(): void {
    if (this.stopped || this.failed !== null) return;
    const now = this.options.monotonicMs();
    try {
      for (const rt of this.runtimes.values()) {
        this.replicate(rt);
        this.expireWaits(rt, now);
        if (now >= rt.nextHintsMs) {
          rt.nextHintsMs = now + this.tuning.hintIntervalMs;
          this.deliverHints(rt, now);
        }
        if (now >= rt.nextAeMs) {
          rt.nextAeMs = now + this.tuning.aeIntervalMs * (0.5 + this.options.random());
          this.antiEntropy(rt, now);
        }
        if (now >= rt.nextHousekeepingMs) {
          rt.nextHousekeepingMs = now + this.tuning.housekeepingMs;
          this.enqueue(rt.def.name, rt.replica.tick(this.options.wallClockMs()).persist);
          const gc = rt.replica.collectGarbage(this.tuning.gcCountMax);
          this.enqueue(rt.def.name, gc.persist);
          this.flushNow();
        }
      }
    } catch (error) {
      if (this.failed === null) this.options.onFatal(error);
    }
  }

  /** Streams this member's changes to every peer with no batch in flight (or whose batch timed
   * out), and a heartbeat batch to peers that heard nothing for heartbeatMs. */
  private replicate(rt: KeyspaceRuntime): void {
    const now = this.options.monotonicMs();
    for (const peer of rt.peers) {
      const st = rt.peerState.get(peer)!;
      if (st.inFlightSinceMs !== null && now - st.inFlightSinceMs < this.tuning.ackTimeoutMs && !this.briefCut(st, now)) continue;
      const backlog = rt.replica.backlogOf(peer);
      if (backlog === 0 && now - st.lastSentMs < this.tuning.heartbeatMs) continue;
      st.inFlightSinceMs = now;
      this.send(rt, peer, { t: 'batch', batch: rt.replica.changesSince(peer, this.tuning.batchCountMax, this.tuning.batchBytesMax) });
    }
  }

  /**
   * Whether the batch in flight to a peer is most likely lost in a brief cut: unanswered for
   * PEER_SILENCE_MS while the peer itself has been silent that long (but not yet suspected, when
   * hints take over). It is resent then, at most every PEER_SILENCE_MS, rather than after
   * ackTimeoutMs: both sides of a cut shorter than suspectAfterMs lose their batch in flight,
   * and each would otherwise wait out the timeout before the other hears from it. A batch sent
   * twice is harmless: the peer keeps what it already has.
   */
  private briefCut(st: PeerState, now: number): boolean {
    const silentMs = now - st.lastHeardMs;
    return st.inFlightSinceMs !== null && now - st.inFlightSinceMs > PEER_SILENCE_MS && silentMs > PEER_SILENCE_MS && silentMs <= this.tuning.suspectAfterMs;
  }

  private suspected(rt: KeyspaceRuntime, peer: string, now: number): boolean {
    return now - rt.peerState.get(peer)!.lastHeardMs > this.tuning.suspectAfterMs;
  }

  /** After a local write: for a peer that looks unreachable, hand the record to a reachable peer
   * as a hint (or keep it here when none is). Reachable peers get it from the stream. */
  private fanOut(rt: KeyspaceRuntime, record: ShippedRecord): void {
    const now = this.options.monotonicMs();
    const reachable = rt.peers.filter((p) => !this.suspected(rt, p, now));
    for (const peer of rt.peers) {
      if (reachable.includes(peer)) continue;
      if (reachable.length > 0) {
        const helper = reachable[Math.floor(this.options.random() * reachable.length)]!;
        this.send(rt, helper, { t: 'handoff', target: peer, record });
      } else {
        rt.replica.addHint(peer, record);
      }
    }
  }

  private deliverHints(rt: KeyspaceRuntime, now: number): void {
    for (const peer of rt.peers) {
      if (this.suspected(rt, peer, now)) continue;
      const batch = rt.replica.hintsFor(peer, this.tuning.hintBatchCountMax, this.tuning.hintBatchBytesMax);
      if (batch !== null) this.send(rt, peer, { t: 'hints', batch });
    }
  }

  private antiEntropy(rt: KeyspaceRuntime, now: number): void {
    const candidates = rt.peers.filter((p) => !this.suspected(rt, p, now));
    if (candidates.length === 0) return;
    const peer = candidates[Math.floor(this.options.random() * candidates.length)]!;
    this.send(rt, peer, { t: 'ae-digest', digests: rt.replica.digest(this.tuning.aeFanout) });
  }

  private expireWaits(rt: KeyspaceRuntime, now: number): void {
    if (rt.waits.length === 0) return;
    rt.waits = rt.waits.filter((wait) => {
      if (now < wait.deadlineMs) return true;
      wait.reject(timeoutError(wait, this.durableCount(rt, wait.seq), 'the deadline passed'));
      return false;
    });
  }

  private durableCount(rt: KeyspaceRuntime, seq: number): number {
    let n = 1;
    for (const p of rt.peers) if (rt.replica.ackedBy(p) >= seq) n++;
    return n;
  }

  private settleWaits(rt: KeyspaceRuntime): void {
    if (rt.waits.length === 0) return;
    rt.waits = rt.waits.filter((wait) => {
      const n = this.durableCount(rt, wait.seq);
      if (n < wait.w) return true;
      wait.resolve(n);
      return false;
    });
  }

  // ------------------------------------------------------------------ messages

  /** A MultiMaster message from a peer. Malformed or foreign messages are counted and dropped;
   * they never stop the member. */
  onMessage(m: MultiMasterMessage): void {
    if (this.stopped || this.failed !== null) return;
    const rt = this.runtimes.get(m.keyspace);
    if (rt === undefined || !rt.peerState.has(m.from)) return; // not ours (yet): the sender retries
    const st = rt.peerState.get(m.from)!;
    const now = this.options.monotonicMs();
    // Back after a silence (a partition, a restart): the batch in flight was most likely lost
    // with it, so the stream resumes now rather than after ackTimeoutMs.
    const returning = now - st.lastHeardMs > this.tuning.suspectAfterMs;
    st.lastHeardMs = now;
    if (returning && st.inFlightSinceMs !== null && st.inFlightSinceMs < now - this.tuning.suspectAfterMs / 2) st.inFlightSinceMs = null;
    try {
      this.handle(rt, m.from, m.body as unknown as Body);
    } catch (error) {
      if (error instanceof ClockDriftError) {
        rt.driftRefusals++;
        this.options.logger.warn('mm-clock-drift', { code: error.code, keyspace: rt.def.name, from: m.from, detail: error.message });
        return;
      }
      if (error instanceof MmError) {
        rt.messagesRefused++;
        this.options.logger.warn('mm-message-refused', { code: error.code, keyspace: rt.def.name, from: m.from, detail: error.message.slice(0, 300) });
        return;
      }
      if (this.failed === null) this.options.onFatal(error);
    }
  }

  private handle(rt: KeyspaceRuntime, from: string, body: Body): void {
    const r = rt.replica;
    const clock = this.options.wallClockMs();
    const t = this.tuning;
    switch (body.t) {
      case 'batch': {
        const res = r.applyRemote(need(body.batch, 'batch'), clock);
        this.enqueue(rt.def.name, res.persist);
        this.send(rt, from, { t: 'ack', ack: res.ack });
        return;
      }
      case 'ack': {
        r.onAck(need(body.ack, 'ack'));
        rt.peerState.get(from)!.inFlightSinceMs = null;
        this.settleWaits(rt);
        if (r.backlogOf(from) > 0) this.replicate(rt);
        return;
      }
      case 'push':
      case 'ae-records':
      case 'hints': {
        const records = body.t === 'hints' ? need(body.batch, 'batch').hints : body.records;
        const res = r.applyRepair(records, clock, body.t === 'hints' ? 'hint' : body.t === 'push' ? 'push' : 'anti-entropy');
        this.enqueue(rt.def.name, res.persist);
        this.flushNow();
        if (body.t === 'hints') {
          this.send(rt, from, { t: 'hints-ack', delivered: body.batch.hints.map((h) => ({ key: h.key, version: h.version })) });
          return;
        }
        if (body.t === 'push') return;
        const want = stringArray(body.want, 'want');
        if (want.length > 0) {
          const back = r.recordsFor(want.slice(0, t.aeKeysMax), t.aeBytesMax);
          if (back.records.length > 0) this.send(rt, from, { t: 'ae-records', records: back.records, want: [] });
        }
        return;
      }
      case 'handoff': {
        if (body.target === this.options.self) {
          const res = r.applyRepair([body.record], clock, 'hint');
          this.enqueue(rt.def.name, res.persist);
          this.flushNow();
          return;
        }
        if (!rt.peers.includes(body.target)) throw new MmError('CHORUS_BAD_REPLICATION_MESSAGE', `handoff for ${String(body.target)}, not a member`);
        r.addHint(body.target, body.record);
        return;
      }
      case 'hints-ack':
        r.ackHints(from, checkDelivered(body.delivered));
        return;
      case 'ae-digest': {
        const digests = checkDigests(body.digests, t.aeFanout);
        let explored = 0;
        for (const d of digests) {
          const mine = r.digest(1, d.range)[0]!;
          if (mine.hash === d.hash) continue;
          if (explored++ >= t.aeRangesMax) break;
          const width = d.range.end - d.range.start;
          if (width > 1 && Math.max(mine.keys, d.keys) > t.aeKeysMax) {
            this.send(rt, from, { t: 'ae-digest', digests: r.digest(t.aeFanout, d.range) });
          } else {
            this.send(rt, from, { t: 'ae-keys', range: d.range, afterKey: null, keys: r.keysInRange(d.range, t.aeKeysMax) });
          }
        }
        return;
      }
      case 'ae-keys': {
        const range = checkRange(body.range);
        const theirs = checkKeyHashes(body.keys, t.aeKeysMax);
        if (body.afterKey !== null && typeof body.afterKey !== 'string') bad('afterKey must be a string or null');
        const afterKey = body.afterKey;
        const mine = r.keysInRange(range, t.aeKeysMax, afterKey);
        const diff = differingKeys(mine, theirs);
        if (diff.length > 0) {
          const recs = r.recordsFor(diff, t.aeBytesMax);
          this.send(rt, from, { t: 'ae-records', records: recs.records, want: diff });
        }
        if (!mine.complete || !theirs.complete) {
          // Page on: both sides list the range again from the smaller of the two last keys.
          const lasts = [mine, theirs].filter((k) => !k.complete).map((k) => k.entries[k.entries.length - 1]?.key ?? '');
          const next = lasts.sort()[0]!;
          this.send(rt, from, { t: 'ae-keys', range, afterKey: next, keys: r.keysInRange(range, t.aeKeysMax, next) });
        }
        return;
      }
      default:
        throw new MmError('CHORUS_BAD_REPLICATION_MESSAGE', `unknown message ${JSON.stringify(String((body as { t?: unknown }).t)).slice(0, 40)}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Validation of message fields the core does not check itself (it checks batches, acks and
// records). Anything malformed is CHORUS_BAD_REPLICATION_MESSAGE.

function bad(why: string): never {
  throw new MmError('CHORUS_BAD_REPLICATION_MESSAGE', why);
}

function need<T>(value: T | undefined | null, name: string): T {
  if (value === undefined || value === null || (typeof value !== 'object' && typeof value !== 'string')) bad(`missing ${name}`);
  return value;
}

function stringArray(x: unknown, name: string): string[] {
  if (!Array.isArray(x) || !x.every((v) => typeof v === 'string')) bad(`${name} must be an array of strings`);
  return x as string[];
}

function checkRange(x: unknown): KeyRange {
  const o = x as { start?: unknown; end?: unknown } | null;
  if (o === null || typeof o !== 'object' || !Number.isSafeInteger(o.start) || !Number.isSafeInteger(o.end)) bad('bad key range');
  return { start: o.start as number, end: o.end as number }; // the core checks the bounds
}

function checkDigests(x: unknown, countMax: number): RangeDigest[] {
  if (!Array.isArray(x) || x.length > countMax) bad('bad digest list');
  return (x as unknown[]).map((d) => {
    const o = d as { range?: unknown; hash?: unknown; keys?: unknown } | null;
    if (o === null || typeof o !== 'object' || typeof o.hash !== 'string' || !Number.isSafeInteger(o.keys)) bad('bad digest');
    return { range: checkRange(o.range), hash: o.hash as string, keys: o.keys as number };
  });
}

function checkKeyHashes(x: unknown, countMax: number): KeyHashes {
  const o = x as { entries?: unknown; complete?: unknown } | null;
  if (o === null || typeof o !== 'object' || !Array.isArray(o.entries) || o.entries.length > countMax || typeof o.complete !== 'boolean') bad('bad key listing');
  const entries = (o.entries as unknown[]).map((e) => {
    const k = e as { key?: unknown; hash?: unknown } | null;
    if (k === null || typeof k !== 'object' || typeof k.key !== 'string' || typeof k.hash !== 'string') bad('bad key listing entry');
    return { key: k.key as string, hash: k.hash as string };
  });
  return { entries, complete: o.complete as boolean };
}

function checkDelivered(x: unknown): { key: string; version: number }[] {
  if (!Array.isArray(x)) bad('bad hint acknowledgement');
  return (x as unknown[]).map((d) => {
    const o = d as { key?: unknown; version?: unknown } | null;
    if (o === null || typeof o !== 'object' || typeof o.key !== 'string' || !Number.isSafeInteger(o.version)) bad('bad hint acknowledgement');
    return { key: o.key as string, version: o.version as number };
  });
}

function timeoutError(wait: WriteWait, durable: number, why: string): ChorusError {
  return new ChorusError(
    'CHORUS_TIMEOUT',
    `${why}: the write is durable on this member and known durable on ${durable} of the ${wait.w} members asked for (w=${wait.w}); it is not undone and replication goes on, but whether ${wait.w} members hold it is unknown`,
  );
}
