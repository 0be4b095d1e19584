// The bench's load generator and accounting, against a tiny in-process HTTP server (no
// cluster): percentiles, success and failure counts, throughput and concurrency. No assertion
// depends on how fast this machine is.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { HttpEndpoints, runLoad, throughputPerS } from '../../bench/load.ts';
import { formatTable, ratioOf } from '../../bench/report.ts';
import type { BenchReport } from '../../bench/report.ts';
import { LatencySamples } from '../../bench/samples.ts';
import { benchKey, benchValue, chorusProtocol, etcdProtocol, VALUE_BYTES } from '../../bench/systems.ts';

describe('LatencySamples', () => {
  test('nearest-rank percentiles of known samples, whatever the insertion order', () => {
    const samples = new LatencySamples();
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    // A fixed shuffle: percentiles must not depend on the order samples arrive in.
    for (let i = 0; i < values.length; i++) {
      const j = (i * 37) % values.length;
      [values[i], values[j]] = [values[j]!, values[i]!];
    }
    for (const v of values) samples.add(v);
    assert.equal(samples.count, 100);
    assert.equal(samples.percentile(0), 1);
    assert.equal(samples.percentile(1), 1);
    assert.equal(samples.percentile(50), 50);
    assert.equal(samples.percentile(50.5), 51);
    assert.equal(samples.percentile(99), 99);
    assert.equal(samples.percentile(100), 100);
    assert.equal(samples.max(), 100);
    assert.equal(samples.mean(), 50.5);
  });

  test('p99.9 of 1000 samples is the 999th, not the maximum (no floating-point overshoot)', () => {
    const samples = new LatencySamples();
    for (let i = 1000; i >= 1; i--) samples.add(i / 10);
    assert.equal(samples.percentile(99.9), 99.9);
    assert.equal(samples.percentile(99), 99);
  });

  test('grows past its initial capacity, sorts numerically, and is empty-safe', () => {
    const samples = new LatencySamples();
    assert.ok(Number.isNaN(samples.percentile(50)));
    for (let i = 0; i < 5000; i++) samples.add(i % 2 === 0 ? 2 : 10); // as strings, "10" < "2"
    assert.equal(samples.count, 5000);
    assert.equal(samples.percentile(50), 2);
    assert.equal(samples.percentile(51), 10);
    assert.throws(() => samples.add(-1), RangeError);
    assert.throws(() => samples.percentile(101), RangeError);
  });
});

describe('runLoad against an in-process server', () => {
  /** Requests in flight at the server now, and the most ever. */
  let inFlight = 0;
  let inFlightMax = 0;
  let received = 0;
  /** Requests that wait until this many are in flight at once (then all are answered). */
  let barrier = 0;
  let waiting: (() => void)[] = [];
  let server: http.Server;
  let url = '';

  before(async () => {
    server = http.createServer((request, response) => {
      received++;
      inFlight++;
      inFlightMax = Math.max(inFlightMax, inFlight);
      const path = request.url ?? '';
      const answer = (): void => {
        inFlight--;
        if (path.startsWith('/fail')) {
          response.writeHead(503).end('{"code":"CHORUS_BUSY"}');
        } else {
          response.writeHead(200, { 'content-type': 'application/octet-stream' }).end(path);
        }
      };
      request.resume();
      request.on('end', () => {
        if (path.startsWith('/hang')) return; // never answered: the client must time out
        const delay = /^\/delay\/(\d+)/.exec(path);
        if (delay !== null) {
          setTimeout(answer, Number(delay[1]));
          return;
        }
        if (barrier > 0) {
          waiting.push(answer);
          if (waiting.length >= barrier) {
            const all = waiting;
            waiting = [];
            for (const f of all) f();
          }
          return;
        }
        answer();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const reset = (): void => {
    inFlight = 0;
    inFlightMax = 0;
    received = 0;
    barrier = 0;
    waiting = [];
  };

  test('counts successes and failures exactly, times only successes, and reports each request once', async () => {
    reset();
    const endpoints = new HttpEndpoints([url], 8);
    const seen: number[] = [];
    const oks: boolean[] = [];
    try {
      const result = await runLoad({
        endpoints,
        concurrency: 8,
        requestsMax: 200,
        request: (seq) => ({ endpoint: 0, method: 'PUT', path: seq % 5 === 0 ? `/fail/${seq}` : `/ok/${seq}`, body: benchValue(seq) }),
        // The answer must belong to its own request: the server echoes the path.
        accept: (answer, seq) => answer.status === 200 && answer.body.toString() === `/ok/${seq}`,
        onResult: (seq, ok, startMs, endMs) => {
          assert.ok(endMs >= startMs);
          seen.push(seq);
          oks[seq] = ok;
        },
      });
      assert.equal(received, 200);
      assert.equal(result.succeeded, 160);
      assert.equal(result.failed, 40);
      // The server's error code is part of the failure's kind.
      assert.deepEqual([...result.failures], [['HTTP 503 CHORUS_BUSY', 40]]);
      assert.equal(result.latency.count, 160);
      assert.deepEqual([...seen].sort((a, b) => a - b), Array.from({ length: 200 }, (_, i) => i));
      for (let seq = 0; seq < 200; seq++) assert.equal(oks[seq], seq % 5 !== 0, `request ${seq}`);
      assert.ok(inFlightMax <= 8, `at most 8 in flight, saw ${inFlightMax}`);
      assert.ok(result.durationMs > 0);
      assert.equal(throughputPerS(result), (160 * 1000) / result.durationMs);
    } finally {
      endpoints.close();
    }
  });

  test('keeps `concurrency` requests in flight at once', async () => {
    reset();
    // The server answers nothing until 16 requests wait together: a generator that kept fewer
    // in flight would time out every request.
    barrier = 16;
    const endpoints = new HttpEndpoints([url], 16);
    try {
      const result = await runLoad({
        endpoints,
        concurrency: 16,
        requestsMax: 64,
        requestTimeoutMs: 5000,
        request: (seq) => ({ endpoint: 0, method: 'GET', path: `/ok/${seq}` }),
        accept: (answer) => answer.status === 200,
      });
      assert.equal(result.failed, 0, `failures: ${[...result.failures].join(' ')}`);
      assert.equal(result.succeeded, 64);
      assert.equal(inFlightMax, 16);
    } finally {
      endpoints.close();
    }
  });

  test('a slow request sets the maximum; percentiles come from the recorded samples', async () => {
    reset();
    const endpoints = new HttpEndpoints([url], 4);
    try {
      const result = await runLoad({
        endpoints,
        concurrency: 4,
        requestsMax: 40,
        request: (seq) => ({ endpoint: 0, method: 'GET', path: seq === 7 ? '/delay/150' : `/ok/${seq}` }),
        accept: (answer) => answer.status === 200,
      });
      assert.equal(result.succeeded, 40);
      // The delayed request took at least its 150 ms, and only one request was slow, so the
      // maximum is its latency and p50 is some other request's.
      assert.ok(result.latency.max() >= 150, `max ${result.latency.max()}`);
      assert.ok(result.latency.percentile(50) < result.latency.max());
      assert.ok(result.latency.percentile(50) <= result.latency.percentile(99));
      assert.ok(result.durationMs >= result.latency.max());
    } finally {
      endpoints.close();
    }
  });

  test('a request without an answer fails as TIMEOUT; a refused connection by its code', async () => {
    reset();
    const endpoints = new HttpEndpoints([url, 'http://127.0.0.1:1'], 2);
    try {
      const result = await runLoad({
        endpoints,
        concurrency: 2,
        requestsMax: 4,
        requestTimeoutMs: 100,
        request: (seq) => (seq % 2 === 0 ? { endpoint: 0, method: 'GET', path: '/hang' } : { endpoint: 1, method: 'GET', path: '/ok' }),
        accept: (answer) => answer.status === 200,
      });
      assert.equal(result.succeeded, 0);
      assert.equal(result.failures.get('TIMEOUT'), 2);
      assert.equal(result.failures.get('ECONNREFUSED'), 2);
      assert.equal(result.latency.count, 0);
      assert.equal(throughputPerS(result), 0);
    } finally {
      endpoints.close();
      server.closeAllConnections();
    }
  });

  test('a timed run starts no request after its duration and answers all it started', async () => {
    reset();
    const endpoints = new HttpEndpoints([url], 4);
    try {
      const result = await runLoad({
        endpoints,
        concurrency: 4,
        durationMs: 200,
        request: (seq) => ({ endpoint: 0, method: 'GET', path: `/delay/${seq % 3}` }),
        accept: (answer) => answer.status === 200,
      });
      assert.ok(result.succeeded > 0);
      assert.equal(result.succeeded + result.failed, received);
      assert.equal(inFlight, 0);
    } finally {
      endpoints.close();
    }
  });
});

describe('requests and the report', () => {
  test('both systems get the same 100-byte values under the same keys', () => {
    assert.equal(benchValue(42).length, VALUE_BYTES);
    assert.notDeepEqual(benchValue(42), benchValue(43));
    assert.equal(benchKey(7), 'bench-0000000007');
    const chorus = chorusProtocol.put(0, benchKey(7), benchValue(7), { commit: 'local' });
    assert.equal(chorus.path, '/v1/kv/bench-0000000007?commit=local');
    assert.deepEqual(chorus.body, benchValue(7));
    const etcd = etcdProtocol.put(0, benchKey(7), benchValue(7));
    const doc = JSON.parse(etcd.body!.toString()) as { key: string; value: string };
    assert.equal(Buffer.from(doc.key, 'base64').toString(), benchKey(7));
    assert.deepEqual(Buffer.from(doc.value, 'base64'), benchValue(7));
    const stale = JSON.parse(etcdProtocol.get(1, 'k', true).body!.toString()) as { serializable?: boolean };
    assert.equal(stale.serializable, true);
    assert.equal(chorusProtocol.get(1, 'k', true).path, '/v1/kv/k?consistency=stale');
  });

  test('etcd read answers: found, empty value, not found', () => {
    const answer = (doc: unknown): { status: number; body: Buffer } => ({ status: 200, body: Buffer.from(JSON.stringify(doc)) });
    assert.deepEqual(etcdProtocol.valueOf(answer({ header: {}, kvs: [{ key: 'aw==', value: 'dg==' }], count: '1' })), Buffer.from('v'));
    assert.deepEqual(etcdProtocol.valueOf(answer({ header: {}, kvs: [{ key: 'aw==' }], count: '1' })), Buffer.alloc(0));
    assert.equal(etcdProtocol.valueOf(answer({ header: {} })), null);
    assert.equal(chorusProtocol.valueOf({ status: 404, body: Buffer.from('{}') }), null);
  });

  test('ratios point the right way and a missing side gives none', () => {
    const report: BenchReport = {
      mode: 'quick',
      startedAt: '2020-01-01T00:00:00.000Z',
      durationMs: 1,
      machine: { cpus: 2, memoryGiB: 24, node: 'v20', loadAverage: [0, 0, 0] },
      chorusRevision: null,
      etcdVersion: '3.4.23',
      etcdSkipped: null,
      rows: [
        { id: 'w', label: 'writes', kind: 'throughput', results: { chorus: { status: 'ok', throughputPerS: 300, latencyMsP50: 1, latencyMsP99: 2, latencyMsMax: 3 }, etcd: { status: 'ok', throughputPerS: 200, latencyMsP50: 1, latencyMsP99: 2, latencyMsMax: 3 } } },
        { id: 'm', label: 'memory', kind: 'memory', results: { chorus: { status: 'ok', residentBytes: [3, 3, 3] }, etcd: { status: 'ok', residentBytes: [1, 1, 1] } } },
        { id: 'l', label: 'local', kind: 'throughput', results: { chorus: { status: 'na', note: 'n/a (not supported yet)' }, etcd: { status: 'na', note: 'no equivalent' } } },
      ],
    };
    assert.deepEqual(ratioOf(report.rows[0]!), { value: 1.5, higherIsBetter: true, what: 'throughput' });
    assert.deepEqual(ratioOf(report.rows[1]!), { value: 3, higherIsBetter: false, what: 'RSS' });
    assert.equal(ratioOf(report.rows[2]!), null);
    const table = formatTable(report);
    assert.match(table, /300 ops\/s/);
    assert.match(table, /1\.50x throughput/);
    assert.match(table, /n\/a \(not supported yet\)/);
  });
});
