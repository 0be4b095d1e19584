// The commands carried in the payload of committed 'normal' log entries, their validation,
// their binary encoding and the comparison semantics of transactions.
//
// Determinism matters more than anything here: every replica decodes and validates the same
// bytes at apply time and must reach the same verdict, so decoding never depends on the stack
// depth, on optional native add-ons, or on lenient UTF-8 handling (see checkWireShape).
import { Buffer } from 'node:buffer';
import { Packr } from 'msgpackr';
import { formatStandbyNames, parseStandbyNames, synchronousCommitLevels } from '../core/policy/replication-policy.ts';
import type { SynchronousCommit } from '../core/policy/replication-policy.ts';
import { KEYSPACE_NAME } from '../core/mm/types.ts';
import type { ConflictMode } from '../core/mm/types.ts';
import { KvError } from './errors.ts';

export { KvError } from './errors.ts';
export type { KvErrorCode } from './errors.ts';

// ---------------------------------------------------------------------------------------------
// Types

export type CompareTarget = 'value' | 'version' | 'modRevision' | 'createRevision';
export type CompareOp = '==' | '!=' | '<' | '>';

export interface Compare {
  readonly key: string;
  readonly target: CompareTarget;
  readonly op: CompareOp;
  /** Bytes when target is 'value', a safe integer otherwise. */
  readonly value: Uint8Array | number;
}

export interface PutOp {
  readonly op: 'put';
  readonly key: string;
  readonly value: Uint8Array;
}
export interface DeleteOp {
  readonly op: 'delete';
  readonly key: string;
}
export interface GetOp {
  readonly op: 'get';
  readonly key: string;
}
export type Op = PutOp | DeleteOp | GetOp;

export interface PutCommand {
  readonly kind: 'put';
  readonly key: string;
  readonly value: Uint8Array;
}
export interface DeleteCommand {
  readonly kind: 'delete';
  readonly key: string;
}
/** Compares are all evaluated against the state before the txn; then `success` (all compares
 * held) or `failure` runs, op by op, so a get sees a put earlier in the same branch. A branch
 * may write a key at most once (as etcd), which keeps version counting unambiguous. */
export interface TxnCommand {
  readonly kind: 'txn';
  readonly compare: readonly Compare[];
  readonly success: readonly Op[];
  readonly failure: readonly Op[];
}

/** The cluster's replication settings (PUT /v1/config/replication). Going through the log makes
 * every member agree on them, and storing them in SQLite puts them in snapshots. Values are
 * stored in canonical form (parseSynchronousCommit / formatStandbyNames). */
export interface ReplicationConfigCommand {
  readonly kind: 'replication-config';
  readonly synchronousCommit: SynchronousCommit;
  /** '' for no standby set. */
  readonly synchronousStandbyNames: string;
}
/** Records the peer (node-to-node) address of a member, before the configuration change that
 * adds it, so that every member's transport can dial it; null forgets it (after a removal). */
export interface MemberAddressCommand {
  readonly kind: 'member-address';
  readonly id: string;
  readonly peerAddress: string | null;
}

/** Adds a keyspace to the catalog (POST /v1/keyspaces). Replicated so that every member agrees
 * on the catalog; creating an existing keyspace with the same definition changes nothing. */
export interface KeyspaceCreateCommand {
  readonly kind: 'keyspace-create';
  readonly name: string;
  readonly mode: 'consensus' | 'multi-master';
  /** multi-master only ('' for consensus). */
  readonly conflicts: '' | ConflictMode;
  /** multi-master: the members that replicate the keyspace, fixed at creation (the cluster's
   * voters and learners when it was proposed); [] for consensus. */
  readonly members: readonly string[];
}

/** New kinds join this union and the switches below. A replica that does not know a kind
 * applies it as an error result, so a new kind may only be proposed once every replica runs
 * code that knows it. */
export type Command = PutCommand | DeleteCommand | TxnCommand | ReplicationConfigCommand | MemberAddressCommand | KeyspaceCreateCommand;
export type CommandKind = Command['kind'];

/** The parts of a stored record that comparisons look at. */
export interface CompareSubject {
  readonly value: Uint8Array;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
}

// ---------------------------------------------------------------------------------------------
// Limits

/** Limits must be identical on every replica: they are checked again at apply time, and a
 * replica with other limits would reach another verdict on the same entry. */
export interface KvLimits {
  /** Longest key, in bytes of its UTF-8 form. */
  readonly keyBytesMax: number;
  /** Longest value of a put or of a value comparison. */
  readonly valueBytesMax: number;
  /** Most ops in each txn branch, and most compares in a txn. */
  readonly txnOpsMax: number;
}

export const DEFAULT_KV_LIMITS: KvLimits = Object.freeze({
  keyBytesMax: 4096,
  valueBytesMax: 1024 * 1024,
  txnOpsMax: 128,
});

/** Fills in defaults and checks that every limit is a positive safe integer. */
export function resolveLimits(limits?: Partial<KvLimits>): KvLimits {
  if (limits === undefined || limits === DEFAULT_KV_LIMITS) return DEFAULT_KV_LIMITS;
  const resolved: KvLimits = {
    keyBytesMax: limits.keyBytesMax ?? DEFAULT_KV_LIMITS.keyBytesMax,
    valueBytesMax: limits.valueBytesMax ?? DEFAULT_KV_LIMITS.valueBytesMax,
    txnOpsMax: limits.txnOpsMax ?? DEFAULT_KV_LIMITS.txnOpsMax,
  };
  for (const [name, value] of Object.entries(resolved)) {
    if (!Number.isSafeInteger(value) || (value as number) < 1) {
      throw new RangeError(`limit ${name} must be a positive integer, got ${String(value)}`);
    }
  }
  return Object.freeze(resolved);
}

// ---------------------------------------------------------------------------------------------
// Keys

/**
 * The UTF-8 length of `s`, or -1 when `s` holds a lone surrogate (such a string has no UTF-8
 * form: encoders would silently replace it with U+FFFD, changing the key). Counting stops as
 * soon as the length exceeds `stopAfterBytes`, so a huge key costs no more than a long one.
 */
export function utf8ByteLength(s: string, stopAfterBytes = Number.MAX_SAFE_INTEGER): number {
  let bytes = 0;
  for (let i = 0; i < s.length; i++) {
    const unit = s.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = s.charCodeAt(i + 1); // NaN past the end: fails the test below
      if (!(next >= 0xdc00 && next <= 0xdfff)) return -1;
      bytes += 4;
      i++;
    } else if (unit >= 0xdc00 && unit <= 0xdfff) return -1;
    else bytes += 3;
    if (bytes > stopAfterBytes) return bytes;
  }
  return bytes;
}

// ignoreBOM: by default TextDecoder strips a leading U+FEFF, which would turn the key bytes
// EF BB BF 61 into "a": two different byte keys would collide.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Checks a key given as a JS string; returns it unchanged. */
export function validateKey(key: unknown, limits: KvLimits = DEFAULT_KV_LIMITS): string {
  if (typeof key !== 'string') throw new KvError('CHORUS_BAD_KEY', 'key must be a string');
  if (key.length === 0) throw new KvError('CHORUS_BAD_KEY', 'key must not be empty');
  const bytes = utf8ByteLength(key, limits.keyBytesMax);
  if (bytes < 0) throw new KvError('CHORUS_BAD_KEY', 'key is not valid UTF-8 (lone surrogate)');
  if (bytes > limits.keyBytesMax) {
    throw new KvError('CHORUS_KEY_TOO_LARGE', `key exceeds ${limits.keyBytesMax} bytes`);
  }
  return key;
}

/** Turns raw key bytes (e.g. from a URL or a binary protocol) into a key, rejecting bytes that
 * are not valid UTF-8 instead of replacing them. */
export function keyFromBytes(bytes: Uint8Array, limits: KvLimits = DEFAULT_KV_LIMITS): string {
  if (bytes.byteLength === 0) throw new KvError('CHORUS_BAD_KEY', 'key must not be empty');
  if (bytes.byteLength > limits.keyBytesMax) {
    throw new KvError('CHORUS_KEY_TOO_LARGE', `key exceeds ${limits.keyBytesMax} bytes`);
  }
  try {
    return strictUtf8.decode(bytes);
  } catch (cause) {
    throw new KvError('CHORUS_BAD_KEY', 'key is not valid UTF-8', { cause });
  }
}

// ---------------------------------------------------------------------------------------------
// Validation

const COMPARE_TARGETS: ReadonlySet<string> = new Set<CompareTarget>(['value', 'version', 'modRevision', 'createRevision']);
const COMPARE_OPS: ReadonlySet<string> = new Set<CompareOp>(['==', '!=', '<', '>']);

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && !(x instanceof Uint8Array);
}

/** A short, deterministic rendering of an untrusted kind for error messages. */
function describeKind(kind: unknown): string {
  if (typeof kind !== 'string') return `of type ${typeof kind}`;
  return JSON.stringify(kind.length > 40 ? `${kind.slice(0, 40)}...` : kind);
}

function badRequest(message: string): KvError {
  return new KvError('CHORUS_BAD_REQUEST', message);
}

function validateValue(value: unknown, limits: KvLimits, what: string): void {
  if (!(value instanceof Uint8Array)) throw badRequest(`${what} must be bytes (Uint8Array)`);
  if (value.byteLength > limits.valueBytesMax) {
    throw new KvError('CHORUS_VALUE_TOO_LARGE', `${what} exceeds ${limits.valueBytesMax} bytes`);
  }
}

function validateCompare(c: unknown, limits: KvLimits, at: number): void {
  if (!isRecord(c)) throw badRequest(`compare[${at}] must be an object`);
  validateKey(c['key'], limits);
  const target = c['target'];
  if (typeof target !== 'string' || !COMPARE_TARGETS.has(target)) {
    throw badRequest(`compare[${at}].target must be one of value, version, modRevision, createRevision`);
  }
  const op = c['op'];
  if (typeof op !== 'string' || !COMPARE_OPS.has(op)) {
    throw badRequest(`compare[${at}].op must be one of ==, !=, <, >`);
  }
  if (target === 'value') {
    validateValue(c['value'], limits, `compare[${at}].value`);
  } else if (!Number.isSafeInteger(c['value'])) {
    throw badRequest(`compare[${at}].value must be an integer when target is ${target}`);
  }
}

function validateBranch(ops: unknown, limits: KvLimits, name: 'success' | 'failure'): void {
  if (!Array.isArray(ops)) throw badRequest(`txn.${name} must be an array`);
  if (ops.length > limits.txnOpsMax) {
    throw badRequest(`txn.${name} has ${ops.length} ops, more than ${limits.txnOpsMax}`);
  }
  let written: Set<string> | undefined;
  for (let i = 0; i < ops.length; i++) {
    const o: unknown = ops[i];
    if (!isRecord(o)) throw badRequest(`txn.${name}[${i}] must be an object`);
    const key = validateKey(o['key'], limits);
    switch (o['op']) {
      case 'get':
        continue;
      case 'put':
        validateValue(o['value'], limits, `txn.${name}[${i}].value`);
        break;
      case 'delete':
        break;
      default:
        throw badRequest(`txn.${name}[${i}].op must be one of put, delete, get`);
    }
    written ??= new Set();
    if (written.has(key)) throw badRequest(`txn.${name} writes key ${JSON.stringify(key)} more than once`);
    written.add(key);
  }
}

/** Member ids: 1-64 characters of [A-Za-z0-9._-], starting with a letter or digit. */
export const MEMBER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** A peer address: host:port, IPv6 hosts in brackets. */
const PEER_ADDRESS_PATTERN = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]{1,253}):\d{1,5}$/;

function badConfig(message: string): KvError {
  return new KvError('CHORUS_BAD_CONFIG', message);
}

/** Checks a member id; returns it unchanged. */
export function validateMemberId(id: unknown): string {
  if (typeof id !== 'string' || !MEMBER_ID_PATTERN.test(id)) {
    throw badConfig(`a member id is 1-64 characters of A-Z a-z 0-9 . _ - (got ${describeKind(id)})`);
  }
  return id;
}

/** Checks a peer address ("host:port", port 1-65535); returns it unchanged. */
export function validatePeerAddress(address: unknown): string {
  if (typeof address !== 'string' || !PEER_ADDRESS_PATTERN.test(address)) {
    throw badConfig(`a peer address is host:port (got ${describeKind(address)})`);
  }
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  if (port < 1 || port > 65535) throw badConfig(`peer address ${address} has an invalid port`);
  return address;
}

/** Standby names stored in the log must already be canonical, so every replica (and a later
 * reader of the settings) sees exactly what the leader validated. */
function validateStandbyNamesText(text: unknown): void {
  if (typeof text !== 'string' || text.length > 4096) throw badConfig('synchronous_standby_names must be a string of at most 4096 characters');
  let canonical: string;
  try {
    canonical = formatStandbyNames(parseStandbyNames(text));
  } catch (error) {
    throw badConfig((error as Error).message);
  }
  if (canonical !== text) throw badConfig(`synchronous_standby_names must be in canonical form ("${canonical}")`);
}

/** Names a user cannot give a keyspace: the built-in consensus keyspace of /v1/kv. */
export const DEFAULT_KEYSPACE = 'default';
/** Most members a multi-master keyspace is replicated on. */
export const KEYSPACE_MEMBERS_MAX = 64;

function validateKeyspaceCreate(cmd: Record<string, unknown>): void {
  const { name, mode, conflicts, members } = cmd;
  if (typeof name !== 'string' || !KEYSPACE_NAME.test(name)) throw badRequest('keyspace name must be 1-64 characters of A-Z a-z 0-9 . _ -');
  if (name === DEFAULT_KEYSPACE) throw badRequest(`"${DEFAULT_KEYSPACE}" is the built-in consensus keyspace of /v1/kv`);
  if (mode !== 'consensus' && mode !== 'multi-master') throw badRequest('mode must be "consensus" or "multi-master"');
  if (!Array.isArray(members) || members.length > KEYSPACE_MEMBERS_MAX) throw badRequest(`members must be an array of at most ${KEYSPACE_MEMBERS_MAX} member ids`);
  for (const m of members) validateMemberId(m);
  if (new Set(members).size !== members.length) throw badRequest('members must be distinct');
  if (mode === 'consensus') {
    if (conflicts !== '' || members.length > 0) throw badRequest('a consensus keyspace has no conflict strategy and no member list');
  } else {
    if (conflicts !== 'lww' && conflicts !== 'versions' && conflicts !== 'crdt') throw badRequest('conflicts must be "lww", "versions" or "crdt"');
    if (members.length === 0) throw badRequest('a multi-master keyspace needs at least one member');
  }
}

/**
 * Checks a command against the limits. Accepts anything (it may come from JSON), so it also
 * checks the shape. Codes: CHORUS_BAD_KEY, CHORUS_KEY_TOO_LARGE, CHORUS_VALUE_TOO_LARGE,
 * CHORUS_BAD_REQUEST. Deterministic: the same command and limits give the same verdict.
 */
export function validateCommand(cmd: unknown, limits: KvLimits = DEFAULT_KV_LIMITS): asserts cmd is Command {
  if (!isRecord(cmd)) throw badRequest('command must be an object');
  switch (cmd['kind']) {
    case 'put':
      validateKey(cmd['key'], limits);
      validateValue(cmd['value'], limits, 'value');
      return;
    case 'delete':
      validateKey(cmd['key'], limits);
      return;
    case 'txn': {
      const compare = cmd['compare'];
      if (!Array.isArray(compare)) throw badRequest('txn.compare must be an array');
      if (compare.length > limits.txnOpsMax) {
        throw badRequest(`txn.compare has ${compare.length} compares, more than ${limits.txnOpsMax}`);
      }
      for (let i = 0; i < compare.length; i++) validateCompare(compare[i], limits, i);
      validateBranch(cmd['success'], limits, 'success');
      validateBranch(cmd['failure'], limits, 'failure');
      return;
    }
    case 'replication-config': {
      const level = cmd['synchronousCommit'];
      if (typeof level !== 'string' || !(synchronousCommitLevels as readonly string[]).includes(level)) {
        throw badConfig(`synchronous_commit must be one of ${synchronousCommitLevels.join(', ')} (got ${describeKind(level)})`);
      }
      validateStandbyNamesText(cmd['synchronousStandbyNames']);
      return;
    }
    case 'member-address':
      validateMemberId(cmd['id']);
      if (cmd['peerAddress'] !== null) validatePeerAddress(cmd['peerAddress']);
      return;
    case 'keyspace-create':
      validateKeyspaceCreate(cmd);
      return;
    default:
      throw badRequest(`unknown command kind ${describeKind(cmd['kind'])}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Comparison

/**
 * Evaluates one comparison against the current record of its key (undefined when absent).
 * As etcd, an absent key has version, createRevision and modRevision 0. Unlike etcd (where
 * every value comparison on an absent key fails), an absent key has "no value": '!=' holds,
 * '==', '<' and '>' do not. Values compare bytewise (memcmp order, shorter prefix first).
 */
export function evaluateCompare(c: Compare, current: CompareSubject | undefined): boolean {
  let order: number;
  if (c.target === 'value') {
    if (!(c.value instanceof Uint8Array)) return false; // unreachable after validateCommand
    if (current === undefined) return c.op === '!=';
    order = Buffer.compare(current.value, c.value);
  } else {
    if (typeof c.value !== 'number') return false; // unreachable after validateCommand
    const actual = current === undefined ? 0 : current[c.target];
    order = actual < c.value ? -1 : actual > c.value ? 1 : 0;
  }
  switch (c.op) {
    case '==':
      return order === 0;
    case '!=':
      return order !== 0;
    case '<':
      return order < 0;
    case '>':
      return order > 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding
//
// The payload is a MessagePack map with a `kind` field. Keys travel as bin (bytes), not str,
// so that decoding checks their UTF-8 strictly (keyFromBytes) rather than trusting a decoder
// that might substitute U+FFFD. Values travel as bin.

// useRecords: false keeps plain MessagePack maps (no msgpackr record extension), so the bytes
// stand alone and any MessagePack tool can read them.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

function keyToWire(key: string): Uint8Array {
  if (utf8ByteLength(key) < 0) throw new KvError('CHORUS_BAD_KEY', 'key is not valid UTF-8 (lone surrogate)');
  return Buffer.from(key, 'utf8');
}

function opToWire(o: Op): Record<string, unknown> {
  if (o.op === 'put') return { op: 'put', key: keyToWire(o.key), value: o.value };
  return { op: o.op, key: keyToWire(o.key) };
}

/** Encodes a command. Validate it first: encoding only refuses keys with no UTF-8 form. The
 * result may share an ArrayBuffer with earlier results; it is never overwritten. */
export function encodeCommand(cmd: Command): Uint8Array {
  let wire: Record<string, unknown>;
  switch (cmd.kind) {
    case 'put':
      wire = { kind: 'put', key: keyToWire(cmd.key), value: cmd.value };
      break;
    case 'delete':
      wire = { kind: 'delete', key: keyToWire(cmd.key) };
      break;
    case 'txn':
      wire = {
        kind: 'txn',
        compare: cmd.compare.map((c) => ({ key: keyToWire(c.key), target: c.target, op: c.op, value: c.value })),
        success: cmd.success.map(opToWire),
        failure: cmd.failure.map(opToWire),
      };
      break;
    case 'replication-config':
      wire = { kind: 'replication-config', synchronousCommit: cmd.synchronousCommit, synchronousStandbyNames: cmd.synchronousStandbyNames };
      break;
    case 'member-address':
      wire = { kind: 'member-address', id: cmd.id, peerAddress: cmd.peerAddress };
      break;
    case 'keyspace-create':
      wire = { kind: 'keyspace-create', name: cmd.name, mode: cmd.mode, conflicts: cmd.conflicts, members: cmd.members };
      break;
    default:
      throw badRequest(`unknown command kind ${describeKind((cmd as { kind: unknown }).kind)}`);
  }
  return packr.pack(wire);
}

function badCommand(message: string, cause?: unknown): KvError {
  return new KvError('CHORUS_BAD_COMMAND', message, cause === undefined ? undefined : { cause });
}

/** Deepest container nesting of any valid payload (txn map > compare array > compare map),
 * plus one to spare for future kinds. Bounding it up front keeps the recursive decoder far
 * from the stack limit, whose exact depth differs between processes. */
const WIRE_DEPTH_MAX = 4;

/** Our field names and enum values are ASCII: checking them byte by byte is cheaper than a
 * TextDecoder call per string. */
function isAscii(bytes: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (bytes[i]! >= 0x80) return false;
  return true;
}

/** A bounds-checked big-endian reader. A class rather than closures: checkWireShape runs for
 * every applied entry, and per-call closures are not free (tsx even renames each one). */
class WireCursor {
  readonly bytes: Uint8Array;
  pos = 0;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }

  need(n: number): void {
    if (n > this.bytes.byteLength - this.pos) throw badCommand('command payload is truncated');
  }

  u8(): number {
    this.need(1);
    return this.bytes[this.pos++]!;
  }

  u16(): number {
    return this.u8() * 0x100 + this.u8();
  }

  u32(): number {
    return this.u16() * 0x10000 + this.u16();
  }
}

/**
 * Walks the MessagePack structure without building it: rejects truncation, trailing bytes,
 * nesting deeper than WIRE_DEPTH_MAX, extension types (we never write them; msgpackr gives
 * some of them special meaning) and str items that are not valid UTF-8 (decoders disagree on
 * those). After this check, decoding is a pure function of the bytes.
 */
function checkWireShape(bytes: Uint8Array): void {
  const cursor = new WireCursor(bytes);
  // Items still to read in each open container; the bottom slot is the single top-level item.
  const pending: number[] = [1];
  while (pending.length > 0) {
    const top = pending.length - 1;
    if (pending[top] === 0) {
      pending.pop();
      continue;
    }
    pending[top]!--;
    const b = cursor.u8();
    let items = -1; // >= 0 when the item is a container of that many items
    let strBytes = -1;
    let skipBytes = 0;
    if (b <= 0x7f || b >= 0xe0) {
      // positive / negative fixint
    } else if (b <= 0x8f) items = (b & 0x0f) * 2;
    else if (b <= 0x9f) items = b & 0x0f;
    else if (b <= 0xbf) strBytes = b & 0x1f;
    else {
      switch (b) {
        case 0xc0: // nil
        case 0xc2: // false
        case 0xc3: // true
          break;
        case 0xc4: skipBytes = cursor.u8(); break; // bin 8
        case 0xc5: skipBytes = cursor.u16(); break; // bin 16
        case 0xc6: skipBytes = cursor.u32(); break; // bin 32
        case 0xca: skipBytes = 4; break; // float 32
        case 0xcb: skipBytes = 8; break; // float 64
        case 0xcc: case 0xd0: skipBytes = 1; break; // (u)int 8
        case 0xcd: case 0xd1: skipBytes = 2; break; // (u)int 16
        case 0xce: case 0xd2: skipBytes = 4; break; // (u)int 32
        case 0xcf: case 0xd3: skipBytes = 8; break; // (u)int 64
        case 0xd9: strBytes = cursor.u8(); break; // str 8
        case 0xda: strBytes = cursor.u16(); break; // str 16
        case 0xdb: strBytes = cursor.u32(); break; // str 32
        case 0xdc: items = cursor.u16(); break; // array 16
        case 0xdd: items = cursor.u32(); break; // array 32
        case 0xde: items = cursor.u16() * 2; break; // map 16
        case 0xdf: items = cursor.u32() * 2; break; // map 32
        default:
          throw badCommand(`command payload holds unsupported MessagePack type 0x${b.toString(16)}`);
      }
    }
    if (strBytes >= 0) {
      cursor.need(strBytes);
      if (!isAscii(bytes, cursor.pos, cursor.pos + strBytes)) {
        try {
          strictUtf8.decode(bytes.subarray(cursor.pos, cursor.pos + strBytes));
        } catch (cause) {
          throw badCommand('command payload holds a string that is not valid UTF-8', cause);
        }
      }
      cursor.pos += strBytes;
    } else if (skipBytes > 0) {
      cursor.need(skipBytes);
      cursor.pos += skipBytes;
    } else if (items >= 0) {
      if (pending.length > WIRE_DEPTH_MAX) throw badCommand('command payload is nested too deeply');
      cursor.need(items); // every item takes at least one byte: rejects absurd counts before looping
      pending.push(items);
    }
  }
  if (cursor.pos !== bytes.byteLength) throw badCommand('command payload has trailing bytes');
}

function wireKey(x: unknown, where: string): string {
  if (!(x instanceof Uint8Array)) throw badCommand(`${where} must be bytes`);
  try {
    return strictUtf8.decode(x);
  } catch (cause) {
    throw badCommand(`${where} is not valid UTF-8`, cause);
  }
}

function wireString(x: unknown, where: string): string {
  if (typeof x !== 'string') throw badCommand(`${where} must be a string`);
  return x;
}

function wireBytes(x: unknown, where: string): Uint8Array {
  if (!(x instanceof Uint8Array)) throw badCommand(`${where} must be bytes`);
  return x;
}

function wireArray(x: unknown, where: string): unknown[] {
  if (!Array.isArray(x)) throw badCommand(`${where} must be an array`);
  return x;
}

function wireRecord(x: unknown, where: string): Record<string, unknown> {
  if (!isRecord(x)) throw badCommand(`${where} must be a map`);
  return x;
}

function wireEnum<T extends string>(x: unknown, allowed: ReadonlySet<string>, where: string): T {
  if (typeof x !== 'string' || !allowed.has(x)) throw badCommand(`${where} has an unknown value`);
  return x as T;
}

const OP_KINDS: ReadonlySet<string> = new Set<Op['op']>(['put', 'delete', 'get']);

function opFromWire(x: unknown, where: string): Op {
  const o = wireRecord(x, where);
  const op = wireEnum<Op['op']>(o['op'], OP_KINDS, `${where}.op`);
  const key = wireKey(o['key'], `${where}.key`);
  if (op === 'put') return { op, key, value: wireBytes(o['value'], `${where}.value`) };
  return { op, key };
}

function compareFromWire(x: unknown, where: string): Compare {
  const c = wireRecord(x, where);
  const value = c['value'];
  if (!(value instanceof Uint8Array) && typeof value !== 'number') {
    throw badCommand(`${where}.value must be bytes or a number`);
  }
  return {
    key: wireKey(c['key'], `${where}.key`),
    target: wireEnum<CompareTarget>(c['target'], COMPARE_TARGETS, `${where}.target`),
    op: wireEnum<CompareOp>(c['op'], COMPARE_OPS, `${where}.op`),
    value,
  };
}

/**
 * Decodes a payload into a well-typed command, or throws CHORUS_BAD_COMMAND; never anything
 * else, whatever the bytes. It checks types, not limits: run validateCommand next. Byte
 * fields may be views into `bytes`.
 */
export function decodeCommand(bytes: Uint8Array): Command {
  if (!(bytes instanceof Uint8Array)) throw badCommand('command payload must be bytes');
  checkWireShape(bytes);
  let raw: unknown;
  try {
    raw = packr.unpack(bytes);
  } catch (cause) {
    throw badCommand('command payload is not valid MessagePack', cause);
  }
  const cmd = wireRecord(raw, 'command');
  switch (cmd['kind']) {
    case 'put':
      return { kind: 'put', key: wireKey(cmd['key'], 'key'), value: wireBytes(cmd['value'], 'value') };
    case 'delete':
      return { kind: 'delete', key: wireKey(cmd['key'], 'key') };
    case 'txn':
      return {
        kind: 'txn',
        compare: wireArray(cmd['compare'], 'compare').map((c, i) => compareFromWire(c, `compare[${i}]`)),
        success: wireArray(cmd['success'], 'success').map((o, i) => opFromWire(o, `success[${i}]`)),
        failure: wireArray(cmd['failure'], 'failure').map((o, i) => opFromWire(o, `failure[${i}]`)),
      };
    case 'replication-config':
      // The level is checked against the known ones by validateCommand, after decoding.
      return {
        kind: 'replication-config',
        synchronousCommit: wireString(cmd['synchronousCommit'], 'synchronousCommit') as SynchronousCommit,
        synchronousStandbyNames: wireString(cmd['synchronousStandbyNames'], 'synchronousStandbyNames'),
      };
    case 'member-address': {
      const peerAddress = cmd['peerAddress'];
      return {
        kind: 'member-address',
        id: wireString(cmd['id'], 'id'),
        peerAddress: peerAddress === null ? null : wireString(peerAddress, 'peerAddress'),
      };
    }
    case 'keyspace-create':
      // Values are checked by validateCommand, after decoding.
      return {
        kind: 'keyspace-create',
        name: wireString(cmd['name'], 'name'),
        mode: wireString(cmd['mode'], 'mode') as KeyspaceCreateCommand['mode'],
        conflicts: wireString(cmd['conflicts'], 'conflicts') as KeyspaceCreateCommand['conflicts'],
        members: wireArray(cmd['members'], 'members').map((m, i) => wireString(m, `members[${i}]`)),
      };
    default:
      throw badCommand(`unknown command kind ${describeKind(cmd['kind'])}`);
  }
}
