// One member's state of one multi-master keyspace: records, its own change log, what it has
// received from every other member, anti-entropy digests and hinted-handoff queues. Pure and
// synchronous: time comes in as `physicalMs`, durability goes out as StoreOps.
//
// Durability contract (the same shape as the Raft core's Ready): every method that returns
// `persist` hands over StoreOps that the node must write, in order and atomically, before it
// sends any message or acknowledges any client after that call. A crash loses only what was not
// persisted: acknowledgements received (the peer's cursor falls back: records are resent), hint
// queues (anti-entropy repairs what they held), counters of the moment.
//
// Replication. Each member ships its own changes to each peer in seq order (`changesSince`),
// from the cursor the peer last acknowledged, so a stream resumes where it stopped after a
// disconnect or a crash of either side. A batch carries the current records of the keys it
// covers, and merging is idempotent and commutative, so duplicates, resends and crossings with
// anti-entropy are harmless. The receiver applies batches only contiguously (fromSeq <= its
// cursor) and skips batches older than one it applied (incarnation, batch number). A batch that
// reaches the end of the sender's log proves that the receiver has now seen every event of the
// sender up to that seq (`seen`) and up to that HLC stamp (`frontier`), which is what garbage
// collection and pruning rely on. Why: the log keeps one entry per key at its latest change, and
// entries only move forward. An event at or below the batch's end is either in a key whose
// entry is in the batch, or in a key whose entry was at or below the batch's fromSeq, the
// cursor the receiver acknowledged; the first batch that carried the receiver's cursor past
// that entry was sent after the entry's event, so it shipped the key with the event in it.
//
// Deletes leave tombstones. A tombstone is collected once every member has seen every event
// it covers (for LWW: every event stamped at or before it), as published by each origin from
// its peers' acknowledgements. Afterwards a record arriving late with events this member has
// already seen but no longer holds is pruned: those events were deleted here, so a deleted
// key never comes back, through a late batch, a repair, a hint or a partition healing.
import { approxBytes, hashHex, utf8Length, type Hash64 } from './codec.ts';
import { ChangeIndex } from './change-index.ts';
import { applyCrdtOp, deleteCrdt, parseCrdtOp } from './crdt.ts';
import { DigestLeaves, type KeyHashes, type KeyRange, type RangeDigest } from './digest.ts';
import { decodeToken, deleteDvv, putDvv } from './dvv.ts';
import { MmError, invariant } from './errors.ts';
import { Hlc, compareStamps, isStamp, maxStamp, type HlcStamp } from './hlc.ts';
import { lostConcurrently, writeLww } from './lww.ts';
import {
  contextOf,
  isTombstone,
  knownBy,
  liveDots,
  maxStampOf,
  mergeStates,
  recordHash,
  stateFrom,
  viewOf,
  withoutDots,
  type ReadView,
  type RecordState,
  type ShippedRecord,
} from './records.ts';
import { MEMBER_ID, dotText, type ConflictMode, type Dot, type MemberId, type VersionVector } from './types.ts';

// ---------------------------------------------------------------------------------------------
// Options, durable state, messages

export interface ReplicaOptions {
  readonly keyspace: string;
  readonly mode: ConflictMode;
  readonly self: MemberId;
  /** Every member of the keyspace, self included. Fixed for the replica's lifetime. */
  readonly members: readonly MemberId[];
  /** Remote stamps further ahead of the local clock are refused (CHORUS_CLOCK_DRIFT). Default 10 s. */
  readonly maxClockDriftMs?: number;
  /** Local writes creating a key are refused past this many keys, tombstones included. Remote
   * records are always accepted (refusing them would break convergence), so the hard bound is
   * members × keysMax. It also bounds the change log (one entry per key). Default 1,000,000. */
  readonly keysMax?: number;
  /** Default 1024. */
  readonly keyBytesMax?: number;
  /** Default 1 MiB. */
  readonly valueBytesMax?: number;
  /** A local write producing a larger record (siblings, sets, maps) is refused. Default 4 MiB. */
  readonly recordBytesMax?: number;
  /** A blind write (no token) giving a key more siblings is refused. Default 64. */
  readonly siblingsMax?: number;
  /** Per peer: hints held at most (count and approximate bytes). Defaults 10,000 and 64 MiB. */
  readonly hintsMax?: number;
  readonly hintsBytesMax?: number;
  /** When a peer's hint queue is full: drop its oldest hints (default) or refuse the new one.
   * Either way the loss is counted and harmless: anti-entropy repairs what hints would have. */
  readonly hintsPolicy?: 'drop-oldest' | 'refuse';
  /** 2^bits anti-entropy leaves (default 10: 1024). Every member of a keyspace must agree. */
  readonly digestLeafBits?: number;
  /** `tick` persists the clock at least this often, so idle members' frontiers advance. Default 1000. */
  readonly clockPersistIntervalMs?: number;
}

/** A key's record at this member. */
export interface StoredRecord {
  readonly state: RecordState;
  /** The seq of this member's latest own change to the key, 0 if none: its change-log entry. */
  readonly localSeq: number;
}

export interface StableMark {
  /** Every member has seen the origin's events up to this seq... */
  readonly seq: number;
  /** ...and every event of the origin stamped at or before this. */
  readonly frontier: HlcStamp | null;
}

export interface ReplicaMeta {
  readonly format: 1;
  readonly keyspace: string;
  readonly mode: ConflictMode;
  readonly member: MemberId;
  readonly incarnation: number;
  readonly lastSeq: number;
  /** The clock when this meta was handed out: no later stamp of this member is at or below it. */
  readonly clock: HlcStamp | null;
  readonly inbound: readonly InboundMeta[];
  readonly outbound: readonly OutboundMeta[];
  readonly stable: readonly (readonly [MemberId, StableMark])[];
  readonly lwwOverwrites: number;
  readonly repairs: number;
}

/** What this member has received of an origin's stream. */
export interface InboundMeta {
  readonly origin: MemberId;
  /** Batches were applied contiguously up to this seq (the resume point). */
  readonly cursor: number;
  /** Every event of the origin up to this seq has been seen here. seen <= cursor. */
  readonly seen: number;
  /** Every event of the origin stamped at or before this has been seen here. */
  readonly frontier: HlcStamp | null;
  /** The last batch applied, so that batches are applied in the order they were sent. */
  readonly lastIncarnation: number;
  readonly lastBatchNo: number;
}

/** What a peer has acknowledged of this member's stream. */
export interface OutboundMeta {
  readonly peer: MemberId;
  readonly cursor: number;
  readonly seen: number;
  readonly frontier: HlcStamp | null;
}

export type StoreOp =
  | { readonly op: 'put'; readonly key: string; readonly record: StoredRecord }
  | { readonly op: 'delete'; readonly key: string }
  | { readonly op: 'meta'; readonly meta: ReplicaMeta };

/** What the node persisted: the last meta and every record. */
export interface DurableState {
  readonly meta: ReplicaMeta | null;
  readonly records: Iterable<readonly [string, StoredRecord]>;
}

/** A batch of one origin's changes for one peer. */
export interface ChangeBatch {
  readonly keyspace: string;
  readonly origin: MemberId;
  readonly target: MemberId;
  /** (incarnation, batchNo) grows with every batch the origin sends the target. */
  readonly incarnation: number;
  readonly batchNo: number;
  /** The records of the keys whose latest change by the origin is in (fromSeq, toSeq]. */
  readonly fromSeq: number;
  readonly toSeq: number;
  /** The batch reaches the end of the origin's log: toSeq is its last seq. */
  readonly complete: boolean;
  /** With `complete`: every event of the origin stamped at or before this is covered. */
  readonly frontier: HlcStamp | null;
  /** The origin's stability mark, for garbage collection everywhere. */
  readonly stable: StableMark;
  readonly records: readonly ShippedRecord[];
}

export interface ChangeAck {
  readonly keyspace: string;
  /** Whose stream is acknowledged. */
  readonly origin: MemberId;
  /** The acknowledging member. */
  readonly from: MemberId;
  readonly cursor: number;
  readonly seen: number;
  readonly frontier: HlcStamp | null;
}

export interface HintBatch {
  readonly keyspace: string;
  /** The member that held the hints. */
  readonly from: MemberId;
  /** The member they are for. */
  readonly target: MemberId;
  readonly hints: readonly HintRecord[];
}

export interface HintRecord extends ShippedRecord {
  /** Changes when the hint is merged with a newer record, so a stale ack does not drop it. */
  readonly version: number;
}

/** The messages members exchange (the node's transport and the simulator carry these shapes). */
export type ReplicaMessage =
  | { readonly t: 'batch'; readonly batch: ChangeBatch }
  | { readonly t: 'ack'; readonly ack: ChangeAck }
  | { readonly t: 'push'; readonly records: readonly ShippedRecord[] }
  | { readonly t: 'handoff'; readonly target: MemberId; readonly record: ShippedRecord }
  | { readonly t: 'hints'; readonly batch: HintBatch }
  | { readonly t: 'hints-ack'; readonly delivered: readonly { readonly key: string; readonly version: number }[] }
  | { readonly t: 'ae-digest'; readonly digests: readonly RangeDigest[] }
  | { readonly t: 'ae-keys'; readonly range: KeyRange; readonly afterKey: string | null; readonly keys: KeyHashes }
  | { readonly t: 'ae-records'; readonly records: readonly ShippedRecord[]; readonly want: readonly string[] };

export type LocalWrite =
  /** lww and versions. `token`: the causal context of a read (versions only). */
  | { readonly kind: 'put'; readonly value: Uint8Array; readonly token?: string | null }
  /** Every mode. versions: without a token, deletes every sibling this member holds. */
  | { readonly kind: 'delete'; readonly token?: string | null }
  /** crdt: an operation as the client sent it (JSON), validated by parseCrdtOp. */
  | { readonly kind: 'crdt'; readonly op: unknown };

export interface LocalWriteResult {
  readonly persist: readonly StoreOp[];
  /** The new record: push it to peers (and queue it as a hint for unreachable ones). */
  readonly record: ShippedRecord;
  readonly dot: Dot;
  readonly stamp: HlcStamp;
  /** The events (siblings, set adds, ...) this write replaced at this member. */
  readonly replaced: readonly Dot[];
  /** versions: the client context in force (the token's, clamped; see clampContext), else null. */
  readonly clientContext: VersionVector | null;
  readonly view: ReadView;
}

export interface ApplyResult {
  readonly persist: readonly StoreOp[];
  /** Keys whose record changed. */
  readonly changed: number;
  /** This member's own writes just lost to concurrent writes (lww), each counted once. */
  readonly overwritten: readonly Dot[];
}

export interface ApplyRemoteResult extends ApplyResult {
  /** False for a batch sent before one already applied, or one that would leave a gap. */
  readonly applied: boolean;
  /** Send it back to the origin (also after a refused batch: it tells where to resume). */
  readonly ack: ChangeAck;
}

export type HintAddResult = 'queued' | 'merged' | 'refused';

export interface ReplicaStats {
  readonly keys: number;
  readonly tombstones: number;
  readonly lastSeq: number;
  readonly incarnation: number;
  readonly changeLogEntries: number;
  readonly lwwOverwrites: number;
  readonly repairs: number;
  readonly hintsApplied: number;
  readonly pushesApplied: number;
  readonly hintsQueued: number;
  readonly hintsBytes: number;
  readonly hintsDropped: number;
  readonly hintsRefused: number;
  readonly tombstonesCollected: number;
  readonly clockDriftRejections: number;
  readonly batchesRefused: number;
}

export interface ReplicaOpenResult {
  readonly replica: MultiMasterReplica;
  /** Persist before the replica sends anything: the new incarnation. */
  readonly persist: readonly StoreOp[];
}

// ---------------------------------------------------------------------------------------------

interface Entry {
  state: RecordState;
  localSeq: number;
  hash: Hash64;
  bytes: number;
}

interface Inbound {
  cursor: number;
  seen: number;
  frontier: HlcStamp | null;
  lastIncarnation: number;
  lastBatchNo: number;
}

interface Outbound {
  cursor: number;
  seen: number;
  frontier: HlcStamp | null;
  /** Batches sent in this incarnation (not persisted: the incarnation changes on restart). */
  batchNo: number;
}

interface Hint {
  state: RecordState;
  bytes: number;
  version: number;
}

interface HintQueue {
  readonly hints: Map<string, Hint>;
  bytes: number;
}

const DEFAULTS = {
  maxClockDriftMs: 10_000,
  keysMax: 1_000_000,
  keyBytesMax: 1024,
  valueBytesMax: 1024 * 1024,
  recordBytesMax: 4 * 1024 * 1024,
  siblingsMax: 64,
  hintsMax: 10_000,
  hintsBytesMax: 64 * 1024 * 1024,
  hintsPolicy: 'drop-oldest' as 'drop-oldest' | 'refuse',
  digestLeafBits: 10,
  clockPersistIntervalMs: 1000,
};

type ResolvedOptions = Required<ReplicaOptions>;

export class MultiMasterReplica {
  readonly options: ResolvedOptions;
  readonly self: MemberId;
  readonly mode: ConflictMode;
  private readonly memberSet: ReadonlySet<MemberId>;
  private readonly peers: readonly MemberId[];

  /** Every key held, tombstones included. Invariant: `leaves` holds exactly these keys, each
   * with its entry's hash. */
  private readonly entries = new Map<string, Entry>();
  /** Invariant: exactly the keys of `entries` whose record is a tombstone. */
  private readonly tombstoneKeys = new Set<string>();
  /** Invariant: one entry per key with localSeq > 0, at that seq, naming a key of `entries`. */
  private readonly log = new ChangeIndex();
  private readonly leaves: DigestLeaves;
  private readonly hlc: Hlc;
  /** This member's latest event. Never reused: it is persisted with every local change. */
  private lastSeq = 0;
  /** Bumped and persisted at every open, so batches of a new process sort after older ones. */
  private incarnation = 0;
  /** Per origin. Invariant: seen <= cursor; both only grow and are persisted with the records. */
  private readonly inbound = new Map<MemberId, Inbound>();
  /** Per peer: what it acknowledged (only grows; persisted by `tick`). */
  private readonly outbound = new Map<MemberId, Outbound>();
  /** Per origin: the marks below which every member has seen the origin's events (only grow). */
  private readonly stable = new Map<MemberId, StableMark>();
  /** Per member, the highest seq seen in any record or batch: token entries are clamped to it. */
  private readonly knownMax = new Map<MemberId, number>();
  private readonly hints = new Map<MemberId, HintQueue>();
  private hintVersion = 0;
  /** The clock in the last meta handed out for persisting: frontier claims never pass it. */
  private durableClock: HlcStamp | null = null;
  private lastClockPersistMs = -Infinity;
  private metaDirty = false;
  private counters = {
    lwwOverwrites: 0,
    repairs: 0,
    hintsApplied: 0,
    pushesApplied: 0,
    hintsDropped: 0,
    hintsRefused: 0,
    tombstonesCollected: 0,
    clockDriftRejections: 0,
    batchesRefused: 0,
  };

  private constructor(options: ReplicaOptions) {
    const o: ResolvedOptions = { ...DEFAULTS, ...stripUndefined(options) } as ResolvedOptions;
    if (!MEMBER_ID.test(o.self)) throw new MmError('CHORUS_BAD_KEYSPACE', `bad member id ${JSON.stringify(o.self)}`);
    const members = new Set(o.members);
    if (members.size !== o.members.length || !members.has(o.self) || o.members.some((m) => !MEMBER_ID.test(m))) {
      throw new MmError('CHORUS_BAD_KEYSPACE', 'members must be distinct valid member ids and include self');
    }
    if (o.mode !== 'lww' && o.mode !== 'versions' && o.mode !== 'crdt') throw new MmError('CHORUS_BAD_KEYSPACE', `bad conflict mode ${String(o.mode)}`);
    for (const name of ['keysMax', 'keyBytesMax', 'valueBytesMax', 'recordBytesMax', 'siblingsMax', 'hintsMax', 'hintsBytesMax'] as const) {
      if (!Number.isSafeInteger(o[name]) || o[name] < 1) throw new MmError('CHORUS_BAD_KEYSPACE', `${name} must be a positive integer`);
    }
    if (o.hintsPolicy !== 'drop-oldest' && o.hintsPolicy !== 'refuse') throw new MmError('CHORUS_BAD_KEYSPACE', 'hintsPolicy must be drop-oldest or refuse');
    this.options = o;
    this.self = o.self;
    this.mode = o.mode;
    this.memberSet = members;
    this.peers = [...members].filter((m) => m !== o.self).sort();
    this.leaves = new DigestLeaves(o.digestLeafBits);
    this.hlc = new Hlc(o.self, o.maxClockDriftMs);
    for (const p of this.peers) {
      this.inbound.set(p, { cursor: 0, seen: 0, frontier: null, lastIncarnation: 0, lastBatchNo: 0 });
      this.outbound.set(p, { cursor: 0, seen: 0, frontier: null, batchNo: 0 });
    }
  }

  /** Opens a replica from what the node persisted (null meta and no records: a new member). The
   * returned ops carry the new incarnation and must be persisted before anything is sent. */
  static open(options: ReplicaOptions, durable: DurableState | null = null): ReplicaOpenResult {
    const r = new MultiMasterReplica(options);
    const meta = durable?.meta ?? null;
    let clock: HlcStamp | null = null;
    if (meta !== null) {
      if (meta.format !== 1 || meta.member !== r.self || meta.keyspace !== r.options.keyspace || meta.mode !== r.mode) {
        throw new MmError('CHORUS_BAD_DURABLE_STATE', `durable state of ${meta.member}/${meta.keyspace}/${meta.mode} opened as ${r.self}/${r.options.keyspace}/${r.mode}`);
      }
      r.incarnation = meta.incarnation;
      r.lastSeq = meta.lastSeq;
      clock = meta.clock;
      for (const i of meta.inbound) {
        if (!r.inbound.has(i.origin)) continue;
        r.inbound.set(i.origin, { cursor: i.cursor, seen: i.seen, frontier: i.frontier, lastIncarnation: i.lastIncarnation, lastBatchNo: i.lastBatchNo });
        r.noteKnown(i.origin, i.cursor);
      }
      for (const o of meta.outbound) {
        if (r.outbound.has(o.peer)) r.outbound.set(o.peer, { cursor: o.cursor, seen: o.seen, frontier: o.frontier, batchNo: 0 });
      }
      for (const [m, mark] of meta.stable) if (r.memberSet.has(m)) r.stable.set(m, mark);
      r.counters.lwwOverwrites = meta.lwwOverwrites;
      r.counters.repairs = meta.repairs;
    }
    const own: [number, string][] = [];
    for (const [key, stored] of durable?.records ?? []) {
      const state = stateFrom(r.mode, stored.state, r.memberSet);
      r.setEntry(key, state, stored.localSeq);
      for (const [m, s] of contextOf(state)) r.noteKnown(m, s);
      for (const d of liveDots(state)) r.noteKnown(d.member, d.seq);
      if (stored.localSeq > 0) own.push([stored.localSeq, key]);
      r.lastSeq = Math.max(r.lastSeq, stored.localSeq);
      clock = maxStamp(clock, maxStampOf(state));
    }
    own.sort((a, b) => a[0] - b[0]);
    for (const [seq, key] of own) r.log.set(key, seq);
    r.noteKnown(r.self, r.lastSeq);
    // The clock resumes past every stamp this member issued or received before the restart.
    if (clock !== null) r.hlc.update(clock, clock.physicalMs);
    r.incarnation++;
    return { replica: r, persist: [r.metaOp()] };
  }

  // -------------------------------------------------------------------------------------------
  // Local writes and reads

  /** A client write at this member. Throws MmError for bad input or a limit; nothing changes then. */
  applyLocal(key: string, write: LocalWrite, physicalMs: number): LocalWriteResult {
    this.checkKey(key);
    const cur = this.entries.get(key);
    if (cur === undefined && this.entries.size >= this.options.keysMax) {
      throw new MmError('CHORUS_KEYSPACE_FULL', `keyspace ${this.options.keyspace} holds ${this.entries.size} keys (keysMax), tombstones included`);
    }
    const dot: Dot = { member: this.self, seq: this.lastSeq + 1 };
    let next: RecordState;
    let replaced: readonly Dot[];
    let stamp: HlcStamp;
    let clientContext: VersionVector | null = null;
    switch (this.mode) {
      case 'lww': {
        if (write.kind === 'crdt') throw new MmError('CHORUS_WRONG_MODE', 'CRDT operations need a crdt keyspace');
        if (write.kind === 'put') this.checkValue(write.value);
        if (write.token !== undefined && write.token !== null) throw new MmError('CHORUS_WRONG_MODE', 'causal context tokens belong to versions keyspaces');
        const prev = cur?.state.mode === 'lww' ? cur.state : null;
        stamp = this.hlc.now(physicalMs);
        next = writeLww(prev, write.kind === 'put' ? write.value : null, dot, stamp);
        replaced = prev === null ? [] : [prev.dot];
        break;
      }
      case 'versions': {
        if (write.kind === 'crdt') throw new MmError('CHORUS_WRONG_MODE', 'CRDT operations need a crdt keyspace');
        if (write.kind === 'put') this.checkValue(write.value);
        clientContext = write.token === undefined || write.token === null ? null : this.clampContext(decodeToken(write.token, this.memberSet));
        const prev = cur?.state.mode === 'versions' ? cur.state : null;
        stamp = this.hlc.now(physicalMs);
        const result = write.kind === 'put' ? putDvv(prev, write.value, clientContext, dot, stamp) : deleteDvv(prev, clientContext, dot);
        if (write.kind === 'put' && result.record.siblings.length > this.options.siblingsMax) {
          throw new MmError('CHORUS_TOO_MANY_SIBLINGS', `key would have ${result.record.siblings.length} siblings (siblingsMax ${this.options.siblingsMax}): write with the token of a read`);
        }
        next = result.record;
        replaced = result.replaced;
        break;
      }
      case 'crdt': {
        if (write.kind === 'put') throw new MmError('CHORUS_WRONG_MODE', 'a crdt keyspace takes operations, not values');
        if (write.kind === 'delete' && write.token !== undefined && write.token !== null) throw new MmError('CHORUS_WRONG_MODE', 'causal context tokens belong to versions keyspaces');
        const prev = cur?.state.mode === 'crdt' ? cur.state : null;
        const op = write.kind === 'crdt' ? parseCrdtOp(write.op) : null;
        stamp = this.hlc.now(physicalMs);
        const result = op === null ? deleteCrdt(prev, dot) : applyCrdtOp(prev, op, dot, stamp, this.self);
        next = result.record;
        replaced = result.replaced;
        break;
      }
    }
    const bytes = approxBytes(next);
    if (bytes > this.options.recordBytesMax) {
      throw new MmError('CHORUS_VALUE_TOO_LARGE', `the record would be about ${bytes} bytes (recordBytesMax ${this.options.recordBytesMax})`);
    }
    this.lastSeq = dot.seq;
    this.noteKnown(this.self, dot.seq);
    this.log.set(key, dot.seq);
    this.setEntry(key, next, dot.seq);
    const stored: StoredRecord = { state: next, localSeq: dot.seq };
    return {
      persist: [{ op: 'put', key, record: stored }, this.metaOp()],
      record: { key, state: next },
      dot,
      stamp,
      replaced,
      clientContext,
      view: viewOf(this.mode, next),
    };
  }

  put(key: string, value: Uint8Array, physicalMs: number, token: string | null = null): LocalWriteResult {
    return this.applyLocal(key, { kind: 'put', value, token }, physicalMs);
  }

  delete(key: string, physicalMs: number, token: string | null = null): LocalWriteResult {
    return this.applyLocal(key, { kind: 'delete', token }, physicalMs);
  }

  crdt(key: string, op: unknown, physicalMs: number): LocalWriteResult {
    return this.applyLocal(key, { kind: 'crdt', op }, physicalMs);
  }

  /** lww: value and stamp; versions: every sibling and the causal context token; crdt: JSON. */
  get(key: string): ReadView {
    return viewOf(this.mode, this.entries.get(key)?.state ?? null);
  }

  /** The raw record (tombstones included), for tests, checkers and the node's debug endpoints. */
  inspect(key: string): RecordState | null {
    return this.entries.get(key)?.state ?? null;
  }

  /** Every key held, tombstones included, sorted. */
  keys(): string[] {
    return [...this.entries.keys()].sort();
  }

  // -------------------------------------------------------------------------------------------
  // Replication stream

  /** The next batch of this member's own changes for `peer`, from the cursor the peer last
   * acknowledged: at most countMax records and about bytesMax bytes (at least one record).
   * An empty complete batch is a heartbeat: it carries the frontier and stability marks. */
  changesSince(peer: MemberId, countMax: number, bytesMax: number): ChangeBatch {
    const out = this.outboundOf(peer);
    const records: ShippedRecord[] = [];
    let bytes = 0;
    let toSeq = out.cursor;
    let complete = true;
    for (const [seq, key] of this.log.after(out.cursor)) {
      const entry = this.entries.get(key);
      invariant(entry !== undefined, `change log names missing key ${key}`);
      if (records.length >= Math.max(1, countMax) || (records.length > 0 && bytes + entry.bytes > bytesMax)) {
        complete = false;
        break;
      }
      records.push({ key, state: entry.state });
      bytes += entry.bytes;
      toSeq = seq;
    }
    if (complete) toSeq = Math.max(out.cursor, this.lastSeq);
    out.batchNo++;
    return {
      keyspace: this.options.keyspace,
      origin: this.self,
      target: peer,
      incarnation: this.incarnation,
      batchNo: out.batchNo,
      fromSeq: out.cursor,
      toSeq,
      complete,
      frontier: complete ? this.durableClock : null,
      stable: this.stableOf(this.self),
      records,
    };
  }

  /** Applies a batch of another member's changes. Throws ClockDriftError (CHORUS_CLOCK_DRIFT)
   * without applying anything when a stamp is too far ahead: the origin resends later. */
  applyRemote(batch: ChangeBatch, physicalMs: number): ApplyRemoteResult {
    const b = this.checkBatch(batch);
    const inb = this.inbound.get(b.origin)!;
    // Batches older than one already applied carry older records: skip them (a duplicate or a
    // late resend) rather than merge them for nothing.
    const ordered = b.incarnation > inb.lastIncarnation || (b.incarnation === inb.lastIncarnation && b.batchNo > inb.lastBatchNo);
    if (!ordered || b.fromSeq > inb.cursor) {
      this.counters.batchesRefused++;
      return { applied: false, persist: [], changed: 0, overwritten: [], ack: this.ackFor(b.origin) };
    }
    const top = this.checkDrift([...b.records.map((r) => maxStampOf(r.state)), b.frontier], physicalMs);
    const overwritten: Dot[] = [];
    const persist: StoreOp[] = [];
    let changed = 0;
    for (const r of b.records) {
      if (this.mergeIncoming(r.key, r.state, overwritten, persist)) changed++;
    }
    if (top !== null) this.hlc.update(top, physicalMs);
    inb.cursor = Math.max(inb.cursor, b.toSeq);
    if (b.complete) {
      // Every event of the origin up to toSeq has now been seen here (see the file comment).
      // Partial batches prove nothing of the kind: a key changed early and again later sits at
      // its later position, beyond a partial batch's end.
      inb.seen = Math.max(inb.seen, b.toSeq);
      inb.frontier = maxStamp(inb.frontier, b.frontier);
    }
    inb.lastIncarnation = b.incarnation;
    inb.lastBatchNo = b.batchNo;
    this.noteKnown(b.origin, b.toSeq);
    this.raiseStable(b.origin, b.stable);
    persist.push(this.metaOp());
    return { applied: true, persist, changed, overwritten, ack: this.ackFor(b.origin) };
  }

  /** A peer's acknowledgement of this member's stream. Not persisted at once (see `tick`): a
   * crash only makes the cursor fall back and records be resent. */
  onAck(ack: ChangeAck): void {
    if (ack === null || typeof ack !== 'object' || ack.keyspace !== this.options.keyspace || ack.origin !== this.self || !this.peers.includes(ack.from)) {
      throw new MmError('CHORUS_BAD_REPLICATION_MESSAGE', 'ack for another keyspace or member');
    }
    if (!isSeq0(ack.cursor) || !isSeq0(ack.seen) || ack.seen > ack.cursor || ack.cursor > this.lastSeq || !(ack.frontier === null || isStamp(ack.frontier))) {
      throw new MmError('CHORUS_BAD_REPLICATION_MESSAGE', 'malformed ack');
    }
    const out = this.outbound.get(ack.from)!;
    // A peer's cursor never goes back (it persists it with the records), so stale acks are ignored.
    out.cursor = Math.max(out.cursor, ack.cursor);
    out.seen = Math.max(out.seen, ack.seen);
    out.frontier = maxStamp(out.frontier, ack.frontier);
    this.refreshOwnStable();
    this.metaDirty = true;
  }

  /** Periodic housekeeping: persists the clock (so that complete batches can claim a recent
   * frontier and idle members do not hold back collection) and acknowledgements received. */
  tick(physicalMs: number): { readonly persist: readonly StoreOp[] } {
    if (physicalMs - this.lastClockPersistMs < this.options.clockPersistIntervalMs && !this.metaDirty) return { persist: [] };
    this.lastClockPersistMs = physicalMs;
    this.hlc.now(physicalMs);
    return { persist: [this.metaOp()] };
  }

  // -------------------------------------------------------------------------------------------
  // Anti-entropy

  /** Hashes of `rangeCount` slices of `range` (default: the whole key space). */
  digest(rangeCount: number, range: KeyRange = this.leaves.whole): RangeDigest[] {
    return this.leaves.digest(rangeCount, range);
  }

  /** The keys in a range after `afterKey` (for paging), sorted, with their record hashes, at
   * most countMax. Both sides of a comparison list the same range from the same afterKey. */
  keysInRange(range: KeyRange, countMax: number, afterKey: string | null = null): KeyHashes {
    const keys = this.leaves.keysIn(range).filter((k) => afterKey === null || k > afterKey);
    const take = keys.slice(0, Math.max(1, countMax));
    return { entries: take.map((key) => ({ key, hash: hashHex(this.entries.get(key)!.hash) })), complete: take.length === keys.length };
  }

  /** The records for `keys` that this member holds (tombstones included), about bytesMax bytes
   * at most (at least one record). */
  recordsFor(keys: readonly string[], bytesMax: number): { readonly records: ShippedRecord[]; readonly complete: boolean } {
    const records: ShippedRecord[] = [];
    let bytes = 0;
    for (const key of keys) {
      const entry = this.entries.get(key);
      if (entry === undefined) continue;
      if (records.length > 0 && bytes + entry.bytes > bytesMax) return { records, complete: false };
      records.push({ key, state: entry.state });
      bytes += entry.bytes;
    }
    return { records, complete: true };
  }

  /** Merges records from anti-entropy, a hint delivery or a direct push (a write fanned out for
   * `?w=N`). Throws ClockDriftError without applying anything when a stamp is too far ahead. */
  applyRepair(records: readonly ShippedRecord[], physicalMs: number, source: 'anti-entropy' | 'hint' | 'push' = 'anti-entropy'): ApplyResult {
    if (!Array.isArray(records)) throw new MmError('CHORUS_BAD_REPLICATION_MESSAGE', 'records must be an array');
    const checked = records.map((r) => this.checkShipped(r));
    const top = this.checkDrift(checked.map((r) => maxStampOf(r.state)), physicalMs);
    const overwritten: Dot[] = [];
    const persist: StoreOp[] = [];
    let changed = 0;
    for (const r of checked) if (this.mergeIncoming(r.key, r.state, overwritten, persist)) changed++;
    if (top !== null) this.hlc.update(top, physicalMs);
    if (source === 'anti-entropy') this.counters.repairs += changed;
    else if (source === 'hint') this.counters.hintsApplied += changed;
    else this.counters.pushesApplied += changed;
    if (persist.length > 0) persist.push(this.metaOp());
    return { persist, changed, overwritten };
  }

  // -------------------------------------------------------------------------------------------
  // Hinted handoff

  /** Queues a record for `peer`, which this member could not reach (the record may be this
   * member's own write or one handed off by another member). A hint for a key already queued
   * is merged into it. Past hintsMax / hintsBytesMax the policy drops the oldest hints or refuses
   * this one; both are counted. */
  addHint(peer: MemberId, record: ShippedRecord): HintAddResult {
    this.outboundOf(peer);
    const r = this.checkShipped(record);
    const queue = this.hintQueue(peer);
    const existing = queue.hints.get(r.key);
    const state = existing === undefined ? r.state : mergeStates(existing.state, r.state);
    const bytes = approxBytes(state) + utf8Length(r.key);
    const countAfter = queue.hints.size + (existing === undefined ? 1 : 0);
    const bytesAfter = queue.bytes - (existing?.bytes ?? 0) + bytes;
    const fits = (count: number, total: number): boolean => count <= this.options.hintsMax && total <= this.options.hintsBytesMax;
    if (!fits(countAfter, bytesAfter)) {
      if (this.options.hintsPolicy === 'refuse' || bytes > this.options.hintsBytesMax) {
        this.counters.hintsRefused++;
        return 'refused';
      }
      // Drop the oldest (by first queueing) until the new hint fits.
      let count = countAfter;
      let total = bytesAfter;
      for (const [key, hint] of queue.hints) {
        if (fits(count, total)) break;
        if (key === r.key) continue;
        queue.hints.delete(key);
        queue.bytes -= hint.bytes;
        count--;
        total -= hint.bytes;
        this.counters.hintsDropped++;
      }
    }
    queue.bytes += bytes - (existing?.bytes ?? 0);
    const version = ++this.hintVersion;
    if (existing !== undefined) {
      existing.state = state;
      existing.bytes = bytes;
      existing.version = version;
      return 'merged';
    }
    queue.hints.set(r.key, { state, bytes, version });
    return 'queued';
  }

  /** Hints for `peer`, oldest first, at most countMax and about bytesMax (at least one), or null. */
  hintsFor(peer: MemberId, countMax: number, bytesMax: number): HintBatch | null {
    const queue = this.hints.get(peer);
    if (queue === undefined || queue.hints.size === 0) return null;
    const hints: HintRecord[] = [];
    let bytes = 0;
    for (const [key, hint] of queue.hints) {
      if (hints.length >= Math.max(1, countMax) || (hints.length > 0 && bytes + hint.bytes > bytesMax)) break;
      hints.push({ key, state: hint.state, version: hint.version });
      bytes += hint.bytes;
    }
    return { keyspace: this.options.keyspace, from: this.self, target: peer, hints };
  }

  /** `peer` applied these hints: drop them unless they changed since they were sent. */
  ackHints(peer: MemberId, delivered: readonly { readonly key: string; readonly version: number }[]): void {
    const queue = this.hints.get(peer);
    if (queue === undefined) return;
    for (const d of delivered) {
      const hint = queue.hints.get(d.key);
      if (hint !== undefined && hint.version === d.version) {
        queue.hints.delete(d.key);
        queue.bytes -= hint.bytes;
      }
    }
  }

  hintsPending(peer: MemberId): { readonly count: number; readonly bytes: number } {
    const queue = this.hints.get(peer);
    return { count: queue?.hints.size ?? 0, bytes: queue?.bytes ?? 0 };
  }

  // -------------------------------------------------------------------------------------------
  // Garbage collection

  /** Collects up to countMax tombstones that every member has seen (see the file comment). */
  collectGarbage(countMax: number): { readonly persist: readonly StoreOp[]; readonly collected: number } {
    const persist: StoreOp[] = [];
    for (const key of this.tombstoneKeys) {
      if (persist.length >= countMax) break;
      const entry = this.entries.get(key)!;
      if (!this.collectible(entry.state)) continue;
      this.removeEntry(key);
      persist.push({ op: 'delete', key });
    }
    this.counters.tombstonesCollected += persist.length;
    return { persist, collected: persist.length };
  }

  // -------------------------------------------------------------------------------------------
  // Introspection

  stats(): ReplicaStats {
    let hintsQueued = 0;
    let hintsBytes = 0;
    for (const q of this.hints.values()) {
      hintsQueued += q.hints.size;
      hintsBytes += q.bytes;
    }
    return {
      keys: this.entries.size - this.tombstoneKeys.size,
      tombstones: this.tombstoneKeys.size,
      lastSeq: this.lastSeq,
      incarnation: this.incarnation,
      changeLogEntries: this.log.size,
      hintsQueued,
      hintsBytes,
      ...this.counters,
    };
  }

  /** The stability mark this member knows for `origin`. */
  stableOf(origin: MemberId): StableMark {
    return this.stable.get(origin) ?? { seq: 0, frontier: null };
  }

  /** The seq up to which `peer` has acknowledged this member's stream: it holds (durably) every
   * change of this member up to there, or a newer state of the same keys. */
  ackedBy(peer: MemberId): number {
    return this.outboundOf(peer).cursor;
  }

  /** This member's changes `peer` has not acknowledged yet, in seqs (an upper bound on records). */
  backlogOf(peer: MemberId): number {
    return this.lastSeq - this.outboundOf(peer).cursor;
  }

  /** What this member has received of `origin`'s stream. */
  inboundOf(origin: MemberId): InboundMeta {
    const i = this.inbound.get(origin);
    if (i === undefined) throw new MmError('CHORUS_BAD_REPLICATION_MESSAGE', `${origin} is not a peer`);
    return { origin, cursor: i.cursor, seen: i.seen, frontier: i.frontier, lastIncarnation: i.lastIncarnation, lastBatchNo: i.lastBatchNo };
  }

  /** A hash of the whole state: equal on two members exactly when their records are equal. */
  stateHash(): string {
    return this.leaves.digest(1, this.leaves.whole)[0]!.hash;
  }

  // -------------------------------------------------------------------------------------------
  // Internals

  /** Merges a record from a peer. Events this member has seen but does not hold were removed
   * here, maybe with a tombstone since collected: they are pruned before merging. */
  private mergeIncoming(key: string, incoming: RecordState, overwritten: Dot[], persist: StoreOp[]): boolean {
    const cur = this.entries.get(key);
    let state: RecordState | null = incoming;
    if (this.mode !== 'lww' || cur === undefined) {
      const held = cur === undefined ? null : new Set(liveDots(cur.state).map(dotText));
      state = withoutDots(incoming, (d) => this.hasSeen(d) && !(held?.has(dotText(d)) ?? false));
      if (state === null) return false;
      if (cur === undefined && isTombstone(state) && knownBy(state, this.seenVector())) return false;
    }
    for (const [m, s] of contextOf(state)) this.noteKnown(m, s);
    for (const d of liveDots(state)) this.noteKnown(d.member, d.seq);
    const merged = cur === undefined ? state : mergeStates(cur.state, state);
    if (cur !== undefined) {
      const hash = recordHash(key, merged);
      if (hash[0] === cur.hash[0] && hash[1] === cur.hash[1]) return false;
      // Only values are counted: a delete may be collected before a concurrent write replaces
      // it, so lost deletes could not be counted exactly once (the key just holds the newer value).
      const own = cur.state.mode === 'lww' && cur.state.dot.member === this.self && cur.state.value !== null;
      if (own && cur.state.mode === 'lww' && merged.mode === 'lww' && merged !== cur.state && lostConcurrently(cur.state, merged)) {
        this.counters.lwwOverwrites++;
        overwritten.push(cur.state.dot);
      }
    }
    const localSeq = cur?.localSeq ?? 0;
    this.setEntry(key, merged, localSeq);
    persist.push({ op: 'put', key, record: { state: merged, localSeq } });
    return true;
  }

  private setEntry(key: string, state: RecordState, localSeq: number): void {
    const old = this.entries.get(key);
    if (old !== undefined) this.leaves.remove(key, old.hash, false);
    const hash = recordHash(key, state);
    this.leaves.add(key, hash);
    this.entries.set(key, { state, localSeq, hash, bytes: approxBytes(state) + utf8Length(key) });
    if (isTombstone(state)) this.tombstoneKeys.add(key);
    else this.tombstoneKeys.delete(key);
  }

  private removeEntry(key: string): void {
    const old = this.entries.get(key);
    if (old === undefined) return;
    this.leaves.remove(key, old.hash, true);
    this.entries.delete(key);
    this.tombstoneKeys.delete(key);
    this.log.remove(key);
  }

  private hasSeen(dot: Dot): boolean {
    return dot.seq <= this.seenOf(dot.member);
  }

  private seenOf(member: MemberId): number {
    if (member === this.self) return this.lastSeq;
    return this.inbound.get(member)?.seen ?? 0;
  }

  private seenVector(): VersionVector {
    return [...this.memberSet].sort().map((m) => [m, this.seenOf(m)] as const).filter(([, s]) => s > 0);
  }

  /** A tombstone can go once every member has seen every event it covers. For LWW that is
   * every event stamped at or before it: an older write nobody has seen yet must still lose. */
  private collectible(state: RecordState): boolean {
    if (!isTombstone(state)) return false;
    if (state.mode === 'lww') {
      for (const m of this.memberSet) {
        const f = this.stableOf(m).frontier;
        if (f === null || compareStamps(f, state.stamp) < 0) return false;
      }
      return true;
    }
    for (const [m, s] of contextOf(state)) if (this.stableOf(m).seq < s) return false;
    return true;
  }

  private refreshOwnStable(): void {
    let seq = this.lastSeq;
    let frontier: HlcStamp | null = this.durableClock;
    for (const p of this.peers) {
      const out = this.outbound.get(p)!;
      seq = Math.min(seq, out.seen);
      frontier = frontier === null || out.frontier === null ? null : compareStamps(out.frontier, frontier) < 0 ? out.frontier : frontier;
    }
    this.raiseStable(this.self, { seq, frontier });
  }

  private raiseStable(origin: MemberId, mark: StableMark): void {
    const cur = this.stableOf(origin);
    this.stable.set(origin, { seq: Math.max(cur.seq, mark.seq), frontier: maxStamp(cur.frontier, mark.frontier) });
  }

  private ackFor(origin: MemberId): ChangeAck {
    const i = this.inbound.get(origin)!;
    return { keyspace: this.options.keyspace, origin, from: this.self, cursor: i.cursor, seen: i.seen, frontier: i.frontier };
  }

  private noteKnown(member: MemberId, seq: number): void {
    if (seq > (this.knownMax.get(member) ?? 0)) this.knownMax.set(member, seq);
  }

  /** A client's context can only claim events some member really issued: entries are clamped
   * to the highest seq known here. A legitimate token from a member that is ahead loses
   * nothing by it (at worst a sibling survives that the client meant to replace); a forged one
   * cannot hide future writes. */
  private clampContext(vv: VersionVector): VersionVector {
    return vv.map(([m, s]) => [m, Math.min(s, this.knownMax.get(m) ?? 0)] as const).filter(([, s]) => s > 0);
  }

  private metaOp(): StoreOp {
    this.durableClock = this.hlc.last;
    this.metaDirty = false;
    this.refreshOwnStable();
    const meta: ReplicaMeta = {
      format: 1,
      keyspace: this.options.keyspace,
      mode: this.mode,
      member: this.self,
      incarnation: this.incarnation,
      lastSeq: this.lastSeq,
      clock: this.durableClock,
      inbound: [...this.inbound].map(([origin, i]) => ({ origin, cursor: i.cursor, seen: i.seen, frontier: i.frontier, lastIncarnation: i.lastIncarnation, lastBatchNo: i.lastBatchNo })),
      outbound: [...this.outbound].map(([peer, o]) => ({ peer, cursor: o.cursor, seen: o.seen, frontier: o.frontier })),
      stable: [...this.stable],
      lwwOverwrites: this.counters.lwwOverwrites,
      repairs: this.counters.repairs,
    };
    return { op: 'meta', meta };
  }

  private checkKey(key: string): void {
    if (typeof key !== 'string' || key.length === 0) throw new MmError('CHORUS_BAD_KEY', 'the key must be a non-empty string');
    if (utf8Length(key) > this.options.keyBytesMax) throw new MmError('CHORUS_BAD_KEY', `the key is longer than ${this.options.keyBytesMax} bytes`);
  }

  private checkValue(value: Uint8Array): void {
    if (!(value instanceof Uint8Array)) throw new MmError('CHORUS_VALUE_TOO_LARGE', 'the value must be bytes');
    if (value.byteLength > this.options.valueBytesMax) throw new MmError('CHORUS_VALUE_TOO_LARGE', `the value is longer than ${this.options.valueBytesMax} bytes`);
  }

  private outboundOf(peer: MemberId): Outbound {
    const out = this.outbound.get(peer);
    if (out === undefined) throw new MmError('CHORUS_BAD_REPLICATION_MESSAGE', `${String(peer)} is not a peer of ${this.self}`);
    return out;
  }

  private hintQueue(peer: MemberId): HintQueue {
    let q = this.hints.get(peer);
    if (q === undefined) this.hints.set(peer, (q = { hints: new Map(), bytes: 0 }));
    return q;
  }

  private checkShipped(raw: ShippedRecord): ShippedRecord {
    if (raw === null || typeof raw !== 'object' || typeof raw.key !== 'string' || raw.key.length === 0) {
      throw new MmError('CHORUS_BAD_REPLICATION_MESSAGE', 'a shipped record needs a key');
    }
    return { key: raw.key, state: stateFrom(this.mode, raw.state, this.memberSet) };
  }

  private checkBatch(raw: ChangeBatch): ChangeBatch {
    const bad = (why: string): never => {
      throw new MmError('CHORUS_BAD_REPLICATION_MESSAGE', `bad change batch: ${why}`);
    };
    if (raw === null || typeof raw !== 'object') return bad('not an object');
    if (raw.keyspace !== this.options.keyspace) return bad(`for keyspace ${String(raw.keyspace)}`);
    if (raw.target !== this.self) return bad(`for ${String(raw.target)}`);
    if (!this.peers.includes(raw.origin)) return bad(`from ${String(raw.origin)}, not a peer`);
    if (!isSeq0(raw.incarnation) || !isSeq0(raw.batchNo) || !isSeq0(raw.fromSeq) || !isSeq0(raw.toSeq) || raw.toSeq < raw.fromSeq) return bad('bad numbers');
    if (typeof raw.complete !== 'boolean' || !(raw.frontier === null || isStamp(raw.frontier))) return bad('bad frontier');
    const st = raw.stable as StableMark | null;
    if (st === null || typeof st !== 'object' || !isSeq0(st.seq) || !(st.frontier === null || isStamp(st.frontier))) return bad('bad stability mark');
    if (!Array.isArray(raw.records)) return bad('records must be an array');
    return { ...raw, records: raw.records.map((r) => this.checkShipped(r)) };
  }

  /** Refuses the whole message if any stamp is too far ahead; returns the greatest stamp. */
  private checkDrift(stamps: readonly (HlcStamp | null)[], physicalMs: number): HlcStamp | null {
    let top: HlcStamp | null = null;
    for (const s of stamps) top = maxStamp(top, s);
    if (top !== null) {
      try {
        this.hlc.check(top, physicalMs);
      } catch (error) {
        this.counters.clockDriftRejections++;
        throw error;
      }
    }
    return top;
  }
}

function isSeq0(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
