// `chorus dev` as a newcomer starts it: it prints its endpoints, they serve HTTP and the binary
// protocol, and SIGINT stops every member.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ChorusBinaryClient } from '../../src/client/index.ts';
import { tempDir } from '../node/helpers.ts';
import { REPO_ROOT, spawnChorus, waitFor } from './helpers.ts';

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Three runs of `count` consecutive free ports (client, peer and binary ports of `chorus dev`). */
async function consecutivePorts(count: number): Promise<{ base: number; peerBase: number; binaryBase: number }> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 20_000);
    const peerBase = base + 20_000;
    const binaryBase = base + 10_000;
    const ports = Array.from({ length: count }, (_, i) => [base + i, peerBase + i, binaryBase + i]).flat();
    const free = await Promise.all(ports.map(portFree));
    if (free.every(Boolean)) return { base, peerBase, binaryBase };
  }
  throw new Error('no run of free ports found');
}

test('npm start runs chorus dev', async () => {
  const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string>; bin: Record<string, string> };
  assert.equal(pkg.scripts['start'], 'node bin/chorus.js dev');
  assert.equal(pkg.bin['chorus'], 'bin/chorus.js');
});

test('chorus dev prints its endpoints, serves requests and the client commands, and SIGINT stops every member', async (t) => {
  const dir = await tempDir(t, 'chorus-dev-');
  const { base, peerBase, binaryBase } = await consecutivePorts(3);
  const dev = spawnChorus(t, ['dev', '--dir', join(dir, 'data'), '--base-port', String(base), '--peer-base-port', String(peerBase), '--binary-base-port', String(binaryBase), '--tick-ms', '50']);
  try {
    await waitFor(() => dev.output.includes('Press Ctrl-C') || dev.exitCode !== null, 'chorus dev to report the cluster up', 60_000);
    assert.equal(dev.exitCode, null, dev.output);
    const urls = [...dev.output.matchAll(/http:\/\/127\.0\.0\.1:\d+(?=\s)/g)].map((m) => m[0]);
    const members = [...new Set(urls)];
    assert.deepEqual(members, [0, 1, 2].map((i) => `http://127.0.0.1:${base + i}`));
    assert.match(dev.output, /curl -X PUT --data-binary 'world' http:\/\/127\.0\.0\.1:\d+\/v1\/kv\/hello/);

    const put = await fetch(`${members[0]!}/v1/kv/hello`, { method: 'PUT', body: 'world' });
    assert.equal(put.status, 200);
    const get = await fetch(`${members[2]!}/v1/kv/hello`);
    assert.equal(await get.text(), 'world');

    // Each member's binary protocol address is printed; a put and a get through one of them.
    const binaryLine = /^Binary protocol: (.*)$/m.exec(dev.output);
    assert.ok(binaryLine !== null, 'a line with the binary addresses');
    const binaries = [...binaryLine[1]!.matchAll(/(n\d) (127\.0\.0\.1:\d+)/g)].map((m) => [m[1], m[2]]);
    assert.deepEqual(binaries, [0, 1, 2].map((i) => [`n${i + 1}`, `127.0.0.1:${binaryBase + i}`]));
    const binary = new ChorusBinaryClient({ endpoint: binaries[1]![1]!, timeoutMs: 15_000 });
    try {
      const written = await binary.put('binary/hello', 'over the binary protocol');
      assert.equal(written.committed, true);
      const read = await binary.get('binary/hello');
      assert.equal(Buffer.from(read!.value).toString(), 'over the binary protocol');
      assert.equal(read!.revision, written.revision);
    } finally {
      binary.close();
    }
    assert.equal(await (await fetch(`${members[0]!}/v1/kv/binary/hello`)).text(), 'over the binary protocol');

    // The client commands against the dev cluster.
    const endpoints = members.join(',');
    const cli = async (...args: string[]): Promise<{ code: number | null; output: string }> => {
      const proc = spawnChorus(t, [...args, '--endpoints', endpoints]);
      await proc.exited;
      return { code: proc.exitCode, output: proc.output };
    };
    assert.match((await cli('put', 'cli/a', 'hello cli')).output, /^OK revision \d+/);
    assert.equal((await cli('get', 'cli/a')).output, 'hello cli');
    assert.equal((await cli('list', 'cli/')).output, 'cli/a\thello cli\n');
    const status = await cli('status');
    assert.equal(status.code, 0, status.output);
    assert.match(status.output, /^cluster [0-9a-f]{16}\s+term \d+\s+leader n\d/);
    assert.match(status.output, /ID\s+ROLE\s+TERM\s+COMMIT\s+APPLIED\s+MATCH\s+LAG/);
    assert.equal(status.output.match(/^n\d\s+(leader|follower)/gm)?.length, 3);
    assert.match((await cli('del', 'cli/a')).output, /^deleted revision \d+/);
    const missing = await cli('get', 'cli/a');
    assert.equal(missing.code, 1);
    assert.match(missing.output, /error: CHORUS_KEY_NOT_FOUND/);
    const tooBig = await cli('put', `${'k'.repeat(5000)}`, 'v');
    assert.equal(tooBig.code, 1);
    assert.match(tooBig.output, /error: CHORUS_KEY_TOO_LARGE: .* \(HTTP 413\)/);

    dev.child.kill('SIGINT');
    await dev.exited;
    assert.equal(dev.exitCode, 0, dev.output);
    assert.match(dev.output, /all members stopped/);
    for (let i = 0; i < 3; i++) {
      assert.ok(await portFree(base + i), `member ${i + 1} released its client port`);
      assert.ok(await portFree(peerBase + i), `member ${i + 1} released its peer port`);
      assert.ok(await portFree(binaryBase + i), `member ${i + 1} released its binary port`);
    }
    const log = await readFile(join(dir, 'data', 'n1.log'), 'utf8');
    assert.match(log, /"event":"member-stopped"/, 'the member stopped cleanly');
  } catch (error) {
    t.diagnostic(dev.output);
    // SIGINT, not the after hook's SIGKILL: chorus dev then stops its members, which a SIGKILL
    // of the parent would leave running.
    if (dev.exitCode === null && dev.exitSignal === null) {
      dev.child.kill('SIGINT');
      await Promise.race([dev.exited, new Promise((resolve) => setTimeout(resolve, 15_000))]);
    }
    throw error;
  }
});
