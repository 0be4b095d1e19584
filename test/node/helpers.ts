// Shared fixtures for in-process member tests: free ports on 127.0.0.1, temporary data
// directories, clusters of ChorusNode in this process, polling for conditions.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { ChorusNode } from '../../src/server/chorus-node.ts';
import type { ChorusNodeConfig } from '../../src/node/config.ts';
import { createJsonLogger } from '../../src/shared/logger.ts';
import type { Logger } from '../../src/shared/logger.ts';

export const HOST = '127.0.0.1';

/**
 * Ports that were free a moment ago, held open together, then released for members to take.
 * They come from below Linux's ephemeral range (32768-60999): a port the kernel hands out for
 * listen(0) is also handed out as the local end of outgoing connections, so another test's
 * client could take it in the moment between our release and a member's listen.
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let attempts = 0; servers.length < count && attempts < 200; attempts++) {
      const port = 20_000 + Math.floor(Math.random() * 12_000);
      const server = createServer();
      const bound = await new Promise<boolean>((resolve) => {
        server.once('error', () => resolve(false));
        server.listen(port, HOST, () => resolve(true));
      });
      if (bound) servers.push(server);
    }
    if (servers.length < count) throw new Error(`could not find ${count} free ports`);
    return servers.map((s) => (s.address() as AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

export async function tempDir(t: TestContext, prefix = 'chorus-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  // A member still closing may write one last file while the directory goes: retry, and never
  // fail a test over its cleanup.
  t.after(() => rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 }).catch(() => undefined));
  return dir;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` until it holds; fails after `timeoutMs` (a generous bound, not a measurement). */
export async function waitFor<T>(condition: () => T | undefined | null | false | Promise<T | undefined | null | false>, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value !== undefined && value !== null && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for: ${what}${lastError === undefined ? '' : ` (last error: ${String(lastError)})`}`);
    }
    await sleep(20);
  }
}

/** Logs to stderr only when CHORUS_TEST_LOGS is set (keeps test output readable). */
export function testLogger(id: string): Logger {
  const level = process.env['CHORUS_TEST_LOGS'];
  return createJsonLogger({ level: level === 'debug' ? 'debug' : 'info', base: { member: id }, write: level === undefined ? () => {} : undefined });
}

export interface ClusterSpec {
  readonly ids: readonly string[];
  readonly dirs: ReadonlyMap<string, string>;
  readonly peerPorts: ReadonlyMap<string, number>;
  readonly clientPorts: ReadonlyMap<string, number>;
  readonly initialCluster: string;
}

export async function clusterSpec(t: TestContext, size: number): Promise<ClusterSpec> {
  const ids = Array.from({ length: size }, (_, i) => `n${i + 1}`);
  const ports = await freePorts(size * 2);
  const base = await tempDir(t);
  const peerPorts = new Map(ids.map((id, i) => [id, ports[i]!]));
  const clientPorts = new Map(ids.map((id, i) => [id, ports[size + i]!]));
  const dirs = new Map(ids.map((id) => [id, join(base, id)]));
  const initialCluster = ids.map((id) => `${id}=${HOST}:${peerPorts.get(id)!}`).join(',');
  return { ids, dirs, peerPorts, clientPorts, initialCluster };
}

export type NodeOverrides = Partial<Omit<ChorusNodeConfig, 'id' | 'dataDir' | 'listenClient' | 'listenPeer' | 'initialCluster'>>;

export function memberConfig(spec: ClusterSpec, id: string, overrides: NodeOverrides = {}): ChorusNodeConfig {
  return {
    id,
    dataDir: spec.dirs.get(id)!,
    listenClient: `${HOST}:${spec.clientPorts.get(id)!}`,
    listenPeer: `${HOST}:${spec.peerPorts.get(id)!}`,
    initialCluster: spec.initialCluster,
    tickMs: 50, // generous: CI shares two cores among three members and the test runner
    electionTicks: 10,
    logger: testLogger(id),
    ...overrides,
  };
}

export class TestCluster {
  readonly nodes = new Map<string, ChorusNode>();
  /** Members started with join: their spec (which lists them) and settings, for restarts. */
  private readonly joiners = new Map<string, { spec: ClusterSpec; overrides: NodeOverrides }>();

  constructor(readonly spec: ClusterSpec, private readonly overrides: NodeOverrides) {}

  async start(id: string, overrides: NodeOverrides = {}): Promise<ChorusNode> {
    const joiner = this.joiners.get(id);
    const config = joiner === undefined
      ? memberConfig(this.spec, id, { ...this.overrides, ...overrides })
      : memberConfig(joiner.spec, id, { ...this.overrides, ...joiner.overrides, ...overrides });
    const node = await ChorusNode.start(config);
    this.nodes.set(id, node);
    return node;
  }

  /** Starts member `id` of `full` (a spec listing more members than the cluster started with)
   * as a member joining the running cluster: empty configuration, the cluster's id. */
  async join(full: ClusterSpec, id: string, overrides: NodeOverrides = {}): Promise<ChorusNode> {
    const clusterId = [...this.nodes.values()][0]!.config.clusterId;
    this.joiners.set(id, { spec: full, overrides: { clusterId, join: true, ...overrides } });
    return this.start(id);
  }

  /** The peer address of a member of `full`, as POST /v1/members takes it. */
  static peerAddress(full: ClusterSpec, id: string): string {
    return `${HOST}:${full.peerPorts.get(id)!}`;
  }

  async stop(id: string): Promise<void> {
    const node = this.nodes.get(id);
    this.nodes.delete(id);
    await node?.stop();
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.nodes.keys()].map((id) => this.stop(id)));
  }

  node(id: string): ChorusNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`${id} is not running`);
    return node;
  }

  /** The running member that leads, once every running member agrees on it. */
  async leader(timeoutMs = 20_000): Promise<ChorusNode> {
    return waitFor(() => {
      const running = [...this.nodes.values()];
      const leaders = running.filter((n) => n.debugState().role === 'leader');
      if (leaders.length !== 1) return undefined;
      const leader = leaders[0]!;
      return running.every((n) => n.debugState().leaderId === leader.id) ? leader : undefined;
    }, 'a leader known to every running member', timeoutMs);
  }

  followers(leader: ChorusNode): ChorusNode[] {
    return [...this.nodes.values()].filter((n) => n !== leader);
  }
}

/** Starts the first `initial` members of a spec of `total`; the others can join later. */
export async function startGrowableCluster(t: TestContext, initial: number, total: number, overrides: NodeOverrides = {}): Promise<{ cluster: TestCluster; full: ClusterSpec }> {
  const full = await clusterSpec(t, total);
  const ids = full.ids.slice(0, initial);
  const spec: ClusterSpec = { ...full, ids, initialCluster: ids.map((id) => `${id}=${HOST}:${full.peerPorts.get(id)!}`).join(',') };
  const cluster = new TestCluster(spec, overrides);
  t.after(() => cluster.stopAll());
  await Promise.all(ids.map((id) => cluster.start(id)));
  return { cluster, full };
}

/** Starts a cluster in this process; every member is stopped when the test ends. */
export async function startCluster(t: TestContext, size: number, overrides: NodeOverrides = {}): Promise<TestCluster> {
  const spec = await clusterSpec(t, size);
  const cluster = new TestCluster(spec, overrides);
  t.after(() => cluster.stopAll());
  await Promise.all(spec.ids.map((id) => cluster.start(id)));
  return cluster;
}

export async function http(method: string, url: string, body?: string | Uint8Array, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; text: string; json: () => unknown }> {
  // A deadline on every request: a hung member fails the test instead of stalling the run.
  const res = await fetch(url, { method, body, headers, signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) as unknown };
}

/** A three-member cluster whose members also listen with the binary protocol, each on a port the
 * kernel picks (read it back from node.binaryAddress; a port picked beforehand could be taken by
 * another test process meanwhile). */
export async function binaryCluster(t: TestContext): Promise<TestCluster> {
  return startCluster(t, 3, { listenBinary: `${HOST}:0` });
}
