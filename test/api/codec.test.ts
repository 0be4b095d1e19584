// Pure translation functions of the API: keys from raw URLs, txn JSON, results, status mapping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeKeyPath, keyFromUrl, parseTxnBody, txnResultJson } from '../../src/api/codec.ts';
import { errorResponse, httpStatusOf } from '../../src/api/errors.ts';
import { DEFAULT_KV_LIMITS, KvError } from '../../src/kv/commands.ts';
import { ChorusError } from '../../src/shared/errors.ts';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

test('keyFromUrl decodes percent-encoding strictly into UTF-8 keys', () => {
  const limits = DEFAULT_KV_LIMITS;
  assert.equal(keyFromUrl('/v1/kv/a/b', limits), 'a/b');
  assert.equal(keyFromUrl('/v1/kv/a%2fb?x=%FF', limits), 'a/b', 'lowercase hex; the query is not part of the key');
  assert.equal(keyFromUrl('/v1/kv/%F0%9F%98%80', limits), '\u{1F600}');
  assert.equal(keyFromUrl('/v1/kv/caf\u00c3\u00a9', limits), 'caf\u00e9', 'raw bytes as Node reads them (latin1) are UTF-8');
  assert.equal(keyFromUrl('/v1/kv/%EF%BB%BFa', limits), '\ufeffa', 'a leading BOM is part of the key');
  assert.equal(codeOf(() => keyFromUrl('/v1/kv/%FF', limits)), 'CHORUS_BAD_KEY');
  assert.equal(codeOf(() => keyFromUrl('/v1/kv/%ED%A0%80', limits)), 'CHORUS_BAD_KEY', 'an encoded surrogate is not UTF-8');
  assert.equal(codeOf(() => keyFromUrl('/v1/kv/%', limits)), 'CHORUS_BAD_KEY');
  assert.equal(codeOf(() => keyFromUrl('/v1/kv/%G0', limits)), 'CHORUS_BAD_KEY');
  assert.equal(codeOf(() => keyFromUrl('/v1/kv/', limits)), 'CHORUS_BAD_KEY');
  assert.equal(codeOf(() => keyFromUrl('/v1/kv/?a=1', limits)), 'CHORUS_BAD_KEY');
  assert.equal(codeOf(() => keyFromUrl(`/v1/kv/${'a'.repeat(4097)}`, limits)), 'CHORUS_KEY_TOO_LARGE');
  assert.equal(codeOf(() => keyFromUrl(`/v1/kv/${'%61'.repeat(4097)}`, limits)), 'CHORUS_KEY_TOO_LARGE');
  assert.equal(keyFromUrl(`/v1/kv/${'%61'.repeat(4096)}`, limits).length, 4096);
});

test('encodeKeyPath and keyFromUrl are inverse for any valid key', () => {
  for (const key of ['plain', 'a/b/c', 'sp ace', '100%', 'q?#&=+', '\u20ac/\u{1F600}', '/leading', 'trailing/']) {
    assert.equal(keyFromUrl(`/v1/kv/${encodeKeyPath(key)}`, DEFAULT_KV_LIMITS), key);
  }
});

test('parseTxnBody builds a txn command from JSON', () => {
  const cmd = parseTxnBody(Buffer.from(JSON.stringify({
    compare: [{ key: 'k', target: 'value', op: '==', value: 'v' }, { key: 'k', target: 'version', op: '>', value: 2 }],
    success: [{ op: 'put', key: 'k', valueBase64: 'AAE=' }, { op: 'delete', key: 'j' }],
    failure: [{ op: 'get', key: 'k' }],
  })), DEFAULT_KV_LIMITS);
  assert.equal(cmd.kind, 'txn');
  assert.deepEqual(cmd.compare[0]!.value, Buffer.from('v'));
  assert.equal(cmd.compare[1]!.value, 2);
  assert.deepEqual(cmd.success[0], { op: 'put', key: 'k', value: Buffer.from([0, 1]) });
  assert.deepEqual(cmd.failure, [{ op: 'get', key: 'k' }]);
  assert.deepEqual(parseTxnBody(Buffer.from('{}'), DEFAULT_KV_LIMITS), { kind: 'txn', compare: [], success: [], failure: [] });
  assert.ok(parseTxnBody(Buffer.from('{"compare":[]}'), DEFAULT_KV_LIMITS));
  assert.throws(() => parseTxnBody(Buffer.from('{"success":[1]}'), DEFAULT_KV_LIMITS), KvError);
  assert.throws(() => parseTxnBody(undefined, DEFAULT_KV_LIMITS), (e: unknown) => e instanceof ChorusError && e.code === 'CHORUS_BAD_JSON');
});

test('txn results carry text only when the bytes are UTF-8', () => {
  assert.deepEqual(txnResultJson({ op: 'get', key: 'k', absent: true }), { op: 'get', key: 'k', found: false });
  const text = txnResultJson({ op: 'get', key: 'k', value: Buffer.from('hi'), createRevision: 1, modRevision: 2, version: 3 });
  assert.deepEqual(text, { op: 'get', key: 'k', found: true, value: 'hi', valueBase64: 'aGk=', createRevision: 1, modRevision: 2, version: 3 });
  const bytes = txnResultJson({ op: 'get', key: 'k', value: Buffer.from([0xc3]), createRevision: 1, modRevision: 1, version: 1 });
  assert.equal('value' in bytes, false);
});

test('error codes map to statuses in one table; unknown errors are 500', () => {
  assert.equal(httpStatusOf('CHORUS_TIMEOUT'), 504);
  assert.equal(httpStatusOf('CHORUS_BUSY'), 503);
  assert.equal(httpStatusOf('CHORUS_NO_LEADER'), 503);
  assert.equal(httpStatusOf('CHORUS_KEY_TOO_LARGE'), 413);
  assert.equal(httpStatusOf('CHORUS_VALUE_TOO_LARGE'), 413);
  assert.equal(httpStatusOf('CHORUS_BAD_KEY'), 400);
  assert.equal(httpStatusOf('CHORUS_NOT_FOUND'), 404);
  assert.equal(errorResponse(new Error('x'), 'GET').status, 500);
  assert.equal(errorResponse(new Error('x'), 'GET').internal, true);
  const framework = Object.assign(new Error('too large'), { code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413 });
  assert.deepEqual(errorResponse(framework, 'PUT').body.code, 'CHORUS_VALUE_TOO_LARGE');
  assert.deepEqual(errorResponse(framework, 'POST').body.code, 'CHORUS_REQUEST_TOO_LARGE');
});
