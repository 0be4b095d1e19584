// The HTTP routes on a fake member (Fastify inject): shapes, headers, every error code for bad
// input, the body limits, and that the server keeps serving after each bad request.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChorusError } from '../../src/shared/errors.ts';
import { FakeService, apiFor } from './fake-service.ts';

function json(body: string): Record<string, unknown> {
  return JSON.parse(body) as Record<string, unknown>;
}

test('PUT, GET and DELETE of a key round-trip bytes with revisions', async (t) => {
  const service = new FakeService();
  const app = apiFor(t, service);
  const bytes = Buffer.from([0, 255, 1, 254, 0x80]);
  const put = await app.inject({ method: 'PUT', url: '/v1/kv/bin', payload: bytes, headers: { 'content-type': 'image/png' } });
  assert.equal(put.statusCode, 200);
  assert.deepEqual(json(put.body), { revision: 1, committed: true });
  const put2 = await app.inject({ method: 'PUT', url: '/v1/kv/bin', payload: 'second' });
  assert.deepEqual(json(put2.body), { revision: 2, committed: true });

  const get = await app.inject({ method: 'GET', url: '/v1/kv/bin' });
  assert.equal(get.statusCode, 200);
  assert.equal(get.headers['content-type'], 'application/octet-stream');
  assert.equal(get.headers['chorus-revision'], '2');
  assert.equal(get.headers['chorus-create-revision'], '1');
  assert.equal(get.headers['chorus-version'], '2');
  assert.equal(get.body, 'second');

  await app.inject({ method: 'PUT', url: '/v1/kv/raw', payload: bytes });
  const raw = await app.inject({ method: 'GET', url: '/v1/kv/raw' });
  assert.deepEqual(raw.rawPayload, bytes, 'values are bytes, not text');

  const del = await app.inject({ method: 'DELETE', url: '/v1/kv/bin' });
  assert.deepEqual(json(del.body), { revision: 4, deleted: 1, committed: true });
  const delAgain = await app.inject({ method: 'DELETE', url: '/v1/kv/bin' });
  assert.deepEqual(json(delAgain.body), { revision: 5, deleted: 0, committed: true });
  const gone = await app.inject({ method: 'GET', url: '/v1/kv/bin' });
  assert.equal(gone.statusCode, 404);
  assert.equal(json(gone.body)['code'], 'CHORUS_KEY_NOT_FOUND');

  const empty = await app.inject({ method: 'PUT', url: '/v1/kv/empty' });
  assert.equal(empty.statusCode, 200, 'an empty body is an empty value');
  assert.equal((await app.inject({ method: 'GET', url: '/v1/kv/empty' })).body, '');
});

test('keys are everything after /v1/kv/, percent-decoded, slashes included', async (t) => {
  const service = new FakeService();
  const app = apiFor(t, service);
  const cases: [string, string][] = [
    ['/v1/kv/a/b/c', 'a/b/c'],
    ['/v1/kv/a%2Fb', 'a/b'],
    ['/v1/kv/%E2%82%AC', '\u20ac'],
    ['/v1/kv/q%3Fx%23y', 'q?x#y'],
    ['/v1/kv/sp%20ace+plus', 'sp ace+plus'],
    ['/v1/kv/%25', '%'],
  ];
  for (const [url, key] of cases) {
    const put = await app.inject({ method: 'PUT', url: `${url}?ignored=1`, payload: key });
    assert.equal(put.statusCode, 200, url);
    assert.equal(service.get(key) === undefined ? null : Buffer.from(service.get(key)!.value).toString(), key, url);
    const get = await app.inject({ method: 'GET', url });
    assert.equal(get.body, key, url);
  }
});

test('bad keys, oversized keys and values, and unknown routes get their codes; the server keeps serving', async (t) => {
  const service = new FakeService('n1', { valueBytesMax: 1024, keyBytesMax: 4096 });
  const app = apiFor(t, service);
  const cases: { method: 'GET' | 'PUT' | 'DELETE' | 'POST'; url: string; payload?: string | Buffer; status: number; code: string }[] = [
    { method: 'GET', url: '/v1/kv/%FF', status: 400, code: 'CHORUS_BAD_KEY' },
    { method: 'PUT', url: '/v1/kv/%C3%28', payload: 'v', status: 400, code: 'CHORUS_BAD_KEY' },
    { method: 'PUT', url: '/v1/kv/a%zz', payload: 'v', status: 400, code: 'CHORUS_BAD_KEY' },
    { method: 'DELETE', url: '/v1/kv/a%2', status: 400, code: 'CHORUS_BAD_KEY' },
    { method: 'PUT', url: '/v1/kv/', payload: 'v', status: 400, code: 'CHORUS_BAD_KEY' },
    { method: 'PUT', url: `/v1/kv/${'k'.repeat(4097)}`, payload: 'v', status: 413, code: 'CHORUS_KEY_TOO_LARGE' },
    { method: 'GET', url: `/v1/kv/${'%E2%82%AC'.repeat(1366)}`, status: 413, code: 'CHORUS_KEY_TOO_LARGE' },
    { method: 'PUT', url: '/v1/kv/big', payload: Buffer.alloc(1025), status: 413, code: 'CHORUS_VALUE_TOO_LARGE' },
    { method: 'GET', url: '/v1/nothing', status: 404, code: 'CHORUS_NOT_FOUND' },
    { method: 'POST', url: '/v1/kv/x', payload: 'v', status: 404, code: 'CHORUS_NOT_FOUND' },
    { method: 'GET', url: '/v1/kv/k?consistency=maybe', status: 400, code: 'CHORUS_BAD_REQUEST' },
    { method: 'GET', url: '/v1/kv/k?consistency=stale&consistency=stale', status: 400, code: 'CHORUS_BAD_REQUEST' },
    { method: 'GET', url: '/v1/%zz', status: 400, code: 'CHORUS_BAD_REQUEST' },
  ];
  for (const c of cases) {
    const res = await app.inject({ method: c.method, url: c.url, payload: c.payload });
    assert.equal(res.statusCode, c.status, `${c.method} ${c.url.slice(0, 40)}: ${res.body}`);
    const body = json(res.body);
    assert.equal(body['code'], c.code, `${c.method} ${c.url.slice(0, 40)}`);
    assert.equal(typeof body['message'], 'string');
    assert.match(String(res.headers['content-type']), /application\/json/);
    const ok = await app.inject({ method: 'PUT', url: '/v1/kv/alive', payload: 'yes' });
    assert.equal(ok.statusCode, 200, `still serving after ${c.method} ${c.url.slice(0, 40)}`);
  }
  const exactly = await app.inject({ method: 'PUT', url: '/v1/kv/max', payload: Buffer.alloc(1024) });
  assert.equal(exactly.statusCode, 200, 'a value of exactly the limit is accepted');
  const longKey = await app.inject({ method: 'PUT', url: `/v1/kv/${'k'.repeat(4096)}`, payload: 'v' });
  assert.equal(longKey.statusCode, 200, 'a key of exactly the limit is accepted');
});

test('linearizable reads pass the read barrier; stale reads do not', async (t) => {
  const service = new FakeService();
  const app = apiFor(t, service);
  await app.inject({ method: 'PUT', url: '/v1/kv/k', payload: 'v' });
  await app.inject({ method: 'GET', url: '/v1/kv/k' });
  assert.equal(service.barrierCalls, 1);
  await app.inject({ method: 'GET', url: '/v1/kv/k?consistency=stale' });
  await app.inject({ method: 'GET', url: '/v1/kv?consistency=stale' });
  assert.equal(service.barrierCalls, 1);
  await app.inject({ method: 'GET', url: '/v1/kv?consistency=linearizable' });
  assert.equal(service.barrierCalls, 2);
  service.barrierHook = async () => {
    throw new ChorusError('CHORUS_NO_LEADER', 'no leader');
  };
  const res = await app.inject({ method: 'GET', url: '/v1/kv/k' });
  assert.equal(res.statusCode, 503);
  assert.equal(json(res.body)['code'], 'CHORUS_NO_LEADER');
});

test('list by prefix with a limit returns records with base64 values', async (t) => {
  const service = new FakeService();
  const app = apiFor(t, service);
  for (const key of ['a/1', 'a/2', 'a/3', 'b/1']) await app.inject({ method: 'PUT', url: `/v1/kv/${key}`, payload: `v-${key}` });
  const all = await app.inject({ method: 'GET', url: '/v1/kv?prefix=a%2F' });
  assert.equal(all.statusCode, 200);
  assert.equal(all.headers['chorus-more'], 'false');
  const items = JSON.parse(all.body) as { key: string; value: string; createRevision: number; modRevision: number; version: number }[];
  assert.deepEqual(items.map((i) => i.key), ['a/1', 'a/2', 'a/3']);
  assert.equal(Buffer.from(items[0]!.value, 'base64').toString(), 'v-a/1');
  assert.deepEqual({ ...items[1], value: undefined }, { key: 'a/2', value: undefined, createRevision: 2, modRevision: 2, version: 1 });
  const limited = await app.inject({ method: 'GET', url: '/v1/kv?prefix=a/&limit=2' });
  assert.equal((JSON.parse(limited.body) as unknown[]).length, 2);
  assert.equal(limited.headers['chorus-more'], 'true');
  const everything = await app.inject({ method: 'GET', url: '/v1/kv' });
  assert.equal((JSON.parse(everything.body) as unknown[]).length, 4);
  for (const bad of ['limit=0', 'limit=-1', 'limit=abc', 'limit=10001', 'limit=1.5']) {
    const res = await app.inject({ method: 'GET', url: `/v1/kv?${bad}` });
    assert.equal(res.statusCode, 400, bad);
    assert.equal(json(res.body)['code'], 'CHORUS_BAD_REQUEST');
  }
  const badPrefix = await app.inject({ method: 'GET', url: `/v1/kv?prefix=${'p'.repeat(5000)}` });
  assert.equal(badPrefix.statusCode, 413);
});

test('txn: compare-and-swap succeeds and fails, with get results', async (t) => {
  const service = new FakeService();
  const app = apiFor(t, service);
  const txn = (body: unknown) => app.inject({ method: 'POST', url: '/v1/txn', payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

  // Absent key: version 0, no value.
  const create = await txn({
    compare: [{ key: 'k', target: 'version', op: '==', value: 0 }, { key: 'k', target: 'value', op: '!=', value: 'x' }],
    success: [{ op: 'put', key: 'k', value: 'v1' }, { op: 'get', key: 'k' }, { op: 'get', key: 'none' }],
    failure: [{ op: 'get', key: 'k' }],
  });
  assert.equal(create.statusCode, 200, create.body);
  assert.deepEqual(JSON.parse(create.body), {
    succeeded: true,
    revision: 1,
    results: [
      { op: 'put', key: 'k' },
      { op: 'get', key: 'k', found: true, value: 'v1', valueBase64: Buffer.from('v1').toString('base64'), createRevision: 1, modRevision: 1, version: 1 },
      { op: 'get', key: 'none', found: false },
    ],
    committed: true,
  });

  const cas = await txn({
    compare: [{ key: 'k', target: 'value', op: '==', value: 'stale' }],
    success: [{ op: 'put', key: 'k', value: 'never' }],
    failure: [{ op: 'get', key: 'k' }],
  });
  const failed = JSON.parse(cas.body) as { succeeded: boolean; revision: number; results: { value?: string }[] };
  assert.equal(failed.succeeded, false);
  assert.equal(failed.revision, 2);
  assert.equal(failed.results[0]!.value, 'v1');

  const bytes = await txn({
    compare: [{ key: 'k', target: 'modRevision', op: '<', value: 2 }, { key: 'k', target: 'createRevision', op: '>', value: 0 }],
    success: [{ op: 'put', key: 'bin', valueBase64: Buffer.from([0xff, 0xfe]).toString('base64') }, { op: 'get', key: 'bin' }, { op: 'delete', key: 'k' }],
  });
  const ok = JSON.parse(bytes.body) as { succeeded: boolean; results: Record<string, unknown>[] };
  assert.equal(ok.succeeded, true);
  assert.equal(ok.results[1]!['value'], undefined, 'bytes that are not UTF-8 come only as base64');
  assert.equal(ok.results[1]!['valueBase64'], '//4=');
  assert.deepEqual(ok.results[2], { op: 'delete', key: 'k', deleted: 1 });

  const empty = await txn({});
  assert.equal(empty.statusCode, 200, 'an empty txn is valid');
});

test('txn: malformed bodies get 400 (or 413) and the server keeps serving', async (t) => {
  const service = new FakeService();
  const app = apiFor(t, service, { txnBodyBytesMax: 4096 });
  const post = (payload: string | Buffer) => app.inject({ method: 'POST', url: '/v1/txn', payload, headers: { 'content-type': 'application/json' } });
  const cases: [string | Buffer, number, string][] = [
    ['{"compare":', 400, 'CHORUS_BAD_JSON'],
    ['', 400, 'CHORUS_BAD_JSON'],
    ['[]', 400, 'CHORUS_BAD_JSON'],
    ['"text"', 400, 'CHORUS_BAD_JSON'],
    ['{"compare":{}}', 400, 'CHORUS_BAD_REQUEST'],
    ['{"unknown":[]}', 400, 'CHORUS_BAD_REQUEST'],
    ['{"success":[{"op":"explode","key":"k"}]}', 400, 'CHORUS_BAD_REQUEST'],
    ['{"success":[{"op":"put","key":"k"}]}', 400, 'CHORUS_BAD_REQUEST'],
    ['{"success":[{"op":"put","key":"k","value":"a","valueBase64":"YQ=="}]}', 400, 'CHORUS_BAD_REQUEST'],
    ['{"success":[{"op":"put","key":"k","valueBase64":"not base64!"}]}', 400, 'CHORUS_BAD_REQUEST'],
    ['{"success":[{"op":"put","key":"k","value":"a"},{"op":"delete","key":"k"}]}', 400, 'CHORUS_BAD_REQUEST'],
    ['{"success":[{"op":"get","key":""}]}', 400, 'CHORUS_BAD_KEY'],
    ['{"success":[{"op":"get","key":7}]}', 400, 'CHORUS_BAD_KEY'],
    ['{"success":[{"op":"get","key":"\\ud800"}]}', 400, 'CHORUS_BAD_KEY'],
    ['{"compare":[{"key":"k","target":"version","op":"==","value":"1"}]}', 400, 'CHORUS_BAD_REQUEST'],
    ['{"compare":[{"key":"k","target":"colour","op":"==","value":1}]}', 400, 'CHORUS_BAD_REQUEST'],
    ['{"compare":[{"key":"k","target":"version","op":"~","value":1}]}', 400, 'CHORUS_BAD_REQUEST'],
    [`{"success":[{"op":"put","key":"${'k'.repeat(5000)}","value":"v"}]}`, 413, 'CHORUS_REQUEST_TOO_LARGE'],
    [`{"success":[${Array.from({ length: 129 }, (_, i) => `{"op":"get","key":"k${i}"}`).join(',')}]}`, 400, 'CHORUS_BAD_REQUEST'],
  ];
  for (const [payload, status, code] of cases) {
    const res = await post(payload);
    assert.equal(res.statusCode, status, `${String(payload).slice(0, 60)}: ${res.body}`);
    assert.equal(json(res.body)['code'], code, String(payload).slice(0, 60));
    assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
  }
  assert.equal(service.proposeCalls, 0, 'nothing invalid was proposed');
  const bigValue = await post(JSON.stringify({ success: [{ op: 'put', key: 'k', value: 'v'.repeat(2000) }] }));
  assert.equal(bigValue.statusCode, 413);
  assert.equal(json(bigValue.body)['code'], 'CHORUS_VALUE_TOO_LARGE');
});

test('member errors map to their statuses: 503 only when nothing happened, 504 when unknown', async (t) => {
  const service = new FakeService();
  const app = apiFor(t, service);
  const expect = async (error: Error, status: number, code: string): Promise<void> => {
    service.proposeHook = async () => {
      throw error;
    };
    const res = await app.inject({ method: 'PUT', url: '/v1/kv/k', payload: 'v' });
    assert.equal(res.statusCode, status, code);
    assert.equal(json(res.body)['code'], code);
  };
  await expect(new ChorusError('CHORUS_BUSY', 'busy'), 503, 'CHORUS_BUSY');
  await expect(new ChorusError('CHORUS_LEADER_CHANGED', 'lost'), 503, 'CHORUS_LEADER_CHANGED');
  await expect(new ChorusError('CHORUS_STOPPING', 'bye'), 503, 'CHORUS_STOPPING');
  await expect(new ChorusError('CHORUS_TIMEOUT', 'unknown'), 504, 'CHORUS_TIMEOUT');
  await expect(new ChorusError('CHORUS_REQUEST_TOO_LARGE', 'big'), 413, 'CHORUS_REQUEST_TOO_LARGE');
  await expect(new Error('a bug'), 500, 'CHORUS_INTERNAL');
  service.proposeHook = null;
  assert.equal((await app.inject({ method: 'PUT', url: '/v1/kv/k', payload: 'v' })).statusCode, 200);
});

test('health, readiness and the cluster view', async (t) => {
  const service = new FakeService();
  const app = apiFor(t, service);
  const health = await app.inject({ method: 'GET', url: '/healthz' });
  assert.equal(health.statusCode, 200);
  assert.deepEqual(json(health.body), { status: 'ok', id: 'n1' });
  assert.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
  service.readinessValue = { ready: false, leaderId: null, commitIndex: 0, appliedIndex: 0, reason: 'no leader is known' };
  const notReady = await app.inject({ method: 'GET', url: '/readyz' });
  assert.equal(notReady.statusCode, 503);
  assert.equal(json(notReady.body)['reason'], 'no leader is known');

  const cluster = await app.inject({ method: 'GET', url: '/v1/cluster' });
  const view = json(cluster.body);
  for (const field of ['clusterId', 'term', 'leaderId', 'self', 'members']) assert.ok(field in view, field);
  const member = (view['members'] as Record<string, unknown>[])[0]!;
  for (const field of ['id', 'peerAddress', 'clientAddress', 'role', 'voter', 'reachable', 'matchIndex', 'lagEntries']) assert.ok(field in member, field);
});

test('the test fault route exists only when enabled, and checks its input', async (t) => {
  const service = new FakeService();
  const disabled = apiFor(t, service);
  assert.equal((await disabled.inject({ method: 'POST', url: '/v1/test/faults', payload: '{}' })).statusCode, 404);
  const enabled = apiFor(t, service, { enableTestFaults: true });
  const ok = await enabled.inject({ method: 'POST', url: '/v1/test/faults', payload: '{"isolate":true,"dropTo":["n2"]}' });
  assert.equal(ok.statusCode, 200);
  assert.deepEqual(service.faults, { isolate: true, dropTo: ['n2'] });
  const bad = await enabled.inject({ method: 'POST', url: '/v1/test/faults', payload: '{"dropTo":"n2"}' });
  assert.equal(bad.statusCode, 400);
  const badJson = await enabled.inject({ method: 'POST', url: '/v1/test/faults', payload: '{' });
  assert.equal(json(badJson.body)['code'], 'CHORUS_BAD_JSON');
});
