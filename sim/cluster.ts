// The deterministic simulator: N members of the real Raft core on a simulated network, disk
// and clock, several clients, and a nemesis, all driven from one seed. Checkers run after every
// event; a violation stops the run with the seed and a description.
import {
  ImageAssembler,
  Raft,
  describeMessage,
  describeReady,
  type ConfigChange,
  type Entry,
  type Membership,
  type Message,
  type NodeId,
  type Ready,
  type Role,
  type Snapshot,
} from '../src/core/raft/index.ts';
import { checkLinearizability, type Operation } from './checker/linearizability.ts';
import { kvModel, type KvInput, type KvOutput } from './checker/kv-model.ts';
import {
  evaluateStandbys,
  parseStandbyNames,
  writeAcknowledged,
  type MemberState,
  type StandbySet,
  type SynchronousCommit,
} from '../src/core/policy/replication-policy.ts';
import { SimDisk, type DiskOp } from './disk.ts';
import { EventHeap } from './heap.ts';
import { Prng } from './prng.ts';
import { SimStateMachine, encodeCommand } from './state-machine.ts';

export interface SimConfig {
  readonly seed: number;
  /** Every process in the simulation; members of the initial config first. */
  readonly nodeIds: readonly NodeId[];
  readonly initialConfig: Membership;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly leaseTicks: number;
  readonly tickMs: number;
  readonly dropRate: number;
  readonly duplicateRate: number;
  readonly delayMsMin: number;
  readonly delayMsMax: number;
  /** Some messages are held much longer (reordering across heartbeats). */
  readonly longDelayRate: number;
  readonly longDelayMsMax: number;
  readonly fsyncMsMin: number;
  readonly fsyncMsMax: number;
  readonly slowFsyncMs: number;
  readonly compactAfterEntries: number;
  readonly snapshotChunkBytes: number;
  /** Snapshot chunks in flight to one follower (pipelined transfer). */
  readonly snapshotChunksInflightMax: number;
  readonly appendEntriesMax: number;
  readonly inflightMsgsMax: number;
  readonly clients: number;
  readonly keys: number;
  readonly opTimeoutMs: number;
  /** Ranges of the clock-rate multiplier a nemesis may set (1 = nominal). */
  readonly clockRateMin: number;
  readonly clockRateMax: number;
  readonly safetyPhaseMs: number;
  readonly livenessPhaseMsMax: number;
  readonly faultIntervalMsMin: number;
  readonly faultIntervalMsMax: number;
  readonly faults: readonly FaultKind[];
  /** Commit levels the workload's writes use (compare-and-swap always uses on/remote_apply). */
  readonly commitLevels: readonly SynchronousCommit[];
  /** synchronous_standby_names, or '' for none. */
  readonly standbyNames: string;
  /** Share of reads that are stale, bounded-staleness or min-revision reads. */
  readonly followerReadRate: number;
  /** The one-way delay members assume for heartbeats when bounding staleness. */
  readonly assumedDelayMsMax: number;
  /** wal_keep in entries: log kept behind the snapshot for lagging followers (0: none). */
  readonly walKeepEntries: number;
  /** As the real member: compaction keeps no image in the core (the state machine is durable on
   * its own), and an image is made only when a leader asks for one (snapshotWanted()), some
   * ticks later. Otherwise compaction hands the core an image, and a leader that wants one (it
   * installed a streamed image, which the core does not keep, and has not compacted since) gets
   * one at once. */
  readonly imagesOnDemand: boolean;
  /** How long making an image takes, in ticks, at most (the real member's worker thread). */
  readonly imageDelayTicksMax: number;
}

export type ReadKind = 'quorum' | 'lease' | 'stale' | 'bounded' | 'min_revision';

export type FaultKind =
  | 'partition'
  | 'crash'
  | 'crash-during-fsync'
  | 'pause'
  | 'clock'
  | 'slow-fsync'
  | 'membership'
  | 'transfer'
  /** Arms a one-shot crash of the next member that grants a vote, right as the reply leaves. */
  | 'crash-voter'
  /** Arms a one-shot crash of the next new leader, soon after its election (Figure 8 churn). */
  | 'crash-new-leader'
  /** Arms a one-shot isolation of the next new leader from every other member. */
  | 'isolate-new-leader';

export class SimViolation extends Error {
  constructor(readonly kind: string, message: string) {
    super(`${kind}: ${message}`);
    this.name = 'SimViolation';
  }
}

interface SimEvent {
  readonly timeMs: number;
  readonly seq: number;
  readonly run: () => void;
}

type OpState = 'pending' | 'ok' | 'failed' | 'unknown';

interface ClientOp {
  readonly id: string;
  readonly clientId: number;
  readonly input: KvInput;
  readonly callTime: number;
  readonly node: NodeId;
  state: OpState;
  returnTime: number;
  output: KvOutput | null;
  /** For writes: the log position the proposal got, once accepted. */
  index: number;
  term: number;
  /** For writes: the commit level it was acknowledged at. */
  readonly level: SynchronousCommit;
  readonly readKind: ReadKind;
  /** For min_revision reads: the revision to wait for; for bounded reads: the bound in ms. */
  readonly minRevision: number;
  readonly maxStalenessMs: number;
  /** For follower reads: the applied index of the state that answered. */
  servedAt: number;
}

class SimNode {
  epoch = 0;
  up = true;
  paused = false;
  pausedInbox: Message[] = [];
  /** Ticks that fell due while paused: the monotonic clock kept running, so a resumed process
   * first catches up on them (a real driver computes ticks from clock deltas the same way). */
  missedTicks = 0;
  raft!: Raft;
  readonly disk = new SimDisk();
  sm = new SimStateMachine();
  inflight: Ready | null = null;
  clockRate = 1;
  slowFsync = false;
  lastRole: Role = 'follower';
  lastTerm = 0;
  checkedCommit = 0;
  /** An image is being made for the core (imagesOnDemand). */
  imaging = false;
  /** Collects the chunks of an image being received (the process's memory: a crash loses it). */
  images = new ImageAssembler();
  /** The image the ready in flight installs, whole. */
  installing: Snapshot | null = null;
  /** Accepted proposals awaiting apply: index -> op id. */
  proposals = new Map<number, string>();
  /** Reads awaiting a read index, and reads awaiting apply. */
  reads = new Map<string, string>();
  readsAwaitingApply: { index: number; opId: string }[] = [];
  /** Writes applied at their index and term, waiting for the standby set (on/remote_apply). */
  awaitingStandbys: string[] = [];
  /** The latest heartbeats from a leader: when they arrived and the leader's commit then. */
  freshness: { timeMs: number; leaderCommit: number }[] = [];
  bootTimeMs = 0;

  constructor(readonly id: NodeId, readonly prng: Prng) {}
}

export interface SimStats {
  readonly timeMs: number;
  readonly events: number;
  readonly opsOk: number;
  readonly opsFailed: number;
  readonly opsUnknown: number;
  readonly leadersElected: number;
  readonly snapshotsTaken: number;
  readonly snapshotsInstalled: number;
  readonly configChanges: number;
  readonly crashes: number;
  readonly maxCommit: number;
}

export class Simulation {
  readonly prng: Prng;
  private readonly nemesisPrng: Prng;
  private readonly clientPrng: Prng;
  private readonly netPrng: Prng;
  private readonly heap = new EventHeap<SimEvent>();
  private seq = 0;
  nowMs = 0;
  private events = 0;
  readonly nodes = new Map<NodeId, SimNode>();
  /** Directed links that are cut: "a>b". */
  private readonly cut = new Set<string>();
  private dropRate: number;
  private duplicateRate: number;
  private workloadOn = true;
  private crashNextVoter = false;
  private crashNextLeader = false;
  private isolateNextLeader = false;
  private nemesisOn = true;
  private readonly ops = new Map<string, ClientOp>();
  private readonly history: ClientOp[] = [];
  private opSeq = 0;
  private readonly clientLeaderHint = new Map<number, NodeId>();
  private readonly clientLastSeen = new Map<string, string | null>();
  /** The revision of each client's last acknowledged write (for read-your-writes). */
  private readonly clientRevision = new Map<number, number>();
  // Checker state.
  private readonly leaderOfTerm = new Map<number, NodeId>();
  private readonly committedTerm = new Map<number, number>();
  /** The term of the leader that committed each index (the first member seen committing it is
   * that leader: followers learn commits from it, in its term). */
  private readonly commitLeaderTerm = new Map<number, number>();
  private readonly appliedCommand = new Map<number, string>();
  private readonly entryAt = new Map<string, string>();
  private readonly standbySet: StandbySet | null;
  /** When each index was first committed anywhere, and each key's applied values by index. */
  private readonly commitTimeMs: number[] = [];
  private readonly keyHistory = new Map<string, { index: number; value: string }[]>();
  private stats = { leadersElected: 0, snapshotsTaken: 0, snapshotsInstalled: 0, configChanges: 0, crashes: 0 };
  private readonly traceLine: ((line: string) => void) | null;

  constructor(readonly config: SimConfig, trace: ((line: string) => void) | null = null) {
    this.prng = new Prng(config.seed);
    this.nemesisPrng = this.prng.fork();
    this.clientPrng = this.prng.fork();
    this.netPrng = this.prng.fork();
    this.dropRate = config.dropRate;
    this.duplicateRate = config.duplicateRate;
    this.traceLine = trace;
    this.standbySet = parseStandbyNames(config.standbyNames);
    for (const id of config.nodeIds) {
      const node = new SimNode(id, this.prng.fork());
      this.nodes.set(id, node);
      this.bootNode(node);
    }
  }

  // ------------------------------------------------------------ scheduling

  private schedule(delayMs: number, run: () => void): void {
    this.heap.push({ timeMs: this.nowMs + Math.max(0, delayMs), seq: this.seq++, run });
  }

  private trace(text: string): void {
    if (this.traceLine !== null) this.traceLine(`t=${this.nowMs.toFixed(1)} ${text}`);
  }

  /** Runs events until `until()` holds or `timeMsMax` of simulated time passes. */
  runUntil(until: () => boolean, durationMsMax: number): boolean {
    const deadline = this.nowMs + durationMsMax;
    for (;;) {
      if (until()) return true;
      const next = this.heap.peek();
      if (next === undefined || next.timeMs > deadline) {
        this.nowMs = deadline;
        return until();
      }
      this.heap.pop();
      this.nowMs = next.timeMs;
      this.events++;
      next.run();
    }
  }

  runFor(durationMs: number): void {
    this.runUntil(() => false, durationMs);
  }

  // ------------------------------------------------------------ members

  private bootNode(node: SimNode): void {
    const image = node.disk.image;
    node.raft = new Raft(
      {
        id: node.id,
        random: node.prng,
        electionTicks: this.config.electionTicks,
        heartbeatTicks: this.config.heartbeatTicks,
        preVote: this.config.preVote,
        checkQuorum: this.config.checkQuorum,
        leaseTicks: this.config.leaseTicks,
        snapshotChunkBytes: this.config.snapshotChunkBytes,
        snapshotChunksInflightMax: this.config.snapshotChunksInflightMax,
        appendEntriesMax: this.config.appendEntriesMax,
        inflightMsgsMax: this.config.inflightMsgsMax,
        assertInvariants: true,
      },
      {
        initialConfig: this.config.initialConfig,
        hardState: image.hardState,
        ...(this.config.imagesOnDemand ? { snapshotMeta: image.snapshot?.meta ?? null } : { snapshot: image.snapshot }),
        entries: image.entries,
      },
    );
    node.sm = new SimStateMachine();
    node.images = new ImageAssembler();
    node.installing = null;
    if (image.snapshot !== null) node.sm.restore(image.snapshot.data, image.snapshot.meta.index);
    node.lastRole = 'follower';
    node.lastTerm = node.raft.currentTerm();
    node.checkedCommit = Math.min(node.checkedCommit, node.raft.log.committed);
    node.inflight = null;
    node.imaging = false;
    node.bootTimeMs = this.nowMs;
    node.freshness = [];
    node.awaitingStandbys = [];
    this.scheduleTick(node, node.epoch);
  }

  private scheduleTick(node: SimNode, epoch: number): void {
    this.schedule(this.config.tickMs * node.clockRate, () => {
      if (node.epoch !== epoch) return;
      if (node.up && !node.paused) {
        node.raft.tick();
        this.afterInput(node);
      } else if (node.up) {
        node.missedTicks++;
      }
      this.scheduleTick(node, epoch);
    });
  }

  private afterInput(node: SimNode): void {
    this.observeRole(node);
    this.pump(node);
    this.maybeMakeImage(node);
    this.checkCommits(node);
    this.ackWrites(node);
  }

  /** Acknowledges writes whose commit level is met (see replication-policy.ts). */
  private ackWrites(node: SimNode): void {
    if (!node.up || (node.proposals.size === 0 && node.awaitingStandbys.length === 0)) return;
    const raft = node.raft;
    let standbys = null;
    if (this.standbySet !== null && raft.currentRole() === 'leader' && node.awaitingStandbys.length > 0) {
      const members = new Map<string, MemberState>();
      for (const [id, pr] of raft.status().progress) {
        members.set(id, { durableIndex: pr.match, appliedIndex: pr.applied, connected: pr.ackAgeTicks !== null && pr.ackAgeTicks <= this.config.electionTicks });
      }
      members.set(node.id, { durableIndex: raft.log.persisted, appliedIndex: node.sm.applied, connected: true });
      standbys = evaluateStandbys(this.standbySet, node.id, members);
    }
    for (const [index, opId] of node.proposals) {
      const op = this.ops.get(opId);
      if (op === undefined || op.state !== 'pending' || op.level !== 'local') continue;
      if (raft.log.persisted >= index && raft.log.term(index) === op.term) this.finishOp(opId, 'ok', { kind: 'put' });
    }
    if (node.awaitingStandbys.length === 0) return;
    const still: string[] = [];
    for (const opId of node.awaitingStandbys) {
      const op = this.ops.get(opId);
      if (op === undefined || op.state !== 'pending') continue;
      const acked = standbys !== null && writeAcknowledged(op.level, {
        index: op.index, inLeaderLog: raft.log.term(op.index) === op.term || op.index <= raft.log.snapshotIndex(),
        leaderDurableIndex: raft.log.persisted, commitIndex: raft.log.committed, leaderAppliedIndex: node.sm.applied, standbys,
      });
      if (!acked) {
        still.push(opId);
        continue;
      }
      if (op.level === 'remote_apply') this.checkRemoteApplyVisible(op, standbys!.standbys);
      this.finishOp(opId, 'ok', op.output ?? { kind: 'put' });
    }
    node.awaitingStandbys = still;
  }

  private pump(node: SimNode): void {
    while (node.up && node.inflight === null && node.raft.hasReady()) {
      const ready = node.raft.ready();
      if (this.traceLine !== null) this.trace(`${node.id} ${describeReady(ready)}`);
      // Log matching is checked on what this ready writes, against the log as it is now.
      let prevTerm = ready.entries.length > 0 ? node.raft.log.term(ready.entries[0]!.index - 1) : undefined;
      for (const entry of ready.entries) {
        this.checkLogMatching(node, entry, prevTerm);
        prevTerm = entry.term;
      }
      for (const m of ready.messagesBeforePersist) this.send(m);
      if (this.crashNextVoter && [...ready.messagesBeforePersist, ...ready.messages].some((m) => m.type === 'VoteResp' && m.granted)) {
        // Power fails while the vote is being written: whatever left before the write survives.
        this.crashNextVoter = false;
        const id = node.id;
        this.schedule(0, () => this.crash(id));
        this.schedule(this.nemesisPrng.range(1, 20), () => this.restart(id));
      }
      const installing = node.images.take(ready);
      node.installing = installing;
      const ops: DiskOp[] = [];
      if (installing !== null) ops.push({ kind: 'snapshot', snapshot: installing, keepLog: ready.logAfterSnapshot === 'keep' });
      if (ready.entries.length > 0) ops.push({ kind: 'append', entries: ready.entries });
      if (ready.hardState !== null) ops.push({ kind: 'hardState', hardState: ready.hardState });
      if (ops.length === 0) {
        this.complete(node, ready);
        continue;
      }
      node.disk.write(ops);
      node.inflight = ready;
      const epoch = node.epoch;
      const fsyncMs = node.slowFsync ? this.config.slowFsyncMs : node.prng.range(this.config.fsyncMsMin, this.config.fsyncMsMax);
      this.schedule(fsyncMs, () => {
        if (node.epoch !== epoch || node.inflight !== ready) return;
        if (node.paused) {
          // A paused process finishes its fsync when it resumes.
          this.schedule(this.config.tickMs, () => this.finishWrite(node, ready, epoch));
          return;
        }
        this.finishWrite(node, ready, epoch);
      });
    }
  }

  private finishWrite(node: SimNode, ready: Ready, epoch: number): void {
    if (node.epoch !== epoch || node.inflight !== ready) return;
    if (node.paused) {
      this.schedule(this.config.tickMs, () => this.finishWrite(node, ready, epoch));
      return;
    }
    node.disk.sync();
    node.inflight = null;
    this.complete(node, ready);
    this.afterInput(node);
  }

  /** Everything after the durable write of a ready: send, apply, serve, advance. */
  private complete(node: SimNode, ready: Ready): void {
    for (const m of ready.messages) this.send(m);
    const installing = node.installing;
    node.installing = null;
    if (installing !== null) {
      node.sm.restore(installing.data, installing.meta.index);
      this.stats.snapshotsInstalled++;
      // Proposals covered by the snapshot: their fate is unknown here; leave them to time out.
      for (const index of [...node.proposals.keys()]) if (index <= installing.meta.index) node.proposals.delete(index);
    }
    for (const entry of ready.committedEntries) this.applyEntry(node, entry);
    for (const rs of ready.readStates) {
      const opId = node.reads.get(rs.readId);
      node.reads.delete(rs.readId);
      if (opId !== undefined) node.readsAwaitingApply.push({ index: rs.index, opId });
    }
    for (const rf of ready.readFailures) {
      const opId = node.reads.get(rf.readId);
      node.reads.delete(rf.readId);
      if (opId !== undefined) {
        if (rf.leaderId !== null) this.hintLeader(opId, rf.leaderId);
        this.finishOp(opId, 'failed', null);
      }
    }
    this.serveReads(node);
    node.raft.advance(ready);
    this.maybeCompact(node);
  }

  /** A leader wants an image: imagesOnDemand, it is ready some ticks later (taken then);
   * otherwise at once. */
  private maybeMakeImage(node: SimNode): void {
    if (node.imaging || !node.raft.snapshotWanted()) return;
    if (!this.config.imagesOnDemand) {
      if (node.sm.applied !== node.raft.log.applied) return;
      node.raft.offerSnapshot(node.sm.applied, node.sm.snapshot());
      this.trace(`${node.id} image at ${node.sm.applied}`);
      this.pump(node);
      return;
    }
    node.imaging = true;
    const epoch = node.epoch;
    const delayMs = node.prng.range(0, this.config.imageDelayTicksMax) * this.config.tickMs;
    const finish = (): void => {
      if (node.epoch !== epoch || !node.up) return;
      if (node.paused) {
        this.schedule(this.config.tickMs, finish);
        return;
      }
      node.imaging = false;
      const raft = node.raft;
      // Between readies the state machine has applied exactly what the core has.
      if (node.sm.applied !== raft.log.applied || !raft.snapshotWanted()) return;
      raft.offerSnapshot(node.sm.applied, node.sm.snapshot());
      this.trace(`${node.id} image at ${node.sm.applied}`);
      this.afterInput(node);
    };
    this.schedule(delayMs, finish);
  }

  private applyEntry(node: SimNode, entry: Entry): void {
    const outcome = node.sm.apply(entry);
    // State machine safety: every member applies the same command at each index.
    const key = outcome.commandId ?? `${entry.type}@${entry.term}`;
    const seen = this.appliedCommand.get(entry.index);
    if (seen === undefined) {
      this.appliedCommand.set(entry.index, key);
      if (entry.type === 'normal' && entry.data !== undefined && outcome.commandId !== null && outcome.succeeded) {
        const cmd = JSON.parse(new TextDecoder().decode(entry.data)) as { key: string; value: string };
        const history = this.keyHistory.get(cmd.key) ?? [];
        history.push({ index: entry.index, value: cmd.value });
        this.keyHistory.set(cmd.key, history);
      }
    } else if (seen !== key) throw new SimViolation('state machine safety', `${node.id} applied ${key} at ${entry.index}, another member applied ${seen}`);
    const opId = node.proposals.get(entry.index);
    if (opId !== undefined) {
      node.proposals.delete(entry.index);
      const op = this.ops.get(opId);
      if (op !== undefined && op.state === 'pending') {
        if (op.term === entry.term && outcome.commandId === opId) {
          const output: KvOutput = op.input.kind === 'cas' ? { kind: 'cas', succeeded: outcome.succeeded } : { kind: 'put' };
          if (this.standbySet !== null && (op.level === 'on' || op.level === 'remote_apply')) {
            op.output = output;
            node.awaitingStandbys.push(opId);
          } else {
            this.finishOp(opId, 'ok', output);
          }
        } else {
          // Another entry committed at our index: ours can never commit.
          this.finishOp(opId, 'failed', null);
        }
      }
    }
  }

  private serveReads(node: SimNode): void {
    if (node.readsAwaitingApply.length === 0) return;
    const still: { index: number; opId: string }[] = [];
    for (const r of node.readsAwaitingApply) {
      if (node.sm.applied >= r.index) {
        const op = this.ops.get(r.opId);
        if (op !== undefined && op.state === 'pending') this.serveLocal(node, op);
      } else {
        still.push(r);
      }
    }
    node.readsAwaitingApply = still;
  }

  private maybeCompact(node: SimNode): void {
    const raft = node.raft;
    const applied = raft.log.applied;
    if (applied - raft.log.snapshotIndex() < this.config.compactAfterEntries || node.disk.hasPending()) return;
    if (node.sm.applied !== applied) return;
    const term = raft.log.term(applied);
    if (term === undefined) return;
    const data = node.sm.snapshot();
    const meta = { index: applied, term, config: raft.log.configAt(applied) };
    // wal_keep: entries that followers within walKeepEntries still need stay in the log.
    let retainFromIndex = applied + 1;
    if (this.config.walKeepEntries > 0) {
      let neededFrom = applied + 1;
      // An append to a follower at `match` needs the entry at match too (its prevTerm).
      for (const pr of raft.status().progress.values()) neededFrom = Math.min(neededFrom, Math.max(1, pr.match));
      retainFromIndex = Math.max(neededFrom, applied + 1 - this.config.walKeepEntries, raft.log.firstIndex());
    }
    // The snapshot is durable before the log prefix goes (the real driver does the same).
    node.disk.writeDurable([{ kind: 'snapshot', snapshot: { meta, data }, keepLog: true, retainFromIndex }]);
    raft.compact(applied, this.config.imagesOnDemand ? null : data, retainFromIndex);
    this.stats.snapshotsTaken++;
    this.trace(`${node.id} compact to ${applied}`);
  }

  // ------------------------------------------------------------ network

  private send(m: Message): void {
    if (this.cut.has(`${m.from}>${m.to}`)) {
      if (this.traceLine !== null) this.trace(`drop(cut) ${describeMessage(m)}`);
      return;
    }
    if (this.netPrng.chance(this.dropRate)) {
      if (this.traceLine !== null) this.trace(`drop ${describeMessage(m)}`);
      return;
    }
    const copies = this.netPrng.chance(this.duplicateRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = this.netPrng.chance(this.config.longDelayRate)
        ? this.netPrng.range(this.config.delayMsMax, this.config.longDelayMsMax)
        : this.config.delayMsMin + this.netPrng.float() * (this.config.delayMsMax - this.config.delayMsMin);
      this.schedule(delay, () => this.deliver(m));
    }
  }

  private deliver(m: Message): void {
    const node = this.nodes.get(m.to);
    if (node === undefined || !node.up) return;
    if (this.cut.has(`${m.from}>${m.to}`)) {
      if (this.traceLine !== null) this.trace(`drop(cut) ${describeMessage(m)}`);
      return;
    }
    if (node.paused) {
      node.pausedInbox.push(m);
      return;
    }
    if (this.traceLine !== null) this.trace(`recv ${describeMessage(m)}`);
    this.noteFreshness(node, m);
    node.raft.step(m);
    this.afterInput(node);
  }

  /** A write acknowledged at remote_apply is readable on the synchronous standbys right now. */
  private checkRemoteApplyVisible(op: ClientOp, standbys: readonly NodeId[]): void {
    const set = this.standbySet!;
    // A standby restarted since the write began may still be replaying: it is not counted.
    const visible = (id: NodeId): boolean => {
      const n = this.mustNode(id);
      return !n.up || n.bootTimeMs > op.callTime || n.sm.applied >= op.index;
    };
    if (set.method === 'first') {
      for (const id of standbys) {
        if (!visible(id)) throw new SimViolation('remote_apply', `${op.id} acknowledged at ${op.index} but standby ${id} applied only ${this.mustNode(id).sm.applied}`);
      }
    } else if (standbys.filter(visible).length < set.count) {
      throw new SimViolation('remote_apply', `${op.id} acknowledged at ${op.index} but visible on fewer than ${set.count} standbys`);
    }
  }

  private noteFreshness(node: SimNode, m: Message): void {
    if (m.type !== 'Heartbeat' || m.term < node.raft.currentTerm() || m.leaderCommit < 0) return;
    node.freshness.push({ timeMs: this.nowMs, leaderCommit: m.leaderCommit });
    if (node.freshness.length > 64) node.freshness.shift();
  }

  /**
   * How stale this member's state may be, in ms: the latest heartbeat whose leader commit it
   * has applied proves it holds every write committed before that heartbeat left the leader,
   * which is no earlier than its arrival minus the assumed maximum delay.
   */
  stalenessBoundMs(node: SimNode): number {
    if (node.raft.currentRole() === 'leader') return node.raft.status().commitAttested && node.sm.applied >= node.raft.log.committed ? 0 : Number.POSITIVE_INFINITY;
    for (let i = node.freshness.length - 1; i >= 0; i--) {
      const f = node.freshness[i]!;
      if (f.leaderCommit <= node.sm.applied) return this.nowMs - f.timeMs + this.config.assumedDelayMsMax;
    }
    return Number.POSITIVE_INFINITY;
  }

  partition(groups: readonly (readonly NodeId[])[]): void {
    this.cut.clear();
    const groupOf = new Map<NodeId, number>();
    groups.forEach((g, i) => g.forEach((id) => groupOf.set(id, i)));
    for (const a of this.nodes.keys()) {
      for (const b of this.nodes.keys()) {
        if (a !== b && groupOf.get(a) !== groupOf.get(b)) this.cut.add(`${a}>${b}`);
      }
    }
    this.trace(`nemesis partition ${groups.map((g) => `[${g.join(',')}]`).join(' ')}`);
  }

  cutLink(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}>${to}`);
    this.trace(`nemesis cut ${from}>${to}`);
  }

  heal(): void {
    this.cut.clear();
    this.trace('nemesis heal');
  }

  setLossRates(dropRate: number, duplicateRate: number): void {
    this.dropRate = dropRate;
    this.duplicateRate = duplicateRate;
  }

  // ------------------------------------------------------------ process faults

  crash(id: NodeId): void {
    const node = this.mustNode(id);
    if (!node.up) return;
    node.up = false;
    node.paused = false;
    node.pausedInbox = [];
    node.missedTicks = 0;
    node.epoch++;
    node.inflight = null;
    const survived = node.disk.crash(node.prng);
    this.stats.crashes++;
    this.trace(`nemesis crash ${id} (${survived})`);
    for (const opId of node.proposals.values()) this.finishOp(opId, 'unknown', null);
    for (const opId of node.reads.values()) this.finishOp(opId, 'failed', null);
    for (const r of node.readsAwaitingApply) this.finishOp(r.opId, 'failed', null);
    node.proposals.clear();
    node.reads.clear();
    node.readsAwaitingApply = [];
  }

  restart(id: NodeId): void {
    const node = this.mustNode(id);
    if (node.up) return;
    node.up = true;
    this.bootNode(node);
    this.trace(`nemesis restart ${id} term=${node.raft.currentTerm()} last=${node.raft.log.lastIndex()} commit=${node.raft.log.committed}`);
  }

  pause(id: NodeId): void {
    const node = this.mustNode(id);
    if (!node.up || node.paused) return;
    node.paused = true;
    this.trace(`nemesis pause ${id}`);
  }

  resume(id: NodeId): void {
    const node = this.mustNode(id);
    if (!node.paused) return;
    node.paused = false;
    this.trace(`nemesis resume ${id} after ${node.missedTicks} ticks`);
    // Catching up is bounded: past a few election timeouts more ticks change nothing.
    const catchUp = Math.min(node.missedTicks, 4 * this.config.electionTicks);
    node.missedTicks = 0;
    for (let i = 0; i < catchUp && node.up && !node.paused; i++) {
      node.raft.tick();
      this.afterInput(node);
    }
    const inbox = node.pausedInbox;
    node.pausedInbox = [];
    for (const m of inbox) {
      if (!node.up || node.paused) break;
      node.raft.step(m);
      this.afterInput(node);
    }
  }

  setClockRate(id: NodeId, rate: number): void {
    // The rate multiplies the tick period: 1.1 is a clock running 10% slow.
    this.mustNode(id).clockRate = rate;
    this.trace(`nemesis clock ${id} period x${rate.toFixed(3)}`);
  }

  setSlowFsync(id: NodeId, slow: boolean): void {
    this.mustNode(id).slowFsync = slow;
    this.trace(`nemesis fsync ${id} ${slow ? 'slow' : 'normal'}`);
  }

  proposeConfigChange(change: ConfigChange): boolean {
    const leader = this.leader();
    if (leader === null) return false;
    const result = leader.raft.proposeConfigChange(change);
    this.trace(`nemesis config ${change.kind} ${change.id} via ${leader.id}: ${result.kind}`);
    if (result.kind === 'accepted') this.stats.configChanges++;
    this.afterInput(leader);
    return result.kind === 'accepted';
  }

  transferLeadership(target: NodeId): void {
    const leader = this.leader();
    if (leader === null) return;
    const result = leader.raft.transferLeadership(target);
    this.trace(`nemesis transfer ${leader.id} -> ${target}: ${result.ok ? 'started' : result.reason}`);
    this.afterInput(leader);
  }

  private mustNode(id: NodeId): SimNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  /** The leader with the highest term among live members, if any. */
  leader(): SimNode | null {
    let best: SimNode | null = null;
    for (const node of this.nodes.values()) {
      if (!node.up || node.raft.currentRole() !== 'leader') continue;
      if (best === null || node.raft.currentTerm() > best.raft.currentTerm()) best = node;
    }
    return best;
  }

  // ------------------------------------------------------------ checkers

  private observeRole(node: SimNode): void {
    const role = node.raft.currentRole();
    const term = node.raft.currentTerm();
    if (role === 'leader' && (node.lastRole !== 'leader' || node.lastTerm !== term)) {
      // Election safety: at most one leader per term.
      const other = this.leaderOfTerm.get(term);
      if (other !== undefined && other !== node.id) {
        throw new SimViolation('election safety', `two leaders in term ${term}: ${other} and ${node.id}`);
      }
      this.leaderOfTerm.set(term, node.id);
      this.stats.leadersElected++;
      this.trace(`${node.id} became leader term=${term} last=${node.raft.log.lastIndex()}`);
      this.checkLeaderCompleteness(node);
      if (this.crashNextLeader) {
        // Leader churn right after elections leaves partly replicated terms behind (Figure 8).
        this.crashNextLeader = this.nemesisPrng.chance(0.5);
        const id = node.id;
        this.schedule(this.nemesisPrng.range(0, 40), () => this.crash(id));
        this.schedule(this.nemesisPrng.range(50, 600), () => this.restart(id));
      } else if (this.isolateNextLeader) {
        this.isolateNextLeader = this.nemesisPrng.chance(0.5);
        const id = node.id;
        this.schedule(this.nemesisPrng.range(0, 30), () => {
          if (!this.nemesisOn) return;
          this.partition([[id], [...this.nodes.keys()].filter((x) => x !== id)]);
        });
        this.schedule(this.nemesisPrng.range(100, 500), () => {
          if (this.nemesisOn) this.heal();
        });
      }
    }
    node.lastRole = role;
    node.lastTerm = term;
  }

  /** Leader completeness: a new leader's log holds every entry committed before it. */
  private checkLeaderCompleteness(node: SimNode): void {
    const log = node.raft.log;
    for (const [index, term] of this.committedTerm) {
      if (index <= log.snapshotIndex()) continue;
      // Raft §5.4: an entry committed in term T is in the log of every leader of a term above T.
      if ((this.commitLeaderTerm.get(index) ?? 0) >= node.raft.currentTerm()) continue;
      const has = log.term(index);
      if (has !== term) {
        throw new SimViolation('leader completeness', `${node.id} leads term ${node.raft.currentTerm()} without committed entry ${index}/${term} (has ${has ?? 'none'})`);
      }
    }
  }

  /** Commit agreement: no two members commit different entries at one index. */
  private checkCommits(node: SimNode): void {
    if (!node.up) return;
    const log = node.raft.log;
    const commit = log.committed;
    for (let index = Math.max(node.checkedCommit + 1, log.snapshotIndex() + 1); index <= commit; index++) {
      const term = log.term(index);
      if (term === undefined) continue;
      const known = this.committedTerm.get(index);
      if (known === undefined) {
        this.committedTerm.set(index, term);
        if (this.commitTimeMs[index] === undefined) this.commitTimeMs[index] = this.nowMs;
        this.commitLeaderTerm.set(index, node.raft.currentTerm());
      }
      else if (known !== term) throw new SimViolation('commit safety', `${node.id} committed ${index}/${term}, another member committed ${index}/${known}`);
    }
    if (commit > node.checkedCommit) node.checkedCommit = commit;
  }

  /** Log matching: an (index, term) pair names exactly one entry, with one predecessor term. */
  private checkLogMatching(node: SimNode, entry: Entry, prevTerm: number | undefined): void {
    const body = entry.type === 'normal' ? new TextDecoder().decode(entry.data) : entry.type === 'config' ? JSON.stringify(entry.config) : 'noop';
    const key = `${entry.index}/${entry.term}`;
    const value = `${prevTerm ?? '?'}|${body}`;
    const known = this.entryAt.get(key);
    if (known === undefined) {
      this.entryAt.set(key, value);
      return;
    }
    const [knownPrev, ...knownBody] = known.split('|');
    if (knownBody.join('|') !== body) throw new SimViolation('log matching', `${node.id} holds a different entry at ${key}`);
    if (prevTerm !== undefined && knownPrev !== '?' && knownPrev !== String(prevTerm)) {
      throw new SimViolation('log matching', `${node.id} holds ${key} after term ${prevTerm}, another member after term ${knownPrev}`);
    }
  }

  // ------------------------------------------------------------ clients

  startWorkload(): void {
    for (let c = 0; c < this.config.clients; c++) this.schedule(this.clientPrng.range(0, 20), () => this.clientStep(c));
  }

  stopWorkload(): void {
    this.workloadOn = false;
  }

  private clientStep(clientId: number): void {
    if (!this.workloadOn) return;
    const p = this.clientPrng;
    const key = `k${p.int(this.config.keys)}`;
    const roll = p.float();
    let input: KvInput;
    if (roll < 0.45) input = { kind: 'put', key, value: `c${clientId}-${this.opSeq}` };
    else if (roll < 0.55) input = { kind: 'cas', key, expected: this.clientLastSeen.get(key) ?? null, value: `c${clientId}-${this.opSeq}` };
    else input = { kind: 'get', key };
    const hint = this.clientLeaderHint.get(clientId);
    const ids = [...this.nodes.keys()];
    const target = hint !== undefined && p.chance(0.85) ? hint : p.pick(ids);
    let readKind: ReadKind = this.config.leaseTicks > 0 && p.chance(0.5) ? 'lease' : 'quorum';
    if (input.kind === 'get' && p.chance(this.config.followerReadRate)) readKind = p.pick(['stale', 'bounded', 'min_revision'] as const);
    // Compare-and-swap needs its result, so it always waits for the commit.
    const levels = input.kind === 'cas' ? this.config.commitLevels.filter((l) => l === 'on' || l === 'remote_apply') : this.config.commitLevels;
    const level = levels.length > 0 ? p.pick(levels) : 'on';
    this.invoke(clientId, target, input, readKind, {
      level,
      minRevision: this.clientRevision.get(clientId) ?? 0,
      maxStalenessMs: p.pick([50, 200, 1000]),
    });
  }

  /** Invokes one operation; returns its id. */
  invoke(
    clientId: number,
    target: NodeId,
    input: KvInput,
    readKind: ReadKind = 'quorum',
    options: { level?: SynchronousCommit; minRevision?: number; maxStalenessMs?: number } = {},
  ): string {
    const id = `op${this.opSeq++}`;
    const op: ClientOp = {
      id, clientId, input, callTime: this.nowMs, node: target, state: 'pending', returnTime: Infinity, output: null, index: 0, term: 0,
      level: options.level ?? 'on', readKind, minRevision: options.minRevision ?? 0, maxStalenessMs: options.maxStalenessMs ?? 0, servedAt: -1,
    };
    this.ops.set(id, op);
    this.history.push(op);
    const node = this.mustNode(target);
    this.trace(`client ${clientId} ${id} ${describeInput(input)} -> ${target}${input.kind === 'get' ? ` (${readKind})` : ` (${op.level})`}`);
    this.schedule(this.config.opTimeoutMs, () => {
      if (op.state === 'pending') this.finishOp(id, input.kind === 'get' ? 'failed' : 'unknown', null);
    });
    if (!node.up) {
      this.finishOp(id, 'failed', null);
      return id;
    }
    if (node.paused) return id; // hangs until the timeout
    if (input.kind === 'get') {
      this.startRead(node, op);
    } else {
      if (input.kind === 'delete') throw new Error('the simulator workload has no deletes');
      const cmd = input.kind === 'put'
        ? { op: 'put' as const, id, key: input.key, value: input.value }
        : { op: 'cas' as const, id, key: input.key, expected: input.expected, value: input.value };
      const result = node.raft.propose(encodeCommand(cmd));
      if (result.kind === 'accepted') {
        op.index = result.index;
        op.term = result.term;
        node.proposals.set(result.index, id);
        if (op.level === 'off') this.finishOp(id, 'ok', { kind: 'put' });
      } else {
        if (result.kind === 'not-leader' && result.leaderId !== null) this.clientLeaderHint.set(clientId, result.leaderId);
        this.finishOp(id, 'failed', null);
      }
    }
    this.afterInput(node);
    return id;
  }

  private startRead(node: SimNode, op: ClientOp): void {
    switch (op.readKind) {
      case 'quorum':
      case 'lease':
        node.reads.set(op.id, op.id);
        node.raft.readIndex(op.id, op.readKind);
        return;
      case 'stale':
        this.serveLocal(node, op);
        return;
      case 'bounded':
        // Served only when this member can show its state is fresh enough (else CHORUS_TOO_STALE).
        if (this.stalenessBoundMs(node) <= op.maxStalenessMs) this.serveLocal(node, op);
        else this.finishOp(op.id, 'failed', null);
        return;
      case 'min_revision':
        if (node.sm.applied >= op.minRevision) this.serveLocal(node, op);
        else node.readsAwaitingApply.push({ index: op.minRevision, opId: op.id });
        return;
    }
  }

  private serveLocal(node: SimNode, op: ClientOp): void {
    op.servedAt = node.sm.applied;
    this.finishOp(op.id, 'ok', { kind: 'get', value: node.sm.get(op.input.key) });
  }

  private hintLeader(opId: string, leaderId: NodeId): void {
    const op = this.ops.get(opId);
    if (op !== undefined) this.clientLeaderHint.set(op.clientId, leaderId);
  }

  private finishOp(opId: string, state: OpState, output: KvOutput | null): void {
    const op = this.ops.get(opId);
    if (op === undefined || op.state !== 'pending') return;
    op.state = state;
    op.output = output;
    op.returnTime = state === 'unknown' ? Infinity : this.nowMs;
    this.trace(`client ${op.clientId} ${opId} ${state}${output !== null ? ` ${describeOutput(output)}` : ''}`);
    if (state === 'ok' && output !== null) {
      if (output.kind === 'get') this.clientLastSeen.set(op.input.key, output.value);
      if (op.input.kind === 'put') this.clientLastSeen.set(op.input.key, op.input.value);
    }
    if (state === 'ok' && op.input.kind !== 'get' && op.index > 0) {
      this.clientRevision.set(op.clientId, Math.max(this.clientRevision.get(op.clientId) ?? 0, op.index));
    }
    if (state === 'ok' && op.input.kind !== 'get') {
      const leader = this.nodes.get(op.node);
      if (leader !== undefined) this.clientLeaderHint.set(op.clientId, op.node);
    }
    if (state === 'failed' && this.clientLeaderHint.get(op.clientId) === op.node) this.clientLeaderHint.delete(op.clientId);
    // The client thinks a little, then issues its next operation.
    if (this.workloadOn && op.clientId >= 0 && op.clientId < this.config.clients) this.schedule(this.clientPrng.range(0, 10), () => this.clientStep(op.clientId));
  }

  opState(opId: string): OpState {
    return this.ops.get(opId)?.state ?? 'failed';
  }

  opOutput(opId: string): KvOutput | null {
    return this.ops.get(opId)?.output ?? null;
  }

  // ------------------------------------------------------------ nemesis

  startNemesis(): void {
    this.schedule(this.nemesisPrng.range(this.config.faultIntervalMsMin, this.config.faultIntervalMsMax), () => this.nemesisStep());
  }

  private nemesisStep(): void {
    if (!this.nemesisOn || this.config.faults.length === 0) return;
    const p = this.nemesisPrng;
    const ids = [...this.nodes.keys()];
    const fault = p.pick(this.config.faults);
    switch (fault) {
      case 'partition': {
        if (ids.length < 2) break;
        if (this.cut.size > 0 && p.chance(0.4)) {
          this.heal();
          break;
        }
        const shape = p.int(6);
        const shuffled = p.shuffle(ids);
        const leader = this.leader()?.id ?? p.pick(ids);
        if (shape === 0) {
          const half = p.range(1, shuffled.length - 1);
          this.partition([shuffled.slice(0, half), shuffled.slice(half)]);
        } else if (shape === 1) {
          const one = p.pick(ids);
          this.partition([[one], ids.filter((x) => x !== one)]);
        } else if (shape === 2) {
          this.partition([[leader], ids.filter((x) => x !== leader)]);
        } else if (shape === 3) {
          // Majorities ring: each member sees its neighbours only.
          this.heal();
          for (let i = 0; i < shuffled.length; i++) {
            for (let j = 0; j < shuffled.length; j++) {
              const d = Math.min(Math.abs(i - j), shuffled.length - Math.abs(i - j));
              if (d > 1) this.cut.add(`${shuffled[i]!}>${shuffled[j]!}`);
            }
          }
          this.trace(`nemesis ring ${shuffled.join('-')}`);
        } else if (shape === 4) {
          // Bridge: two halves that only one member connects.
          const bridge = shuffled[0]!;
          const rest = shuffled.slice(1);
          const half = Math.ceil(rest.length / 2);
          this.partition([[bridge, ...rest.slice(0, half)], rest.slice(half)]);
          for (const x of rest.slice(half)) {
            this.cut.delete(`${bridge}>${x}`);
            this.cut.delete(`${x}>${bridge}`);
          }
          this.trace(`nemesis bridge ${bridge}`);
        } else {
          const a = p.pick(ids);
          const b = p.pick(ids.filter((x) => x !== a));
          this.cutLink(a, b);
        }
        break;
      }
      case 'crash': {
        const down = ids.filter((id) => !this.mustNode(id).up);
        if (down.length > 0 && p.chance(0.5)) this.restart(p.pick(down));
        else {
          const target = p.chance(0.3) ? (this.leader()?.id ?? p.pick(ids)) : p.pick(ids);
          this.crash(target);
          this.schedule(p.range(50, 1500), () => this.restart(target));
        }
        break;
      }
      case 'crash-during-fsync': {
        const writing = ids.filter((id) => this.mustNode(id).inflight !== null);
        const target = writing.length > 0 ? p.pick(writing) : p.pick(ids);
        this.crash(target);
        this.schedule(p.range(10, 300), () => this.restart(target));
        break;
      }
      case 'pause': {
        const target = p.pick(ids);
        this.pause(target);
        this.schedule(p.range(50, 800), () => this.resume(target));
        break;
      }
      case 'clock':
        this.setClockRate(p.pick(ids), this.config.clockRateMin + p.float() * (this.config.clockRateMax - this.config.clockRateMin));
        break;
      case 'slow-fsync': {
        const target = p.pick(ids);
        this.setSlowFsync(target, !this.mustNode(target).slowFsync);
        break;
      }
      case 'membership': {
        const leader = this.leader();
        if (leader === null) break;
        const config = leader.raft.status().config;
        const spare = ids.filter((id) => !config.voters.includes(id) && !config.learners.includes(id));
        const options: ConfigChange[] = [];
        for (const id of spare) options.push({ kind: 'add-learner', id }, { kind: 'add-voter', id });
        for (const id of config.learners) options.push({ kind: 'promote', id }, { kind: 'remove', id });
        if (config.voters.length > 1) for (const id of config.voters) options.push({ kind: 'remove', id });
        // An operator renames the synchronous standbys before removing one; the nemesis does too
        // by never removing a named standby (a set that names no member blocks writes by design).
        const named = this.standbySet?.names ?? [];
        options.splice(0, options.length, ...options.filter((c) => c.kind !== 'remove' || (!named.includes(c.id) && !named.includes('*'))));
        if (options.length > 0) this.proposeConfigChange(p.pick(options));
        break;
      }
      case 'crash-voter':
        this.crashNextVoter = true;
        break;
      case 'crash-new-leader':
        this.crashNextLeader = true;
        break;
      case 'isolate-new-leader':
        this.isolateNextLeader = true;
        break;
      case 'transfer': {
        const leader = this.leader();
        if (leader === null) break;
        const voters = leader.raft.status().config.voters.filter((v) => v !== leader.id);
        if (voters.length > 0) this.transferLeadership(p.pick(voters));
        break;
      }
    }
    this.schedule(p.range(this.config.faultIntervalMsMin, this.config.faultIntervalMsMax), () => this.nemesisStep());
  }

  /** Ends every fault: heal, resume, restart, nominal clocks and disks, no loss. */
  stopNemesis(): void {
    this.nemesisOn = false;
    this.crashNextVoter = false;
    this.crashNextLeader = false;
    this.isolateNextLeader = false;
    this.heal();
    this.setLossRates(0, 0);
    for (const node of this.nodes.values()) {
      if (node.paused) this.resume(node.id);
      if (!node.up) this.restart(node.id);
      node.clockRate = 1;
      node.slowFsync = false;
    }
  }

  // ------------------------------------------------------------ whole runs

  /** The members of the config in force at the leader (or the initial config). */
  members(): NodeId[] {
    const leader = this.leader();
    const config = leader?.raft.status().config ?? this.config.initialConfig;
    return [...config.voters, ...config.learners];
  }

  /** A leader whose term a majority of its voters has adopted with it as leader. */
  stableLeader(): SimNode | null {
    const leader = this.leader();
    if (leader === null) return null;
    const voters = leader.raft.status().config.voters;
    const following = voters.filter((id) => {
      const n = this.mustNode(id);
      return n.up && n.raft.currentLeader() === leader.id && n.raft.currentTerm() === leader.raft.currentTerm();
    });
    return following.length * 2 > voters.length ? leader : null;
  }

  /** Liveness probe: writes through the current leader until one succeeds, within the bound. */
  probeWrite(key: string, value: string, durationMsMax: number): boolean {
    const deadline = this.nowMs + durationMsMax;
    while (this.nowMs < deadline) {
      if (!this.runUntil(() => this.stableLeader() !== null, deadline - this.nowMs)) return false;
      const leader = this.stableLeader()!;
      const opId = this.invoke(-1, leader.id, { kind: 'put', key, value });
      if (this.runUntil(() => this.opState(opId) !== 'pending', deadline - this.nowMs) && this.opState(opId) === 'ok') return true;
      this.runFor(this.config.tickMs); // a refusal (transfer in progress, busy) is retried later
    }
    return false;
  }

  probeRead(key: string, durationMsMax: number): { ok: boolean; value: string | null } {
    const deadline = this.nowMs + durationMsMax;
    while (this.nowMs < deadline) {
      if (!this.runUntil(() => this.stableLeader() !== null, deadline - this.nowMs)) break;
      const leader = this.stableLeader()!;
      const opId = this.invoke(-1, leader.id, { kind: 'get', key });
      if (this.runUntil(() => this.opState(opId) !== 'pending', deadline - this.nowMs) && this.opState(opId) === 'ok') {
        const out = this.opOutput(opId);
        return { ok: true, value: out !== null && out.kind === 'get' ? out.value : null };
      }
      this.runFor(this.config.tickMs);
    }
    return { ok: false, value: null };
  }

  /** Every acknowledged write is committed at the position it was acknowledged at. */
  checkAcknowledgedWrites(): void {
    for (const op of this.history) {
      // off and local acknowledge before the commit: they promise nothing beyond the leader.
      if (op.state !== 'ok' || op.input.kind === 'get' || op.level === 'off' || op.level === 'local') continue;
      const committed = this.committedTerm.get(op.index);
      if (committed !== op.term) {
        throw new SimViolation('durability', `acknowledged ${op.id} at ${op.index}/${op.term} but ${committed === undefined ? 'nothing' : `term ${committed}`} is committed there`);
      }
    }
  }

  checkHistory(): void {
    const ops: Operation<KvInput, KvOutput>[] = [];
    for (const op of this.history) {
      if (op.state === 'failed' || op.state === 'pending') {
        if (op.input.kind === 'get' || op.state === 'failed') continue;
      }
      if (op.input.kind === 'get' && op.state !== 'ok') continue;
      // Follower reads are not linearizable by design; checkFollowerReads covers them.
      if (op.input.kind === 'get' && op.readKind !== 'quorum' && op.readKind !== 'lease') continue;
      const durable = op.state === 'ok' && op.level !== 'off' && op.level !== 'local';
      ops.push({
        clientId: op.clientId,
        input: op.input,
        output: op.output ?? (op.input.kind === 'put' ? { kind: 'put' } : op.input.kind === 'cas' ? { kind: 'cas', succeeded: false } : { kind: 'get', value: null }),
        callTime: op.callTime,
        returnTime: durable || op.input.kind === 'get' ? op.returnTime : Infinity,
      });
    }
    const result = checkLinearizability(kvModel, ops, { stepsMax: 2_000_000 });
    if (result.result === 'illegal') throw new SimViolation('linearizability', result.description);
  }

  /**
   * Stale, bounded-staleness and min-revision reads: each returned the key's value in the
   * applied state it was served from; a min-revision read was served from a state at or past its
   * revision; a bounded read from a state missing no write committed more than its bound ago.
   */
  checkFollowerReads(): void {
    for (const op of this.history) {
      if (op.input.kind !== 'get' || op.state !== 'ok' || op.servedAt < 0) continue;
      const history = this.keyHistory.get(op.input.key) ?? [];
      let expected: string | null = null;
      for (const h of history) if (h.index <= op.servedAt) expected = h.value;
      const got = op.output?.kind === 'get' ? op.output.value : undefined;
      if (got !== expected) throw new SimViolation('follower read', `${op.id} read ${op.input.key}=${got} at applied ${op.servedAt}, the log says ${expected}`);
      if (op.readKind === 'min_revision' && op.servedAt < op.minRevision) {
        throw new SimViolation('min_revision', `${op.id} wanted revision ${op.minRevision}, served from ${op.servedAt}`);
      }
      if (op.readKind === 'bounded') {
        const missingSince = this.commitTimeMs[op.servedAt + 1];
        if (missingSince !== undefined && missingSince < op.returnTime - op.maxStalenessMs) {
          throw new SimViolation('bounded staleness', `${op.id} at ${op.returnTime.toFixed(1)} served state ${op.servedAt}, missing index ${op.servedAt + 1} committed at ${missingSince.toFixed(1)}, beyond its ${op.maxStalenessMs}ms bound`);
        }
      }
    }
  }

  /** All live members of the final config have applied the same state. */
  checkConvergence(durationMsMax: number): void {
    const members = this.members().map((id) => this.mustNode(id));
    const converged = (): boolean => {
      const leader = this.stableLeader();
      if (leader === null) return false;
      const target = leader.raft.log.committed;
      return members.every((n) => n.up && n.sm.applied >= target && n.raft.log.committed >= target);
    };
    if (!this.runUntil(converged, durationMsMax)) {
      const detail = members.map((n) => `${n.id}:applied=${n.sm.applied},commit=${n.raft.log.committed}`).join(' ');
      throw new SimViolation('liveness', `members did not converge within ${durationMsMax}ms: ${detail}`);
    }
    const byIndex = new Map<number, string>();
    for (const n of members) {
      const known = byIndex.get(n.sm.applied);
      const digest = n.sm.digest();
      if (known !== undefined && known !== digest) throw new SimViolation('convergence', `${n.id} state differs at ${n.sm.applied}`);
      byIndex.set(n.sm.applied, digest);
    }
  }

  statsNow(): SimStats {
    let opsOk = 0;
    let opsFailed = 0;
    let opsUnknown = 0;
    for (const op of this.history) {
      if (op.state === 'ok') opsOk++;
      else if (op.state === 'failed') opsFailed++;
      else opsUnknown++;
    }
    let maxCommit = 0;
    for (const n of this.nodes.values()) maxCommit = Math.max(maxCommit, n.raft.log.committed);
    return { timeMs: this.nowMs, events: this.events, opsOk, opsFailed, opsUnknown, maxCommit, ...this.stats };
  }
}

function describeInput(input: KvInput): string {
  switch (input.kind) {
    case 'put':
      return `put ${input.key}=${input.value}`;
    case 'get':
      return `get ${input.key}`;
    case 'delete':
      return `delete ${input.key}`;
    case 'cas':
      return `cas ${input.key} ${input.expected ?? 'null'}->${input.value}`;
  }
}

function describeOutput(output: KvOutput): string {
  switch (output.kind) {
    case 'get':
      return `=${output.value ?? 'null'}`;
    case 'cas':
      return output.succeeded ? 'swapped' : 'not swapped';
    default:
      return '';
  }
}
