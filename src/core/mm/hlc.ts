// Hybrid logical clocks (Kulkarni et al., 2014). A stamp is (physical milliseconds, logical
// counter, member): it stays within the clock skew of physical time, it is strictly greater
// than every stamp the member issued or received before, and the member id makes stamps of
// different members distinct, so the order is total.
//
// Clock-skew assumption: member clocks are within maxClockDriftMs of each other. A stamp
// further ahead than that is refused (CHORUS_CLOCK_DRIFT) instead of dragging this member's
// clock into the future: a member with a runaway clock would otherwise win every LWW conflict
// and hold every other clock ahead of real time for as long as its lead lasts.
import { MmError } from './errors.ts';
import { MEMBER_ID, type MemberId } from './types.ts';

export interface HlcStamp {
  readonly physicalMs: number;
  readonly logical: number;
  readonly member: MemberId;
}

/** 2^48 ms is about 8900 years: 12 hex digits in the sortable encoding. */
export const PHYSICAL_MS_MAX = 2 ** 48 - 1;
/** At this many events within one millisecond the clock borrows the next millisecond. */
export const LOGICAL_MAX = 0xffffffff;

export class ClockDriftError extends MmError {
  constructor(
    readonly remote: HlcStamp,
    readonly localPhysicalMs: number,
    readonly maxClockDriftMs: number,
  ) {
    super(
      'CHORUS_CLOCK_DRIFT',
      `stamp ${encodeStamp(remote)} from ${remote.member} is ${remote.physicalMs - localPhysicalMs}ms ahead of this clock (max ${maxClockDriftMs}ms)`,
    );
    this.name = 'ClockDriftError';
  }
}

export function compareStamps(a: HlcStamp, b: HlcStamp): number {
  if (a.physicalMs !== b.physicalMs) return a.physicalMs < b.physicalMs ? -1 : 1;
  if (a.logical !== b.logical) return a.logical < b.logical ? -1 : 1;
  if (a.member !== b.member) return a.member < b.member ? -1 : 1;
  return 0;
}

export function maxStamp(a: HlcStamp | null, b: HlcStamp | null): HlcStamp | null {
  if (a === null) return b;
  if (b === null) return a;
  return compareStamps(a, b) >= 0 ? a : b;
}

/** `pppppppppppp.llllllll.member`: fixed-width hex fields, so the strings sort as the stamps do. */
export function encodeStamp(s: HlcStamp): string {
  return `${s.physicalMs.toString(16).padStart(12, '0')}.${s.logical.toString(16).padStart(8, '0')}.${s.member}`;
}

export function decodeStamp(text: string): HlcStamp {
  const match = /^([0-9a-f]{12})\.([0-9a-f]{8})\.(.+)$/.exec(text);
  if (match === null || !MEMBER_ID.test(match[3]!)) throw new MmError('CHORUS_BAD_REPLICATION_MESSAGE', `not an HLC stamp: ${JSON.stringify(text)}`);
  return { physicalMs: parseInt(match[1]!, 16), logical: parseInt(match[2]!, 16), member: match[3]! };
}

export function isStamp(value: unknown): value is HlcStamp {
  if (value === null || typeof value !== 'object') return false;
  const s = value as Record<string, unknown>;
  return (
    Number.isSafeInteger(s.physicalMs) && (s.physicalMs as number) >= 0 && (s.physicalMs as number) <= PHYSICAL_MS_MAX &&
    Number.isSafeInteger(s.logical) && (s.logical as number) >= 0 && (s.logical as number) <= LOGICAL_MAX &&
    typeof s.member === 'string' && MEMBER_ID.test(s.member)
  );
}

export class Hlc {
  private lastStamp: HlcStamp;

  /** `initial` is the greatest stamp this member may have issued before (from durable state):
   * the clock never issues a stamp at or below it, even if physical time went backwards. */
  constructor(
    readonly member: MemberId,
    readonly maxClockDriftMs: number,
    initial: HlcStamp | null = null,
  ) {
    if (!MEMBER_ID.test(member)) throw new MmError('CHORUS_BAD_KEYSPACE', `bad member id ${JSON.stringify(member)}`);
    if (!(maxClockDriftMs >= 0)) throw new MmError('CHORUS_BAD_KEYSPACE', 'maxClockDriftMs must be >= 0');
    this.lastStamp = initial === null ? { physicalMs: 0, logical: 0, member } : { ...initial, member };
  }

  /** The greatest stamp issued or received so far (re-labelled with this member). */
  get last(): HlcStamp {
    return this.lastStamp;
  }

  /** A new stamp for a local event: greater than every stamp seen so far. */
  now(physicalMs: number): HlcStamp {
    const pt = clampPhysical(physicalMs);
    const last = this.lastStamp;
    let next: HlcStamp;
    if (pt > last.physicalMs) next = { physicalMs: pt, logical: 0, member: this.member };
    else next = bump(last.physicalMs, last.logical + 1, this.member);
    this.lastStamp = next;
    return next;
  }

  /** Refuses a remote stamp too far ahead of the local clock; changes nothing. */
  check(remote: HlcStamp, physicalMs: number): void {
    const pt = clampPhysical(physicalMs);
    if (remote.physicalMs - pt > this.maxClockDriftMs) throw new ClockDriftError(remote, pt, this.maxClockDriftMs);
  }

  /** Receives a remote stamp: later local stamps will be greater than it. Throws
   * ClockDriftError (and changes nothing) when it is more than maxClockDriftMs ahead. */
  update(remote: HlcStamp, physicalMs: number): HlcStamp {
    this.check(remote, physicalMs);
    const pt = clampPhysical(physicalMs);
    const last = this.lastStamp;
    const top = Math.max(pt, last.physicalMs, remote.physicalMs);
    let logical: number;
    if (top === last.physicalMs && top === remote.physicalMs) logical = Math.max(last.logical, remote.logical) + 1;
    else if (top === last.physicalMs) logical = last.logical + 1;
    else if (top === remote.physicalMs) logical = remote.logical + 1;
    else logical = 0;
    this.lastStamp = bump(top, logical, this.member);
    return this.lastStamp;
  }
}

function clampPhysical(physicalMs: number): number {
  if (!Number.isFinite(physicalMs)) throw new MmError('CHORUS_BAD_KEYSPACE', `physicalMs must be finite, got ${physicalMs}`);
  return Math.min(PHYSICAL_MS_MAX, Math.max(0, Math.floor(physicalMs)));
}

/** A logical counter past LOGICAL_MAX moves the stamp into the next millisecond: stamps stay
 * strictly increasing at the cost of running at most that millisecond ahead of physical time. */
function bump(physicalMs: number, logical: number, member: MemberId): HlcStamp {
  if (logical > LOGICAL_MAX) return { physicalMs: physicalMs + 1, logical: 0, member };
  return { physicalMs, logical, member };
}
