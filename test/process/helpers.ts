// Real member processes (bin/chorus.js start) on 127.0.0.1 for the process tests. Every child
// is killed when the test ends, whatever happened, and again when this process exits.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ClusterView } from '../../src/shared/api-types.ts';
import { clusterSpec, HOST, sleep, waitFor } from '../node/helpers.ts';
import type { ClusterSpec } from '../node/helpers.ts';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = join(REPO_ROOT, 'bin/chorus.js');

/** Output kept per child: the tail, enough for assertions and failure reports. */
const OUTPUT_CHARS_MAX = 256 * 1024;

const everyChild = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of everyChild) child.kill('SIGKILL');
});

export interface MemberProcess {
  readonly id: string;
  readonly child: ChildProcess;
  /** The tail of stdout and stderr together. */
  output: string;
  /** The tail of stderr alone. */
  stderr: string;
  exitCode: number | null;
  exitSignal: NodeJS.Signals | null;
  readonly exited: Promise<void>;
}

/** Spawns `node bin/chorus.js <args>`; killed (SIGKILL) when the test ends if still running. */
export function spawnChorus(t: TestContext, args: readonly string[], options: { cwd?: string } = {}): MemberProcess {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: options.cwd ?? REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  everyChild.add(child);
  const proc: MemberProcess = {
    id: args[args.indexOf('--id') + 1] ?? 'chorus',
    child,
    output: '',
    stderr: '',
    exitCode: null,
    exitSignal: null,
    exited: new Promise<void>((resolveExit) => {
      child.once('exit', (code, signal) => {
        proc.exitCode = code;
        proc.exitSignal = signal;
        everyChild.delete(child);
        resolveExit();
      });
    }),
  };
  const collect = (chunk: Buffer): void => {
    proc.output += chunk.toString('utf8');
    if (proc.output.length > OUTPUT_CHARS_MAX) proc.output = proc.output.slice(-OUTPUT_CHARS_MAX);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', (chunk: Buffer) => {
    collect(chunk);
    proc.stderr += chunk.toString('utf8');
    if (proc.stderr.length > OUTPUT_CHARS_MAX) proc.stderr = proc.stderr.slice(-OUTPUT_CHARS_MAX);
  });
  t.after(async () => {
    if (proc.exitCode === null && proc.exitSignal === null) {
      child.kill('SIGKILL');
      await proc.exited;
    }
  });
  return proc;
}

export class ProcessCluster {
  readonly procs = new Map<string, MemberProcess>();
  /** Members started with --join: the initial cluster and cluster id they were given. */
  private readonly joiners = new Map<string, readonly string[]>();

  constructor(readonly t: TestContext, readonly spec: ClusterSpec, readonly extraArgs: readonly string[]) {}

  /** Its peer address, for POST /v1/members and chorus member add. */
  peerAddress(id: string): string {
    return `${HOST}:${this.spec.peerPorts.get(id)!}`;
  }

  url(id: string): string {
    return `http://${HOST}:${this.spec.clientPorts.get(id)!}`;
  }

  urls(ids: readonly string[] = this.spec.ids): string[] {
    return ids.map((id) => this.url(id));
  }

  startArgs(id: string): string[] {
    return [
      'start',
      '--id', id,
      '--data-dir', this.spec.dirs.get(id)!,
      '--listen-client', `${HOST}:${this.spec.clientPorts.get(id)!}`,
      '--listen-peer', `${HOST}:${this.spec.peerPorts.get(id)!}`,
      '--initial-cluster', this.spec.initialCluster,
      ...this.extraArgs,
      ...(this.joiners.get(id) ?? []),
    ];
  }

  /**
   * Starts `id`, one of the spec's members outside the cluster's initial members, as a member
   * joining the running cluster (--join): its --initial-cluster lists every member and itself
   * (so it can reach them), with the cluster's id.
   */
  async join(id: string, extraArgs: readonly string[] = []): Promise<MemberProcess> {
    const leader = await this.leader();
    const clusterId = (await this.view(leader))!.clusterId;
    const all = [...this.spec.peerPorts].map(([m, port]) => `${m}=${HOST}:${port}`).join(',');
    this.joiners.set(id, ['--initial-cluster', all, '--cluster-id', clusterId, '--join', ...extraArgs]);
    return this.start(id);
  }

  start(id: string): MemberProcess {
    const proc = spawnChorus(this.t, this.startArgs(id));
    this.procs.set(id, proc);
    return proc;
  }

  running(): string[] {
    return [...this.procs].filter(([, p]) => p.exitCode === null && p.exitSignal === null).map(([id]) => id);
  }

  async kill(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<MemberProcess> {
    const proc = this.procs.get(id);
    if (proc === undefined) throw new Error(`${id} was never started`);
    proc.child.kill(signal);
    await proc.exited;
    return proc;
  }

  /** A member's own view (no proxying), or null when it does not answer. */
  async view(id: string): Promise<ClusterView | null> {
    try {
      const res = await fetch(`${this.url(id)}/v1/cluster?scope=local`, { signal: AbortSignal.timeout(1000) });
      return res.status === 200 ? ((await res.json()) as ClusterView) : null;
    } catch {
      return null;
    }
  }

  /** Waits until one running member leads and every running member names it. */
  async leader(timeoutMs = 30_000): Promise<string> {
    return waitFor(async () => {
      const ids = this.running();
      const views = await Promise.all(ids.map((id) => this.view(id)));
      if (views.some((v) => v === null)) return undefined;
      const leaders = views.filter((v) => v!.self.role === 'leader');
      if (leaders.length !== 1) return undefined;
      const leaderId = leaders[0]!.self.id;
      return views.every((v) => v!.leaderId === leaderId) ? leaderId : undefined;
    }, 'a leader known to every running member', timeoutMs);
  }

  /** Waits until `id` has applied at least `index`. */
  async appliedAtLeast(id: string, index: number, timeoutMs = 30_000): Promise<void> {
    await waitFor(async () => {
      const view = await this.view(id);
      return view !== null && view.self.appliedIndex >= index;
    }, `${id} applied ${index}`, timeoutMs);
  }

  describe(): string {
    return [...this.procs].map(([id, p]) => `--- ${id} (exit ${String(p.exitCode)} ${String(p.exitSignal)}):\n${p.output.slice(-4000)}`).join('\n');
  }
}

export async function startProcessCluster(t: TestContext, size: number, extraArgs: readonly string[] = []): Promise<ProcessCluster> {
  const spec = await clusterSpec(t, size);
  const cluster = new ProcessCluster(t, spec, ['--tick-ms', '50', '--election-ticks', '10', ...extraArgs]);
  for (const id of spec.ids) cluster.start(id);
  return cluster;
}

/** Starts the first `initial` of `total` members; the others can join (cluster.join). A later
 * --initial-cluster flag (from join) overrides the initial one, as commander keeps the last. */
export async function startGrowableProcessCluster(t: TestContext, initial: number, total: number, extraArgs: readonly string[] = []): Promise<ProcessCluster> {
  const full = await clusterSpec(t, total);
  const ids = full.ids.slice(0, initial);
  const spec: ClusterSpec = { ...full, initialCluster: ids.map((id) => `${id}=${HOST}:${full.peerPorts.get(id)!}`).join(',') };
  const cluster = new ProcessCluster(t, spec, ['--tick-ms', '50', '--election-ticks', '10', ...extraArgs]);
  for (const id of ids) cluster.start(id);
  return cluster;
}

/** Runs a client command of the CLI to completion: its exit code and output. */
export async function runCli(t: TestContext, args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawnChorus(t, args);
  let stdout = '';
  proc.child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
  });
  await proc.exited;
  return { code: proc.exitCode, stdout, stderr: proc.stderr };
}

/** The newest WAL segment of a member's data directory. */
export async function newestSegment(dataDir: string): Promise<string> {
  const walDir = join(dataDir, 'wal');
  const segments = (await readdir(walDir)).filter((name) => name.endsWith('.wal')).sort();
  const newest = segments[segments.length - 1];
  if (newest === undefined) throw new Error(`no WAL segment in ${walDir}`);
  return join(walDir, newest);
}

/** Where the records of a WAL segment end: the file may continue with preallocated zeros
 * (docs/storage-format.md); a zero length field starts them. */
export async function walRecordsEnd(segment: string): Promise<number> {
  const bytes = await readFile(segment);
  let position = 0;
  while (position + 8 <= bytes.length && bytes.readUInt32LE(position) !== 0) position += 8 + bytes.readUInt32LE(position);
  return Math.min(position, bytes.length);
}

/** Runs `task` over `items` with at most `concurrency` in flight. */
export async function pool<T>(items: readonly T[], concurrency: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await task(item);
    }
  });
  await Promise.all(workers);
}

export { sleep, waitFor };
