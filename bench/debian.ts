// The peers the bench compares Chorus with are Debian packages (etcd-server, redis-server): found
// on the PATH, or installed with apt-get when missing and the bench runs as root; otherwise
// skipped, with the reason in the report.
import { execFileSync, spawnSync } from 'node:child_process';

export type BinaryAvailability =
  | { readonly available: true; readonly path: string; readonly version: string }
  | { readonly available: false; readonly reason: string };

export interface DebianBinary {
  /** The executable: etcd, redis-server. */
  readonly binary: string;
  /** The package that installs it: etcd-server, redis-server. */
  readonly debianPackage: string;
  /** Arguments that print the version, and where the version is in their output. */
  readonly versionArgs: readonly string[];
  readonly versionPattern: RegExp;
}

const APT_TIMEOUT_MS = 600_000;

function findBinary(spec: DebianBinary): { path: string; version: string } | null {
  const which = spawnSync('sh', ['-c', `command -v ${spec.binary}`], { encoding: 'utf8' });
  const path = which.status === 0 ? which.stdout.trim() : '';
  if (path === '') return null;
  try {
    const out = execFileSync(path, [...spec.versionArgs], { encoding: 'utf8', timeout: 10_000 });
    return { path, version: spec.versionPattern.exec(out)?.[1] ?? 'unknown' };
  } catch {
    return null;
  }
}

/** Finds the binary, or installs its package with apt-get (root only; apt-get update first
 * when the install fails, as on a fresh machine without package lists). */
export function ensureDebianBinary(spec: DebianBinary, log: (line: string) => void): BinaryAvailability {
  const found = findBinary(spec);
  if (found !== null) return { available: true, ...found };
  const install = `apt-get install -y ${spec.debianPackage}`;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    return { available: false, reason: `${spec.binary} is not installed and installing it needs root (${install})` };
  }
  if (spawnSync('sh', ['-c', 'command -v apt-get'], { encoding: 'utf8' }).status !== 0) {
    return { available: false, reason: `${spec.binary} is not installed and there is no apt-get to install ${spec.debianPackage}` };
  }
  log(`${spec.binary} not found: installing Debian's ${spec.debianPackage} (${install}) ...`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const aptGet = (args: string[]): ReturnType<typeof spawnSync> => spawnSync('apt-get', args, { encoding: 'utf8', env, timeout: APT_TIMEOUT_MS });
  let result = aptGet(['install', '-y', spec.debianPackage]);
  if (result.status !== 0) {
    aptGet(['update']);
    result = aptGet(['install', '-y', spec.debianPackage]);
  }
  const after = findBinary(spec);
  if (result.status !== 0 || after === null) {
    const detail = `${result.stderr ?? ''}`.trim().split('\n').slice(-3).join(' | ');
    return { available: false, reason: `${install} failed${detail === '' ? '' : `: ${detail}`}` };
  }
  return { available: true, ...after };
}
