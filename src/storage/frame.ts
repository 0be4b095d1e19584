// The record frame shared by every file the stores write:
//
//   [u32 payload length, little-endian][u32 CRC32C of the payload, little-endian][payload]
//
// A zero length is never written (every payload is a non-empty msgpack value), so a frame of
// zeros (a file extended by a crash before its data reached the disk) never passes as a record.
import { crc32c } from './crc32c.ts';

export const FRAME_HEADER_BYTES = 8;
/** The length field is 32 bits wide. */
export const FRAME_PAYLOAD_BYTES_MAX = 0xffff_ffff;

/** Writes the header for `payload` at `target[offset]` and the payload after it; returns the end. */
export function writeFrame(target: Buffer, offset: number, payload: Uint8Array): number {
  if (payload.length === 0 || payload.length > FRAME_PAYLOAD_BYTES_MAX) {
    throw new RangeError(`frame payload of ${payload.length} bytes is out of range`);
  }
  target.writeUInt32LE(payload.length, offset);
  target.writeUInt32LE(crc32c(payload), offset + 4);
  target.set(payload, offset + FRAME_HEADER_BYTES);
  return offset + FRAME_HEADER_BYTES + payload.length;
}

/** One frame as a standalone buffer. */
export function frame(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  writeFrame(out, 0, payload);
  return out;
}

export type FrameRead =
  /** A valid frame: the payload is buf[payloadStart, end). */
  | { readonly kind: 'ok'; readonly payloadStart: number; readonly end: number }
  /** The header or the payload runs past `limit`. */
  | { readonly kind: 'truncated' }
  /** A zero length field: never written by the stores. */
  | { readonly kind: 'empty' }
  /** The payload fits but its CRC does not match; `end` is where the frame claims to end. */
  | { readonly kind: 'checksum'; readonly end: number };

/** Reads the frame starting at `offset`, looking no further than `limit`. */
export function readFrame(buf: Buffer, offset: number, limit: number): FrameRead {
  if (limit - offset < FRAME_HEADER_BYTES) return { kind: 'truncated' };
  const length = buf.readUInt32LE(offset);
  if (length === 0) return { kind: 'empty' };
  const payloadStart = offset + FRAME_HEADER_BYTES;
  const end = payloadStart + length;
  if (end > limit) return { kind: 'truncated' };
  if (crc32c(buf, payloadStart, end) !== buf.readUInt32LE(offset + 4)) return { kind: 'checksum', end };
  return { kind: 'ok', payloadStart, end };
}
