// `chorus dev`: a local cluster for trying Chorus out. Each member runs in its own process
// (`chorus start`), with its data and log under --dir; Ctrl-C stops them all cleanly.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface DevOptions {
  readonly nodes: number;
  readonly dir: string;
  readonly basePort: number;
  /** Peer ports start here (default basePort - 1000: 8001 -> 7001). */
  readonly peerBasePort?: number;
  /** Binary protocol ports (--listen-binary) start here (default basePort + 1000: 8001 -> 9001). */
  readonly binaryBasePort?: number;
  readonly tickMs?: number;
  readonly readyTimeoutMs?: number;
  /** Passed to every member: a config file (e.g. only an alerts section) and a webhook. */
  readonly config?: string;
  readonly alertWebhook?: string;
}

const HOST = '127.0.0.1';
const STOP_GRACE_MS = 10_000;

const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/chorus.js');

interface Member {
  readonly id: string;
  readonly url: string;
  /** host:port of its binary protocol (ChorusBinaryClient). */
  readonly binary: string;
  readonly dataDir: string;
  readonly logFile: string;
  readonly child: ChildProcess;
  exited: boolean;
  readonly exit: Promise<number | null>;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

async function fetchJson(url: string): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
  return res.json() as Promise<unknown>;
}

export async function runDev(options: DevOptions): Promise<void> {
  const count = options.nodes;
  if (!Number.isSafeInteger(count) || count < 1 || count > 9) throw new Error('--nodes must be 1 to 9');
  const peerBase = options.peerBasePort ?? options.basePort - 1000;
  const binaryBase = options.binaryBasePort ?? options.basePort + 1000;
  if (peerBase < 1 || binaryBase < 1 || Math.max(options.basePort, peerBase, binaryBase) + count > 65535) throw new Error('ports out of range');
  const dir = resolve(options.dir);
  mkdirSync(dir, { recursive: true });
  const ids = Array.from({ length: count }, (_, i) => `n${i + 1}`);
  const initialCluster = ids.map((id, i) => `${id}=${HOST}:${peerBase + i}`).join(',');
  const members: Member[] = ids.map((id, i) => {
    const dataDir = join(dir, id);
    const logFile = join(dir, `${id}.log`);
    const logFd = openSync(logFile, 'a');
    const args = [
      BIN, 'start',
      '--id', id,
      '--data-dir', dataDir,
      '--listen-client', `${HOST}:${options.basePort + i}`,
      '--listen-peer', `${HOST}:${peerBase + i}`,
      '--listen-binary', `${HOST}:${binaryBase + i}`,
      '--initial-cluster', initialCluster,
      ...(options.tickMs === undefined ? [] : ['--tick-ms', String(options.tickMs)]),
      ...(options.config === undefined ? [] : ['--config', resolve(options.config)]),
      ...(options.alertWebhook === undefined ? [] : ['--alert-webhook', options.alertWebhook]),
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    const member: Member = {
      id, url: `http://${HOST}:${options.basePort + i}`, binary: `${HOST}:${binaryBase + i}`, dataDir, logFile, child, exited: false,
      exit: new Promise((resolveExit) => child.once('exit', (code) => {
        member.exited = true;
        resolveExit(code);
      })),
    };
    return member;
  });

  let stopping = false;
  const stopAll = async (): Promise<void> => {
    for (const m of members) if (!m.exited) m.child.kill('SIGTERM');
    const deadline = Date.now() + STOP_GRACE_MS;
    for (const m of members) {
      const left = deadline - Date.now();
      const done = await Promise.race([m.exit.then(() => true), sleep(Math.max(0, left)).then(() => false)]);
      if (!done) {
        process.stdout.write(`${m.id} did not stop within ${STOP_GRACE_MS} ms; killing it\n`);
        m.child.kill('SIGKILL');
        await m.exit;
      }
    }
  };
  const onSignal = (): void => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('\nstopping all members...\n');
    void stopAll().then(() => {
      process.stdout.write('all members stopped\n');
      process.exit(0);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  for (const m of members) {
    void m.exit.then((code) => {
      if (stopping) return;
      process.stderr.write(`member ${m.id} exited (code ${String(code)}); last log lines:\n${tail(m.logFile, 10)}\n`);
    });
  }

  process.stdout.write(`starting ${count} member(s) in ${dir} ...\n`);
  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
  let leaderId: string | null = null;
  while (Date.now() < deadline && !stopping) {
    if (members.some((m) => m.exited)) {
      stopping = true;
      await stopAll();
      throw new Error('a member exited during startup (is a port in use, or the data directory from another cluster?)');
    }
    try {
      const readiness = await Promise.all(members.map((m) => fetchJson(`${m.url}/readyz`) as Promise<{ ready?: boolean; leaderId?: string | null }>));
      if (readiness.every((r) => r.ready === true)) {
        leaderId = readiness[0]?.leaderId ?? null;
        break;
      }
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  if (stopping) return;
  if (leaderId === null) {
    stopping = true;
    await stopAll();
    throw new Error(`no leader within ${options.readyTimeoutMs ?? 30_000} ms; see the logs in ${dir}`);
  }
  const first = members[0]!;
  const shown = relative(process.cwd(), dir) || '.';
  const lines = [
    '',
    `Chorus dev cluster is up: ${count} member(s), leader ${leaderId}`,
    '',
    ...members.map((m) => `  ${m.id}  ${m.url}   data ${join(shown, m.id)}   log ${join(shown, `${m.id}.log`)}`),
    `Binary protocol: ${members.map((m) => `${m.id} ${m.binary}`).join(', ')} (ChorusBinaryClient: docs/api.md#binary-protocol)`,
    '',
    'Try:',
    `  curl -X PUT --data-binary 'world' ${first.url}/v1/kv/hello`,
    `  curl ${first.url}/v1/kv/hello`,
    `  curl ${first.url}/v1/cluster`,
    `  npx chorus status --endpoints ${members.map((m) => m.url).join(',')}`,
    '',
    `Dashboard: ${first.url}/ui   metrics: ${first.url}/metrics   events: npx chorus events --follow`,
    `Member processes: ${members.map((m) => `${m.id} pid ${m.child.pid ?? '?'}`).join(', ')} (docs/observability.md: pause one with kill -STOP)`,
    '',
    'Press Ctrl-C to stop every member.',
    '',
  ];
  process.stdout.write(lines.join('\n'));
}
