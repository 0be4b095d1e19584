// `chorus bench --endpoints` against three real `chorus start` processes: the load phases run
// against the given cluster (no etcd, no Redis), the table is printed, the JSON report saved,
// and the keys it wrote are in the cluster. Bad input is refused with a clear message. Nothing
// here depends on how fast the machine is.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChorusClient } from '../../src/client/index.ts';
import { benchKey, benchValue } from '../../bench/systems.ts';
import type { BenchReport } from '../../bench/report.ts';
import { runCli, startProcessCluster } from './helpers.ts';

test('chorus bench --endpoints measures a running cluster and prints the table', async (t) => {
  const cluster = await startProcessCluster(t, 3);
  await cluster.leader();
  const endpoints = cluster.urls(cluster.spec.ids).join(',');
  const dir = await mkdtemp(join(tmpdir(), 'chorus-bench-cmd-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const json = join(dir, 'report.json');

  const result = await runCli(t, ['bench', '--endpoints', endpoints, '--quick', '--only', 'write-1,write-local,read-linearizable', '--json', json]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /writes, 1 client\s+Chorus\s+[\d,]+ ops\/s/);
  assert.match(result.stdout, /writes, 64 clients, commit=local\s+Chorus\s+[\d,]+ ops\/s/);
  assert.match(result.stdout, /linearizable reads, 64 clients\s+Chorus\s+[\d,]+ ops\/s/);
  assert.match(result.stdout, /etcd not run/, 'no etcd against someone else\'s cluster');
  assert.match(result.stdout, new RegExp(`report saved to ${json}`));

  const report = JSON.parse(await readFile(json, 'utf8')) as BenchReport;
  assert.equal(report.mode, 'quick');
  const ids = report.rows.map((row) => row.id);
  assert.deepEqual(ids.sort(), ['read-linearizable', 'write-1', 'write-local']);
  for (const row of report.rows) {
    const chorus = row.results['chorus'];
    assert.equal(chorus?.status, 'ok', `${row.id}: ${JSON.stringify(chorus)}`);
    assert.ok((chorus?.throughputPerS ?? 0) > 0, `${row.id} measured something`);
    assert.equal(row.results['etcd'], undefined);
  }
  // The keys it wrote are the cluster's now, with the bench's values.
  const client = new ChorusClient({ endpoints: cluster.urls(cluster.spec.ids) });
  assert.deepEqual(Buffer.from((await client.get(benchKey(0)))!.value), benchValue(0));
});

test('chorus bench refuses bad input with a message and exit code 1', async (t) => {
  const unknown = await runCli(t, ['bench', '--endpoints', 'http://127.0.0.1:1', '--quick', '--only', 'write-7']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /unknown phase\(s\) write-7/);
  const badUrl = await runCli(t, ['bench', '--endpoints', 'http://[::1', '--quick']);
  assert.equal(badUrl.code, 1);
  assert.match(badUrl.stderr, /CHORUS_BAD_REQUEST: --endpoints: not a URL/);
  const badTimeout = await runCli(t, ['bench', '--timeout-ms', 'soon']);
  assert.notEqual(badTimeout.code, 0);
  assert.match(badTimeout.stderr, /--timeout-ms must be an integer/);
});
