// Keyspaces: the catalog (POST/GET /v1/keyspaces, replicated through the Raft log) and the data
// API of any keyspace (/v1/ks/{keyspace}/kv/{key}, /v1/ks/{keyspace}/crdt/{key}). A consensus
// keyspace behaves exactly like /v1/kv (its keys live in the Raft state machine under a reserved
// prefix); a multi-master keyspace is served by this member alone, from its own replica.
// Documented in docs/api.md and docs/multi-master.md.
import { Buffer } from 'node:buffer';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { KEYSPACE_NAME, type LocalWrite, type ReadView } from '../core/mm/index.ts';
import { DEFAULT_KEYSPACE, validateKey } from '../kv/commands.ts';
import type { Command, KvLimits } from '../kv/commands.ts';
import { KvError } from '../kv/errors.ts';
import { keyspaceKeyPrefix } from '../kv/sqlite-state-machine.ts';
import type { ApplyResult, KeyspaceDef } from '../kv/sqlite-state-machine.ts';
import type { MultiMasterWriteResult } from '../mm-node/host.ts';
import { ChorusError } from '../shared/errors.ts';
import type { KeyspaceService } from '../node/service.ts';
import { asText, keyFromUrl, listItemJson, rejectReservedKey, sendRecord, toBase64 } from './codec.ts';

/** Causal context of a versions keyspace: returned by GET, given back with PUT or DELETE. */
export const CONTEXT_HEADER = 'chorus-context';
/** Bodies of POST /v1/ks/{keyspace}/crdt/{key}. */
const CRDT_BODY_BYTES_MAX = 1024 * 1024;

/** What the keyspace routes borrow from the main server (so both behave the same). */
export interface KeyspaceRouteDeps {
  readonly service: KeyspaceService;
  readonly limits: KvLimits;
  readonly write: (request: FastifyRequest, reply: FastifyReply, command: Command, answer: (result: ApplyResult) => Record<string, unknown>) => Promise<unknown>;
  readonly leaderOnly: (request: FastifyRequest, reply: FastifyReply, operation: (deadlineMs: number) => Promise<unknown>) => Promise<unknown>;
  readonly prepareRead: (request: FastifyRequest) => Promise<void>;
  readonly deadlineOf: (request: FastifyRequest) => number;
  readonly queryString: (request: FastifyRequest, name: string) => string | undefined;
  readonly queryInt: (request: FastifyRequest, name: string) => number | undefined;
  readonly listLimitOf: (request: FastifyRequest) => number;
  readonly jsonObjectBody: (request: FastifyRequest) => Record<string, unknown>;
  readonly bodyOf: (request: FastifyRequest) => Buffer | undefined;
}

function keyspaceJson(def: KeyspaceDef): Record<string, unknown> {
  return def.mode === 'consensus'
    ? { name: def.name, mode: def.mode, revision: def.revision }
    : { name: def.name, mode: def.mode, conflicts: def.conflicts, members: def.members, revision: def.revision };
}

const DEFAULT_KEYSPACE_JSON = { name: DEFAULT_KEYSPACE, mode: 'consensus', builtin: true } as const;

function bytesJson(bytes: Uint8Array): { value?: string; valueBase64: string } {
  const text = asText(bytes);
  return { ...(text === undefined ? {} : { value: text }), valueBase64: toBase64(bytes) };
}

/** The JSON of a multi-master read (every mode), without the key. */
function viewJson(view: ReadView): Record<string, unknown> {
  switch (view.mode) {
    case 'lww':
      return { ...(view.value === null ? {} : bytesJson(view.value)), stamp: view.stamp };
    case 'versions':
      return { siblings: view.siblings.map((s) => ({ ...bytesJson(s.value), stamp: s.stamp })), context: view.token };
    case 'crdt':
      return view.value === null ? { type: null, value: null } : { type: view.value.type, value: view.value.value };
  }
}

function writeJson(keyspace: string, r: MultiMasterWriteResult, w: number): Record<string, unknown> {
  const out: Record<string, unknown> = { keyspace, key: r.key, dot: r.dot, stamp: r.stamp, w, durableMembers: r.durableMembers };
  if (r.view.mode === 'versions') {
    out['siblings'] = r.view.siblings.length;
    out['context'] = r.view.token;
  }
  if (r.view.mode === 'crdt') out['value'] = r.view.value;
  return out;
}

export function registerKeyspaceRoutes(app: FastifyInstance, deps: KeyspaceRouteDeps): void {
  const { service, limits } = deps;

  const catalogEntry = (name: string): KeyspaceDef | 'default' => {
    if (name === DEFAULT_KEYSPACE) return 'default';
    if (!KEYSPACE_NAME.test(name)) throw new KvError('CHORUS_BAD_REQUEST', 'a keyspace name is 1-64 characters of A-Z a-z 0-9 . _ -');
    const def = service.keyspace(name);
    if (def === undefined) throw new ChorusError('CHORUS_KEYSPACE_NOT_FOUND', `no keyspace ${name} (create it with POST /v1/keyspaces)`);
    return def;
  };

  /** The keyspace and key of /v1/ks/{keyspace}/{kind}/{key}. Keyspace names need no decoding. */
  const target = (request: FastifyRequest, kind: 'kv' | 'crdt'): { def: KeyspaceDef | 'default'; name: string; key: string } => {
    const name = (request.params as { ks?: unknown }).ks;
    if (typeof name !== 'string') throw new KvError('CHORUS_BAD_REQUEST', 'a keyspace is required');
    const def = catalogEntry(name);
    const key = keyFromUrl(request.url, limits, `/v1/ks/${name}/${kind}/`);
    return { def, name, key };
  };

  const storedKey = (def: KeyspaceDef | 'default', key: string): string => (def === 'default' ? rejectReservedKey(key) : `${keyspaceKeyPrefix(def.name)}${key}`);

  const wOf = (request: FastifyRequest): number => {
    if (deps.queryString(request, 'commit') !== undefined || request.headers['chorus-commit'] !== undefined) {
      throw new KvError('CHORUS_BAD_REQUEST', 'commit levels apply to consensus keyspaces; a multi-master write takes ?w=N');
    }
    return deps.queryInt(request, 'w') ?? 1;
  };

  const noReadConsistency = (request: FastifyRequest): void => {
    for (const name of ['consistency', 'max_staleness_ms', 'min_revision']) {
      if (deps.queryString(request, name) !== undefined) throw new KvError('CHORUS_BAD_REQUEST', `${name} applies to consensus keyspaces; a multi-master read is served from this member's replica`);
    }
  };

  const contextOf = (request: FastifyRequest): string | null => {
    const header = request.headers[CONTEXT_HEADER];
    if (Array.isArray(header)) throw new KvError('CHORUS_BAD_REQUEST', `the ${CONTEXT_HEADER} header must be given once`);
    const query = deps.queryString(request, 'context');
    if (header !== undefined && query !== undefined && header !== query) throw new KvError('CHORUS_BAD_REQUEST', `?context= and ${CONTEXT_HEADER} disagree`);
    return query ?? header ?? null;
  };

  const mmWrite = async (request: FastifyRequest, def: KeyspaceDef, key: string, write: LocalWrite): Promise<Record<string, unknown>> => {
    const w = wOf(request);
    const result = await service.mmWrite(def.name, validateKey(key, limits), write, w, deps.deadlineOf(request));
    return writeJson(def.name, result, w);
  };

  // ------------------------------------------------------------------ catalog

  app.get('/v1/keyspaces', async () => ({ keyspaces: [DEFAULT_KEYSPACE_JSON, ...service.keyspaces().map(keyspaceJson)] }));

  app.get('/v1/keyspaces/:ks', async (request) => {
    const def = catalogEntry(String((request.params as { ks?: unknown }).ks));
    return def === 'default' ? DEFAULT_KEYSPACE_JSON : keyspaceJson(def);
  });

  app.post('/v1/keyspaces', async (request, reply) => {
    const doc = deps.jsonObjectBody(request);
    for (const field of Object.keys(doc)) {
      if (field !== 'name' && field !== 'mode' && field !== 'conflicts') throw new KvError('CHORUS_BAD_REQUEST', `unknown field ${JSON.stringify(field.slice(0, 40))}: expected name, mode, conflicts`);
    }
    const { name, mode, conflicts } = doc;
    if (typeof name !== 'string' || !KEYSPACE_NAME.test(name)) throw new KvError('CHORUS_BAD_REQUEST', 'name must be 1-64 characters of A-Z a-z 0-9 . _ -');
    if (name === DEFAULT_KEYSPACE) throw new KvError('CHORUS_BAD_REQUEST', `"${DEFAULT_KEYSPACE}" is the built-in consensus keyspace of /v1/kv`);
    if (mode !== 'consensus' && mode !== 'multi-master') throw new KvError('CHORUS_BAD_REQUEST', 'mode must be "consensus" or "multi-master"');
    if (mode === 'consensus' && conflicts !== undefined) throw new KvError('CHORUS_BAD_REQUEST', 'a consensus keyspace takes no conflicts strategy');
    if (mode === 'multi-master' && conflicts !== 'lww' && conflicts !== 'versions' && conflicts !== 'crdt') {
      throw new KvError('CHORUS_BAD_REQUEST', 'conflicts must be "lww", "versions" or "crdt"');
    }
    const request2 = { name, mode, conflicts: mode === 'consensus' ? '' : (conflicts as 'lww' | 'versions' | 'crdt') } as const;
    return deps.leaderOnly(request, reply, async (deadlineMs) => {
      const { keyspace, created } = await service.createKeyspace(request2, deadlineMs);
      void reply.code(created ? 201 : 200);
      return { ...keyspaceJson(keyspace), created };
    });
  });

  // ------------------------------------------------------------------ data

  app.put('/v1/ks/:ks/kv/*', { bodyLimit: limits.valueBytesMax }, async (request, reply) => {
    const { def, key } = target(request, 'kv');
    const value = deps.bodyOf(request) ?? new Uint8Array(0);
    if (def === 'default' || def.mode === 'consensus') {
      return deps.write(request, reply, { kind: 'put', key: storedKey(def, key), value }, (r) => ({ revision: r.revision }));
    }
    return mmWrite(request, def, key, { kind: 'put', value, token: contextOf(request) });
  });

  app.delete('/v1/ks/:ks/kv/*', async (request, reply) => {
    const { def, key } = target(request, 'kv');
    if (def === 'default' || def.mode === 'consensus') {
      return deps.write(request, reply, { kind: 'delete', key: storedKey(def, key) }, (r) => ({ revision: r.revision, deleted: r.kind === 'delete' ? r.deleted : 0 }));
    }
    return mmWrite(request, def, key, { kind: 'delete', token: contextOf(request) });
  });

  app.post('/v1/ks/:ks/crdt/*', { bodyLimit: CRDT_BODY_BYTES_MAX }, async (request) => {
    const { def, key } = target(request, 'crdt');
    if (def === 'default' || def.mode === 'consensus' || def.conflicts !== 'crdt') {
      throw new ChorusError('CHORUS_WRONG_MODE', `keyspace ${def === 'default' ? DEFAULT_KEYSPACE : def.name} is not a crdt keyspace`);
    }
    return mmWrite(request, def, key, { kind: 'crdt', op: deps.jsonObjectBody(request) });
  });

  const notFound = (key: string): ChorusError => new ChorusError('CHORUS_KEY_NOT_FOUND', `key not found: ${key.length > 200 ? `${key.slice(0, 200)}...` : key}`);

  const getHandler = async (request: FastifyRequest, reply: FastifyReply, kind: 'kv' | 'crdt'): Promise<unknown> => {
    const { def, key } = target(request, kind);
    validateKey(key, limits);
    if (def === 'default' || def.mode === 'consensus') {
      if (kind === 'crdt') throw new ChorusError('CHORUS_WRONG_MODE', 'a consensus keyspace holds no CRDTs');
      await deps.prepareRead(request);
      const record = service.get(storedKey(def, key));
      if (record === undefined) throw notFound(key);
      return sendRecord(reply, record);
    }
    noReadConsistency(request);
    const view = service.mmRead(def.name, key);
    if (view.mode === 'versions') reply.header(CONTEXT_HEADER, view.token);
    if (!view.found) throw notFound(key);
    if (view.mode === 'lww' && kind === 'kv') {
      // Like /v1/kv: the value itself, the winning stamp in a header.
      const value = view.value!;
      return reply
        .header('content-type', 'application/octet-stream')
        .header('chorus-stamp', view.stamp ?? '')
        .send(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
    }
    return { key, ...viewJson(view) };
  };

  app.get('/v1/ks/:ks/kv/*', async (request, reply) => getHandler(request, reply, 'kv'));
  app.get('/v1/ks/:ks/crdt/*', async (request, reply) => getHandler(request, reply, 'crdt'));

  app.get('/v1/ks/:ks/kv', async (request, reply) => {
    const name = String((request.params as { ks?: unknown }).ks);
    const def = catalogEntry(name);
    const prefix = deps.queryString(request, 'prefix') ?? '';
    if (prefix !== '') validateKey(prefix, limits);
    if (def === 'default') rejectReservedKey(prefix);
    const limit = deps.listLimitOf(request);
    if (def === 'default' || def.mode === 'consensus') {
      await deps.prepareRead(request);
      const base = def === 'default' ? '' : keyspaceKeyPrefix(def.name);
      const { records, more } = service.range({ prefix: `${base}${prefix}`, limit, skipReserved: def === 'default' });
      return reply.header('chorus-more', more ? 'true' : 'false').send(records.map((r) => listItemJson({ ...r, key: r.key.slice(base.length) })));
    }
    noReadConsistency(request);
    const { items, more } = service.mmList(def.name, prefix, limit);
    return reply.header('chorus-more', more ? 'true' : 'false').send(items.map((i) => ({ key: i.key, ...viewJson(i.view) })));
  });
}
