// Observability routes of a member (docs/observability.md): Prometheus metrics, alerts, the
// event history and the dashboard, whose files the member serves itself (no CDN, no build step).
// Registered by ChorusNode on the API's Fastify instance, next to the routes of server.ts.
import { readdirSync, readFileSync } from 'node:fs';
import { extname } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { KvError } from '../kv/errors.ts';
import type { EventKind } from '../observe/events.ts';
import type { NodeObserver } from '../observe/observer.ts';
import type { AlertJson, AlertsResponseJson, EventsResponseJson, LagHistoryResponseJson, WebhookStatusJson } from '../observe/api-types.ts';

export interface ObserveRoutesOptions {
  readonly observer: NodeObserver;
  readonly memberId: string;
  /** The other members and their client addresses (null while unknown), for scope=cluster. */
  readonly peers: () => readonly { readonly id: string; readonly clientAddress: string | null }[];
  /** The leader this member knows and its client address, for the lag history. */
  readonly leader: () => { readonly leaderId: string | null; readonly clientAddress: string | null };
  /** Where the dashboard's files are (default: src/observe/ui/assets). */
  readonly uiDir?: URL;
}

const EVENTS_LIMIT_DEFAULT = 100;
const EVENTS_LIMIT_MAX = 1000;
/** scope=cluster asks every other member for at most this long. */
const PEER_TIMEOUT_MS = 1000;
const EVENT_KINDS: readonly EventKind[] = [
  'election', 'leader-change', 'membership', 'config', 'snapshot', 'alert-raised', 'alert-resolved', 'member-started', 'member-stopped',
];
const READ_CONSISTENCIES = new Set(['linearizable', 'lease', 'stale']);
const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};
/** The dashboard loads nothing from anywhere but its member. */
const UI_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function query(request: FastifyRequest, name: string): string | undefined {
  const value = (request.query as Record<string, unknown> | undefined)?.[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new KvError('CHORUS_BAD_REQUEST', `query parameter ${name} must be given once`);
  return value;
}

function queryInt(request: FastifyRequest, name: string, min: number, max: number): number | undefined {
  const text = query(request, name);
  if (text === undefined) return undefined;
  const n = /^\d{1,15}$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new KvError('CHORUS_BAD_REQUEST', `${name} must be an integer from ${min} to ${max}`);
  return n;
}

/** The consistency a key read asked for, as server.ts reads it (unknown values: 'invalid'). */
function readConsistency(request: FastifyRequest): string {
  const q = (request.query as Record<string, unknown> | undefined) ?? {};
  const given = q['consistency'];
  if (typeof given === 'string') return READ_CONSISTENCIES.has(given) ? given : 'invalid';
  return q['max_staleness_ms'] !== undefined || q['min_revision'] !== undefined ? 'stale' : 'linearizable';
}

interface Asset {
  readonly body: Buffer;
  readonly contentType: string;
}

function loadAssets(dir: URL): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(dir)) {
    const contentType = CONTENT_TYPES[extname(name)];
    if (contentType === undefined) continue;
    assets.set(name, { body: readFileSync(new URL(name, dir)), contentType });
  }
  return assets;
}

function webhookStatus(observer: NodeObserver): WebhookStatusJson | null {
  const stats = observer.webhookStats();
  if (stats === null || observer.webhook === null) return null;
  const { queued, delivered, failed, dropped, retries } = stats;
  return { origin: new URL(observer.webhook.config.url).origin, queued, delivered, failed, dropped, retries };
}

export function registerObserveRoutes(app: FastifyInstance, options: ObserveRoutesOptions): void {
  const { observer } = options;
  const assets = loadAssets(options.uiDir ?? new URL('../observe/ui/assets/', import.meta.url));

  // Key reads by consistency: counted here, where the request's own parameters are known.
  app.addHook('onResponse', async (request, reply) => {
    if (request.method !== 'GET') return;
    const route = request.routeOptions.url;
    if (route !== '/v1/kv/*' && route !== '/v1/kv') return;
    observer.noteRead(readConsistency(request), reply.statusCode < 400 || reply.statusCode === 404);
  });

  app.get('/metrics', async (_request, reply) => {
    const text = await observer.scrape();
    return reply.header('content-type', observer.metrics.contentType).send(text);
  });

  const localAlerts = (): AlertsResponseJson => ({
    member: options.memberId,
    scope: 'local',
    enabled: observer.config.enabled,
    alerts: observer.activeAlerts(),
    rules: observer.config.rules,
    webhook: webhookStatus(observer),
  });

  app.get('/v1/alerts', async (request) => {
    const scope = query(request, 'scope') ?? 'local';
    if (scope !== 'local' && scope !== 'cluster') throw new KvError('CHORUS_BAD_REQUEST', 'scope must be local or cluster');
    const own = localAlerts();
    if (scope === 'local') return own;
    // Each member raises its own alerts (lag alerts on the leader): ask every other member.
    const others = options.peers().filter((p) => p.id !== options.memberId);
    const answers = await Promise.all(others.map(async (peer): Promise<{ id: string; alerts: readonly AlertJson[] | null }> => {
      if (peer.clientAddress === null) return { id: peer.id, alerts: null };
      try {
        const res = await fetch(`http://${peer.clientAddress}/v1/alerts?scope=local`, { signal: AbortSignal.timeout(PEER_TIMEOUT_MS) });
        if (res.status !== 200) return { id: peer.id, alerts: null };
        const body = (await res.json()) as Partial<AlertsResponseJson>;
        return { id: peer.id, alerts: Array.isArray(body.alerts) ? body.alerts : null };
      } catch {
        return { id: peer.id, alerts: null };
      }
    }));
    const alerts = [...own.alerts];
    for (const answer of answers) if (answer.alerts !== null) alerts.push(...answer.alerts);
    alerts.sort((a, b) => (a.since < b.since ? -1 : a.since > b.since ? 1 : a.id < b.id ? -1 : 1));
    return { ...own, scope: 'cluster', alerts, unreachable: answers.filter((a) => a.alerts === null).map((a) => a.id) } satisfies AlertsResponseJson;
  });

  app.get('/v1/events', async (request) => {
    const sinceSeq = queryInt(request, 'since', 0, Number.MAX_SAFE_INTEGER) ?? 0;
    const limit = queryInt(request, 'limit', 1, EVENTS_LIMIT_MAX) ?? EVENTS_LIMIT_DEFAULT;
    const kind = query(request, 'kind');
    if (kind !== undefined && !(EVENT_KINDS as readonly string[]).includes(kind)) {
      throw new KvError('CHORUS_BAD_REQUEST', `kind must be one of ${EVENT_KINDS.join(', ')}`);
    }
    const listed = observer.listEvents({ sinceSeq, limit, ...(kind === undefined ? {} : { kind: kind as EventKind }) });
    return { member: options.memberId, ...listed } satisfies EventsResponseJson;
  });

  // The leader measures lag: a follower asks it, as for /v1/cluster.
  app.get('/v1/lag-history', async (request) => {
    const scope = query(request, 'scope') ?? 'leader';
    if (scope !== 'local' && scope !== 'leader') throw new KvError('CHORUS_BAD_REQUEST', 'scope must be local or leader');
    const { leaderId, clientAddress } = options.leader();
    const own = (): LagHistoryResponseJson => ({
      member: options.memberId, leaderId, intervalMs: observer.lagHistory.intervalMs, samples: observer.lagHistory.toJson(),
    });
    if (scope === 'local' || leaderId === null || leaderId === options.memberId || clientAddress === null) return own();
    try {
      const res = await fetch(`http://${clientAddress}/v1/lag-history?scope=local`, { signal: AbortSignal.timeout(PEER_TIMEOUT_MS) });
      if (res.status === 200) return (await res.json()) as LagHistoryResponseJson;
    } catch {
      // the leader does not answer: our own (empty) history
    }
    return own();
  });

  const sendAsset = (reply: FastifyReply, name: string): FastifyReply => {
    const asset = assets.get(name);
    if (asset === undefined) return reply.code(404).send({ code: 'CHORUS_NOT_FOUND', message: `no dashboard file ${name.slice(0, 100)}` });
    return reply
      .header('content-type', asset.contentType)
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .header('content-security-policy', UI_SECURITY_POLICY)
      .send(asset.body);
  };
  app.get('/ui', async (_request, reply) => sendAsset(reply, 'index.html'));
  app.get('/ui/', async (_request, reply) => sendAsset(reply, 'index.html'));
  app.get('/ui/:file', async (request, reply) => sendAsset(reply, (request.params as { file: string }).file));
}
