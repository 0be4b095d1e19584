// A Chorus cluster for the bench: each member a `chorus start` process (bin/chorus.js) on
// loopback ports picked by the kernel, or an existing cluster given by its client URLs.
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClusterView, Readiness } from '../src/shared/api-types.ts';
import { OwnedCluster } from './cluster.ts';
import type { BenchCluster, LearnerJoin } from './cluster.ts';
import { sumSamples } from './prometheus.ts';
import { freePorts, requestJson, spawnLogged, stopProcess, waitFor } from './processes.ts';
import type { ManagedProcess } from './processes.ts';

const HOST = '127.0.0.1';
const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../bin/chorus.js');
/** A member is caught up when the leader's log is at most this many entries ahead of it. */
const CAUGHT_UP_LAG_MAX = 1000;
/** A learner bootstrapping a large state may take this long to catch up. */
const LEARNER_TIMEOUT_MS = 600_000;

async function clusterView(url: string): Promise<ClusterView> {
  const { status, doc } = await requestJson(`${url}/v1/cluster`);
  if (status !== 200) throw new Error(`GET ${url}/v1/cluster answered ${status}`);
  return doc as ClusterView;
}

/** The index of the URL whose host:port is `address`, or -1. */
function indexOfAddress(urls: readonly string[], address: string | null): number {
  if (address === null) return -1;
  return urls.findIndex((url) => new URL(url).host === address);
}

async function readyLeader(urls: readonly string[], running: (i: number) => boolean): Promise<string | undefined> {
  let leaderId: string | null = null;
  for (let i = 0; i < urls.length; i++) {
    if (!running(i)) continue;
    const { status, doc } = await requestJson(`${urls[i]}/readyz`);
    const readiness = doc as Readiness;
    if (status !== 200 || readiness.ready !== true || readiness.leaderId === null) return undefined;
    if (leaderId !== null && readiness.leaderId !== leaderId) return undefined;
    leaderId = readiness.leaderId;
  }
  return leaderId ?? undefined;
}

export class ChorusProcessCluster extends OwnedCluster {
  readonly system = 'chorus' as const;
  readonly urls: readonly string[];
  readonly binaryAddresses: readonly string[];
  private readonly ids: readonly string[];
  private readonly initialCluster: string;
  private readonly clientPorts: readonly number[];
  private readonly peerPorts: readonly number[];
  private readonly binaryPorts: readonly number[];

  private constructor(
    dir: string,
    ports: readonly number[],
    size: number,
    keepData: boolean,
    private readonly extraArgs: readonly string[],
    private readonly nodeArgs: readonly string[],
  ) {
    super(dir, size, keepData);
    this.ids = Array.from({ length: size }, (_, i) => `n${i + 1}`);
    this.clientPorts = ports.slice(0, size);
    this.peerPorts = ports.slice(size, 2 * size);
    this.binaryPorts = ports.slice(2 * size, 3 * size);
    this.urls = this.clientPorts.map((port) => `http://${HOST}:${port}`);
    this.binaryAddresses = this.binaryPorts.map((port) => `${HOST}:${port}`);
    this.initialCluster = this.ids.map((id, i) => `${id}=${HOST}:${this.peerPorts[i]}`).join(',');
  }

  /** Whether the members expose POST /v1/test/faults (started with --enable-test-faults). */
  get testFaults(): boolean {
    return this.extraArgs.includes('--enable-test-faults');
  }

  /** The member id of member `index` (n1, n2, ...), as the fault hooks name it. */
  memberId(index: number): string {
    const id = this.ids[index];
    if (id === undefined) throw new RangeError(`no member ${index}`);
    return id;
  }

  /** `extraArgs` go to `chorus start`; `nodeArgs` to node itself (e.g. --cpu-prof, for profiling). */
  static async start(options: {
    dir: string;
    size: number;
    keepData: boolean;
    extraArgs?: readonly string[];
    nodeArgs?: readonly string[];
  }): Promise<ChorusProcessCluster> {
    mkdirSync(options.dir, { recursive: true });
    const ports = await freePorts(3 * options.size);
    const cluster = new ChorusProcessCluster(options.dir, ports, options.size, options.keepData, options.extraArgs ?? [], options.nodeArgs ?? []);
    cluster.start();
    return cluster;
  }

  protected spawnMember(index: number): ManagedProcess {
    const id = this.ids[index]!;
    const args = [
      ...this.nodeArgs,
      BIN, 'start',
      '--id', id,
      '--data-dir', join(this.dir, id),
      '--listen-client', `${HOST}:${this.clientPorts[index]}`,
      '--listen-peer', `${HOST}:${this.peerPorts[index]}`,
      '--listen-binary', `${HOST}:${this.binaryPorts[index]}`,
      '--initial-cluster', this.initialCluster,
      ...this.extraArgs,
    ];
    return spawnLogged(`chorus ${id}`, process.execPath, args, join(this.dir, `${id}.log`), this.dir);
  }

  async leaderIndex(): Promise<number> {
    for (let i = 0; i < this.urls.length; i++) {
      if (!this.isRunning(i)) continue;
      try {
        const view = await clusterView(this.urls[i]!);
        const index = view.leaderId === null ? -1 : this.ids.indexOf(view.leaderId);
        if (index >= 0) return index;
      } catch {
        // ask the next member
      }
    }
    throw new Error('no Chorus member knows a leader');
  }

  async waitReady(timeoutMs: number): Promise<number> {
    const leaderId = await waitFor('the Chorus members to be ready and agree on a leader', timeoutMs, async () => {
      this.checkAlive();
      return readyLeader(this.urls, (i) => this.isRunning(i));
    });
    return this.ids.indexOf(leaderId);
  }

  private learner: { readonly proc: ManagedProcess; readonly id: string } | null = null;

  /** Adds member n<size+1> as a learner through POST /v1/members, then starts it with --join. */
  async addLearner(): Promise<LearnerJoin> {
    if (this.learner !== null) throw new Error('a learner is already running');
    const id = `n${this.ids.length + 1}`;
    const [clientPort, peerPort] = await freePorts(2);
    const leaderUrl = this.urls[await this.leaderIndex()]!;
    const { clusterId } = await clusterView(leaderUrl);
    const peerAddress = `${HOST}:${peerPort}`;
    const startedMs = performance.now();
    const { status, doc } = await requestJson(`${leaderUrl}/v1/members`, { method: 'POST', body: { id, peerAddress, learner: true }, timeoutMs: 30_000 });
    if (status !== 200) throw new Error(`POST /v1/members answered ${status}: ${JSON.stringify(doc)}`);
    const target = (doc as { commitIndex: number }).commitIndex;
    const args = [
      ...this.nodeArgs, BIN, 'start', '--id', id, '--data-dir', join(this.dir, id),
      '--listen-client', `${HOST}:${clientPort}`, '--listen-peer', peerAddress,
      '--initial-cluster', `${this.initialCluster},${id}=${peerAddress}`, '--cluster-id', clusterId, '--join',
    ];
    const proc = spawnLogged(`chorus ${id}`, process.execPath, args, join(this.dir, `${id}.log`), this.dir);
    this.learner = { proc, id };
    const url = `http://${HOST}:${clientPort}`;
    await waitFor(`learner ${id} to apply index ${target}`, LEARNER_TIMEOUT_MS, async () => {
      if (!proc.isRunning()) throw new Error(`learner ${id} exited (log: ${join(this.dir, `${id}.log`)})`);
      const { status: code, doc: local } = await requestJson(`${url}/v1/cluster?scope=local`);
      return code === 200 && (local as ClusterView).self.appliedIndex >= target ? true : undefined;
    }, 50);
    const ms = performance.now() - startedMs;
    const metrics = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
    return { ms, snapshotBytes: sumSamples(metrics, 'chorus_snapshot_installed_bytes_total') };
  }

  async removeLearner(): Promise<void> {
    const learner = this.learner;
    if (learner === null) return;
    this.learner = null;
    const leaderUrl = this.urls[await this.leaderIndex()]!;
    const { status, doc } = await requestJson(`${leaderUrl}/v1/members/${learner.id}`, { method: 'DELETE', timeoutMs: 30_000 });
    await stopProcess(learner.proc);
    if (status !== 200) throw new Error(`DELETE /v1/members/${learner.id} answered ${status}: ${JSON.stringify(doc)}`);
  }

  override async stop(): Promise<void> {
    if (this.learner !== null) await stopProcess(this.learner.proc);
    this.learner = null;
    await super.stop();
  }

  async caughtUp(index: number): Promise<boolean> {
    const leader = await this.leaderIndex();
    if (leader === index) return true;
    const view = await clusterView(this.urls[leader]!);
    const member = view.members.find((m) => m.id === this.ids[index]);
    if (member?.lagEntries === null || member?.lagEntries === undefined || !member.reachable) return false;
    const { status } = await requestJson(`${this.urls[index]}/readyz`);
    return status === 200 && member.lagEntries <= CAUGHT_UP_LAG_MAX;
  }
}

/** A Chorus cluster the bench does not run (`chorus bench --endpoints`): load phases only. */
export class ChorusRemoteCluster implements BenchCluster {
  readonly system = 'chorus' as const;
  readonly owned = false;
  readonly dir = null;

  constructor(readonly urls: readonly string[]) {}

  async leaderIndex(): Promise<number> {
    for (const url of this.urls) {
      try {
        const view = await clusterView(url);
        const leader = view.members.find((m) => m.id === view.leaderId);
        const index = indexOfAddress(this.urls, leader?.clientAddress ?? null);
        if (index >= 0) return index;
        // The leader is not among the endpoints given: send to the first one, which forwards.
        if (view.leaderId !== null) return 0;
      } catch {
        // ask the next member
      }
    }
    throw new Error(`no leader known at ${this.urls.join(', ')}`);
  }

  async waitReady(timeoutMs: number): Promise<number> {
    await waitFor('a Chorus leader', timeoutMs, async () => (await this.leaderIndex()) >= 0 ? true : undefined);
    return this.leaderIndex();
  }

  async caughtUp(): Promise<boolean> {
    return true;
  }

  async residentBytes(): Promise<(number | null)[]> {
    return this.urls.map(() => null);
  }

  async kill(): Promise<void> {
    throw new Error('the bench does not run these members: it cannot kill them');
  }

  async restart(): Promise<void> {
    throw new Error('the bench does not run these members: it cannot restart them');
  }

  isRunning(): boolean {
    return true;
  }

  async stop(): Promise<void> {}
}
