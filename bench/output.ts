// What `npm run bench` and `chorus bench` do with a finished report: save it as JSON, print the
// table on stdout, say on stderr what went wrong, and choose the exit code.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describePeers, formatTable } from './report.ts';
import type { BenchReport } from './report.ts';

const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'results');

/**
 * Saves and prints `report`; returns the exit code: 1 when a phase failed or an acknowledged
 * write was lost, else 0. `json`: where to save it; undefined: bench/results/latest-<mode>.json,
 * or partial-<mode>.json for a `partial` run (some phases, or someone else's cluster), which
 * must not replace the latest complete report the docs and chart come from; null: not saved.
 */
export function saveAndPrint(report: BenchReport, options: { readonly partial: boolean; readonly json: string | null | undefined }): number {
  let saved = '';
  if (options.json !== null) {
    const name = options.partial ? `partial-${report.mode}.json` : `latest-${report.mode}.json`;
    const file = resolve(options.json ?? join(RESULTS_DIR, name));
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
    saved = `\nreport saved to ${file}\n`;
  }
  const header = `Chorus ${report.chorusRevision ?? ''} vs ${describePeers(report)} (${report.mode} mode, ${report.machine.cpus} cores, ${report.machine.memoryGiB} GiB, Node ${report.machine.node}, `
    + `load average at start ${report.machine.loadAverage.join(' ')}), ${(report.durationMs / 1000).toFixed(0)} s`;
  process.stdout.write(`\n${header}\n\n${formatTable(report)}\n${saved}`);
  const broken = report.rows.flatMap((row) => Object.values(row.results).filter((r) => r.status === 'failed'));
  const lost = report.rows.some((row) => Object.values(row.results).some((r) => (r.lostWrites ?? 0) > 0));
  if (lost) process.stderr.write('ACKNOWLEDGED WRITES WERE LOST (see the failover row)\n');
  if (broken.length > 0) process.stderr.write(`${broken.length} phase(s) failed (see the table)\n`);
  return lost || broken.length > 0 ? 1 : 0;
}
