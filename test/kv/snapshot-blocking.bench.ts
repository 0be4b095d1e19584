// Measures how long a state-machine snapshot blocks the event loop: snapshot() (serialize on
// the main thread) against snapshotAsync() (a worker thread). Not a test (nothing asserts a
// duration); run by hand:
//   node --import tsx test/kv/snapshot-blocking.bench.ts [keys] [dir]
// keys defaults to 1,000,000 puts of 100-byte values. With a dir, a state.db already filled
// there is reused, else it is filled and kept; without one a temporary directory is removed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeCommand } from '../../src/kv/commands.ts';
import { SqliteStateMachine } from '../../src/kv/sqlite-state-machine.ts';
import type { ApplyEntry, StateMachineSnapshot } from '../../src/kv/sqlite-state-machine.ts';

const BATCH_ENTRIES = 10_000;
const ROUNDS = 3;
const value = new Uint8Array(100).fill(42);

function fill(sm: SqliteStateMachine, keys: number): void {
  const startedMs = performance.now();
  for (let first = sm.appliedIndex() + 1; first <= keys; first += BATCH_ENTRIES) {
    const entries: ApplyEntry[] = [];
    for (let index = first; index < first + BATCH_ENTRIES && index <= keys; index++) {
      entries.push({ index, type: 'normal', data: encodeCommand({ kind: 'put', key: `bench/${index}`, value }) });
    }
    sm.applyBatch(entries);
  }
  console.log(`filled ${sm.count().toLocaleString('en-US')} keys in ${((performance.now() - startedMs) / 1000).toFixed(1)} s`);
}

/** Runs `take` while a 1 ms-resolution histogram watches the event loop. */
async function measure(label: string, take: () => Promise<StateMachineSnapshot>): Promise<void> {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  await sleep(20);
  delay.enable();
  await sleep(20);
  const startedMs = performance.now();
  const snap = await take();
  const durationMs = performance.now() - startedMs;
  await sleep(20);
  delay.disable();
  const ms = (ns: number): string => (ns / 1e6).toFixed(1);
  console.log(
    `${label}: index ${snap.index}, ${(snap.data.byteLength / 2 ** 20).toFixed(0)} MiB in ${durationMs.toFixed(0)} ms; ` +
      `event-loop delay max ${ms(delay.max)} ms, p99 ${ms(delay.percentile(99))} ms, mean ${ms(delay.mean)} ms; ` +
      `rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`,
  );
}

const keys = Number(process.argv[2] ?? 1_000_000);
const keepDir = process.argv[3];
const dir = keepDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'chorus-snapshot-bench-'));
try {
  fs.mkdirSync(dir, { recursive: true });
  const sm = SqliteStateMachine.open(path.join(dir, 'state.db'));
  fill(sm, keys);
  for (let round = 1; round <= ROUNDS; round++) {
    // Alternating, so that neither always runs with a warmer page cache.
    await measure(`round ${round}, snapshot() (main thread)     `, () => Promise.resolve(sm.snapshot()));
    await measure(`round ${round}, snapshotAsync() (worker)     `, () => sm.snapshotAsync());
  }
  sm.close();
} finally {
  if (keepDir === undefined) fs.rmSync(dir, { recursive: true, force: true });
}
