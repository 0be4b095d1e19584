// A leader's image of its state for a follower that needs one: a file the snapshot worker wrote
// (SqliteStateMachine.imageFileAsync), read a chunk at a time while the core sends it, so that a
// leader never holds its state in memory to send it. Files live in <dataDir>/images/, which the
// member empties at start (an image is never needed across a restart); the member deletes each
// one once the core no longer holds it.
import fs from 'node:fs';
import type { ImageBytes } from '../core/raft/types.ts';

export class FileImage implements ImageBytes {
  /** Open until release(). Invariant: the file holds exactly byteLength bytes and does not change. */
  private fd: number | null;

  private constructor(readonly path: string, fd: number, readonly byteLength: number) {
    this.fd = fd;
  }

  /** Opens an image file of `byteLength` bytes (as the worker reported it). */
  static open(path: string, byteLength: number): FileImage {
    const fd = fs.openSync(path, 'r');
    const size = fs.fstatSync(fd).size;
    if (size !== byteLength) {
      fs.closeSync(fd);
      throw new Error(`the image file ${path} holds ${size} bytes, not ${byteLength}`);
    }
    return new FileImage(path, fd, byteLength);
  }

  /** The bytes [begin, end), read from the file (a new array each time). */
  subarray(begin: number, end: number): Uint8Array {
    const fd = this.fd;
    if (fd === null) throw new Error(`the image file ${this.path} was released`);
    const start = Math.max(0, Math.min(begin, this.byteLength));
    const stop = Math.max(start, Math.min(end, this.byteLength));
    const bytes = new Uint8Array(stop - start);
    let at = 0;
    while (at < bytes.byteLength) {
      const read = fs.readSync(fd, bytes, at, bytes.byteLength - at, start + at);
      if (read === 0) throw new Error(`the image file ${this.path} ends at ${start + at} of ${this.byteLength} bytes`);
      at += read;
    }
    return bytes;
  }

  /** Closes and deletes the file; later calls do nothing. */
  release(): void {
    if (this.fd === null) return;
    fs.closeSync(this.fd);
    this.fd = null;
    fs.rmSync(this.path, { force: true });
  }
}
