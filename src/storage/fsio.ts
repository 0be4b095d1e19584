// Small file-system helpers shared by the file stores: durable atomic replacement of a file,
// directory fsync, and writes that cope with short writes.
import * as fs from 'node:fs';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';

/** Runs on the libuv thread pool, so the event loop keeps serving the network while the disk
 * flushes. */
export const fdatasyncAsync = promisify(fs.fdatasync);
export const fsyncAsync = promisify(fs.fsync);

/**
 * Makes the directory's entries (files created, renamed or deleted in it) durable. Windows cannot
 * open a directory; NTFS journals its metadata, so there is nothing to do there.
 */
export async function syncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Creates `dir` (and missing parents); each new directory's entry is made durable in its parent. */
export async function ensureDir(dir: string): Promise<void> {
  const created = await mkdir(dir, { recursive: true });
  if (created === undefined) return;
  // Every directory from the first one created down to dir is new; its parent holds its entry.
  const firstCreated = resolve(created);
  const parents: string[] = [];
  for (let path = resolve(dir); ; path = dirname(path)) {
    parents.push(dirname(path));
    if (path === firstCreated || dirname(path) === path) break;
  }
  for (const parent of parents.reverse()) await syncDir(parent);
}

/** Writes all of `buffer` at `position`: one pwrite unless the kernel accepts only part of it. */
export function writeFullySync(fd: number, buffer: Uint8Array, position: number): void {
  let done = 0;
  while (done < buffer.length) {
    done += fs.writeSync(fd, buffer, done, buffer.length - done, position + done);
  }
}

/**
 * Replaces `dir/name` atomically and durably: writes `name.tmp`, fsyncs it, renames it over
 * `name`, fsyncs the directory. A crash leaves either the old file or the new one, plus at worst
 * a stale `name.tmp` (never read; removed at the next open).
 */
export async function replaceFileDurably(dir: string, name: string, chunks: readonly Uint8Array[]): Promise<void> {
  const tmpPath = join(dir, `${name}.tmp`);
  const handle = await open(tmpPath, 'w');
  try {
    let position = 0;
    for (const chunk of chunks) {
      let done = 0;
      while (done < chunk.length) {
        const { bytesWritten } = await handle.write(chunk, done, chunk.length - done, position);
        done += bytesWritten;
        position += bytesWritten;
      }
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmpPath, join(dir, name));
  await syncDir(dir);
}

/** The file's bytes, or null when it does not exist. */
export async function readFileIfExists(path: string): Promise<Buffer | null> {
  try {
    return await readFile(path);
  } catch (error) {
    if (isNotFound(error)) return null;
    throw error;
  }
}

/** Deletes a file; returns false when it did not exist. */
export async function removeIfExists(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (error) {
    if (isNotFound(error)) return false;
    throw error;
  }
}

export function isNotFound(error: unknown): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === 'ENOENT';
}
