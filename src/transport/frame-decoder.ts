// Splits a TCP byte stream into length-prefixed frames: [u32 big-endian length][payload].
import { TransportError } from './errors.ts';

export const FRAME_HEADER_BYTES = 4;

/**
 * Incremental frame splitter. Frames that lie entirely inside one chunk are handed out as views
 * of that chunk (no copy); a frame spanning chunks is assembled into one buffer allocated once
 * its header is known, so a 16 MiB frame arriving in 64 KiB pieces costs one copy, not a
 * quadratic series of concatenations.
 *
 * Payloads are plain Uint8Array views (never Buffer) so that msgpack decoding yields plain
 * Uint8Array byte fields. A view of a socket chunk is only valid during the callback; a frame
 * that was assembled is the payload's own buffer (`owned`), which the callee may keep.
 */
export class FrameDecoder {
  /** Invariant: a header announcing more than this many payload bytes is never buffered. */
  private frameBytesMax: number;
  private readonly header = new Uint8Array(FRAME_HEADER_BYTES);
  /** Header bytes received so far, when a header straddles chunks; 0 otherwise. */
  private headerFilled = 0;
  /** The frame being assembled across chunks, or null between frames. */
  private frame: Uint8Array | null = null;
  private frameFilled = 0;
  private stopped = false;
  private readonly onFrame: (payload: Uint8Array, owned: boolean) => void;

  constructor(frameBytesMax: number, onFrame: (payload: Uint8Array, owned: boolean) => void) {
    this.frameBytesMax = frameBytesMax;
    this.onFrame = onFrame;
  }

  /** Raises or lowers the limit, e.g. once a handshake has authenticated the peer. */
  setFrameBytesMax(frameBytesMax: number): void {
    this.frameBytesMax = frameBytesMax;
  }

  /** Ignores all further input; called when the connection is being torn down, including from
   * inside the onFrame callback (the remaining frames of the current chunk are then skipped). */
  stop(): void {
    this.stopped = true;
    this.frame = null;
  }

  /** Feeds bytes in. Throws TransportError CHORUS_FRAME_TOO_LARGE (and stops) on an oversized
   * header; exceptions thrown by onFrame propagate unchanged. */
  push(input: Uint8Array): void {
    // A plain Uint8Array view, so that subarrays handed out are not Buffers.
    const chunk = input.constructor === Uint8Array
      ? input
      : new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    const end = chunk.length;
    let offset = 0;
    while (offset < end && !this.stopped) {
      const frame = this.frame;
      if (frame !== null) {
        const count = Math.min(frame.length - this.frameFilled, end - offset);
        frame.set(chunk.subarray(offset, offset + count), this.frameFilled);
        this.frameFilled += count;
        offset += count;
        if (this.frameFilled === frame.length) {
          this.frame = null;
          this.frameFilled = 0;
          this.onFrame(frame, true);
        }
        continue;
      }
      if (this.headerFilled === 0 && end - offset >= FRAME_HEADER_BYTES) {
        const size = readU32(chunk, offset);
        this.checkSize(size);
        offset += FRAME_HEADER_BYTES;
        if (end - offset >= size) {
          const payload = chunk.subarray(offset, offset + size);
          offset += size;
          this.onFrame(payload, false);
        } else {
          this.frame = new Uint8Array(size);
          this.frameFilled = 0;
        }
        continue;
      }
      // The header straddles chunks: gather it byte by byte (at most 3 bytes per chunk).
      while (this.headerFilled < FRAME_HEADER_BYTES && offset < end) {
        this.header[this.headerFilled] = chunk[offset] ?? 0;
        this.headerFilled += 1;
        offset += 1;
      }
      if (this.headerFilled === FRAME_HEADER_BYTES) {
        this.headerFilled = 0;
        const size = readU32(this.header, 0);
        this.checkSize(size);
        if (size === 0) this.onFrame(new Uint8Array(0), true);
        else {
          this.frame = new Uint8Array(size);
          this.frameFilled = 0;
        }
      }
    }
  }

  private checkSize(size: number): void {
    if (size > this.frameBytesMax) {
      this.stop();
      throw new TransportError(
        'CHORUS_FRAME_TOO_LARGE',
        `frame header announces ${size} bytes, more than the limit of ${this.frameBytesMax}`,
      );
    }
  }
}

function readU32(bytes: Uint8Array, offset: number): number {
  return (
    ((bytes[offset] ?? 0) * 0x1000000) +
    (((bytes[offset + 1] ?? 0) << 16) | ((bytes[offset + 2] ?? 0) << 8) | (bytes[offset + 3] ?? 0))
  );
}
