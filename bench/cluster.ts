// A cluster under test, as the phases see it: client URLs, the leader, and (when the bench
// started the members itself) their processes, to kill, restart and measure.
import { rm } from 'node:fs/promises';
import { checkExited, killProcess, residentBytes, stopProcess } from './processes.ts';
import type { ManagedProcess } from './processes.ts';
import type { SystemName } from './systems.ts';

export interface BenchCluster {
  readonly system: SystemName;
  /** Client base URLs, one per member ("http://127.0.0.1:PORT"). */
  readonly urls: readonly string[];
  /** Chorus: each member's binary protocol address (host:port), when it serves one. */
  readonly binaryAddresses?: readonly string[];
  /**
   * Adds a learner on empty data (its own process) and resolves once it has applied everything
   * the leader had committed when it was added: how long that took, and how many bytes of
   * snapshot it installed. Only for clusters the bench runs.
   */
  addLearner?(): Promise<LearnerJoin>;
  /** Removes the learner added by addLearner and stops its process. */
  removeLearner?(): Promise<void>;
  /** Whether the bench runs the members (kill, restart and memory need it). */
  readonly owned: boolean;
  /** The index in `urls` of the member that leads now; throws when none is known. */
  leaderIndex(): Promise<number>;
  /** Waits until every running member serves and they agree on a leader; returns its index. */
  waitReady(timeoutMs: number): Promise<number>;
  /** Whether member `index` has (nearly) everything the leader has. */
  caughtUp(index: number): Promise<boolean>;
  /** VmRSS of each member in bytes (null: not running or not ours). */
  residentBytes(): Promise<(number | null)[]>;
  /** SIGKILL. */
  kill(index: number): Promise<void>;
  /** Starts a killed member again on its data. */
  restart(index: number): Promise<void>;
  isRunning(index: number): boolean;
  /** Stops every member and removes the data (unless kept). */
  stop(): Promise<void>;
  /** Where the data and logs are, for error messages. */
  readonly dir: string | null;
}

export interface LearnerJoin {
  readonly ms: number;
  readonly snapshotBytes: number;
}

/** Member processes of a cluster that the bench started under `dir`. */
export abstract class OwnedCluster implements BenchCluster {
  abstract readonly system: SystemName;
  abstract readonly urls: readonly string[];
  readonly owned = true;
  protected readonly procs: (ManagedProcess | null)[];

  constructor(readonly dir: string, size: number, private readonly keepData: boolean) {
    this.procs = Array.from({ length: size }, () => null);
  }

  abstract leaderIndex(): Promise<number>;
  abstract waitReady(timeoutMs: number): Promise<number>;
  abstract caughtUp(index: number): Promise<boolean>;
  /** Spawns member `index` (first start and restarts alike). */
  protected abstract spawnMember(index: number): ManagedProcess;

  start(): void {
    for (let i = 0; i < this.procs.length; i++) this.procs[i] = this.spawnMember(i);
  }

  isRunning(index: number): boolean {
    return this.procs[index]?.isRunning() ?? false;
  }

  async residentBytes(): Promise<(number | null)[]> {
    return Promise.all(this.procs.map((p) => (p !== null && p.isRunning() ? residentBytes(p.pid) : Promise.resolve(null))));
  }

  async kill(index: number): Promise<void> {
    const proc = this.procs[index];
    if (proc !== null && proc !== undefined) await killProcess(proc);
  }

  async restart(index: number): Promise<void> {
    if (this.isRunning(index)) throw new Error(`${this.system} member ${index + 1} is still running`);
    this.procs[index] = this.spawnMember(index);
  }

  /** Throws with the member's last log lines when one of them died unexpectedly. */
  protected checkAlive(): void {
    checkExited(this.procs);
  }

  async stop(): Promise<void> {
    await Promise.all(this.procs.map((p) => (p === null ? Promise.resolve() : stopProcess(p))));
    if (!this.keepData) await rm(this.dir, { recursive: true, force: true });
  }
}
