// Sibling sets under dotted version vectors (Preguiça, Baquero et al.; the "DVV set" of Riak).
// A record is a set of siblings, each tagged with the dot of the write that made it, plus the
// causal context: every event of the key the record has seen. A sibling is dropped exactly when
// a context that does not hold it has seen its dot, that is when some write knowingly replaced
// it. Concurrent writes therefore survive as siblings, and only they do.
//
// The dot names the member event, not the client: any number of clients writing through one
// member with the context they read never creates more siblings than there are truly
// concurrent writes. (Client-id vectors grow with the clients; member vectors without dots
// either lose concurrent writes or keep stale ones.)
import { asciiFromBase64url, base64urlFromAscii, bytesEqual } from './codec.ts';
import { MmError, invariant } from './errors.ts';
import { compareStamps, encodeStamp, type HlcStamp } from './hlc.ts';
import {
  MEMBER_ID,
  compareDots,
  vvCovers,
  vvMerge,
  vvWithDot,
  type Dot,
  type MemberId,
  type VersionVector,
} from './types.ts';

export interface Sibling {
  readonly dot: Dot;
  /** When it was written (informational: the order of siblings in a read). */
  readonly stamp: HlcStamp;
  readonly value: Uint8Array;
}

export interface DvvRecord {
  readonly mode: 'versions';
  /** Sorted by dot. Invariant: every sibling's dot is covered by `context`. Empty: a tombstone. */
  readonly siblings: readonly Sibling[];
  readonly context: VersionVector;
}

export interface DvvView {
  readonly mode: 'versions';
  readonly found: boolean;
  /** Oldest first. */
  readonly siblings: readonly { readonly value: Uint8Array; readonly stamp: string }[];
  /** The causal context token: a PUT or DELETE carrying it replaces exactly these siblings. */
  readonly token: string;
}

export const EMPTY_DVV: DvvRecord = { mode: 'versions', siblings: [], context: [] };

export function mergeDvv(a: DvvRecord, b: DvvRecord): DvvRecord {
  const siblings: Sibling[] = [];
  let i = 0;
  let j = 0;
  while (i < a.siblings.length || j < b.siblings.length) {
    const x = a.siblings[i];
    const y = b.siblings[j];
    const order = x === undefined ? 1 : y === undefined ? -1 : compareDots(x.dot, y.dot);
    if (order === 0) {
      invariant(bytesEqual(x!.value, y!.value), `two different siblings carry dot ${x!.dot.member}:${x!.dot.seq}`);
      siblings.push(x!);
      i++;
      j++;
    } else if (order < 0) {
      if (!vvCovers(b.context, x!.dot)) siblings.push(x!);
      i++;
    } else {
      if (!vvCovers(a.context, y!.dot)) siblings.push(y!);
      j++;
    }
  }
  return { mode: 'versions', siblings, context: vvMerge(a.context, b.context) };
}

export interface DvvWrite {
  readonly record: DvvRecord;
  /** The siblings this write replaced. */
  readonly replaced: readonly Dot[];
}

/** A local PUT. With a client context (from a read's token) the siblings it covers are
 * replaced; without one (a blind write) the value joins the existing siblings. */
export function putDvv(current: DvvRecord | null, value: Uint8Array, clientContext: VersionVector | null, dot: Dot, stamp: HlcStamp): DvvWrite {
  const cur = current ?? EMPTY_DVV;
  const cover = clientContext ?? [];
  const kept: Sibling[] = [];
  const replaced: Dot[] = [];
  for (const s of cur.siblings) {
    if (vvCovers(cover, s.dot)) replaced.push(s.dot);
    else kept.push(s);
  }
  invariant(!vvCovers(cur.context, dot), `dot ${dot.member}:${dot.seq} is not new`);
  kept.push({ dot, stamp, value });
  kept.sort((p, q) => compareDots(p.dot, q.dot));
  return { record: { mode: 'versions', siblings: kept, context: vvWithDot(vvMerge(cur.context, cover), dot) }, replaced };
}

/** A local DELETE. Without a client context it deletes every sibling this member holds. The
 * dot joins the context so that the delete itself is an event others learn of. */
export function deleteDvv(current: DvvRecord | null, clientContext: VersionVector | null, dot: Dot): DvvWrite {
  const cur = current ?? EMPTY_DVV;
  const cover = clientContext ?? cur.context;
  const kept: Sibling[] = [];
  const replaced: Dot[] = [];
  for (const s of cur.siblings) {
    if (vvCovers(cover, s.dot)) replaced.push(s.dot);
    else kept.push(s);
  }
  return { record: { mode: 'versions', siblings: kept, context: vvWithDot(vvMerge(cur.context, cover), dot) }, replaced };
}

export function dvvView(record: DvvRecord | null): DvvView {
  const r = record ?? EMPTY_DVV;
  const ordered = [...r.siblings].sort((p, q) => compareStamps(p.stamp, q.stamp) || compareDots(p.dot, q.dot));
  return {
    mode: 'versions',
    found: r.siblings.length > 0,
    siblings: ordered.map((s) => ({ value: s.value, stamp: encodeStamp(s.stamp) })),
    token: encodeToken(r.context),
  };
}

const TOKEN_VERSION = '1';
/** A token longer than this is refused before parsing (a context has one entry per member). */
export const TOKEN_CHARS_MAX = 8192;

/** base64url of `1,member=seq,member=seq` (members sorted): compact, URL- and header-safe. */
export function encodeToken(context: VersionVector): string {
  let text = TOKEN_VERSION;
  for (const [m, s] of context) text += `,${m}=${s}`;
  return base64urlFromAscii(text);
}

/** Decodes a token; MmError CHORUS_BAD_TOKEN when malformed or when it names a member outside
 * `members`. A token is opaque to clients: a forged one can hide concurrent siblings. */
export function decodeToken(token: string, members?: ReadonlySet<MemberId>): VersionVector {
  const bad = (why: string): never => {
    throw new MmError('CHORUS_BAD_TOKEN', `bad causal context token: ${why}`);
  };
  if (typeof token !== 'string' || token.length > TOKEN_CHARS_MAX) return bad('not a string of at most 8192 characters');
  const text = asciiFromBase64url(token);
  if (text === null) return bad('not base64url');
  const parts = text.split(',');
  if (parts[0] !== TOKEN_VERSION) return bad('unknown version');
  const out: [MemberId, number][] = [];
  for (const part of parts.slice(1)) {
    const eq = part.lastIndexOf('=');
    const member = part.slice(0, eq);
    const seqText = part.slice(eq + 1);
    if (eq <= 0 || !MEMBER_ID.test(member) || !/^[1-9][0-9]{0,15}$/.test(seqText)) return bad(`bad entry ${JSON.stringify(part)}`);
    const seq = Number(seqText);
    if (!Number.isSafeInteger(seq)) return bad('seq out of range');
    if (members !== undefined && !members.has(member)) return bad(`unknown member ${member}`);
    const prev = out[out.length - 1];
    if (prev !== undefined && prev[0] >= member) return bad('members not strictly sorted');
    out.push([member, seq]);
  }
  return out;
}
