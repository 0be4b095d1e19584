// The client commands of the CLI: status, put, get, del, list, member, switchover, replication.
import { ChorusClient, ChorusClientError, normalizeEndpoint } from '../client/index.ts';
import type { ClusterMember, ClusterView, CommitLevel, Consistency, MultiMasterWriteJson, ReadOptions, WriteOptions, WriteResult } from '../client/index.ts';

export const DEFAULT_ENDPOINTS = 'http://127.0.0.1:8001,http://127.0.0.1:8002,http://127.0.0.1:8003';

export interface ClientFlags {
  readonly endpoints: string;
  readonly timeoutMs: number;
}

function client(flags: ClientFlags): ChorusClient {
  return new ChorusClient({ endpoints: flags.endpoints, timeoutMs: flags.timeoutMs });
}

/** Prints `error: CODE: message` and sets a failing exit code. */
export function reportError(error: unknown): void {
  if (error instanceof ChorusClientError) {
    process.stderr.write(`error: ${error.code}: ${error.message}${error.status > 0 ? ` (HTTP ${error.status})` : ''}\n`);
  } else {
    const code = (error as { code?: unknown })?.code;
    process.stderr.write(`error: ${typeof code === 'string' ? `${code}: ` : ''}${error instanceof Error ? error.message : String(error)}\n`);
  }
  process.exitCode = 1;
}

function uncommittedNote(committed: boolean): string {
  return committed ? '' : ' (not yet committed: acknowledged at off/local, may still be lost)';
}

/** Flags of writes: a keyspace, and for multi-master keyspaces w and a causal context. */
export interface WriteFlags extends ClientFlags {
  readonly commit?: CommitLevel;
  readonly keyspace?: string;
  readonly w?: number;
  readonly context?: string;
}

function writeOptions(flags: WriteFlags): WriteOptions {
  return {
    ...(flags.commit === undefined ? {} : { commit: flags.commit }),
    ...(flags.keyspace === undefined ? {} : { keyspace: flags.keyspace }),
    ...(flags.w === undefined ? {} : { w: flags.w }),
    ...(flags.context === undefined ? {} : { context: flags.context }),
  };
}

/** The line for an acknowledged multi-master write. */
function multiMasterLine(what: string, r: MultiMasterWriteJson): string {
  const context = r.context === undefined ? '' : `  context ${r.context}${r.siblings !== undefined && r.siblings > 1 ? ` (${r.siblings} siblings)` : ''}`;
  return `${what} ${r.dot} stamp ${r.stamp}, durable on ${r.durableMembers} member(s)${context}\n`;
}

export async function runPut(key: string, value: string, flags: WriteFlags): Promise<void> {
  const result = await client(flags).put(key, value, writeOptions(flags)) as WriteResult | MultiMasterWriteJson;
  if ('dot' in result) process.stdout.write(multiMasterLine('OK', result));
  else process.stdout.write(`OK revision ${result.revision}${uncommittedNote(result.committed)}\n`);
}

export async function runCrdt(key: string, opText: string, flags: ClientFlags & { keyspace: string; w?: number }): Promise<void> {
  let op: unknown;
  try {
    op = JSON.parse(opText);
  } catch {
    throw new ChorusClientError('CHORUS_BAD_JSON', 0, 'the operation must be JSON, e.g. \'{"type":"counter","op":"incr","by":5}\'', null);
  }
  const result = await client(flags).crdt(flags.keyspace, key, op, flags.w === undefined ? {} : { w: flags.w });
  process.stdout.write(multiMasterLine('OK', result));
  process.stdout.write(`${JSON.stringify(result.value)}\n`);
}

export async function runKeyspaceCreate(name: string, flags: ClientFlags & { mode: 'consensus' | 'multi-master'; conflicts?: 'lww' | 'versions' | 'crdt' }): Promise<void> {
  const ks = await client(flags).createKeyspace({ name, mode: flags.mode, ...(flags.conflicts === undefined ? {} : { conflicts: flags.conflicts }) });
  const how = ks.mode === 'consensus' ? 'consensus' : `multi-master (${ks.conflicts ?? '?'}) on ${(ks.members ?? []).join(', ')}`;
  process.stdout.write(`${ks.created ? 'created' : 'exists'}: ${ks.name} ${how}\n`);
}

export async function runKeyspaceList(flags: ClientFlags & { json?: boolean }): Promise<void> {
  const list = await client(flags).keyspaces();
  if (flags.json === true) {
    process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
    return;
  }
  const rows: string[][] = [['NAME', 'MODE', 'CONFLICTS', 'MEMBERS']];
  for (const k of list) rows.push([k.name, k.mode, k.conflicts ?? '-', k.members === undefined ? (k.builtin === true ? '(all, built in)' : '(all)') : k.members.join(',')]);
  process.stdout.write(`${table(rows)}\n`);
}

export async function runGet(
  key: string,
  flags: ClientFlags & { stale?: boolean; revision?: boolean; consistency?: Consistency; maxStalenessMs?: number; minRevision?: number; keyspace?: string },
): Promise<void> {
  const bounded = flags.maxStalenessMs !== undefined || flags.minRevision !== undefined;
  if (bounded && flags.consistency !== undefined && flags.consistency !== 'stale') {
    throw new ChorusClientError('CHORUS_BAD_REQUEST', 0, '--max-staleness-ms and --min-revision go with stale reads', null);
  }
  const options: ReadOptions = flags.keyspace !== undefined && flags.consistency === undefined && flags.stale !== true && !bounded ? {} : {
    // A bound on staleness, or a revision to wait for, makes it a read of the member's own state.
    consistency: flags.consistency ?? (flags.stale === true || bounded ? 'stale' : 'linearizable'),
    ...(flags.maxStalenessMs === undefined ? {} : { maxStalenessMs: flags.maxStalenessMs }),
    ...(flags.minRevision === undefined ? {} : { minRevision: flags.minRevision }),
  };
  const result = await client(flags).get(key, { ...options, ...(flags.keyspace === undefined ? {} : { keyspace: flags.keyspace }) });
  if (result === null) {
    process.stderr.write(`error: CHORUS_KEY_NOT_FOUND: ${key}\n`);
    process.exitCode = 1;
    return;
  }
  process.stdout.write(result.value);
  if (process.stdout.isTTY) process.stdout.write('\n');
  if (flags.revision === true) {
    if (result.stamp !== undefined) process.stderr.write(`stamp ${result.stamp}\n`);
    else if (result.context !== undefined) process.stderr.write(`context ${result.context}\n`);
    else process.stderr.write(`revision ${result.revision} (created ${result.createRevision}, version ${result.version})\n`);
  }
}

export async function runDel(key: string, flags: WriteFlags): Promise<void> {
  const result = await client(flags).delete(key, writeOptions(flags)) as (WriteResult & { deleted?: 0 | 1 }) | MultiMasterWriteJson;
  if ('dot' in result) {
    process.stdout.write(multiMasterLine('deleted (tombstone)', result));
    return;
  }
  const { revision, deleted, committed } = result;
  const what = deleted === undefined ? 'delete acknowledged' : deleted === 1 ? 'deleted' : 'not found';
  process.stdout.write(`${what} revision ${revision}${uncommittedNote(committed)}\n`);
}

export async function runList(prefix: string, flags: ClientFlags & { limit?: number; json?: boolean; keyspace?: string }): Promise<void> {
  const c = client(flags);
  if (flags.keyspace !== undefined) {
    // Items depend on the keyspace's mode (values, siblings, CRDT values): print them as JSON.
    const { items, more } = await c.listJson(flags.keyspace, prefix, flags.limit === undefined ? {} : { limit: flags.limit });
    if (flags.json === true) process.stdout.write(`${JSON.stringify(items, null, 2)}\n`);
    else for (const item of items) process.stdout.write(`${JSON.stringify(item)}\n`);
    if (more) process.stderr.write('(more keys: raise --limit)\n');
    return;
  }
  const { items, more } = await c.list(prefix, flags.limit === undefined ? {} : { limit: flags.limit });
  const decoder = new TextDecoder();
  if (flags.json === true) {
    process.stdout.write(`${JSON.stringify(items.map((i) => ({ ...i, value: decoder.decode(i.value) })), null, 2)}\n`);
  } else {
    for (const item of items) process.stdout.write(`${item.key}\t${decoder.decode(item.value)}\n`);
  }
  if (more) process.stderr.write('(more keys: raise --limit)\n');
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n');
}

/** 1536 -> "1.5 KiB". */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]!}`;
}

function eligibility(m: ClusterMember): string {
  if (m.canLead === null) return '-';
  return m.canLead ? 'yes' : `no (${m.whyNot ?? '?'})`;
}

export async function runStatus(flags: ClientFlags & { json?: boolean }): Promise<void> {
  const c = client(flags);
  const view = await c.cluster();
  // Each member's own term and commit index, asked of it directly (unreachable: '-').
  const own = new Map<string, ClusterView | null>();
  await Promise.all(view.members.map(async (m) => {
    if (m.clientAddress === null) return;
    try {
      own.set(m.id, await c.memberView(normalizeEndpoint(m.clientAddress)));
    } catch {
      own.set(m.id, null);
    }
  }));
  if (flags.json === true) {
    process.stdout.write(`${JSON.stringify({ ...view, memberViews: Object.fromEntries(own) }, null, 2)}\n`);
    return;
  }
  const rows: string[][] = [['ID', 'ROLE', 'TERM', 'COMMIT', 'APPLIED', 'MATCH', 'LAG', 'LAG-BYTES', 'LAG-SEC', 'PROGRESS', 'CAN-LEAD', 'REACHABLE', 'CLIENT', 'PEER']];
  for (const m of view.members) {
    const v = own.get(m.id) ?? null;
    rows.push([
      m.id,
      m.role,
      v === null ? '-' : String(v.term),
      v === null ? '-' : String(v.self.commitIndex),
      v !== null ? String(v.self.appliedIndex) : m.appliedIndex === null ? '-' : String(m.appliedIndex),
      m.matchIndex === null ? '-' : String(m.matchIndex),
      m.lagEntries === null ? '-' : String(m.lagEntries),
      m.lagBytes === null ? '-' : formatBytes(m.lagBytes),
      m.lagSeconds === null ? '-' : m.lagSeconds.toFixed(1),
      m.progressing === null ? '-' : m.progressing ? 'ok' : 'STALLED',
      eligibility(m),
      m.reachable ? 'yes' : 'no',
      m.clientAddress ?? '-',
      m.peerAddress ?? '-',
    ]);
  }
  const r = view.replication;
  process.stdout.write(`cluster ${view.clusterId}  term ${view.term}  leader ${view.leaderId ?? '(none)'}  (members as seen by the ${view.membersSource === 'leader' ? 'leader' : `member ${view.self.id} alone`})\n`);
  const standbys = r.synchronous_standby_names === ''
    ? ''
    : `  standbys now: ${r.standbys.length === 0 ? '(none)' : r.standbys.join(', ')}${r.satisfiable === false ? '  NOT MET: writes at on/remote_apply wait' : ''}`;
  process.stdout.write(`synchronous_commit=${r.synchronous_commit}  synchronous_standby_names='${r.synchronous_standby_names}' (${r.source})${standbys}\n`);
  process.stdout.write(`${table(rows)}\n`);
}

export async function runReplication(flags: ClientFlags & { synchronousCommit?: string; synchronousStandbyNames?: string; json?: boolean }): Promise<void> {
  const c = client(flags);
  const change = {
    ...(flags.synchronousCommit === undefined ? {} : { synchronous_commit: flags.synchronousCommit }),
    ...(flags.synchronousStandbyNames === undefined ? {} : { synchronous_standby_names: flags.synchronousStandbyNames }),
  };
  const settings = Object.keys(change).length === 0 ? await c.replicationConfig() : await c.setReplicationConfig(change);
  if (flags.json === true) {
    process.stdout.write(`${JSON.stringify(settings, null, 2)}\n`);
    return;
  }
  process.stdout.write(`synchronous_commit = ${settings.synchronous_commit}\nsynchronous_standby_names = '${settings.synchronous_standby_names}'\n(${settings.source === 'replicated' ? `replicated at revision ${settings.revision}` : 'from the member\'s flags or config file; not replicated yet'})\n`);
}

export interface MemberAddFlags extends ClientFlags {
  readonly peer: string;
  readonly learner?: boolean;
  readonly wait: boolean;
  readonly waitTimeoutMs: number;
}

/** Polls the leader's view of `id` until it has applied `target` (everything committed when it
 * was added), drawing progress on stderr: a bar on a terminal, a line every few seconds otherwise. */
async function waitCaughtUp(c: ChorusClient, id: string, target: number, timeoutMs: number): Promise<void> {
  const tty = process.stderr.isTTY === true;
  const deadline = Date.now() + timeoutMs;
  let lastLineAt = 0;
  for (;;) {
    let m: ClusterMember | undefined;
    try {
      m = (await c.cluster()).members.find((x) => x.id === id);
    } catch {
      m = undefined; // a leader change: ask again
    }
    const applied = m?.appliedIndex ?? 0;
    const fraction = target <= 0 ? 1 : Math.min(1, applied / target);
    const percent = Math.floor(fraction * 100);
    const detail = m === undefined || m.lagEntries === null
      ? 'waiting for the leader'
      : `${m.reachable ? '' : 'not connected yet, '}behind by ${m.lagEntries} entries, ${formatBytes(m.lagBytes ?? 0)}, ${(m.lagSeconds ?? 0).toFixed(1)} s`;
    if (tty) {
      const width = 30;
      const filled = Math.round(fraction * width);
      process.stderr.write(`\r${id} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(percent).padStart(3)}%  ${detail}\u001b[K`);
    } else if (Date.now() - lastLineAt >= 2000 || applied >= target) {
      process.stderr.write(`${id}: ${percent}% (applied ${applied} of ${target}), ${detail}\n`);
      lastLineAt = Date.now();
    }
    if (m !== undefined && applied >= target) {
      if (tty) process.stderr.write('\n');
      process.stderr.write(`${id} caught up (applied ${applied})\n`);
      return;
    }
    if (Date.now() > deadline) {
      if (tty) process.stderr.write('\n');
      throw new ChorusClientError('CHORUS_TIMEOUT', 0, `${id} did not catch up within ${timeoutMs} ms (it stays a member; check that it runs)`, null);
    }
    await new Promise((resolve) => setTimeout(resolve, tty ? 250 : 500));
  }
}

export async function runMemberAdd(id: string, flags: MemberAddFlags): Promise<void> {
  const c = client(flags);
  const view = await c.cluster();
  const added = await c.addMember({ id, peerAddress: flags.peer, learner: flags.learner === true });
  process.stdout.write(`added ${id} as a ${added.role} at revision ${added.revision}\n`);
  const peers = view.members.filter((m) => m.peerAddress !== null).map((m) => `${m.id}=${m.peerAddress!}`);
  process.stdout.write([
    'start it (empty data directory) with:',
    `  chorus start --id ${id} --data-dir DIR --listen-client HOST:PORT --listen-peer ${flags.peer} \\`,
    `    --initial-cluster ${[...peers, `${id}=${flags.peer}`].join(',')} --cluster-id ${view.clusterId} --join`,
    '',
  ].join('\n'));
  if (flags.wait) await waitCaughtUp(c, id, added.commitIndex, flags.waitTimeoutMs);
}

export async function runMemberPromote(id: string, flags: ClientFlags): Promise<void> {
  const changed = await client(flags).promoteMember(id);
  process.stdout.write(`promoted ${id} to voter at revision ${changed.revision}\n`);
}

export async function runMemberRemove(id: string, flags: ClientFlags): Promise<void> {
  const changed = await client(flags).removeMember(id);
  process.stdout.write(`removed ${id} at revision ${changed.revision}; stop its process\n`);
}

export async function runSwitchover(flags: ClientFlags & { to?: string }): Promise<void> {
  const result = await client(flags).switchover(flags.to);
  if (result.leaderId === result.previousLeaderId) process.stdout.write(`${result.leaderId} already leads (term ${result.term})\n`);
  else process.stdout.write(`leadership moved from ${result.previousLeaderId} to ${result.leaderId} (term ${result.term})\n`);
}
