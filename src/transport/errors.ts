// Errors raised or logged by the transport. Codes are stable: operators and tests match on them.

export type TransportErrorCode =
  /** A frame header announced more bytes than the receiver accepts. */
  | 'CHORUS_FRAME_TOO_LARGE'
  /** A frame could not be decoded, or decoded to something that is not a valid frame. */
  | 'CHORUS_FRAME_MALFORMED'
  /** The remote side refused our handshake (other cluster, unsupported version, wrong member). */
  | 'CHORUS_HANDSHAKE_REFUSED'
  /** No valid handshake completed within the handshake timeout. */
  | 'CHORUS_HANDSHAKE_TIMEOUT'
  /** The peer broke the connection protocol (e.g. sent frames on a connection meant for our writes). */
  | 'CHORUS_PROTOCOL_VIOLATION'
  /** A socket stayed unwritable for longer than writeStallMsMax: assumed dead, reconnecting. */
  | 'CHORUS_WRITE_STALLED'
  /** The message handler threw; the message is lost, the connection is kept. */
  | 'CHORUS_HANDLER_FAILED'
  /** A message could not be encoded. */
  | 'CHORUS_ENCODE_FAILED'
  /** A constructor option is out of range. */
  | 'CHORUS_INVALID_OPTION';

export class TransportError extends Error {
  readonly code: TransportErrorCode;

  constructor(code: TransportErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TransportError';
    this.code = code;
  }
}
