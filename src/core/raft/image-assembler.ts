// Collects the chunks a follower's core hands out (Ready.snapshotChunks) into whole images, for
// drivers that hold images in memory: the simulator and the core's tests. The member writes the
// chunks to a file instead (SqliteStateMachine.stageImage), so an image never has to fit in
// memory.
import { assert } from './assert.ts';
import type { Ready, Snapshot } from './types.ts';

export class ImageAssembler {
  private chunks: Uint8Array[] = [];
  /** Invariant: the byte count of `chunks`, i.e. where the next chunk must start. */
  private received = 0;

  /** Adds the ready's chunks; returns the whole image when the ready installs one, else null. */
  take(ready: Pick<Ready, 'snapshotChunks' | 'snapshot'>): Snapshot | null {
    for (const chunk of ready.snapshotChunks) {
      if (chunk.offset === 0) {
        this.chunks = [];
        this.received = 0;
      }
      assert(chunk.offset === this.received, `image chunk at ${chunk.offset}, expected ${this.received}`);
      this.chunks.push(chunk.data);
      this.received += chunk.data.byteLength;
    }
    const install = ready.snapshot;
    if (install === null) return null;
    assert(this.received === install.totalBytes, `installing an image of ${install.totalBytes} bytes after ${this.received}`);
    const data = new Uint8Array(this.received);
    let offset = 0;
    for (const chunk of this.chunks) {
      data.set(chunk, offset);
      offset += chunk.byteLength;
    }
    this.chunks = [];
    this.received = 0;
    return { meta: install.meta, data };
  }
}
