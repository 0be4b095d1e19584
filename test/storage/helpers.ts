// Helpers shared by the file store tests: temporary directories and byte-level surgery on files.
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FRAME_HEADER_BYTES } from '../../src/storage/frame.ts';

/** Runs `body` in a fresh temporary directory and removes it afterwards. */
export async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'chorus-storage-test-'));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The segment file names in `dir`, in index order. */
export async function segmentNames(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.endsWith('.wal')).sort();
}

/** The byte offset of every record in a segment file, read from the length fields alone. */
export function recordOffsets(file: Buffer): number[] {
  const offsets: number[] = [];
  for (let position = 0; position + FRAME_HEADER_BYTES <= file.length; ) {
    offsets.push(position);
    position += FRAME_HEADER_BYTES + file.readUInt32LE(position);
  }
  return offsets;
}

/** Rewrites a file through `edit`. */
export async function editFile(path: string, edit: (bytes: Buffer) => Buffer): Promise<void> {
  await writeFile(path, edit(await readFile(path)));
}

/** Flips one bit of the byte at `offset`. */
export async function flipBit(path: string, offset: number): Promise<void> {
  await editFile(path, (bytes) => {
    bytes[offset] = bytes[offset]! ^ 0x10;
    return bytes;
  });
}
