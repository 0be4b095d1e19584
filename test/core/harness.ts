// A tiny synchronous in-memory network for unit tests of the Raft core, in the spirit of etcd's
// interaction tests: N real Raft members, each with an in-memory disk that makes a ready
// durable at once, and a network the test drives by hand (tick, deliver, drop, isolate). Every
// ready and message is written to a one-line transcript (`log`) for failure reports.
import { Raft } from '../../src/core/raft/raft.ts';
import { ImageAssembler } from '../../src/core/raft/image-assembler.ts';
import type { RaftOptions } from '../../src/core/raft/raft.ts';
import { describeMessage, describeReady } from '../../src/core/raft/describe.ts';
import type {
  Entry,
  HardState,
  Membership,
  Message,
  NodeId,
  ProposeResult,
  ReadFailure,
  ReadState,
  Ready,
  Snapshot,
} from '../../src/core/raft/types.ts';
import { Prng } from '../../sim/prng.ts';

/** The options a test may set; id, random and assertInvariants are the harness's. */
export type HarnessRaftOptions = Partial<Omit<RaftOptions, 'id' | 'random' | 'assertInvariants'>>;

export interface HarnessOptions {
  /** Members created at the start (default n1, n2, n3). */
  readonly ids?: readonly NodeId[];
  /** The bootstrap membership (default: every id a voter). */
  readonly initialConfig?: Membership;
  readonly seed?: number;
  readonly raft?: HarnessRaftOptions;
  /** deliverAll gives up (and throws) after this many rounds without quiescence. */
  readonly roundsMax?: number;
}

export interface DeliverOptions {
  /** Messages for which this returns true are dropped (recorded as such). */
  readonly drop?: (m: Message) => boolean;
}

export interface AppliedEntry {
  readonly index: number;
  readonly text: string;
}

/** One message the network saw, and whether it reached its recipient. */
export interface Traffic {
  readonly m: Message;
  readonly delivered: boolean;
}

/** A failure of the harness's own cross-member checks: a bug in the core under test. */
export class HarnessError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HarnessError';
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

export function text(data: Uint8Array | undefined): string {
  return data === undefined ? '' : decoder.decode(data);
}

/** The durable state of one member: what a restart boots from. */
export class MemoryDisk {
  hardState: HardState | null = null;
  snapshot: Snapshot | null = null;
  /** Contiguous; entries[0].index === firstIndex when not empty. */
  entries: Entry[] = [];
  firstIndex = 1;

  lastIndex(): number {
    return this.firstIndex + this.entries.length - 1;
  }

  saveSnapshot(snapshot: Snapshot, keepLog: boolean): void {
    const index = snapshot.meta.index;
    this.snapshot = snapshot;
    this.entries = keepLog ? this.entries.filter((e) => e.index > index) : [];
    this.firstIndex = index + 1;
    const first = this.entries[0];
    if (first !== undefined && first.index !== this.firstIndex) {
      throw new HarnessError(`disk: kept log starts at ${first.index}, snapshot ends at ${index}`);
    }
  }

  append(entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    if (first.index > this.lastIndex() + 1) throw new HarnessError(`disk: append gap at ${first.index}, last ${this.lastIndex()}`);
    if (first.index < this.firstIndex) throw new HarnessError(`disk: append at ${first.index} below first ${this.firstIndex}`);
    this.entries.length = first.index - this.firstIndex;
    this.entries.push(...entries);
  }
}

export class Member {
  raft: Raft;
  readonly disk = new MemoryDisk();
  /** The normal entries this member's state machine applied, in order (restored by snapshots). */
  applied: AppliedEntry[] = [];
  /** The log index the state machine reached (normal, noop and config entries alike). */
  appliedIndex = 0;
  readonly readStates: ReadState[] = [];
  readonly readFailures: ReadFailure[] = [];
  readonly readies: Ready[] = [];
  /** Every image this member installed, whole (assembled from the readies' chunks). */
  readonly installed: Snapshot[] = [];
  images = new ImageAssembler();
  up = true;

  constructor(
    readonly id: NodeId,
    readonly initialConfig: Membership,
    private readonly options: RaftOptions,
  ) {
    this.raft = new Raft(options, { initialConfig });
  }

  /** A crash and restart: a new Raft from what the disk holds; the state machine starts over. */
  reboot(): void {
    this.raft = new Raft(this.options, {
      initialConfig: this.initialConfig,
      hardState: this.disk.hardState,
      snapshot: this.disk.snapshot,
      entries: this.disk.entries,
    });
    const snapshot = this.disk.snapshot;
    this.applied = snapshot === null ? [] : decodeSnapshot(snapshot.data);
    this.appliedIndex = snapshot === null ? 0 : snapshot.meta.index;
    this.images = new ImageAssembler(); // what was received of an image is lost with the process
    this.up = true;
  }
}

function encodeSnapshot(applied: readonly AppliedEntry[]): Uint8Array {
  return bytes(JSON.stringify(applied.map((a) => [a.index, a.text])));
}

export function decodeSnapshot(data: Uint8Array): AppliedEntry[] {
  if (data.byteLength === 0) return [];
  const parsed = JSON.parse(text(data)) as [number, string][];
  return parsed.map(([index, t]) => ({ index, text: t }));
}

export class Harness {
  readonly members = new Map<NodeId, Member>();
  /** The transcript: readies, deliveries and drops, one line each. */
  readonly log: string[] = [];
  /** Every message collected from a ready, with its fate. */
  readonly traffic: Traffic[] = [];
  /** Messages collected from readies and not yet delivered. */
  pending: Message[] = [];
  private readonly isolated = new Set<NodeId>();
  private readonly prng: Prng;
  private readonly raftOptions: HarnessRaftOptions;
  private readonly roundsMax: number;
  /** What each index was applied as, by the first member to apply it (State Machine Safety). */
  private readonly appliedAt = new Map<number, string>();

  constructor(options: HarnessOptions = {}) {
    const ids = options.ids ?? ['n1', 'n2', 'n3'];
    this.prng = new Prng(options.seed ?? 1);
    this.raftOptions = options.raft ?? {};
    this.roundsMax = options.roundsMax ?? 500;
    const initialConfig = options.initialConfig ?? { voters: [...ids], learners: [] };
    for (const id of ids) this.addNode(id, initialConfig);
  }

  /** Adds a member; by default one that joins later (empty bootstrap membership). */
  addNode(id: NodeId, initialConfig: Membership = { voters: [], learners: [] }): Member {
    if (this.members.has(id)) throw new HarnessError(`member ${id} exists`);
    const options: RaftOptions = { ...this.raftOptions, id, random: this.prng.fork(), assertInvariants: true };
    const member = new Member(id, initialConfig, options);
    this.members.set(id, member);
    return member;
  }

  member(id: NodeId): Member {
    const member = this.members.get(id);
    if (member === undefined) throw new HarnessError(`no member ${id}`);
    return member;
  }

  node(id: NodeId): Raft {
    return this.member(id).raft;
  }

  ids(): NodeId[] {
    return [...this.members.keys()];
  }

  // ------------------------------------------------------------ time

  /** Ticks one member `n` times; nothing is delivered. */
  tick(id: NodeId, n = 1): void {
    const member = this.member(id);
    for (let i = 0; i < n && member.up; i++) member.raft.tick();
  }

  /** `n` rounds of: every live member ticks once, then the network runs until quiescent. */
  tickAll(n = 1, options: DeliverOptions = {}): void {
    for (let i = 0; i < n; i++) {
      for (const member of this.members.values()) if (member.up) member.raft.tick();
      this.deliverAll(options);
    }
  }

  /** Ticks rounds (delivering) until `until()` holds; returns the number of rounds, or throws. */
  tickUntil(until: () => boolean, roundsMax: number, options: DeliverOptions = {}): number {
    for (let round = 0; round <= roundsMax; round++) {
      if (until()) return round;
      this.tickAll(1, options);
    }
    throw new HarnessError(`condition not reached within ${roundsMax} ticks\n${this.tail()}`);
  }

  // ------------------------------------------------------------ network

  /** Runs every member's pending readies: persists, applies, advances, and queues their messages. */
  flush(): void {
    for (const member of this.members.values()) this.flushMember(member);
  }

  private flushMember(member: Member): void {
    while (member.up && member.raft.hasReady()) {
      const ready = member.raft.ready();
      member.readies.push(ready);
      this.log.push(`${member.id} ${describeReady(ready)}`);
      // 1. messages that may leave before the write; 2. the write; 3. messages after it.
      this.pending.push(...ready.messagesBeforePersist);
      const installing = member.images.take(ready);
      if (installing !== null) {
        member.installed.push(installing);
        member.disk.saveSnapshot(installing, ready.logAfterSnapshot === 'keep');
      }
      member.disk.append(ready.entries);
      if (ready.hardState !== null) member.disk.hardState = ready.hardState;
      this.pending.push(...ready.messages);
      // 4. apply; 5. reads; 6. advance.
      if (installing !== null) {
        member.applied = decodeSnapshot(installing.data);
        member.appliedIndex = installing.meta.index;
      }
      for (const entry of ready.committedEntries) this.apply(member, entry);
      member.readStates.push(...ready.readStates);
      member.readFailures.push(...ready.readFailures);
      member.raft.advance(ready);
    }
  }

  private apply(member: Member, entry: Entry): void {
    if (entry.index !== member.appliedIndex + 1) {
      throw new HarnessError(`${member.id} applied ${entry.index} after ${member.appliedIndex}`);
    }
    member.appliedIndex = entry.index;
    const key = `${entry.term}:${entry.type}:${text(entry.data)}`;
    const seen = this.appliedAt.get(entry.index);
    if (seen === undefined) this.appliedAt.set(entry.index, key);
    else if (seen !== key) throw new HarnessError(`${member.id} applied ${key} at ${entry.index}, another member applied ${seen}`);
    if (entry.type === 'normal') member.applied.push({ index: entry.index, text: text(entry.data) });
  }

  /** Takes the queued messages without delivering them. */
  takePending(): Message[] {
    const taken = this.pending;
    this.pending = [];
    return taken;
  }

  /** Whether the network would carry `m` (it is not cut off by isolation or a down member). */
  private reachable(m: Message): boolean {
    if (this.isolated.has(m.from) || this.isolated.has(m.to)) return false;
    const to = this.members.get(m.to);
    return to !== undefined && to.up;
  }

  /** Delivers one message now, unless the network cannot carry it; returns whether it arrived. */
  deliver(m: Message, options: DeliverOptions = {}): boolean {
    const delivered = this.reachable(m) && options.drop?.(m) !== true;
    this.traffic.push({ m, delivered });
    this.log.push(`${delivered ? '->' : 'drop'} ${describeMessage(m)}`);
    if (delivered) this.member(m.to).raft.step(m);
    return delivered;
  }

  /** Steps a hand-made message into a member (not recorded as traffic). */
  step(id: NodeId, m: Message): void {
    this.log.push(`step ${describeMessage(m)}`);
    this.member(id).raft.step(m);
  }

  /** Flushes readies and delivers queued messages, round after round, until nothing is left. */
  deliverAll(options: DeliverOptions = {}): void {
    for (let round = 0; round < this.roundsMax; round++) {
      this.flush();
      const batch = this.takePending();
      if (batch.length === 0) return;
      for (const m of batch) this.deliver(m, options);
    }
    throw new HarnessError(`network not quiescent after ${this.roundsMax} rounds\n${this.tail()}`);
  }

  /** Cuts a member off from every other member (both directions). */
  isolate(id: NodeId): void {
    this.isolated.add(id);
  }

  heal(): void {
    this.isolated.clear();
  }

  /** Power loss: the member stops; what its disk holds survives. */
  crash(id: NodeId): void {
    this.member(id).up = false;
  }

  /** Boots the member again from its disk. */
  restart(id: NodeId): void {
    this.member(id).reboot();
  }

  // ------------------------------------------------------------ roles and requests

  /** The live leader of the highest term, or null. */
  leader(): NodeId | null {
    let best: Member | null = null;
    for (const member of this.members.values()) {
      if (!member.up || member.raft.currentRole() !== 'leader') continue;
      if (best === null || member.raft.currentTerm() > best.raft.currentTerm()) best = member;
    }
    return best?.id ?? null;
  }

  mustLeader(): NodeId {
    const id = this.leader();
    if (id === null) throw new HarnessError(`no leader\n${this.tail()}`);
    return id;
  }

  /** Ticks everyone until a leader has committed its term's no-op; with `target`, then hands
   * leadership to it. Returns the leader. */
  elect(target?: NodeId): NodeId {
    const settled = (): boolean => {
      const id = this.leader();
      if (id === null) return false;
      const raft = this.node(id);
      return raft.log.committed === raft.log.lastIndex() && raft.log.term(raft.log.committed) === raft.currentTerm();
    };
    this.tickUntil(settled, 20 * this.electionTicks());
    const current = this.mustLeader();
    if (target === undefined || target === current) return current;
    const result = this.node(current).transferLeadership(target);
    if (!result.ok) throw new HarnessError(`transfer to ${target} refused: ${result.reason}`);
    this.deliverAll();
    this.tickUntil(() => this.leader() === target && settled(), 20 * this.electionTicks());
    return target;
  }

  /** Ticks this member alone until it sends pre-vote or vote requests (left queued, undelivered). */
  campaign(id: NodeId): void {
    const member = this.member(id);
    const limit = 2 * member.raft.electionTicks + 1;
    for (let i = 0; i < limit; i++) {
      member.raft.tick();
      const before = this.pending.length;
      this.flushMember(member);
      if (this.pending.slice(before).some((m) => m.from === id && (m.type === 'PreVote' || m.type === 'Vote'))) return;
    }
    throw new HarnessError(`${id} did not campaign within ${limit} ticks (role ${member.raft.currentRole()})`);
  }

  propose(id: NodeId, payload: string): ProposeResult {
    return this.node(id).propose(bytes(payload));
  }

  /** The text of every normal entry this member applied, in order. */
  applied(id: NodeId): string[] {
    return this.member(id).applied.map((a) => a.text);
  }

  /** The application snapshots its state at `index` (default: all it applied) and compacts. */
  compact(id: NodeId, index?: number): Snapshot {
    const member = this.member(id);
    const upTo = index ?? member.appliedIndex;
    const raft = member.raft;
    const term = raft.log.term(upTo);
    if (term === undefined) throw new HarnessError(`compact ${id}: no term at ${upTo}`);
    const data = encodeSnapshot(member.applied.filter((a) => a.index <= upTo));
    const snapshot: Snapshot = { meta: { index: upTo, term, config: raft.log.configAt(upTo) }, data };
    // The snapshot is durable before the log prefix goes.
    member.disk.saveSnapshot(snapshot, true);
    raft.compact(upTo, data);
    this.log.push(`${id} compact to ${upTo}`);
    return snapshot;
  }

  /** Compacts as the real member does: the state is durable on its own, so no image is kept
   * (images on demand: see offerImage). Returns the snapshot's index. */
  compactWithoutImage(id: NodeId, index?: number): number {
    const member = this.member(id);
    const upTo = index ?? member.appliedIndex;
    const firstKept = member.raft.compact(upTo, null);
    this.log.push(`${id} compact to ${upTo} (no image; log kept from ${firstKept})`);
    return upTo;
  }

  /** The driver's answer to snapshotWanted(): an image of everything the member applied. */
  offerImage(id: NodeId): Snapshot {
    const member = this.member(id);
    const index = member.appliedIndex;
    const data = encodeSnapshot(member.applied);
    member.raft.offerSnapshot(index, data);
    this.log.push(`${id} image at ${index}`);
    return { meta: { index, term: member.raft.log.term(index)!, config: member.raft.log.configAt(index) }, data };
  }

  /** Messages the network saw, optionally only those matching `filter`. */
  messages(filter: (m: Message) => boolean = () => true): Message[] {
    return this.traffic.filter((t) => filter(t.m)).map((t) => t.m);
  }

  private electionTicks(): number {
    const first = this.members.values().next();
    return first.done === true ? 10 : first.value.raft.electionTicks;
  }

  /** The end of the transcript, for failure messages. */
  tail(lines = 40): string {
    return this.log.slice(-lines).join('\n');
  }
}
