// The results of a bench run (also saved as JSON, which bench/chart.ts reads) and their
// rendering as one table, aligned text for a terminal or Markdown for docs/benchmarks.md. Each
// row compares Chorus with one peer: etcd (consensus rows) or Redis (multi-master rows).
import type { PeerName, SystemName } from './systems.ts';

export type RowKind = 'throughput' | 'memory' | 'failover' | 'snapshot' | 'convergence';

/** One system's result in one row. Only the fields of the row's kind are set. */
export interface SystemResult {
  /** 'ok': measured; 'na': not possible (yet); 'skipped': not run in this mode; 'failed': the
   * phase broke (see note). */
  readonly status: 'ok' | 'na' | 'skipped' | 'failed';
  readonly note?: string;
  // throughput rows; failover rows use the latencies for the recovery times
  readonly throughputPerS?: number;
  readonly latencyMsP50?: number;
  readonly latencyMsP99?: number;
  readonly latencyMsMax?: number;
  readonly requests?: number;
  readonly failedRequests?: number;
  // memory
  readonly residentBytes?: readonly (number | null)[];
  readonly keys?: number;
  // failover
  readonly kills?: number;
  readonly ackedWrites?: number;
  readonly lostWrites?: number;
  readonly unverifiedWrites?: number;
  // snapshot (uses exchangedBytes for the state the learner received, convergenceMs for the time)
  readonly megabytesPerS?: number;
  // convergence (uses `keys` too): from the end of a partition until every member holds the
  // same records, and the bytes the members sent each other meanwhile
  readonly convergenceMs?: number;
  readonly exchangedBytes?: number;
}

export interface BenchRow {
  readonly id: string;
  readonly label: string;
  readonly kind: RowKind;
  /** The system Chorus is compared with in this row (absent in reports saved before Redis
   * joined the bench: etcd). */
  readonly peer?: PeerName;
  readonly results: Partial<Record<SystemName, SystemResult>>;
}

export interface BenchReport {
  readonly mode: 'quick' | 'full';
  readonly startedAt: string;
  readonly durationMs: number;
  readonly machine: { readonly cpus: number; readonly memoryGiB: number; readonly node: string; readonly loadAverage: readonly number[] };
  /** `git describe --always --dirty` of the Chorus tree that was measured, when known. */
  readonly chorusRevision: string | null;
  readonly etcdVersion: string | null;
  /** Why etcd was not run, when it was not. */
  readonly etcdSkipped: string | null;
  /** redis-server's version, null when Redis was not run (absent in older reports). */
  readonly redisVersion?: string | null;
  readonly redisSkipped?: string | null;
  readonly rows: readonly BenchRow[];
}

export function peerOf(row: BenchRow): PeerName {
  return row.peer ?? 'etcd';
}

/** Chorus/peer for a row, and whether higher favours Chorus; null when either side is missing. */
export function ratioOf(row: BenchRow): { readonly value: number; readonly higherIsBetter: boolean; readonly what: string } | null {
  const c = row.results.chorus;
  const e = row.results[peerOf(row)];
  if (c?.status !== 'ok' || e?.status !== 'ok') return null;
  const divide = (a: number | undefined, b: number | undefined): number | null =>
    a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0 ? null : a / b;
  let value: number | null;
  switch (row.kind) {
    case 'throughput':
      value = divide(c.throughputPerS, e.throughputPerS);
      return value === null ? null : { value, higherIsBetter: true, what: 'throughput' };
    case 'memory':
      value = divide(sumOf(c.residentBytes), sumOf(e.residentBytes));
      return value === null ? null : { value, higherIsBetter: false, what: 'RSS' };
    case 'failover':
      value = divide(c.latencyMsP50, e.latencyMsP50);
      return value === null ? null : { value, higherIsBetter: false, what: 'p50 recovery' };
    case 'snapshot':
      value = divide(c.megabytesPerS, e.megabytesPerS);
      return value === null ? null : { value, higherIsBetter: true, what: 'MB/s' };
    case 'convergence':
      value = divide(c.convergenceMs, e.convergenceMs);
      return value === null ? null : { value, higherIsBetter: false, what: 'time to converge' };
  }
}

function sumOf(values: readonly (number | null)[] | undefined): number | undefined {
  if (values === undefined || values.length === 0 || values.some((v) => v === null)) return undefined;
  return (values as number[]).reduce((a, b) => a + b, 0);
}

export const SYSTEM_NAMES: Readonly<Record<SystemName, string>> = { chorus: 'Chorus', etcd: 'etcd', redis: 'Redis' };
const SYSTEMS: readonly SystemName[] = ['chorus', 'etcd', 'redis'];

/** "etcd 3.4.23; Redis 7.0.15" or "etcd not run: ..." for a report's header; without the peers
 * that were not run when `withSkipped` is false (a chart's title). */
export function describePeers(report: BenchReport, withSkipped = true): string {
  const one = (name: string, version: string | null | undefined, skipped: string | null | undefined): string | null => {
    if (version !== null && version !== undefined) return `${name} ${version}`;
    return !withSkipped || skipped === null || skipped === undefined ? null : `${name} not run: ${skipped}`;
  };
  return [one('etcd', report.etcdVersion, report.etcdSkipped), one('Redis', report.redisVersion, report.redisSkipped)].filter((p) => p !== null).join('; ');
}

export function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export function formatMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '';
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 100) return `${ms.toFixed(0)} ms`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(2)} ms`;
}

function megabytes(bytes: number): string {
  return (bytes / 1e6).toFixed(bytes >= 1e7 ? 0 : 2);
}

function mib(bytes: number | null): string {
  return bytes === null ? '?' : (bytes / (1024 * 1024)).toFixed(0);
}

/** The first column of a system's line: the headline value of the row. */
export function headline(row: BenchRow, r: SystemResult): string {
  if (r.status !== 'ok') return r.note ?? r.status;
  switch (row.kind) {
    case 'throughput': {
      const failed = r.failedRequests !== undefined && r.failedRequests > 0 ? ` (${formatCount(r.failedRequests)} failed)` : '';
      return `${formatCount(r.throughputPerS ?? 0)} ops/s${failed}`;
    }
    case 'memory':
      return `RSS ${(r.residentBytes ?? []).map(mib).join(' / ')} MiB`;
    case 'failover':
      return `lost ${formatCount(r.lostWrites ?? 0)} of ${formatCount(r.ackedWrites ?? 0)} acked${r.unverifiedWrites ? ` (${formatCount(r.unverifiedWrites)} unread)` : ''}`;
    case 'snapshot':
      return `${(r.megabytesPerS ?? 0).toFixed(1)} MB/s${r.exchangedBytes === undefined ? '' : ` (${megabytes(r.exchangedBytes)} MB in ${formatMs(r.convergenceMs)})`}`;
    case 'convergence': {
      const keys = r.keys ?? 0;
      const bytes = r.exchangedBytes ?? 0;
      const perKey = keys > 0 ? ` (${formatCount(bytes / keys)} B/key)` : '';
      return `${formatCount(keys)} keys in ${formatMs(r.convergenceMs)}, ${megabytes(bytes)} MB${perKey}`;
    }
  }
}

function ratioText(row: BenchRow): string {
  const ratio = ratioOf(row);
  if (ratio === null) return '—';
  return `${ratio.value.toFixed(2)}x ${ratio.what} vs ${SYSTEM_NAMES[peerOf(row)]} (${ratio.higherIsBetter ? 'higher' : 'lower'} is better)`;
}

const HEADER = ['phase', 'system', 'result', 'p50', 'p99', 'max', 'Chorus/peer'];

function tableRows(report: BenchReport): string[][] {
  const lines: string[][] = [];
  for (const row of report.rows) {
    const systems = SYSTEMS.filter((s) => row.results[s] !== undefined);
    systems.forEach((system, i) => {
      const r = row.results[system]!;
      const timed = r.status === 'ok' && (row.kind === 'throughput' || row.kind === 'failover');
      lines.push([
        i === 0 ? row.label : '',
        SYSTEM_NAMES[system],
        headline(row, r),
        timed ? formatMs(r.latencyMsP50) : '',
        timed ? formatMs(r.latencyMsP99) : '',
        timed ? formatMs(r.latencyMsMax) : '',
        i === 0 ? ratioText(row) : '',
      ]);
    });
  }
  return lines;
}

/** Aligned text for a terminal. */
export function formatTable(report: BenchReport): string {
  const rows = [HEADER, ...tableRows(report)];
  const widths = HEADER.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const line = (cells: string[]): string => cells.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(HEADER), rule, ...rows.slice(1).map(line)].join('\n');
}

/** The same table in Markdown. */
export function formatMarkdownTable(report: BenchReport): string {
  const escape = (cell: string): string => cell.replace(/\|/g, '\\|');
  const rows = tableRows(report).map((r) => `| ${r.map(escape).join(' | ')} |`);
  return [`| ${HEADER.join(' | ')} |`, `|${HEADER.map(() => '---').join('|')}|`, ...rows].join('\n');
}
