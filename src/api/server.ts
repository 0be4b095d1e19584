// The HTTP API of a member (Fastify 5). Routes are documented in docs/api.md. Every error is
// JSON {"code","message"} with the status chosen in errors.ts.
import { Buffer } from 'node:buffer';
import Fastify from 'fastify';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { SynchronousCommit } from '../core/policy/replication-policy.ts';
import { validateCommand, validateKey } from '../kv/commands.ts';
import type { Command } from '../kv/commands.ts';
import { KvError } from '../kv/errors.ts';
import type { ApplyResult } from '../kv/sqlite-state-machine.ts';
import { ChorusError, NotLeaderError } from '../shared/errors.ts';
import { silentLogger } from '../shared/logger.ts';
import type { Logger } from '../shared/logger.ts';
import { canonicalStandbyNames, parseCommitLevel } from '../node/replication.ts';
import { KV_PATH_PREFIX, keyFromUrl, listItemJson, parseTxnBody, rejectReservedKey, sendRecord, txnResultJson } from './codec.ts';
import { errorResponse } from './errors.ts';
import { prepareRead as prepareReadAt, readOptions } from './reads.ts';
import type { ReadOptions } from './reads.ts';
import { registerKeyspaceRoutes } from './keyspace-routes.ts';
import { COMMIT_HEADER, Forwarder, HOPS_HEADER, LEADER_HEADER, TIMEOUT_HEADER } from './forward.ts';
import type { ForwardResponse } from './forward.ts';
import type { MemberService } from '../node/service.ts';
import type { ReplicationPatch } from '../shared/operations.ts';
import type { ClusterView, TestFaults } from '../shared/api-types.ts';

export interface ApiOptions {
  /** Deadline of a request; a forwarded request keeps what is left of its original deadline. */
  readonly requestTimeoutMs: number;
  readonly forwardHopsMax: number;
  readonly forwardsPendingMax: number;
  /** Largest POST /v1/txn body. PUT bodies are limited to the value limit. */
  readonly txnBodyBytesMax: number;
  readonly enableTestFaults?: boolean;
  readonly logger?: Logger;
}

/** Bodies of routes that take no body (or a small JSON document). */
const SMALL_BODY_BYTES_MAX = 64 * 1024;
const LIST_LIMIT_DEFAULT = 1000;
const LIST_LIMIT_MAX = 10_000;
/** A follower asks the leader for its view of the members for at most this long. */
const CLUSTER_VIEW_TIMEOUT_MS = 1000;
const FAULT_IDS_MAX = 64;

function headerInt(request: FastifyRequest, name: string): number | undefined {
  const value = request.headers[name];
  if (typeof value !== 'string' || !/^\d{1,9}$/.test(value)) return undefined;
  return Number(value);
}

function queryString(request: FastifyRequest, name: string): string | undefined {
  const value = (request.query as Record<string, unknown> | undefined)?.[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new KvError('CHORUS_BAD_REQUEST', `query parameter ${name} must be given once`);
  return value;
}

function bodyOf(request: FastifyRequest): Buffer | undefined {
  return request.body instanceof Buffer ? request.body : undefined;
}

/** The body as a JSON object ({} when empty). */
function jsonObjectBody(request: FastifyRequest): Record<string, unknown> {
  const body = bodyOf(request);
  if (body === undefined || body.length === 0) return {};
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    throw new ChorusError('CHORUS_BAD_JSON', 'the request body is not valid JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new KvError('CHORUS_BAD_REQUEST', 'the request body must be a JSON object');
  return doc as Record<string, unknown>;
}

/** A non-negative integer query parameter, or undefined when absent. */
function queryInt(request: FastifyRequest, name: string): number | undefined {
  const text = queryString(request, name);
  if (text === undefined) return undefined;
  if (!/^\d{1,15}$/.test(text) || !Number.isSafeInteger(Number(text))) throw new KvError('CHORUS_BAD_REQUEST', `${name} must be a non-negative integer`);
  return Number(text);
}

/** The commit level asked for (?commit= or the chorus-commit header), or undefined for the
 * cluster default. An unknown level is CHORUS_BAD_CONFIG, as anywhere a level is parsed. */
function commitLevelOf(request: FastifyRequest): SynchronousCommit | undefined {
  const fromQuery = queryString(request, 'commit');
  const header = request.headers[COMMIT_HEADER];
  if (Array.isArray(header)) throw new KvError('CHORUS_BAD_REQUEST', `the ${COMMIT_HEADER} header must be given once`);
  if (fromQuery !== undefined && header !== undefined && fromQuery !== header) {
    throw new KvError('CHORUS_BAD_REQUEST', `?commit=${fromQuery} and ${COMMIT_HEADER}: ${header} disagree`);
  }
  const text = fromQuery ?? header;
  return text === undefined ? undefined : parseCommitLevel(text);
}

function readOptionsOf(request: FastifyRequest): ReadOptions {
  return readOptions(queryString(request, 'consistency'), queryInt(request, 'max_staleness_ms'), queryInt(request, 'min_revision'));
}

function listLimitOf(request: FastifyRequest): number {
  const limitText = queryString(request, 'limit');
  if (limitText === undefined) return LIST_LIMIT_DEFAULT;
  const limit = /^\d{1,6}$/.test(limitText) ? Number(limitText) : 0;
  if (limit < 1 || limit > LIST_LIMIT_MAX) throw new KvError('CHORUS_BAD_REQUEST', `limit must be an integer from 1 to ${LIST_LIMIT_MAX}`);
  return limit;
}

function sendForwarded(reply: FastifyReply, answer: ForwardResponse): FastifyReply {
  reply.code(answer.status);
  for (const [name, value] of Object.entries(answer.headers)) reply.header(name, value);
  return reply.send(answer.body);
}

export function createApiServer(service: MemberService, options: ApiOptions): FastifyInstance {
  const logger = (options.logger ?? silentLogger).child({ component: 'api' });
  const limits = service.limits;
  const forwarder = new Forwarder({ pendingMax: options.forwardsPendingMax });

  const app = Fastify({
    logger: false,
    bodyLimit: SMALL_BODY_BYTES_MAX,
    // Raw request targets are decoded by keyFromUrl; the router must not reject them first, so
    // a bad percent-encoding gets our own error code.
    frameworkErrors: (error, request, reply) => {
      const isKey = request.url.startsWith(KV_PATH_PREFIX);
      const code = isKey && error.code === 'FST_ERR_BAD_URL' ? 'CHORUS_BAD_KEY' : 'CHORUS_BAD_REQUEST';
      void (reply as unknown as FastifyReply).code(400).send({ code, message: isKey ? 'the key has an invalid percent-encoding' : error.message });
    },
    // Requests Node's HTTP parser rejects never reach Fastify; answer them in our format too.
    clientErrorHandler: (error, socket) => {
      if (error.code === 'ECONNRESET' || socket.destroyed) return;
      const [status, text, code] = error.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request Header Fields Too Large', 'CHORUS_REQUEST_TOO_LARGE']
        : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'Request Timeout', 'CHORUS_BAD_REQUEST']
          : [400, 'Bad Request', 'CHORUS_BAD_REQUEST'];
      const body = JSON.stringify({ code, message: `the HTTP request is malformed (${error.code ?? 'parse error'})` });
      if (socket.writable) {
        socket.write(`HTTP/1.1 ${status} ${text}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${body}`);
      }
      socket.destroy(error);
    },
    // While closing, requests still reach the handlers, which answer 503 CHORUS_STOPPING in our
    // JSON format (Fastify's own 503 body would not carry a code).
    return503OnClosing: false,
  });

  // Every body is taken as raw bytes: PUT values are opaque, and JSON documents are parsed by
  // the handlers that expect them (so that bad JSON gets CHORUS_BAD_JSON, not Fastify's error).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  app.setErrorHandler((error, request, reply) => {
    const mapped = errorResponse(error, request.method);
    if (mapped.internal) logger.error('request-failed', { method: request.method, url: request.url.slice(0, 200), error });
    void reply.code(mapped.status).header('content-type', 'application/json; charset=utf-8').send(mapped.body);
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({ code: 'CHORUS_NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]?.slice(0, 200) ?? ''}` });
  });
  app.addHook('onClose', async () => forwarder.close());

  const deadlineOf = (request: FastifyRequest): number => {
    const forwarded = headerInt(request, TIMEOUT_HEADER);
    const timeoutMs = forwarded === undefined ? options.requestTimeoutMs : Math.min(forwarded, options.requestTimeoutMs);
    return service.nowMs() + timeoutMs;
  };

  /** Proposes `command` here, or forwards the request to the leader. The answer says whether
   * the write is committed: at off and local it is only appended (or durable) at the leader, has
   * no state-machine result yet, and may still be lost. */
  const write = async (request: FastifyRequest, reply: FastifyReply, command: Command, answer: (result: ApplyResult) => Record<string, unknown>): Promise<unknown> => {
    validateCommand(command, limits);
    const level = commitLevelOf(request);
    if (command.kind === 'txn' && (level === 'off' || level === 'local')) {
      throw new KvError('CHORUS_BAD_REQUEST', `a transaction cannot be acknowledged at commit level ${level}: its result (did the comparisons hold, what the gets saw) exists only once it is committed; use on or remote_apply`);
    }
    const deadlineMs = deadlineOf(request);
    let ack;
    try {
      ack = await service.propose(command, deadlineMs, level === undefined ? {} : { level });
    } catch (error) {
      if (!(error instanceof NotLeaderError)) throw error;
      return forward(request, reply, error.leaderId, deadlineMs);
    }
    const leader = service.leader().clientAddress;
    if (leader !== null) reply.header(LEADER_HEADER, leader);
    if (!ack.committed) return { revision: ack.revision, committed: false };
    return { ...answer(ack.result), committed: true };
  };

  /** Runs a leader-only operation here, or forwards the request to the leader. */
  const leaderOnly = async (request: FastifyRequest, reply: FastifyReply, operation: (deadlineMs: number) => Promise<unknown>): Promise<unknown> => {
    const deadlineMs = deadlineOf(request);
    try {
      return await operation(deadlineMs);
    } catch (error) {
      if (!(error instanceof NotLeaderError)) throw error;
      return forward(request, reply, error.leaderId, deadlineMs);
    }
  };

  const forward = async (request: FastifyRequest, reply: FastifyReply, leaderId: string | null, deadlineMs: number): Promise<FastifyReply> => {
    const hops = headerInt(request, HOPS_HEADER) ?? 0;
    if (leaderId === null) throw new ChorusError('CHORUS_NO_LEADER', 'no leader is known; retry later');
    if (hops >= options.forwardHopsMax) {
      throw new ChorusError('CHORUS_NO_LEADER', `the request was forwarded ${hops} times without reaching the leader; retry later`);
    }
    const address = service.leader().clientAddress;
    if (address === null) throw new ChorusError('CHORUS_NO_LEADER', `the client address of leader ${leaderId} is not known yet; retry later`);
    const commit = request.headers[COMMIT_HEADER];
    const answer = await forwarder.forward(address, {
      method: request.method,
      url: request.url,
      contentType: request.headers['content-type'],
      body: bodyOf(request),
      hops: hops + 1,
      timeoutMs: Math.max(1, deadlineMs - service.nowMs()),
      ...(typeof commit === 'string' ? { headers: { [COMMIT_HEADER]: commit } } : {}),
    });
    return sendForwarded(reply, answer);
  };

  // ------------------------------------------------------------------ health

  app.get('/healthz', async () => ({ status: 'ok', id: service.id }));

  app.get('/readyz', async (_request, reply) => {
    const readiness = service.readiness();
    return reply.code(readiness.ready ? 200 : 503).send({ id: service.id, ...readiness });
  });

  // Load-balancer checks in the manner of Patroni: 200 only where the role matches.
  app.get('/primary', async (_request, reply) => {
    const health = service.replicaHealth();
    const ok = health.role === 'leader';
    return reply.code(ok ? 200 : 503).send({ ...health, ...(ok ? {} : { reason: `this member is a ${health.role}` }) });
  });

  app.get('/replica', async (request, reply) => {
    const lagMax = queryInt(request, 'lag');
    const health = service.replicaHealth();
    let reason: string | null = null;
    if (health.role !== 'follower' && health.role !== 'learner') reason = `this member is a ${health.role}`;
    else if (health.lagEntries === null) reason = 'no recent contact with a leader';
    else if (lagMax !== undefined && health.lagEntries > lagMax) reason = `${health.lagEntries} entries behind (lag=${lagMax})`;
    return reply.code(reason === null ? 200 : 503).send({ ...health, ...(reason === null ? {} : { reason }) });
  });

  // ------------------------------------------------------------------ keys

  app.put(`${KV_PATH_PREFIX}*`, { bodyLimit: limits.valueBytesMax }, async (request, reply) => {
    const key = rejectReservedKey(keyFromUrl(request.url, limits));
    const value = bodyOf(request) ?? new Uint8Array(0);
    return write(request, reply, { kind: 'put', key, value }, (r) => ({ revision: r.revision }));
  });

  app.delete(`${KV_PATH_PREFIX}*`, async (request, reply) => {
    const key = rejectReservedKey(keyFromUrl(request.url, limits));
    return write(request, reply, { kind: 'delete', key }, (r) => ({ revision: r.revision, deleted: r.kind === 'delete' ? r.deleted : 0 }));
  });

  /** Waits until this member may serve the read (see docs/replication.md for each level). */
  const prepareRead = (request: FastifyRequest): Promise<void> => prepareReadAt(service, readOptionsOf(request), deadlineOf(request));

  app.get(`${KV_PATH_PREFIX}*`, async (request, reply) => {
    const key = rejectReservedKey(keyFromUrl(request.url, limits));
    await prepareRead(request);
    const record = service.get(key);
    if (record === undefined) throw new ChorusError('CHORUS_KEY_NOT_FOUND', `key not found: ${key.length > 200 ? `${key.slice(0, 200)}...` : key}`);
    return sendRecord(reply, record);
  });

  app.get('/v1/kv', async (request, reply) => {
    const prefix = queryString(request, 'prefix') ?? '';
    if (prefix !== '') rejectReservedKey(validateKey(prefix, limits));
    const limit = listLimitOf(request);
    await prepareRead(request);
    const { records, more } = service.range({ prefix, limit, skipReserved: true });
    return reply.header('chorus-more', more ? 'true' : 'false').send(records.map(listItemJson));
  });

  // ------------------------------------------------------------------ keyspaces

  if (service.keyspaceService !== undefined) {
    registerKeyspaceRoutes(app, {
      service: service.keyspaceService, limits, write, leaderOnly, prepareRead, deadlineOf, queryString, queryInt, listLimitOf, jsonObjectBody, bodyOf,
    });
  }

  // ------------------------------------------------------------------ transactions

  app.post('/v1/txn', { bodyLimit: options.txnBodyBytesMax }, async (request, reply) => {
    const command = parseTxnBody(bodyOf(request), limits);
    return write(request, reply, command, (r) => {
      if (r.kind !== 'txn') throw new ChorusError('CHORUS_INTERNAL', `a txn applied as ${r.kind}`);
      return { succeeded: r.succeeded, revision: r.revision, results: r.results.map(txnResultJson) };
    });
  });

  // ------------------------------------------------------------------ cluster

  app.get('/v1/cluster', async (request) => {
    const local = service.clusterView();
    const scope = queryString(request, 'scope');
    if (scope === 'local' || local.membersSource === 'leader') return local;
    const { leaderId, clientAddress } = service.leader();
    if (leaderId === null || clientAddress === null) return local;
    // Match and lag live in the leader's progress: ask it, keeping our own term and self.
    try {
      const answer = await forwarder.forward(clientAddress, {
        method: 'GET',
        url: '/v1/cluster?scope=local',
        contentType: undefined,
        body: undefined,
        hops: 1,
        timeoutMs: CLUSTER_VIEW_TIMEOUT_MS,
      });
      if (answer.status !== 200) return local;
      const view = JSON.parse(answer.body.toString('utf8')) as ClusterView;
      if (view.membersSource !== 'leader' || !Array.isArray(view.members)) return local;
      return { ...local, members: view.members, membersSource: 'leader', replication: view.replication ?? local.replication } satisfies ClusterView;
    } catch {
      return local;
    }
  });

  // ------------------------------------------------------------------ replication settings

  app.get('/v1/config/replication', async () => service.replicationConfig());

  app.put('/v1/config/replication', async (request, reply) => {
    const doc = jsonObjectBody(request);
    for (const name of Object.keys(doc)) {
      if (name !== 'synchronous_commit' && name !== 'synchronous_standby_names') {
        throw new KvError('CHORUS_BAD_REQUEST', `unknown setting ${JSON.stringify(name)}: expected synchronous_commit and/or synchronous_standby_names`);
      }
    }
    const level = doc['synchronous_commit'];
    const names = doc['synchronous_standby_names'];
    if (level !== undefined && typeof level !== 'string') throw new KvError('CHORUS_BAD_CONFIG', 'synchronous_commit must be a string');
    if (names !== undefined && typeof names !== 'string') throw new KvError('CHORUS_BAD_CONFIG', 'synchronous_standby_names must be a string');
    const patch: ReplicationPatch = {
      ...(level === undefined ? {} : { synchronousCommit: parseCommitLevel(level) }),
      ...(names === undefined ? {} : { synchronousStandbyNames: canonicalStandbyNames(names) }),
    };
    return leaderOnly(request, reply, (deadlineMs) => service.setReplicationConfig(patch, deadlineMs));
  });

  // ------------------------------------------------------------------ membership and switchover

  const memberIdParam = (request: FastifyRequest): string => {
    const id = (request.params as { id?: unknown }).id;
    if (typeof id !== 'string' || id === '') throw new KvError('CHORUS_BAD_REQUEST', 'a member id is required');
    return id;
  };

  app.post('/v1/members', async (request, reply) => {
    const doc = jsonObjectBody(request);
    const { id, peerAddress, learner } = doc;
    if (typeof id !== 'string') throw new KvError('CHORUS_BAD_REQUEST', 'id (a string) is required');
    if (typeof peerAddress !== 'string') throw new KvError('CHORUS_BAD_REQUEST', 'peerAddress (host:port) is required');
    if (learner !== undefined && typeof learner !== 'boolean') throw new KvError('CHORUS_BAD_REQUEST', 'learner must be true or false');
    return leaderOnly(request, reply, (deadlineMs) => service.addMember({ id, peerAddress, learner: learner === true }, deadlineMs));
  });

  app.post('/v1/members/:id/promote', async (request, reply) => {
    const id = memberIdParam(request);
    return leaderOnly(request, reply, (deadlineMs) => service.promoteMember(id, deadlineMs));
  });

  app.delete('/v1/members/:id', async (request, reply) => {
    const id = memberIdParam(request);
    return leaderOnly(request, reply, (deadlineMs) => service.removeMember(id, deadlineMs));
  });

  app.post('/v1/switchover', async (request, reply) => {
    const doc = jsonObjectBody(request);
    const to = doc['to'];
    if (to !== undefined && to !== null && typeof to !== 'string') throw new KvError('CHORUS_BAD_REQUEST', 'to must be a member id');
    return leaderOnly(request, reply, (deadlineMs) => service.switchover(typeof to === 'string' ? to : null, deadlineMs));
  });

  // ------------------------------------------------------------------ test faults

  if (options.enableTestFaults === true && service.setTestFaults !== undefined) {
    const setFaults = service.setTestFaults.bind(service);
    app.post('/v1/test/faults', async (request) => {
      const body = bodyOf(request);
      let doc: unknown;
      try {
        doc = JSON.parse(body?.toString('utf8') ?? '{}');
      } catch {
        throw new ChorusError('CHORUS_BAD_JSON', 'the request body is not valid JSON');
      }
      const ids = (x: unknown, name: string): string[] | undefined => {
        if (x === undefined) return undefined;
        if (!Array.isArray(x) || x.length > FAULT_IDS_MAX || !x.every((v) => typeof v === 'string')) {
          throw new KvError('CHORUS_BAD_REQUEST', `${name} must be an array of member ids`);
        }
        return x as string[];
      };
      const d = (doc ?? {}) as Record<string, unknown>;
      const dropTo = ids(d['dropTo'], 'dropTo');
      const dropFrom = ids(d['dropFrom'], 'dropFrom');
      const faults: TestFaults = {
        isolate: d['isolate'] === true,
        ...(dropTo === undefined ? {} : { dropTo }),
        ...(dropFrom === undefined ? {} : { dropFrom }),
      };
      setFaults(faults);
      return { ok: true, faults };
    });
  }

  return app;
}
