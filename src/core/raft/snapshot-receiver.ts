// A follower receiving an image from its leader, chunk by chunk: it hands each chunk to the
// driver (the core keeps none of the bytes), and installs the image once complete (Raft
// Figure 13).
import type { RaftLog } from './log.ts';
import type { SnapshotChunk, SnapshotChunkMessage, SnapshotInstall, SnapshotMeta } from './types.ts';

interface IncomingSnapshot {
  readonly meta: SnapshotMeta;
  /** The term of the leader sending it: another leader's image of the same index may differ. */
  readonly leaderTerm: number;
  readonly totalBytes: number;
  /** Bytes accepted so far (handed to the driver in Ready.snapshotChunks). */
  received: number;
}

/** The answer to a chunk: the next byte offset expected, whether the image is complete (or not
 * needed), whether the chunk was refused; and whether this chunk completed the image, now
 * installed in the log. */
export interface ChunkAnswer {
  readonly nextOffset: number;
  readonly done: boolean;
  readonly reject: boolean;
  readonly installed: boolean;
}

export class SnapshotReceiver {
  private incoming: IncomingSnapshot | null = null;
  /** A completed image, to install in the next ready. */
  private toInstall: SnapshotInstall | null = null;
  /** Chunks of the image being received, for the next ready (in arrival order). */
  private chunksOut: SnapshotChunk[] = [];
  private keepsLog = false;

  /** Whether the next ready has chunks to write or an image to install. */
  hasReady(): boolean {
    return this.toInstall !== null || this.chunksOut.length > 0;
  }

  /** Takes one chunk; returns the answer, or null when the chunk is dropped unanswered. An
   * image completed by it is installed into `log` at once. */
  receive(m: SnapshotChunkMessage, log: RaftLog): ChunkAnswer | null {
    if (m.meta.index <= log.committed) {
      // Stale: we already have everything it covers, committed (so matching the leader).
      this.incoming = null;
      return { nextOffset: m.totalBytes, done: true, reject: false, installed: false };
    }
    if (this.toInstall !== null) {
      // An image completed and its install is not handed out yet: this chunk is of a newer one.
      // A ready's chunks and install must be of one image (the driver stages them in one file),
      // so it waits: dropped, the leader sends it again when the transfer stalls.
      return null;
    }
    let incoming = this.incoming;
    if (incoming === null || incoming.meta.index !== m.meta.index || incoming.meta.term !== m.meta.term || incoming.leaderTerm !== m.term) {
      // Another image: it starts at offset 0. A chunk of the same image at offset 0 again (a
      // duplicate, or the leader starting over) does not discard what arrived: the answer
      // below tells the leader where to go on.
      if (m.offset !== 0) return { nextOffset: 0, done: false, reject: true, installed: false };
      incoming = { meta: m.meta, leaderTerm: m.term, totalBytes: m.totalBytes, received: 0 };
      this.incoming = incoming;
    }
    if (m.offset !== incoming.received) return { nextOffset: incoming.received, done: false, reject: false, installed: false };
    if (incoming.received + m.chunk.byteLength > incoming.totalBytes) {
      // A leader that breaks the protocol: drop the image rather than install a wrong one.
      this.incoming = null;
      return { nextOffset: 0, done: false, reject: true, installed: false };
    }
    // The driver writes the bytes where it will restore from; the core keeps none of them.
    this.chunksOut.push({ meta: incoming.meta, offset: m.offset, totalBytes: incoming.totalBytes, data: m.chunk });
    incoming.received += m.chunk.byteLength;
    if (incoming.received < incoming.totalBytes) return { nextOffset: incoming.received, done: false, reject: false, installed: false };
    this.incoming = null;
    this.keepsLog = log.installSnapshot(incoming.meta);
    this.toInstall = { meta: incoming.meta, totalBytes: incoming.totalBytes };
    return { nextOffset: incoming.totalBytes, done: true, reject: false, installed: true };
  }

  /** What the next ready writes and installs. */
  take(): { snapshotChunks: SnapshotChunk[]; snapshot: SnapshotInstall | null; logAfterSnapshot: 'keep' | 'discard' } {
    const taken = { snapshotChunks: this.chunksOut, snapshot: this.toInstall, logAfterSnapshot: this.keepsLog ? 'keep' as const : 'discard' as const };
    this.toInstall = null;
    this.chunksOut = [];
    return taken;
  }
}
