// The client commands of the CLI: status, put, get, del, list.
import { ChorusClient, ChorusClientError, normalizeEndpoint } from '../client/index.ts';
import type { ClusterView } from '../client/index.ts';

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

export async function runPut(key: string, value: string, flags: ClientFlags): Promise<void> {
  const { revision } = await client(flags).put(key, value);
  process.stdout.write(`OK revision ${revision}\n`);
}

export async function runGet(key: string, flags: ClientFlags & { stale?: boolean; revision?: boolean }): Promise<void> {
  const result = await client(flags).get(key, { consistency: flags.stale === true ? 'stale' : 'linearizable' });
  if (result === null) {
    process.stderr.write(`error: CHORUS_KEY_NOT_FOUND: ${key}\n`);
    process.exitCode = 1;
    return;
  }
  process.stdout.write(result.value);
  if (process.stdout.isTTY) process.stdout.write('\n');
  if (flags.revision === true) process.stderr.write(`revision ${result.revision} (created ${result.createRevision}, version ${result.version})\n`);
}

export async function runDel(key: string, flags: ClientFlags): Promise<void> {
  const { revision, deleted } = await client(flags).delete(key);
  process.stdout.write(`${deleted === 1 ? 'deleted' : 'not found'} revision ${revision}\n`);
}

export async function runList(prefix: string, flags: ClientFlags & { limit?: number; json?: boolean }): Promise<void> {
  const { items, more } = await client(flags).list(prefix, flags.limit === undefined ? {} : { limit: flags.limit });
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

export async function runStatus(flags: ClientFlags & { json?: boolean }): Promise<void> {
  const c = client(flags);
  const view = await c.cluster();
  // Each member's own commit and applied index, asked of it directly (unreachable: '-').
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
  const rows: string[][] = [['ID', 'ROLE', 'TERM', 'COMMIT', 'APPLIED', 'MATCH', 'LAG', 'REACHABLE', 'CLIENT', 'PEER']];
  for (const m of view.members) {
    const v = own.get(m.id) ?? null;
    rows.push([
      m.id,
      m.role,
      v === null ? '-' : String(v.term),
      v === null ? '-' : String(v.self.commitIndex),
      v === null ? '-' : String(v.self.appliedIndex),
      m.matchIndex === null ? '-' : String(m.matchIndex),
      m.lagEntries === null ? '-' : String(m.lagEntries),
      m.reachable ? 'yes' : 'no',
      m.clientAddress ?? '-',
      m.peerAddress ?? '-',
    ]);
  }
  process.stdout.write(`cluster ${view.clusterId}  term ${view.term}  leader ${view.leaderId ?? '(none)'}  (members as seen by the ${view.membersSource === 'leader' ? 'leader' : `member ${view.self.id} alone`})\n`);
  process.stdout.write(`${table(rows)}\n`);
}
