// Encoding of the stored values (entries, hard state, snapshot metadata) as msgpack, and the
// shape checks applied on both sides: before writing, so that nothing is stored that recovery
// would later reject as corrupt, and after reading, so that a record whose checksum matches but
// whose content is not what we write is reported instead of reaching the Raft core.
import { pack, Unpackr } from 'msgpackr';
import type { Entry, HardState, Membership, Snapshot, SnapshotMeta } from '../core/raft/types.ts';
import { InvalidRecordError } from './errors.ts';

// copyBuffers: decoded byte strings get their own memory instead of views into the file buffer,
// so one retained entry does not pin a whole 64 MiB segment.
const unpackr = new Unpackr({ useRecords: false, copyBuffers: true });

const ENTRY_TYPES: ReadonlySet<string> = new Set(['normal', 'noop', 'config']);

function isIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

function membershipProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return 'membership is not an object';
  const { voters, learners } = value as Record<string, unknown>;
  if (!isStringArray(voters)) return 'membership voters is not an array of strings';
  if (!isStringArray(learners)) return 'membership learners is not an array of strings';
  return null;
}

function copyMembership(config: Membership): Membership {
  return { voters: [...config.voters], learners: [...config.learners] };
}

/** Why `value` is not a storable entry, or null when it is one. */
function entryProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return 'entry is not an object';
  const { index, term, type, data, config } = value as Record<string, unknown>;
  if (!isIndex(index) || index < 1) return `entry index ${String(index)} is not a positive safe integer`;
  if (!isIndex(term)) return `entry ${index}: term ${String(term)} is not a non-negative safe integer`;
  if (typeof type !== 'string' || !ENTRY_TYPES.has(type)) return `entry ${index}: unknown type ${String(type)}`;
  if (data !== undefined && !(data instanceof Uint8Array)) return `entry ${index}: data is not a Uint8Array`;
  if (config !== undefined) {
    const problem = membershipProblem(config);
    if (problem !== null) return `entry ${index}: ${problem}`;
  }
  return null;
}

/** Throws CHORUS_STORAGE_INVALID unless `entry` can be stored and read back. */
export function checkEntry(entry: Entry): void {
  const problem = entryProblem(entry);
  if (problem !== null) throw new InvalidRecordError(problem);
}

/** A deep copy holding only the fields of Entry (the stores keep nothing else). */
export function cloneEntry(entry: Entry): Entry {
  const copy: { index: number; term: number; type: Entry['type']; data?: Uint8Array; config?: Membership } = {
    index: entry.index,
    term: entry.term,
    type: entry.type,
  };
  if (entry.data !== undefined) copy.data = new Uint8Array(entry.data); // a copy (Buffer#slice would be a view)
  if (entry.config !== undefined) copy.config = copyMembership(entry.config);
  return copy;
}

/** The msgpack map {index, term, type, data?, config?}; absent fields are left out (not nil). */
export function encodeEntry(entry: Entry): Buffer {
  const record: { index: number; term: number; type: string; data?: Uint8Array; config?: Membership } = {
    index: entry.index,
    term: entry.term,
    type: entry.type,
  };
  if (entry.data !== undefined) record.data = entry.data;
  if (entry.config !== undefined) record.config = { voters: entry.config.voters, learners: entry.config.learners };
  return pack(record);
}

/** Decodes an entry payload; throws an Error saying what is wrong when it is not one. */
export function decodeEntry(payload: Uint8Array): Entry {
  const value: unknown = unpackr.unpack(payload);
  const problem = entryProblem(value);
  if (problem !== null) throw new Error(problem);
  // Rebuild rather than return the decoded map, so that unknown keys never reach the core.
  return cloneDecoded(value as Entry);
}

function cloneDecoded(decoded: Entry): Entry {
  const entry: { index: number; term: number; type: Entry['type']; data?: Uint8Array; config?: Membership } = {
    index: decoded.index,
    term: decoded.term,
    type: decoded.type,
  };
  if (decoded.data !== undefined) entry.data = decoded.data; // already a copy (copyBuffers)
  if (decoded.config !== undefined) entry.config = copyMembership(decoded.config);
  return entry;
}

function hardStateProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return 'hard state is not an object';
  const { term, vote, commit } = value as Record<string, unknown>;
  if (!isIndex(term)) return `term ${String(term)} is not a non-negative safe integer`;
  if (vote !== null && typeof vote !== 'string') return `vote ${String(vote)} is neither a string nor null`;
  if (!isIndex(commit)) return `commit ${String(commit)} is not a non-negative safe integer`;
  return null;
}

export function checkHardState(state: HardState): void {
  const problem = hardStateProblem(state);
  if (problem !== null) throw new InvalidRecordError(problem);
}

export function encodeHardState(state: HardState): Buffer {
  return pack({ term: state.term, vote: state.vote, commit: state.commit });
}

export function decodeHardState(payload: Uint8Array): HardState {
  const value: unknown = unpackr.unpack(payload);
  const problem = hardStateProblem(value);
  if (problem !== null) throw new Error(problem);
  const { term, vote, commit } = value as HardState;
  return { term, vote, commit };
}

function snapshotMetaProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return 'snapshot meta is not an object';
  const { index, term, config } = value as Record<string, unknown>;
  if (!isIndex(index)) return `snapshot index ${String(index)} is not a non-negative safe integer`;
  if (!isIndex(term)) return `snapshot term ${String(term)} is not a non-negative safe integer`;
  return membershipProblem(config);
}

export function checkSnapshot(snapshot: Snapshot): void {
  const problem = snapshotMetaProblem(snapshot.meta);
  if (problem !== null) throw new InvalidRecordError(problem);
  if (!(snapshot.data instanceof Uint8Array)) throw new InvalidRecordError('snapshot data is not a Uint8Array');
}

export function copySnapshotMeta(meta: SnapshotMeta): SnapshotMeta {
  return { index: meta.index, term: meta.term, config: copyMembership(meta.config) };
}

export function encodeSnapshotMeta(meta: SnapshotMeta): Buffer {
  return pack({ index: meta.index, term: meta.term, config: { voters: meta.config.voters, learners: meta.config.learners } });
}

export function decodeSnapshotMeta(payload: Uint8Array): SnapshotMeta {
  const value: unknown = unpackr.unpack(payload);
  const problem = snapshotMetaProblem(value);
  if (problem !== null) throw new Error(problem);
  return copySnapshotMeta(value as SnapshotMeta);
}

/** Decodes any msgpack value (the log's meta file); the caller checks its shape. */
export function decodeValue(payload: Uint8Array): unknown {
  return unpackr.unpack(payload);
}

export { pack as encodeValue };
