// The etcd cluster the bench compares against: Debian's etcd-server (3.4), each member its own
// process on loopback ports picked by the kernel, with etcd's defaults (fsync on, 100 ms
// heartbeat, 1 s election timeout: the same timing as Chorus's 100 ms tick and 10-tick election).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { OwnedCluster } from './cluster.ts';
import type { LearnerJoin } from './cluster.ts';
import { ensureDebianBinary } from './debian.ts';
import type { BinaryAvailability } from './debian.ts';
import { freePorts, requestJson, spawnLogged, stopProcess, waitFor } from './processes.ts';
import type { ManagedProcess } from './processes.ts';

const HOST = '127.0.0.1';
const CAUGHT_UP_LAG_MAX = 1000;
/** A learner bootstrapping a large state may take this long to catch up. */
const LEARNER_TIMEOUT_MS = 600_000;

export type EtcdAvailability = BinaryAvailability;

/**
 * Finds etcd, or installs Debian's etcd-server with apt-get when missing (root only). Note that
 * on a machine with systemd the package also starts a system etcd on 2379/2380; the bench uses
 * other ports, so the two do not meet.
 */
export function ensureEtcd(log: (line: string) => void): EtcdAvailability {
  return ensureDebianBinary({ binary: 'etcd', debianPackage: 'etcd-server', versionArgs: ['--version'], versionPattern: /etcd Version:\s*(\S+)/ }, log);
}

interface EtcdStatus {
  readonly header?: { readonly member_id?: string };
  readonly leader?: string;
  readonly raftIndex?: string;
  readonly dbSize?: string;
}

async function memberStatus(url: string): Promise<EtcdStatus> {
  const { status, doc } = await requestJson(`${url}/v3/maintenance/status`, { method: 'POST', body: {} });
  if (status !== 200) throw new Error(`${url}/v3/maintenance/status answered ${status}`);
  return doc as EtcdStatus;
}

export class EtcdProcessCluster extends OwnedCluster {
  readonly system = 'etcd' as const;
  readonly urls: readonly string[];
  private readonly names: readonly string[];
  private readonly clientPorts: readonly number[];
  private readonly peerPorts: readonly number[];
  private readonly initialCluster: string;
  private readonly token = `chorus-bench-${process.pid}-${Date.now()}`;

  private constructor(dir: string, private readonly etcdPath: string, ports: readonly number[], size: number, keepData: boolean) {
    super(dir, size, keepData);
    this.names = Array.from({ length: size }, (_, i) => `e${i + 1}`);
    this.clientPorts = ports.slice(0, size);
    this.peerPorts = ports.slice(size, 2 * size);
    this.urls = this.clientPorts.map((port) => `http://${HOST}:${port}`);
    this.initialCluster = this.names.map((name, i) => `${name}=http://${HOST}:${this.peerPorts[i]}`).join(',');
  }

  static async start(options: { dir: string; etcdPath: string; size: number; keepData: boolean }): Promise<EtcdProcessCluster> {
    mkdirSync(options.dir, { recursive: true });
    const ports = await freePorts(2 * options.size);
    const cluster = new EtcdProcessCluster(options.dir, options.etcdPath, ports, options.size, options.keepData);
    cluster.start();
    return cluster;
  }

  protected spawnMember(index: number): ManagedProcess {
    const name = this.names[index]!;
    const client = `http://${HOST}:${this.clientPorts[index]}`;
    const peer = `http://${HOST}:${this.peerPorts[index]}`;
    // On a restart the data directory exists and etcd ignores the --initial-cluster* flags.
    const args = [
      '--name', name,
      '--data-dir', join(this.dir, name),
      '--listen-client-urls', client,
      '--advertise-client-urls', client,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', this.initialCluster,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', this.token,
      '--logger', 'zap',
      '--log-level', 'warn',
    ];
    return spawnLogged(`etcd ${name}`, this.etcdPath, args, join(this.dir, `${name}.log`));
  }

  /** member_id of each running member (by index), and the leader's id, from each status. */
  private async statuses(): Promise<(EtcdStatus | null)[]> {
    return Promise.all(this.urls.map((url, i) => (this.isRunning(i) ? memberStatus(url).catch(() => null) : Promise.resolve(null))));
  }

  async leaderIndex(): Promise<number> {
    const statuses = await this.statuses();
    for (const status of statuses) {
      const leader = status?.leader;
      if (leader === undefined || leader === '0') continue;
      const index = statuses.findIndex((s) => s?.header?.member_id === leader);
      if (index >= 0) return index;
    }
    throw new Error('no etcd member knows a leader');
  }

  async waitReady(timeoutMs: number): Promise<number> {
    return waitFor('the etcd members to be healthy and agree on a leader', timeoutMs, async () => {
      this.checkAlive();
      for (let i = 0; i < this.urls.length; i++) {
        if (!this.isRunning(i)) continue;
        const { status, doc } = await requestJson(`${this.urls[i]}/health`);
        if (status !== 200 || (doc as { health?: unknown }).health !== 'true') return undefined;
      }
      const statuses = await this.statuses();
      const leaders = new Set(statuses.filter((s) => s !== null).map((s) => s.leader));
      if (leaders.size !== 1) return undefined;
      return this.leaderIndex();
    });
  }

  private learner: { readonly proc: ManagedProcess; readonly id: string } | null = null;

  /** Adds member e<size+1> as a learner (POST /v3/cluster/member/add), then starts it on empty
   * data with --initial-cluster-state existing. Its state arrives as etcd's snapshot (the bbolt
   * file) once the leader's log no longer reaches back to index 1. */
  async addLearner(): Promise<LearnerJoin> {
    if (this.learner !== null) throw new Error('a learner is already running');
    const name = `e${this.names.length + 1}`;
    const [clientPort, peerPort] = await freePorts(2);
    const leaderUrl = this.urls[await this.leaderIndex()]!;
    const peer = `http://${HOST}:${peerPort}`;
    const client = `http://${HOST}:${clientPort}`;
    const startedMs = performance.now();
    const { status, doc } = await requestJson(`${leaderUrl}/v3/cluster/member/add`, { method: 'POST', body: { peerURLs: [peer], isLearner: true }, timeoutMs: 30_000 });
    const id = (doc as { member?: { ID?: string } } | null)?.member?.ID;
    if (status !== 200 || id === undefined) throw new Error(`etcd member add answered ${status}: ${JSON.stringify(doc)}`);
    const target = Number((await memberStatus(leaderUrl)).raftIndex);
    const args = [
      '--name', name, '--data-dir', join(this.dir, name),
      '--listen-client-urls', client, '--advertise-client-urls', client,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `${this.initialCluster},${name}=${peer}`, '--initial-cluster-state', 'existing',
      '--logger', 'zap', '--log-level', 'warn',
    ];
    const proc = spawnLogged(`etcd ${name}`, this.etcdPath, args, join(this.dir, `${name}.log`));
    this.learner = { proc, id };
    const dbSize = await waitFor(`etcd learner ${name} to reach raft index ${target}`, LEARNER_TIMEOUT_MS, async () => {
      if (!proc.isRunning()) throw new Error(`etcd learner ${name} exited (log: ${join(this.dir, `${name}.log`)})`);
      const own = await memberStatus(client).catch(() => null);
      return own !== null && Number(own.raftIndex) >= target ? Number(own.dbSize ?? 0) : undefined;
    }, 50);
    return { ms: performance.now() - startedMs, snapshotBytes: dbSize };
  }

  async removeLearner(): Promise<void> {
    const learner = this.learner;
    if (learner === null) return;
    this.learner = null;
    const leaderUrl = this.urls[await this.leaderIndex()]!;
    const { status, doc } = await requestJson(`${leaderUrl}/v3/cluster/member/remove`, { method: 'POST', body: { ID: learner.id }, timeoutMs: 30_000 });
    await stopProcess(learner.proc);
    if (status !== 200) throw new Error(`etcd member remove answered ${status}: ${JSON.stringify(doc)}`);
  }

  override async stop(): Promise<void> {
    if (this.learner !== null) await stopProcess(this.learner.proc);
    this.learner = null;
    await super.stop();
  }

  async caughtUp(index: number): Promise<boolean> {
    const statuses = await this.statuses();
    const leader = await this.leaderIndex();
    const leaderIndex = Number(statuses[leader]?.raftIndex ?? Number.NaN);
    const memberIndex = Number(statuses[index]?.raftIndex ?? Number.NaN);
    return Number.isFinite(leaderIndex) && Number.isFinite(memberIndex) && leaderIndex - memberIndex <= CAUGHT_UP_LAG_MAX;
  }
}
