// The real ports of a member process: its monotonic clock, the event loop's timers, the
// operating system's randomness, and the SQLite state machine with images made in files.
import { randomInt } from 'node:crypto';
import fs from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Random } from '../core/raft/raft.ts';
import type { ApplyResult, SqliteStateMachine } from '../kv/sqlite-state-machine.ts';
import type { Clock } from '../ports/index.ts';
import type { MadeImage, Scheduler, StateMachine } from '../ports/runtime.ts';
import { FileImage } from './image-file.ts';

export const processClock: Clock = { nowMs: () => performance.now() };

export const eventLoopScheduler: Scheduler = {
  soon: (run) => {
    setImmediate(run);
  },
  after: (delayMs, run) => {
    const timer = setTimeout(run, delayMs);
    return () => clearTimeout(timer);
  },
};

export const cryptoRandom: Random = { int: (maxExclusive: number) => randomInt(maxExclusive) };

/**
 * The SQLite state machine as the driver's port. Images for followers are files in
 * `imagesDir`, written by the snapshot worker and read a chunk at a time while the core sends
 * them (FileImage); each is deleted once released.
 */
export function sqliteStateMachinePort(sm: SqliteStateMachine, imagesDir: string): StateMachine<ApplyResult> {
  let imagesMade = 0;
  return {
    appliedIndex: () => sm.appliedIndex(),
    applyBatch: (entries) => sm.applyBatch(entries),
    stageImage: (offset, chunk) => sm.stageImage(offset, chunk),
    restoreStaged: (totalBytes, index) => sm.restoreStaged(totalBytes, index),
    syncDurable: () => sm.syncDurable(),
    makeImage: async (): Promise<MadeImage> => {
      const path = join(imagesDir, `image-${++imagesMade}.db`);
      try {
        const made = await sm.imageFileAsync(path);
        const file = FileImage.open(path, made.byteLength);
        return { index: made.index, bytes: file, release: () => file.release() };
      } catch (error) {
        fs.rmSync(path, { force: true });
        throw error;
      }
    },
  };
}
