// The Redis side of the multi-master rows: Debian's redis-server (7), one primary and two
// asynchronous replicas, each its own process on a loopback port picked by the kernel, with its
// own directory. Durability: every member appends to its AOF and fsyncs it before answering
// (`--appendonly yes --appendfsync always`; RDB snapshots off with `--save ''`): the primary
// acknowledges a SET once it is on its own disk, and replicates it afterwards, as Chorus does
// with a multi-master write at w=1. Redis groups the fsync of every write of one event-loop turn.
// Otherwise Redis's defaults, but for --repl-diskless-sync-delay 0 (see redisArgs).
import { mkdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureDebianBinary } from './debian.ts';
import type { BinaryAvailability } from './debian.ts';
import { checkExited, freePorts, spawnLogged, stopProcess, waitFor } from './processes.ts';
import type { ManagedProcess } from './processes.ts';
import { parseInfo, RespEndpoints } from './resp.ts';
import type { RespAddress } from './resp.ts';

const HOST = '127.0.0.1';

/** Finds redis-server, or installs Debian's redis-server with apt-get when missing (root only).
 * With systemd the package also starts a system Redis on 6379; the bench uses other ports. */
export function ensureRedis(log: (line: string) => void): BinaryAvailability {
  return ensureDebianBinary({ binary: 'redis-server', debianPackage: 'redis-server', versionArgs: ['--version'], versionPattern: /\bv=(\S+)/ }, log);
}

/** The arguments of member `index` (0: the primary); exported for the tests. */
export function redisArgs(port: number, dir: string, primaryPort: number | null): string[] {
  return [
    '--port', String(port),
    '--bind', HOST,
    '--dir', dir,
    '--daemonize', 'no',
    '--logfile', '', // stdout, into the member's log file
    '--save', '',
    '--appendonly', 'yes',
    '--appendfsync', 'always',
    // A replica that needs a full resync gets it at once, not after the default 5 s wait for
    // other replicas to share the transfer: the repair row measures the transfer.
    '--repl-diskless-sync-delay', '0',
    ...(primaryPort === null ? [] : ['--replicaof', HOST, String(primaryPort)]),
  ];
}

export class RedisProcessCluster {
  readonly system = 'redis' as const;
  /** Member 0 is the primary, the others its replicas. */
  readonly addresses: readonly RespAddress[];
  /** For management commands (INFO, REPLICAOF, ...): never measured. */
  readonly admin: RespEndpoints;
  private readonly procs: ManagedProcess[] = [];

  private constructor(readonly dir: string, private readonly redisPath: string, ports: readonly number[], private readonly keepData: boolean) {
    this.addresses = ports.map((port) => ({ host: HOST, port }));
    this.admin = new RespEndpoints(this.addresses);
  }

  static async start(options: { dir: string; redisPath: string; size: number; keepData: boolean }): Promise<RedisProcessCluster> {
    mkdirSync(options.dir, { recursive: true });
    const cluster = new RedisProcessCluster(options.dir, options.redisPath, await freePorts(options.size), options.keepData);
    const primaryPort = cluster.addresses[0]!.port;
    cluster.addresses.forEach((address, i) => {
      const name = `r${i + 1}`;
      const dir = join(options.dir, name);
      mkdirSync(dir, { recursive: true });
      cluster.procs.push(spawnLogged(`redis ${name}`, cluster.redisPath, redisArgs(address.port, dir, i === 0 ? null : primaryPort), join(options.dir, `${name}.log`)));
    });
    return cluster;
  }

  get size(): number {
    return this.addresses.length;
  }

  async info(index: number, section: string): Promise<Map<string, string>> {
    return parseInfo(await this.admin.call(index, ['INFO', section]));
  }

  /** Whether replica `index` is attached to the primary and has all it sent so far. */
  async replicaInSync(index: number): Promise<boolean> {
    const [primary, replica] = await Promise.all([this.info(0, 'replication'), this.info(index, 'replication')]);
    return replica.get('master_link_status') === 'up' && replica.get('master_sync_in_progress') === '0'
      && Number(replica.get('master_repl_offset')) >= Number(primary.get('master_repl_offset'));
  }

  /** Waits until every member answers and every replica is attached and in sync. */
  async waitReady(timeoutMs: number): Promise<void> {
    await waitFor('the Redis primary and its replicas to be in sync', timeoutMs, async () => {
      checkExited(this.procs);
      for (let i = 0; i < this.size; i++) await this.admin.call(i, ['PING'], 1000);
      for (let i = 1; i < this.size; i++) if (!(await this.replicaInSync(i))) return undefined;
      return true;
    }, 100);
  }

  async stop(): Promise<void> {
    this.admin.close();
    await Promise.all(this.procs.map((p) => stopProcess(p)));
    if (!this.keepData) await rm(this.dir, { recursive: true, force: true });
  }
}
