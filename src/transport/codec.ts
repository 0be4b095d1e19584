// The wire format: frames of [u32 big-endian length][msgpack payload]. The first frame on a
// connection is the dialer's Hello; the acceptor answers Welcome or Refuse; after a Welcome the
// dialer sends Raft messages, one per frame, and the acceptor sends nothing more.
import { Packr, RESERVE_START_SPACE, Unpackr } from 'msgpackr';
import type { Entry, Membership, NodeId, SnapshotMeta } from '../core/raft/types.ts';
import { TransportError } from './errors.ts';
import type { WireMessage } from './types.ts';
import { FRAME_HEADER_BYTES } from './frame-decoder.ts';

/** Bumped on any incompatible change to the frames below or to the Message shapes. */
export const PROTOCOL_VERSION = 1;
/** Versions this build can speak as an acceptor. */
export const SUPPORTED_PROTOCOL_VERSIONS: ReadonlySet<number> = new Set([PROTOCOL_VERSION]);

export interface HelloFrame {
  readonly kind: 'hello';
  readonly clusterId: string;
  readonly memberId: NodeId;
  readonly protocolVersion: number;
  /** The sender's client (HTTP) address, "host:port". Optional: members that predate it omit it,
   * and acceptors that predate it ignore it (extra fields are tolerated), so protocol 1 stands. */
  readonly clientAddress?: string;
}
export interface WelcomeFrame {
  readonly kind: 'welcome';
  readonly clusterId: string;
  readonly memberId: NodeId;
  readonly protocolVersion: number;
  /** The acceptor's client address; optional, as in HelloFrame. */
  readonly clientAddress?: string;
}

/** A longer advertised client address is ignored: it bounds what a peer can make us store. */
export const CLIENT_ADDRESS_CHARS_MAX = 256;

/** The advertised client address of a hello or welcome, or undefined when absent or unusable. */
export function advertisedClientAddress(frame: HelloFrame | WelcomeFrame): string | undefined {
  const address: unknown = frame.clientAddress;
  if (typeof address !== 'string' || address === '' || address.length > CLIENT_ADDRESS_CHARS_MAX) return undefined;
  return address;
}
export type RefusalCode = 'CHORUS_CLUSTER_MISMATCH' | 'CHORUS_PROTOCOL_UNSUPPORTED' | 'CHORUS_HANDSHAKE_INVALID';
export interface RefuseFrame {
  readonly kind: 'refuse';
  readonly code: RefusalCode;
  readonly reason: string;
}
export type HandshakeReply = WelcomeFrame | RefuseFrame;

// One fixed configuration on both sides: plain msgpack maps (no records or shared structures,
// which would make the stream stateful), binary as bin8/16/32, byte fields copied out on decode
// so that a small entry never pins a large receive buffer (a snapshot chunk, which is its whole
// frame, is the exception: decodeOwnedPayload).
const PACKR_OPTIONS = {
  useRecords: false,
  moreTypes: false,
  structuredClone: false,
  mapsAsObjects: true,
  variableMapSize: true,
  copyBuffers: true,
  bundleStrings: false,
  int64AsType: 'number',
  useFloat32: 0,
} as const;
const packr = new Packr(PACKR_OPTIONS);

/**
 * Encodes one value as a complete frame, header included. The result is a view into msgpackr's
 * output buffer; msgpackr only ever writes past previous results, so it stays valid while queued.
 */
export function encodeFrame(value: unknown): Buffer {
  const frame = packr.pack(value, RESERVE_START_SPACE | FRAME_HEADER_BYTES);
  frame.writeUInt32BE(frame.length - FRAME_HEADER_BYTES, 0);
  return frame;
}

/** Decodes one payload (header already stripped); throws CHORUS_FRAME_MALFORMED. */
export function decodePayload(payload: Uint8Array): unknown {
  return decodeWith(packr, payload);
}

/** A large snapshot chunk arrives in a frame assembled in a buffer of its own: decoding it
 * leaves the chunk as a view of that buffer instead of copying it out (a 1 MiB chunk was copied
 * twice on arrival before). The chunk is the frame, so it pins nothing else; the bytes of other
 * messages (entries, multi-master values, which may be kept long after most of their frame is
 * gone) are still copied. */
const OWNED_VIEW_BYTES_MIN = 64 * 1024;
const viewUnpackr = new Unpackr({ ...PACKR_OPTIONS, copyBuffers: false });

/** decodePayload() of a payload that is its own buffer (FrameDecoder's `owned`), which the
 * result may then keep a reference to. */
export function decodeOwnedPayload(payload: Uint8Array): unknown {
  const view = payload.byteLength >= OWNED_VIEW_BYTES_MIN && startsAsSnapshotChunk(payload);
  return decodeWith(view ? viewUnpackr : packr, payload);
}

/** msgpack of the key 'type' and the string 'Snapshot' (fixstr headers 0xa4 and 0xa8). */
const SNAPSHOT_TYPE_BYTES = Uint8Array.from([0xa4, ...Buffer.from('type'), 0xa8, ...Buffer.from('Snapshot')]);

/** Whether a msgpack map starts with `type: 'Snapshot'` (as sendSnapshotChunks builds it). A
 * message laid out otherwise is decoded with copies: slower, never wrong. */
function startsAsSnapshotChunk(payload: Uint8Array): boolean {
  const head = payload[0] ?? 0;
  let at: number;
  if (head >= 0x80 && head <= 0x8f) at = 1; // fixmap
  else if (head === 0xde) at = 3; // map 16
  else return false;
  for (const byte of SNAPSHOT_TYPE_BYTES) {
    if (payload[at++] !== byte) return false;
  }
  return true;
}

function decodeWith(unpackr: Unpackr, payload: Uint8Array): unknown {
  try {
    return unpackr.unpack(payload);
  } catch (err) {
    throw new TransportError('CHORUS_FRAME_MALFORMED', `undecodable frame of ${payload.length} bytes`, { cause: err });
  }
}

type Fields = Record<string, unknown>;

function isObject(x: unknown): x is Fields {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && !(x instanceof Uint8Array);
}
function isString(x: unknown): x is string {
  return typeof x === 'string';
}
function isInt(x: unknown): x is number {
  return Number.isSafeInteger(x);
}
function isBool(x: unknown): x is boolean {
  return typeof x === 'boolean';
}
function isBytes(x: unknown): x is Uint8Array {
  return x instanceof Uint8Array;
}

export function parseHello(x: unknown): HelloFrame | null {
  if (!isObject(x) || x['kind'] !== 'hello') return null;
  if (!isString(x['clusterId']) || !isString(x['memberId']) || x['memberId'] === '') return null;
  if (!isInt(x['protocolVersion'])) return null;
  return x as unknown as HelloFrame;
}

export function parseHandshakeReply(x: unknown): HandshakeReply | null {
  if (!isObject(x)) return null;
  if (x['kind'] === 'welcome') {
    if (!isString(x['clusterId']) || !isString(x['memberId']) || !isInt(x['protocolVersion'])) return null;
    return x as unknown as WelcomeFrame;
  }
  if (x['kind'] === 'refuse') {
    if (!isString(x['code']) || !isString(x['reason'])) return null;
    return x as unknown as RefuseFrame;
  }
  return null;
}

function isStringArray(x: unknown): boolean {
  return Array.isArray(x) && x.every(isString);
}
function isMembership(x: unknown): x is Membership {
  return isObject(x) && isStringArray(x['voters']) && isStringArray(x['learners']);
}
function isSnapshotMeta(x: unknown): x is SnapshotMeta {
  return isObject(x) && isInt(x['index']) && isInt(x['term']) && isMembership(x['config']);
}
function isEntry(x: unknown): x is Entry {
  if (!isObject(x) || !isInt(x['index']) || !isInt(x['term'])) return false;
  const type = x['type'];
  if (type !== 'normal' && type !== 'noop' && type !== 'config') return false;
  if (x['data'] !== undefined && !isBytes(x['data'])) return false;
  if (x['config'] !== undefined && !isMembership(x['config'])) return false;
  return true;
}
function hasLeaderContext(x: Fields): boolean {
  return isInt(x['seq']) && isInt(x['sentTick']);
}

/**
 * Checks that a decoded value has the shape of a Message, so the core never sees a field of the
 * wrong type from a buggy or hostile peer. Extra fields are tolerated (forward compatibility
 * within a protocol version); semantic checks (terms, indexes) are the core's business.
 */
export function validateMessage(x: unknown): WireMessage | null {
  if (!isObject(x) || !isString(x['from']) || !isString(x['to']) || !isInt(x['term'])) return null;
  let ok: boolean;
  switch (x['type']) {
    case 'PreVote':
      ok = isInt(x['lastIndex']) && isInt(x['lastTerm']);
      break;
    case 'Vote':
      ok = isInt(x['lastIndex']) && isInt(x['lastTerm']) && isBool(x['transfer']);
      break;
    case 'PreVoteResp':
    case 'VoteResp':
      ok = isBool(x['granted']);
      break;
    case 'Append':
      ok = hasLeaderContext(x) && isInt(x['prevIndex']) && isInt(x['prevTerm']) && isInt(x['commit']) &&
        Array.isArray(x['entries']) && x['entries'].every(isEntry);
      break;
    case 'AppendResp':
      ok = hasLeaderContext(x) && isBool(x['reject']) && isInt(x['index']) && isInt(x['conflictTerm']) &&
        isInt(x['conflictIndex']) && isInt(x['applied']);
      break;
    case 'Heartbeat':
      ok = hasLeaderContext(x) && isInt(x['commit']) && isInt(x['leaderCommit']);
      break;
    case 'HeartbeatResp':
      ok = hasLeaderContext(x) && isInt(x['applied']);
      break;
    case 'Snapshot':
      ok = hasLeaderContext(x) && isSnapshotMeta(x['meta']) && isInt(x['offset']) && isInt(x['totalBytes']) &&
        isBytes(x['chunk']);
      break;
    case 'SnapshotResp':
      ok = hasLeaderContext(x) && isInt(x['snapshotIndex']) && isInt(x['nextOffset']) && isBool(x['done']) &&
        isBool(x['reject']);
      break;
    case 'TimeoutNow':
      ok = true;
      break;
    case 'ReadIndex':
      ok = isString(x['readId']);
      break;
    case 'ReadIndexResp':
      ok = isString(x['readId']) && isInt(x['index']);
      break;
    case 'MultiMaster':
      ok = isString(x['keyspace']) && isObject(x['body']);
      break;
    default:
      ok = false;
  }
  return ok ? (x as unknown as WireMessage) : null;
}
