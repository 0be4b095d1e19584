// Observability commands of the CLI: events (the history, optionally followed), alerts, and
// topology (a Markdown document of the live cluster with a Mermaid diagram).
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import type { AlertsResponseJson, EventJson, EventsResponseJson } from '../observe/api-types.ts';
import { ChorusClient, ChorusClientError, normalizeEndpoint } from '../client/index.ts';
import { topologyMarkdown, topologyMermaid } from '../observe/topology.ts';
import type { ClientFlags } from './client-commands.ts';
import { reportError } from './client-commands.ts';

/** Reads of one member answer within this, else the next endpoint is tried. */
const REQUEST_TIMEOUT_MS_MAX = 2000;
const EVENTS_PAGE_MAX = 1000;

function endpointsOf(flags: ClientFlags): string[] {
  return flags.endpoints.split(',').map((e) => e.trim()).filter((e) => e !== '').map(normalizeEndpoint);
}

async function getJson<T>(endpoint: string, path: string, timeoutMs: number): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`${endpoint}${path}`, { signal: AbortSignal.timeout(Math.max(1, Math.min(timeoutMs, REQUEST_TIMEOUT_MS_MAX))) });
  } catch (error) {
    throw new ChorusClientError('CHORUS_UNAVAILABLE', 0, `${endpoint} is unreachable (${(error as Error).message})`, endpoint, { cause: error });
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (cause) {
    throw new ChorusClientError('CHORUS_BAD_RESPONSE', res.status, `${endpoint} answered with invalid JSON`, endpoint, { cause });
  }
  if (res.status !== 200) {
    const { code, message } = body as { code?: unknown; message?: unknown };
    throw new ChorusClientError(typeof code === 'string' ? code : 'CHORUS_HTTP_ERROR', res.status, typeof message === 'string' ? message : `HTTP ${res.status}`, endpoint);
  }
  return body as T;
}

/** The first endpoint (from `start`, wrapping) that answers; throws the last error. */
async function firstAnswer<T>(endpoints: readonly string[], path: string, timeoutMs: number, start = 0): Promise<{ endpoint: string; index: number; body: T }> {
  let last: unknown = new ChorusClientError('CHORUS_UNAVAILABLE', 0, 'no endpoint given', null);
  for (let i = 0; i < endpoints.length; i++) {
    const index = (start + i) % endpoints.length;
    const endpoint = endpoints[index]!;
    try {
      return { endpoint, index, body: await getJson<T>(endpoint, path, timeoutMs) };
    } catch (error) {
      // A 400 is the request's fault: every member would say the same.
      if (error instanceof ChorusClientError && error.status === 400) throw error;
      last = error;
    }
  }
  throw last;
}

export interface EventsFlags extends ClientFlags {
  readonly follow?: boolean;
  readonly since?: number;
  readonly limit?: number;
  readonly kind?: string;
  readonly json?: boolean;
  readonly intervalMs: number;
}

function printEvent(e: EventJson, json: boolean): void {
  if (json) process.stdout.write(`${JSON.stringify(e)}\n`);
  else process.stdout.write(`${e.time}  ${e.member.padEnd(6)} #${String(e.seq).padEnd(5)} ${e.kind.padEnd(14)} ${e.message}\n`);
}

function eventsPath(since: number, limit: number, kind: string | undefined): string {
  return `/v1/events?since=${since}&limit=${limit}${kind === undefined ? '' : `&kind=${encodeURIComponent(kind)}`}`;
}

/**
 * Prints one member's event history; --follow keeps printing new events. Sequence numbers are
 * per member: when the member followed stops answering, the next endpoint is followed from the
 * time of the last event printed (its events may repeat what the first one saw, in its words).
 */
export async function runEvents(flags: EventsFlags): Promise<void> {
  const endpoints = endpointsOf(flags);
  const json = flags.json === true;
  const first = await firstAnswer<EventsResponseJson>(endpoints, eventsPath(flags.since ?? 0, flags.limit ?? 100, flags.kind), flags.timeoutMs);
  for (const e of first.body.events) printEvent(e, json);
  if (flags.follow !== true) return;
  let at = first;
  let since = first.body.lastSeq;
  let lastTime = first.body.events.at(-1)?.time ?? '';
  process.stderr.write(`-- following ${first.body.member} (${first.endpoint}); Ctrl-C stops\n`);
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, flags.intervalMs));
    let page: EventsResponseJson;
    try {
      page = await getJson<EventsResponseJson>(at.endpoint, eventsPath(since, EVENTS_PAGE_MAX, flags.kind), flags.timeoutMs);
    } catch {
      try {
        at = await firstAnswer<EventsResponseJson>(endpoints, eventsPath(0, EVENTS_PAGE_MAX, flags.kind), flags.timeoutMs, at.index + 1);
      } catch {
        continue; // nobody answers now: keep trying
      }
      process.stderr.write(`-- ${at.endpoint} answers now: following ${at.body.member}\n`);
      page = at.body;
      since = 0;
    }
    let byTime = since === 0;
    if (page.lastSeq < since) {
      // The member restarted: its history began again.
      page = await getJson<EventsResponseJson>(at.endpoint, eventsPath(0, EVENTS_PAGE_MAX, flags.kind), flags.timeoutMs).catch(() => page);
      byTime = true;
    }
    const fresh = byTime ? page.events.filter((e) => e.time > lastTime) : page.events;
    for (const e of fresh) printEvent(e, json);
    if (fresh.length > 0) lastTime = fresh.at(-1)!.time;
    since = page.lastSeq;
  }
}

export async function runAlerts(flags: ClientFlags & { json?: boolean }): Promise<void> {
  const { body } = await firstAnswer<AlertsResponseJson>(endpointsOf(flags), '/v1/alerts?scope=cluster', flags.timeoutMs);
  if (flags.json === true) {
    process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    return;
  }
  if (body.alerts.length === 0) process.stdout.write('no active alerts\n');
  for (const a of body.alerts) process.stdout.write(`${a.severity.toUpperCase().padEnd(8)} ${a.rule.padEnd(20)} ${a.member.padEnd(6)} since ${a.since}  ${a.message}\n`);
  if (body.unreachable !== undefined && body.unreachable.length > 0) process.stderr.write(`(not answering: ${body.unreachable.join(', ')})\n`);
}

export async function runTopology(flags: ClientFlags & { format: 'md' | 'mermaid'; output?: string }): Promise<void> {
  const client = new ChorusClient({ endpoints: flags.endpoints, timeoutMs: flags.timeoutMs });
  const view = await client.cluster();
  let text: string;
  if (flags.format === 'mermaid') {
    text = topologyMermaid(view);
  } else {
    const endpoints = endpointsOf(flags);
    const alerts = await firstAnswer<AlertsResponseJson>(endpoints, '/v1/alerts?scope=cluster', flags.timeoutMs).then((a) => a.body.alerts, () => null);
    const answered = endpoints.find((e) => view.self.clientAddress !== null && e.endsWith(view.self.clientAddress)) ?? endpoints[0] ?? '';
    const keyspaces = await client.keyspaces().catch(() => null);
    text = topologyMarkdown({ view, endpoint: answered, generatedAt: new Date(), alerts, keyspaces });
  }
  if (flags.output === undefined) process.stdout.write(text);
  else writeFileSync(flags.output, text);
}

function integer(name: string, min: number) {
  return (text: string): number => {
    const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return n;
  };
}

/** Adds events, alerts and topology; `clientCommand` gives each the --endpoints/--timeout-ms options. */
export function registerObserveCommands(program: Command, clientCommand: (program: Command, name: string, description: string) => Command): void {
  const run = (action: () => Promise<void>): Promise<void> => action().catch(reportError);

  clientCommand(program, 'events', 'show the event history of a member: elections, leader changes and their reason, membership and configuration changes, snapshots, alerts')
    .option('--follow', 'keep printing new events (another endpoint takes over when the member stops answering)')
    .option('--since <seq>', 'only events after this sequence number (per member)', integer('--since', 0))
    .option('--limit <n>', 'most events to print first (default 100, at most 1000)', integer('--limit', 1))
    .option('--kind <kind>', 'only one kind: election, leader-change, membership, config, snapshot, alert-raised, alert-resolved, member-started')
    .option('--interval-ms <ms>', 'with --follow: how often to ask', integer('--interval-ms', 50), 1000)
    .option('--json', 'one JSON object per event and line')
    .action((flags: EventsFlags) => run(() => runEvents(flags)));

  clientCommand(program, 'alerts', 'list the alerts raised and not resolved on every member')
    .option('--json', 'print JSON')
    .action((flags: ClientFlags & { json?: boolean }) => run(() => runAlerts(flags)));

  clientCommand(program, 'topology', 'write a document of the live cluster: members, roles, addresses, replication settings, standby set, keyspaces, with a Mermaid diagram')
    .option('--format <format>', 'md (Markdown with a Mermaid diagram) or mermaid (the diagram alone)', (text: string) => {
      if (text !== 'md' && text !== 'mermaid') throw new InvalidArgumentError('--format must be md or mermaid');
      return text;
    }, 'md')
    .option('--output <file>', 'write to this file instead of stdout')
    .action((flags: ClientFlags & { format: 'md' | 'mermaid'; output?: string }) => run(() => runTopology(flags)));
}
