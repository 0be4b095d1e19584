// `node --import tsx bench/chart.ts [report.json] [out.svg]`: draws the Chorus/peer ratio of
// every row of a saved report (the peer is etcd or Redis, per row) as a horizontal bar chart in
// SVG (written by hand: no library), and prints the report's table in Markdown, for
// docs/benchmarks.md.
// The scale is logarithmic and centred on 1x, so that 2x and 0.5x are bars of the same length;
// green bars favour Chorus, red ones the peer, whichever way "better" points for the row.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describePeers, formatMarkdownTable, headline, peerOf, ratioOf, SYSTEM_NAMES } from './report.ts';
import type { BenchReport } from './report.ts';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));

const WIDTH = 1000;
const LABEL_WIDTH = 330;
const VALUE_WIDTH = 250;
const ROW_HEIGHT = 30;
const TOP = 70;
const BOTTOM = 50;
const PLOT_LEFT = LABEL_WIDTH;
const PLOT_WIDTH = WIDTH - LABEL_WIDTH - VALUE_WIDTH;
const FAVOURS_CHORUS = '#2e8b57';
const FAVOURS_PEER = '#c0392b';
const MUTED = '#888888';

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function text(x: number, y: number, content: string, attributes = ''): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attributes}>${escapeXml(content)}</text>`;
}

export function renderChart(report: BenchReport): string {
  const rows = report.rows.map((row) => ({ row, ratio: ratioOf(row) }));
  // Half-width of the scale in powers of two: at least 2x either way, at most 16x (beyond is clipped).
  const extent = Math.min(4, Math.max(1, ...rows.map(({ ratio }) => (ratio === null ? 0 : Math.ceil(Math.abs(Math.log2(ratio.value)))))));
  const centre = PLOT_LEFT + PLOT_WIDTH / 2;
  const xOf = (ratio: number): number => {
    const clipped = Math.max(-extent, Math.min(extent, Math.log2(ratio)));
    return centre + (clipped / extent) * (PLOT_WIDTH / 2);
  };
  const height = TOP + rows.length * ROW_HEIGHT + BOTTOM;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="13">`);
  parts.push(`<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`);
  parts.push(text(16, 26, `Chorus / ${describePeers(report, false) || 'no peer run'}: ratio per phase (${report.mode} run, ${report.startedAt.slice(0, 10)})`, 'font-size="16" font-weight="bold"'));
  parts.push(text(16, 46, `${report.machine.cpus} cores, ${report.machine.memoryGiB} GiB, Node ${report.machine.node}; log scale; green favours Chorus, red favours the row's peer`, `fill="${MUTED}"`));

  // Grid: one line per power of two, the 1x line darker.
  const plotTop = TOP - 8;
  const plotBottom = TOP + rows.length * ROW_HEIGHT;
  for (let k = -extent; k <= extent; k++) {
    const x = xOf(2 ** k);
    parts.push(`<line x1="${x.toFixed(1)}" y1="${plotTop}" x2="${x.toFixed(1)}" y2="${plotBottom}" stroke="${k === 0 ? '#333333' : '#dddddd'}" stroke-width="${k === 0 ? 1.5 : 1}"/>`);
    const tick = k >= 0 ? `${2 ** k}x` : `1/${2 ** -k}x`;
    parts.push(text(x, plotBottom + 18, tick, `text-anchor="middle" fill="${MUTED}"`));
  }

  rows.forEach(({ row, ratio }, i) => {
    const y = TOP + i * ROW_HEIGHT;
    const mid = y + ROW_HEIGHT / 2;
    const peer = SYSTEM_NAMES[peerOf(row)];
    parts.push(text(PLOT_LEFT - 10, mid + 4, peerOf(row) === 'etcd' ? row.label : `${row.label} (vs ${peer})`, 'text-anchor="end"'));
    if (ratio === null) {
      const chorus = row.results.chorus;
      // Measured on Chorus alone (no counterpart): say so rather than show nothing.
      const note = chorus?.status === 'ok'
        ? `no ${peer} figure; Chorus ${headline(row, chorus)}`
        : chorus?.note ?? 'n/a';
      parts.push(text(centre + 8, mid + 4, note, `fill="${MUTED}" font-style="italic"`));
      return;
    }
    const favoursChorus = ratio.higherIsBetter ? ratio.value >= 1 : ratio.value <= 1;
    const x = xOf(ratio.value);
    const left = Math.min(x, centre);
    const barWidth = Math.max(1, Math.abs(x - centre));
    parts.push(`<rect x="${left.toFixed(1)}" y="${(y + 6).toFixed(1)}" width="${barWidth.toFixed(1)}" height="${ROW_HEIGHT - 12}" fill="${favoursChorus ? FAVOURS_CHORUS : FAVOURS_PEER}"/>`);
    const better = ratio.higherIsBetter ? 'higher better' : 'lower better';
    parts.push(text(PLOT_LEFT + PLOT_WIDTH + 10, mid + 4, `${ratio.value.toFixed(2)}x ${ratio.what} (${better})`));
  });
  parts.push(text(16, height - 12, 'Chorus/peer; method and full table: docs/benchmarks.md; reproduce: npm run bench', `fill="${MUTED}" font-size="11"`));
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

function main(): void {
  const [input, output] = process.argv.slice(2);
  const full = join(BENCH_DIR, 'results', 'latest-full.json');
  const quick = join(BENCH_DIR, 'results', 'latest-quick.json');
  const file = resolve(input ?? (existsSync(full) ? full : quick));
  const report = JSON.parse(readFileSync(file, 'utf8')) as BenchReport;
  const out = resolve(output ?? join(BENCH_DIR, '..', 'docs', 'benchmarks.svg'));
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, renderChart(report));
  process.stdout.write(`${formatMarkdownTable(report)}\n\nchart of ${file} written to ${out}\n`);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
