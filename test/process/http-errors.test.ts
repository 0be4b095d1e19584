// Malformed requests against a real member process: each gets its JSON error and code, and the
// member keeps serving (on the same keep-alive connection where HTTP allows it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { startProcessCluster } from './helpers.ts';

interface Answer {
  readonly status: number;
  readonly code: string | undefined;
}

async function call(url: string, method: string, path: string, body?: string | Uint8Array, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(`${url}${path}`, { method, body, headers, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(text) as { code?: string }).code;
  } catch {
    code = undefined;
  }
  return { status: res.status, code };
}

/** Writes raw bytes on a fresh TCP connection and returns what comes back before it closes. */
function raw(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(bytes));
    let data = '';
    socket.on('data', (chunk) => {
      data += chunk.toString('latin1');
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(data));
    socket.setTimeout(5000, () => socket.destroy());
  });
}

test('malformed requests get their codes from a real process, which keeps serving', async (t) => {
  const cluster = await startProcessCluster(t, 1, ['--value-bytes-max', '1024']);
  try {
    await cluster.leader();
    const url = cluster.url('n1');
    const port = cluster.spec.clientPorts.get('n1')!;
    const cases: { name: string; request: () => Promise<Answer>; status: number; code: string }[] = [
      { name: 'bad JSON txn', request: () => call(url, 'POST', '/v1/txn', '{"compare":[', { 'content-type': 'application/json' }), status: 400, code: 'CHORUS_BAD_JSON' },
      { name: 'txn of the wrong shape', request: () => call(url, 'POST', '/v1/txn', '{"success":[{"op":"explode","key":"k"}]}'), status: 400, code: 'CHORUS_BAD_REQUEST' },
      { name: 'key not valid UTF-8', request: () => call(url, 'GET', '/v1/kv/%FF'), status: 400, code: 'CHORUS_BAD_KEY' },
      { name: 'bad percent-encoding', request: () => call(url, 'PUT', '/v1/kv/a%zz', 'v'), status: 400, code: 'CHORUS_BAD_KEY' },
      { name: 'empty key', request: () => call(url, 'PUT', '/v1/kv/', 'v'), status: 400, code: 'CHORUS_BAD_KEY' },
      { name: 'value over --value-bytes-max', request: () => call(url, 'PUT', '/v1/kv/big', 'x'.repeat(1025)), status: 413, code: 'CHORUS_VALUE_TOO_LARGE' },
      { name: 'key over 4 KiB', request: () => call(url, 'PUT', `/v1/kv/${'k'.repeat(4097)}`, 'v'), status: 413, code: 'CHORUS_KEY_TOO_LARGE' },
      { name: 'unknown route', request: () => call(url, 'GET', '/v2/nothing'), status: 404, code: 'CHORUS_NOT_FOUND' },
      { name: 'absent key', request: () => call(url, 'GET', '/v1/kv/absent'), status: 404, code: 'CHORUS_KEY_NOT_FOUND' },
      { name: 'bad list limit', request: () => call(url, 'GET', '/v1/kv?limit=0'), status: 400, code: 'CHORUS_BAD_REQUEST' },
      { name: 'test faults disabled', request: () => call(url, 'POST', '/v1/test/faults', '{}'), status: 404, code: 'CHORUS_NOT_FOUND' },
    ];
    for (const c of cases) {
      const answer = await c.request();
      assert.deepEqual(answer, { status: c.status, code: c.code }, c.name);
      // Still serving after each one.
      assert.equal((await call(url, 'PUT', '/v1/kv/alive', c.name)).status, 200, `serving after: ${c.name}`);
    }
    // Not HTTP at all: Node's parser answers 400 and closes that connection only.
    const garbage = await raw(port, 'NOT HTTP AT ALL\r\n\r\n');
    assert.match(garbage, /^HTTP\/1\.1 400/);
    assert.match(garbage, /\{"code":"CHORUS_BAD_REQUEST","message":"[^"]+"\}$/, 'even the parser\'s errors are our JSON');
    const res = await fetch(`${url}/v1/kv/alive`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), cases[cases.length - 1]!.name, 'the last write reads back');
  } catch (error) {
    t.diagnostic(cluster.describe());
    throw error;
  }
});
