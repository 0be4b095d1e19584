// A hand-driven network of real Raft cores for scripted scenarios: every message is held until
// the test delivers or drops it, and a "crash" rebuilds a member from what it made durable.
import { ImageAssembler, Raft, type Entry, type HardState, type Message, type RaftOptions, type Snapshot } from '../../src/core/raft/index.ts';
import { Prng } from '../../sim/prng.ts';

interface Disk {
  hardState: HardState | null;
  snapshot: Snapshot | null;
  entries: Entry[];
}

export class ScenarioNet {
  readonly rafts = new Map<string, Raft>();
  readonly disks = new Map<string, Disk>();
  readonly down = new Set<string>();
  /** Messages sent and not yet delivered or dropped. */
  inFlight: Message[] = [];
  /** Normal entries applied by each member, as "index/term:text". */
  readonly applied = new Map<string, string[]>();
  /** Read states each member produced: [read index, its commit index at that moment]. */
  readonly readStates = new Map<string, [number, number][]>();
  private readonly prng: Prng;
  /** The image each member is receiving (lost when it crashes). */
  private readonly images = new Map<string, ImageAssembler>();

  constructor(readonly ids: readonly string[], private readonly options: Partial<RaftOptions> = {}, seed = 1) {
    this.prng = new Prng(seed);
    for (const id of ids) {
      this.disks.set(id, { hardState: null, snapshot: null, entries: [] });
      this.applied.set(id, []);
      this.readStates.set(id, []);
      this.boot(id);
    }
  }

  private imagesOf(id: string): ImageAssembler {
    return this.images.get(id)!;
  }

  private boot(id: string): void {
    const disk = this.disks.get(id)!;
    this.images.set(id, new ImageAssembler());
    this.rafts.set(id, new Raft(
      { id, random: this.prng.fork(), electionTicks: 10, heartbeatTicks: 1, assertInvariants: true, ...this.options },
      { initialConfig: { voters: [...this.ids], learners: [] }, hardState: disk.hardState, snapshot: disk.snapshot, entries: disk.entries },
    ));
  }

  raft(id: string): Raft {
    return this.rafts.get(id)!;
  }

  /** Persists, sends and applies every pending ready of every live member. */
  flush(): void {
    for (let rounds = 0; rounds < 100; rounds++) {
      let any = false;
      for (const id of this.ids) {
        const raft = this.raft(id);
        if (this.down.has(id) || !raft.hasReady()) continue;
        any = true;
        const ready = raft.ready();
        const disk = this.disks.get(id)!;
        const installing = this.imagesOf(id).take(ready);
        if (installing !== null) {
          disk.snapshot = installing;
          disk.entries = ready.logAfterSnapshot === 'keep' ? disk.entries.filter((e) => e.index > installing.meta.index) : [];
        }
        const first = ready.entries[0];
        if (first !== undefined) disk.entries = [...disk.entries.filter((e) => e.index < first.index), ...ready.entries];
        if (ready.hardState !== null) disk.hardState = ready.hardState;
        this.inFlight.push(...ready.messagesBeforePersist, ...ready.messages);
        for (const e of ready.committedEntries) {
          if (e.type === 'normal') this.applied.get(id)!.push(`${e.index}/${e.term}:${new TextDecoder().decode(e.data)}`);
        }
        for (const rs of ready.readStates) this.readStates.get(id)!.push([rs.index, raft.log.committed]);
        raft.advance(ready);
      }
      if (!any) return;
    }
    throw new Error('flush did not settle');
  }

  /** Delivers held messages accepted by `allow` (dropping the rest) until none is left. */
  deliver(allow: (m: Message) => boolean = () => true, roundsMax = 200): void {
    for (let round = 0; round < roundsMax; round++) {
      this.flush();
      if (this.inFlight.length === 0) return;
      const batch = this.inFlight;
      this.inFlight = [];
      for (const m of batch) {
        if (this.down.has(m.to) || this.down.has(m.from) || !allow(m)) continue;
        this.raft(m.to).step(m);
      }
    }
  }

  /** Drops every held message. */
  dropAll(): void {
    this.flush();
    this.inFlight = [];
  }

  /** Ticks one member until it starts a campaign (others do not tick). */
  campaign(id: string): void {
    const raft = this.raft(id);
    const termBefore = raft.currentTerm();
    const roleBefore = raft.currentRole();
    const started = (): boolean => raft.currentTerm() > termBefore || (raft.currentRole() !== roleBefore && raft.currentRole() !== 'follower');
    for (let i = 0; i < 40 && !started(); i++) raft.tick();
  }

  tick(id: string, ticks: number): void {
    for (let i = 0; i < ticks; i++) this.raft(id).tick();
  }

  /** Power loss: everything not flushed to the member's disk is gone. */
  crash(id: string): void {
    this.down.add(id);
    this.inFlight = this.inFlight.filter((m) => m.from !== id);
  }

  restart(id: string): void {
    this.down.delete(id);
    this.boot(id);
  }

  propose(id: string, text: string): ReturnType<Raft['propose']> {
    return this.raft(id).propose(new TextEncoder().encode(text));
  }

  leaders(): string[] {
    return this.ids.filter((id) => !this.down.has(id) && this.raft(id).currentRole() === 'leader');
  }
}

/** Only messages between members of `group`. */
export function within(group: readonly string[]): (m: Message) => boolean {
  return (m) => group.includes(m.from) && group.includes(m.to);
}
