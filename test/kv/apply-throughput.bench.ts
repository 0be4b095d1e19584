// Measures batch-apply throughput of the SQLite state machine. Not a test (nothing asserts a
// duration); run by hand: node --import tsx test/kv/apply-throughput.bench.ts [dir]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { encodeCommand } from '../../src/kv/commands.ts';
import { SqliteStateMachine } from '../../src/kv/sqlite-state-machine.ts';
import type { ApplyEntry } from '../../src/kv/sqlite-state-machine.ts';

const BATCH_ENTRIES = 10_000;
const ROUNDS = 5;
const value = new Uint8Array(100).fill(42);

function batch(first: number, keySpace: number): ApplyEntry[] {
  const entries: ApplyEntry[] = [];
  for (let i = 0; i < BATCH_ENTRIES; i++) {
    const index = first + i;
    entries.push({ index, type: 'normal', data: encodeCommand({ kind: 'put', key: `bench/${(index * 7919) % keySpace}`, value }) });
  }
  return entries;
}

function run(label: string, sm: SqliteStateMachine, keySpace: number): void {
  const timings: number[] = [];
  let next = 1;
  for (let round = 0; round < ROUNDS; round++) {
    const entries = batch(next, keySpace); // encoding is outside the timed region
    const start = performance.now();
    sm.applyBatch(entries);
    timings.push(performance.now() - start);
    next += BATCH_ENTRIES;
  }
  const sorted = [...timings].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  console.log(
    `${label}: ${BATCH_ENTRIES} puts per batch (100-byte values), median ${median.toFixed(1)} ms ` +
      `= ${Math.round(BATCH_ENTRIES / (median / 1000)).toLocaleString('en-US')} puts/s ` +
      `(all rounds: ${timings.map((t) => t.toFixed(1)).join(', ')} ms; ${sm.count()} keys)`,
  );
  sm.close();
}

const dir = process.argv[2] ?? fs.mkdtempSync(path.join(os.tmpdir(), 'chorus-kv-bench-'));
try {
  run('memory, new keys', SqliteStateMachine.open(':memory:'), Number.MAX_SAFE_INTEGER);
  run('memory, updates of 1000 keys', SqliteStateMachine.open(':memory:'), 1000);
  run('file (WAL), new keys', SqliteStateMachine.open(path.join(dir, 'new.db')), Number.MAX_SAFE_INTEGER);
  run('file (WAL), updates of 1000 keys', SqliteStateMachine.open(path.join(dir, 'upd.db')), 1000);
} finally {
  if (process.argv[2] === undefined) fs.rmSync(dir, { recursive: true, force: true });
}
