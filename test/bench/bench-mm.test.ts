// The pieces of the bench's multi-master rows that need no cluster and no redis-server: the RESP
// client (against an in-process server speaking RESP), the load generator driving it, the
// Prometheus text reader, the multi-master requests, and the report's rows compared with Redis.
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { runLoad } from '../../bench/load.ts';
import { sumSamples } from '../../bench/prometheus.ts';
import { redisArgs } from '../../bench/redis-cluster.ts';
import { describePeers, formatTable, ratioOf } from '../../bench/report.ts';
import type { BenchReport, BenchRow } from '../../bench/report.ts';
import { encodeCommand, parseInfo, parseReply, RespEndpoints, RespError } from '../../bench/resp.ts';
import type { RespValue } from '../../bench/resp.ts';
import { benchKey, benchValue, chorusProtocol } from '../../bench/systems.ts';

describe('RESP encoding', () => {
  test('a command is an array of bulk strings, binary-safe', () => {
    const value = Buffer.from([0x00, 0x0d, 0x0a, 0xff]);
    assert.equal(encodeCommand(['SET', 'k', value]).toString('latin1'), `*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\n${value.toString('latin1')}\r\n`);
    assert.equal(encodeCommand(['GET', 'é']).toString('latin1'), '*2\r\n$3\r\nGET\r\n$2\r\n\xc3\xa9\r\n');
  });

  test('every reply type, and nothing before a reply is complete', () => {
    const wire = Buffer.from('+OK\r\n-READONLY not a primary\r\n:42\r\n$5\r\nhe\r\no\r\n$-1\r\n*3\r\n:1\r\n$1\r\nx\r\n*1\r\n+y\r\n*-1\r\n', 'latin1');
    const values: RespValue[] = [];
    let offset = 0;
    while (offset < wire.length) {
      // Each prefix short of the reply's end is incomplete, never a wrong reply.
      const reply = parseReply(wire, offset);
      assert.ok(reply !== null);
      for (let cut = offset + 1; cut < reply.end; cut++) assert.equal(parseReply(wire.subarray(0, cut), offset), null, `cut at ${cut}`);
      values.push(reply.value);
      offset = reply.end;
    }
    assert.equal(values[0], 'OK');
    assert.ok(values[1] instanceof RespError);
    assert.equal((values[1] as RespError).code, 'READONLY');
    assert.equal(values[2], 42);
    assert.deepEqual(values[3], Buffer.from('he\r\no'));
    assert.equal(values[4], null);
    assert.deepEqual(values[5], [1, Buffer.from('x'), ['y']]);
    assert.equal(values[6], null);
    assert.throws(() => parseReply(Buffer.from('?\r\n')), /not a RESP reply/);
  });

  test('INFO fields', () => {
    const info = parseInfo(Buffer.from('# Replication\r\nrole:slave\r\nmaster_link_status:up\r\n\r\n# Stats\r\nsync_full:2\r\n'));
    assert.equal(info.get('role'), 'slave');
    assert.equal(info.get('master_link_status'), 'up');
    assert.equal(info.get('sync_full'), '2');
    assert.equal(info.size, 3);
  });
});

describe('RespEndpoints and runLoad against an in-process RESP server', () => {
  let server: net.Server;
  let port = 0;
  let connections = 0;
  /** Requests in flight at the server now, and the most ever. */
  let inFlight = 0;
  let inFlightMax = 0;
  const stored = new Map<string, Buffer>();

  before(async () => {
    // Just enough of Redis: SET (keys starting "ro-" answer -READONLY, "hang-" never), GET;
    // each reply is sent a little later and in two pieces, so the client must reassemble.
    server = net.createServer((socket) => {
      connections++;
      let received = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        while (true) {
          const command = parseReply(received);
          if (command === null) return;
          received = received.subarray(command.end);
          const [name, key, value] = (command.value as Buffer[]).map((b, i) => (i === 2 ? b : b.toString()));
          const keyText = key as string;
          if (keyText.startsWith('hang-')) continue;
          let reply: string;
          if (name === 'SET' && keyText.startsWith('ro-')) reply = "-READONLY You can't write against a read only replica.\r\n";
          else if (name === 'SET') {
            stored.set(keyText, value as Buffer);
            reply = '+OK\r\n';
          } else {
            const found = stored.get(keyText);
            reply = found === undefined ? '$-1\r\n' : `$${found.length}\r\n${found.toString('latin1')}\r\n`;
          }
          inFlight++;
          inFlightMax = Math.max(inFlightMax, inFlight);
          const bytes = Buffer.from(reply, 'latin1');
          setTimeout(() => {
            socket.write(bytes.subarray(0, 2));
            setTimeout(() => {
              inFlight--;
              socket.write(bytes.subarray(2));
            }, 1);
          }, 1);
        }
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  test('counts OK and error replies, one connection per worker, each reply to its own request', async () => {
    connections = 0;
    inFlightMax = 0;
    const endpoints = new RespEndpoints([{ host: '127.0.0.1', port }]);
    try {
      const result = await runLoad({
        endpoints,
        concurrency: 8,
        requestsMax: 100,
        request: (seq) => ({ endpoint: 0, args: ['SET', seq % 10 === 0 ? `ro-${seq}` : benchKey(seq), benchValue(seq)] }),
        accept: (answer) => answer === 'OK',
      });
      assert.equal(result.succeeded, 90);
      assert.equal(result.failed, 10);
      assert.deepEqual([...result.failures], [['RESP READONLY', 10]]);
      assert.equal(result.latency.count, 90);
      assert.equal(connections, 8, 'a connection is reused by the next request, never shared by two');
      assert.ok(inFlightMax <= 8);
      // The values arrived intact, and a GET reads them back through the same client.
      assert.deepEqual(stored.get(benchKey(7)), benchValue(7));
      assert.deepEqual(await endpoints.call(0, ['GET', benchKey(7)]), benchValue(7));
      assert.equal(await endpoints.call(0, ['GET', 'missing']), null);
      await assert.rejects(endpoints.call(0, ['SET', 'ro-x', 'v']), /READONLY/);
    } finally {
      endpoints.close();
    }
  });

  test('no answer is a TIMEOUT, a refused connection its code; a broken connection is not reused', async () => {
    const refused = await new Promise<number>((resolve) => {
      const probe = net.createServer();
      probe.listen(0, '127.0.0.1', () => {
        const free = (probe.address() as AddressInfo).port;
        probe.close(() => resolve(free));
      });
    });
    const endpoints = new RespEndpoints([{ host: '127.0.0.1', port }, { host: '127.0.0.1', port: refused }]);
    try {
      const result = await runLoad({
        endpoints,
        concurrency: 2,
        requestsMax: 4,
        requestTimeoutMs: 100,
        request: (seq) => (seq % 2 === 0 ? { endpoint: 0, args: ['SET', `hang-${seq}`, 'v'] } : { endpoint: 1, args: ['SET', 'k', 'v'] }),
        accept: (answer) => answer === 'OK',
      });
      assert.equal(result.succeeded, 0);
      assert.equal(result.failures.get('TIMEOUT'), 2);
      assert.equal(result.failures.get('ECONNREFUSED'), 2);
      // The timed-out connection was dropped: the next request gets a fresh one and its answer.
      assert.equal(await endpoints.call(0, ['SET', 'after-timeout', 'v']), 'OK');
    } finally {
      endpoints.close();
    }
  });
});

describe('multi-master requests, metrics and report', () => {
  test('a multi-master put goes to the keyspace with ?w=', () => {
    const spec = chorusProtocol.put(2, benchKey(3), benchValue(3), { keyspace: 'bench-mm', w: 1 });
    assert.equal(spec.endpoint, 2);
    assert.equal(spec.method, 'PUT');
    assert.equal(spec.path, '/v1/ks/bench-mm/kv/bench-0000000003?w=1');
    assert.equal(chorusProtocol.put(0, 'k', benchValue(1)).path, '/v1/kv/k');
  });

  test('Redis members fsync every write before answering; replicas follow the primary', () => {
    const primary = redisArgs(7000, '/tmp/r1', null);
    const replica = redisArgs(7001, '/tmp/r2', 7000);
    for (const args of [primary, replica]) {
      const at = (flag: string): string | undefined => args[args.indexOf(flag) + 1];
      assert.equal(at('--appendonly'), 'yes');
      assert.equal(at('--appendfsync'), 'always');
      assert.equal(at('--save'), '');
    }
    assert.ok(!primary.includes('--replicaof'));
    assert.deepEqual(replica.slice(replica.indexOf('--replicaof'), replica.indexOf('--replicaof') + 3), ['--replicaof', '127.0.0.1', '7000']);
  });

  test('sums of Prometheus samples, by label', () => {
    const text = [
      '# HELP chorus_transport_sent_bytes_total Bytes handed to the socket of a peer.',
      '# TYPE chorus_transport_sent_bytes_total counter',
      'chorus_transport_sent_bytes_total{peer="n2"} 1500',
      'chorus_transport_sent_bytes_total{peer="n3"} 2500',
      'chorus_transport_sent_bytes_total_created{peer="n3"} 99',
      'chorus_mm_keys{keyspace="bench-mm-repair"} 10000',
      'chorus_mm_keys{keyspace="a \\"quoted\\" one"} 7',
      'chorus_up 1',
    ].join('\n');
    assert.equal(sumSamples(text, 'chorus_transport_sent_bytes_total'), 4000);
    assert.equal(sumSamples(text, 'chorus_transport_sent_bytes_total', { peer: 'n3' }), 2500);
    assert.equal(sumSamples(text, 'chorus_mm_keys', { keyspace: 'bench-mm-repair' }), 10_000);
    assert.equal(sumSamples(text, 'chorus_mm_keys', { keyspace: 'a "quoted" one' }), 7);
    assert.equal(sumSamples(text, 'chorus_up'), 1);
    assert.equal(sumSamples(text, 'chorus_missing'), 0);
  });

  test('each row is compared with its own peer; convergence rows show time, MB and bytes per key', () => {
    const etcdRow: BenchRow = {
      id: 'write-64', label: 'writes, 64 clients', kind: 'throughput', peer: 'etcd',
      results: { chorus: { status: 'ok', throughputPerS: 300 }, etcd: { status: 'ok', throughputPerS: 200 } },
    };
    const writeRow: BenchRow = {
      id: 'mm-write-64', label: 'multi-master writes, 64 clients, local ack', kind: 'throughput', peer: 'redis',
      results: { chorus: { status: 'ok', throughputPerS: 1000, latencyMsP50: 30 }, redis: { status: 'ok', throughputPerS: 4000, latencyMsP50: 3 } },
    };
    const repairRow: BenchRow = {
      id: 'mm-repair', label: 'multi-master repair of 10,000 divergent keys', kind: 'convergence', peer: 'redis',
      results: {
        chorus: { status: 'ok', keys: 10_000, convergenceMs: 3000, exchangedBytes: 2_500_000 },
        redis: { status: 'ok', keys: 10_000, convergenceMs: 1500, exchangedBytes: 1_000_000 },
      },
    };
    const skippedRow: BenchRow = {
      ...repairRow, id: 'mm-repair-2',
      results: { chorus: repairRow.results.chorus!, redis: { status: 'skipped', note: 'not run (redis-server is not installed)' } },
    };
    // A report saved before Redis joined has rows without a peer: they compare with etcd.
    const { peer: _peer, ...legacyRow } = etcdRow;
    assert.deepEqual(ratioOf(legacyRow), { value: 1.5, higherIsBetter: true, what: 'throughput' });
    assert.deepEqual(ratioOf(writeRow), { value: 0.25, higherIsBetter: true, what: 'throughput' });
    assert.deepEqual(ratioOf(repairRow), { value: 2, higherIsBetter: false, what: 'time to converge' });
    assert.equal(ratioOf(skippedRow), null);
    const report: BenchReport = {
      mode: 'quick',
      startedAt: '2020-01-01T00:00:00.000Z',
      durationMs: 1,
      machine: { cpus: 2, memoryGiB: 24, node: 'v20', loadAverage: [0, 0, 0] },
      chorusRevision: null,
      etcdVersion: '3.4.23',
      etcdSkipped: null,
      redisVersion: '7.0.15',
      redisSkipped: null,
      rows: [etcdRow, writeRow, repairRow, skippedRow],
    };
    const table = formatTable(report);
    assert.match(table, /1\.50x throughput vs etcd \(higher is better\)/);
    assert.match(table, /0\.25x throughput vs Redis \(higher is better\)/);
    assert.match(table, /2\.00x time to converge vs Redis \(lower is better\)/);
    assert.match(table, /10,000 keys in 3\.00 s, 2\.50 MB \(250 B\/key\)/);
    assert.match(table, /Redis\s+4,000 ops\/s/);
    assert.match(table, /not run \(redis-server is not installed\)/);
    assert.equal(describePeers(report), 'etcd 3.4.23; Redis 7.0.15');
    assert.equal(describePeers({ ...report, redisVersion: null, redisSkipped: 'not requested' }), 'etcd 3.4.23; Redis not run: not requested');
  });
});
