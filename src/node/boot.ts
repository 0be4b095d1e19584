// Opening a member's data directory: the identity file, the three Raft stores and the SQLite
// state machine, and the repairs that recovery needs before the Raft core is constructed.
//
//   <dataDir>/member.json   {"id","clusterId"}: refuses to run another member on this data
//   <dataDir>/wal/          write-ahead log segments and the hard state (term, vote, commit)
//   <dataDir>/snap/         the latest snapshot
//   <dataDir>/state.db      the SQLite key-value state (with its own applied index)
//   <dataDir>/images/       images of the state being sent to followers (emptied at start)
import { mkdir, readFile, rename, rm, writeFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import type { Entry, HardState, Snapshot } from '../core/raft/types.ts';
import type { KvLimits } from '../kv/commands.ts';
import { SqliteStateMachine } from '../kv/sqlite-state-machine.ts';
import { FileSnapshotStore } from '../storage/snapshot-store.ts';
import { FileStableStore } from '../storage/stable-store.ts';
import { FileLogStore } from '../storage/wal.ts';
import { ChorusError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';

export interface OpenedStorage {
  readonly logStore: FileLogStore;
  readonly stableStore: FileStableStore;
  readonly snapshotStore: FileSnapshotStore;
  readonly stateMachine: SqliteStateMachine;
  readonly hardState: HardState | null;
  /** The latest snapshot; its data is empty (isPositionOnly) when only its position was saved. */
  readonly snapshot: Snapshot | null;
  /** The log after the snapshot, contiguous, as the core expects it. */
  readonly entries: Entry[];
}

const IDENTITY_FILE = 'member.json';

/** The directory, in the data directory, of the image files a leader sends (image-file.ts). */
export const IMAGES_DIR = 'images';

export function isPositionOnly(snapshot: Snapshot): boolean {
  return snapshot.data.byteLength === 0;
}

/** Writes member.json on first use; afterwards the id and cluster id must match it. */
async function checkIdentity(dataDir: string, id: string, clusterId: string): Promise<void> {
  const file = join(dataDir, IDENTITY_FILE);
  let text: string | null = null;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (text === null) {
    const tmp = `${file}.tmp`;
    await writeFile(tmp, `${JSON.stringify({ id, clusterId })}\n`);
    const handle = await open(tmp, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
    return;
  }
  let stored: { id?: unknown; clusterId?: unknown };
  try {
    stored = JSON.parse(text) as { id?: unknown; clusterId?: unknown };
  } catch (cause) {
    throw new ChorusError('CHORUS_DATA_DIR_MISMATCH', `${file} is not valid JSON`, { cause });
  }
  if (stored.id !== id || stored.clusterId !== clusterId) {
    throw new ChorusError(
      'CHORUS_DATA_DIR_MISMATCH',
      `${dataDir} belongs to member ${String(stored.id)} of cluster ${String(stored.clusterId)}, not member ${id} of cluster ${clusterId}`,
    );
  }
}

/**
 * Decides which stored entries go with the snapshot. A crash between saving a received
 * snapshot and discarding the old log (logAfterSnapshot 'discard') leaves entries of another
 * history in the WAL; they must not be read as following the snapshot, or log matching would
 * break. The entries are kept only when they continue the snapshot: the WAL holds the entry at
 * the snapshot's index with its term (entries below it are then kept too: wal_keep), or starts
 * right after it (compacted there). Returns the entries to keep, or null when the WAL must be
 * reset to start after the snapshot.
 */
export function entriesAfterSnapshot(snapshot: Snapshot | null, stored: readonly Entry[]): Entry[] | null {
  if (snapshot === null) return [...stored];
  const { index, term } = snapshot.meta;
  const first = stored[0];
  if (first === undefined) return [];
  const last = stored[stored.length - 1]!;
  if (last.index < index) return null; // all below the snapshot: nothing to continue from
  let continues: boolean;
  if (first.index <= index) {
    continues = stored[index - first.index]?.term === term;
  } else {
    continues = first.index === index + 1;
  }
  if (!continues) return null;
  // Terms never decrease along a log; a first entry below the snapshot's term cannot follow it.
  const next = stored[index + 1 - first.index];
  if (next !== undefined && next.term < term) return null;
  return [...stored];
}

export async function openStorage(options: {
  dataDir: string;
  id: string;
  clusterId: string;
  limits: KvLimits;
  logger: Logger;
}): Promise<OpenedStorage> {
  const { dataDir, logger } = options;
  await mkdir(dataDir, { recursive: true });
  await checkIdentity(dataDir, options.id, options.clusterId);
  // Images being sent when the member stopped: no follower waits for them any more.
  await rm(join(dataDir, IMAGES_DIR), { recursive: true, force: true });
  await mkdir(join(dataDir, IMAGES_DIR));
  const walDir = join(dataDir, 'wal');
  const storageLog = logger.child({ component: 'storage' });
  // A WalCorruptError (CHORUS_WAL_CORRUPT, with file and offset) propagates: the member must not
  // start on a damaged log.
  const logStore = await FileLogStore.open(walDir, { logger: (msg) => storageLog.warn('wal-recovery', { detail: msg }) });
  const stableStore = await FileStableStore.open(walDir);
  const snapshotStore = await FileSnapshotStore.open(join(dataDir, 'snap'));
  let stateMachine: SqliteStateMachine | null = null;
  try {
    const storedHardState = await stableStore.load();
    const snapshot = await snapshotStore.load();
    const stored = await logStore.readAll();
    let entries = entriesAfterSnapshot(snapshot, stored);
    if (entries === null) {
      const next = snapshot!.meta.index + 1;
      storageLog.warn('wal-reset-after-snapshot', {
        snapshotIndex: snapshot!.meta.index,
        walFirstIndex: stored[0]?.index,
        walLastIndex: stored[stored.length - 1]?.index,
      });
      await logStore.reset(next);
      entries = [];
    }
    const lastIndex = Math.max(entries[entries.length - 1]?.index ?? 0, snapshot?.meta.index ?? 0);
    let hardState = storedHardState;
    if (hardState !== null && hardState.commit > lastIndex) {
      // Entries are fsynced before the hard state that follows them, so an honest disk never
      // gets here; a lying fsync or an edited file does. The entries are committed elsewhere:
      // forget the commit index (a hint) and let the leader send them again. If a majority
      // lost the same entries, acknowledged writes are lost: this is logged loudly.
      storageLog.error('wal-behind-hard-state', {
        code: 'CHORUS_WAL_BEHIND',
        commitIndex: hardState.commit,
        lastIndex,
        detail: 'the log lost committed entries (fsync lied or files were changed); re-fetching them from the leader',
      });
      hardState = { ...hardState, commit: lastIndex };
    }
    stateMachine = SqliteStateMachine.open(join(dataDir, 'state.db'), { limits: options.limits });
    const applied = stateMachine.appliedIndex();
    if (snapshot !== null && applied < snapshot.meta.index && isPositionOnly(snapshot)) {
      // Compaction fsynced the state database before it saved the position: only a lying fsync
      // or changed files get here. The entries in between are gone from the log.
      throw new ChorusError(
        'CHORUS_RECOVERY_FAILED',
        `the state database (applied index ${applied}) is behind the compacted log (snapshot at ${snapshot.meta.index}): its files were changed or lost writes; rebuild this member (chorus rebuild)`,
      );
    } else if (snapshot !== null && applied < snapshot.meta.index) {
      // The log before the snapshot is gone: the state can only come from the snapshot.
      storageLog.info('state-restore-from-snapshot', { appliedIndex: applied, snapshotIndex: snapshot.meta.index });
      stateMachine.restore(snapshot.data);
    } else if (applied > lastIndex) {
      // The state machine only applies entries durable in the log, and a received snapshot is
      // restored into it before its position is saved: a crash between the two leaves SQLite
      // ahead of the log. Either way what it holds was committed, so the leader's copies are the
      // same entries; replay skips them.
      storageLog.error('wal-behind-state-machine', {
        code: 'CHORUS_WAL_BEHIND',
        appliedIndex: applied,
        lastIndex,
        detail: 'the log lost entries the state machine applied (fsync lied or files were changed), or a crash came while a snapshot from the leader was installed (then harmless); re-fetching them from the leader',
      });
    }
    return { logStore, stableStore, snapshotStore, stateMachine, hardState, snapshot, entries };
  } catch (error) {
    stateMachine?.close();
    await Promise.allSettled([logStore.close(), stableStore.close(), snapshotStore.close()]);
    throw error;
  }
}
