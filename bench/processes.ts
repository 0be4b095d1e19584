// Child processes of a benchmark run: spawned with their output in a log file, killed with
// SIGKILL if this process exits while they still run (a crashed bench must not leave clusters
// behind), and their resident memory read from /proc.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';

export interface ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly logFile: string;
  /** Settles when the process has exited. */
  readonly exited: Promise<void>;
  isRunning(): boolean;
}

const running = new Set<ChildProcess>();
const scratchDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of running) child.kill('SIGKILL');
    for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
  });
}

/** Removes `dir` when this process exits, unless released first (kept on purpose). */
export function removeOnExit(dir: string): void {
  installExitHook();
  scratchDirs.add(dir);
}

export function releaseDir(dir: string): void {
  scratchDirs.delete(dir);
}

/** Spawns `command args`, stdout and stderr appended to `logFile`. */
export function spawnLogged(name: string, command: string, args: readonly string[], logFile: string, cwd?: string): ManagedProcess {
  installExitHook();
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(command, args, { stdio: ['ignore', fd, fd], ...(cwd === undefined ? {} : { cwd }) });
  } finally {
    closeSync(fd); // the child holds its own copy
  }
  if (child.pid === undefined) throw new Error(`could not start ${name} (${command})`);
  running.add(child);
  let alive = true;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      alive = false;
      running.delete(child);
      resolve();
    });
    child.once('error', () => {
      alive = false;
      running.delete(child);
      resolve();
    });
  });
  return { name, child, pid: child.pid, logFile, exited, isRunning: () => alive };
}

/** SIGTERM, then SIGKILL after `graceMs`. */
export async function stopProcess(proc: ManagedProcess, graceMs = 10_000): Promise<void> {
  if (!proc.isRunning()) return;
  proc.child.kill('SIGTERM');
  const stopped = await Promise.race([proc.exited.then(() => true), sleep(graceMs).then(() => false)]);
  if (!stopped) {
    proc.child.kill('SIGKILL');
    await proc.exited;
  }
}

export async function killProcess(proc: ManagedProcess): Promise<void> {
  if (!proc.isRunning()) return;
  proc.child.kill('SIGKILL');
  await proc.exited;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The last `lines` lines of a log file (for error messages). */
export function logTail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Throws with the process's last log lines when one of them died unexpectedly. */
export function checkExited(procs: readonly (ManagedProcess | null)[]): void {
  for (const proc of procs) {
    if (proc !== null && !proc.isRunning() && proc.child.exitCode !== null && proc.child.exitCode !== 0) {
      throw new Error(`${proc.name} exited with code ${proc.child.exitCode}; last log lines:\n${logTail(proc.logFile)}`);
    }
  }
}

/** A port that was free a moment ago: the kernel picks it from the ephemeral range, which never
 * overlaps the 7001-7003 / 8001-8003 ports of a `chorus dev` cluster. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

/** Distinct free ports. */
export async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

/** Resident set size (VmRSS) of a process in bytes, or null when it cannot be read. */
export async function residentBytes(pid: number): Promise<number | null> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
    return match === null ? null : Number(match[1]) * 1024;
  } catch {
    return null;
  }
}

/** Polls `check` every `everyMs` until it returns a value other than undefined, or throws
 * `what` after `timeoutMs`. Errors thrown by `check` count as "not yet". */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = null;
  while (true) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(everyMs);
  }
}

/** A small JSON request for cluster management (not part of any measurement). */
export async function requestJson(url: string, init: { method?: string; body?: unknown; timeoutMs?: number } = {}): Promise<{ status: number; doc: unknown }> {
  const response = await fetch(url, {
    method: init.method ?? 'GET',
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body), headers: { 'content-type': 'application/json' } }),
    signal: AbortSignal.timeout(init.timeoutMs ?? 2000),
  });
  const text = await response.text();
  let doc: unknown;
  try {
    doc = text === '' ? null : JSON.parse(text);
  } catch {
    doc = text;
  }
  return { status: response.status, doc };
}
