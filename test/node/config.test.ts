// Configuration: addresses, the initial cluster, the derived cluster id, defaults and limits,
// config files (JSON and the YAML subset), and the CLI's merging of files and flags.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfigFile, parseYamlSubset } from '../../src/cli/config-file.ts';
import { startConfig } from '../../src/cli/start.ts';
import { deriveClusterId, parseHostPort, parseInitialCluster, resolveConfig } from '../../src/node/config.ts';
import { tempDir } from './helpers.ts';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

const CLUSTER = 'n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003';

test('addresses and the initial cluster parse strictly', () => {
  assert.deepEqual(parseHostPort('127.0.0.1:8001', 'x'), { host: '127.0.0.1', port: 8001 });
  assert.deepEqual(parseHostPort('[::1]:8001', 'x'), { host: '::1', port: 8001 });
  assert.deepEqual(parseHostPort('127.0.0.1:0', 'x', true), { host: '127.0.0.1', port: 0 });
  for (const bad of ['127.0.0.1', ':80', '127.0.0.1:70000', 'a:b', '127.0.0.1:0']) assert.equal(code(() => parseHostPort(bad, 'x')), 'CHORUS_CONFIG_INVALID', bad);
  const members = parseInitialCluster(` ${CLUSTER} `);
  assert.deepEqual([...members.keys()], ['n1', 'n2', 'n3']);
  assert.deepEqual(members.get('n2'), { host: '127.0.0.1', port: 7002 });
  for (const bad of ['', 'n1', 'n1=127.0.0.1:1,n1=127.0.0.1:2', 'bad id=127.0.0.1:1', '=127.0.0.1:1']) {
    assert.equal(code(() => parseInitialCluster(bad)), 'CHORUS_CONFIG_INVALID', bad);
  }
});

test('the cluster id is derived from the initial members, whatever their order', () => {
  const a = deriveClusterId(parseInitialCluster(CLUSTER));
  const b = deriveClusterId(parseInitialCluster('n3=127.0.0.1:7003,n1=127.0.0.1:7001,n2=127.0.0.1:7002'));
  const c = deriveClusterId(parseInitialCluster('n1=127.0.0.1:7001,n2=127.0.0.1:7002'));
  assert.equal(a, b);
  assert.notEqual(a, c);
  assert.match(a, /^[0-9a-f]{16}$/);
});

test('resolveConfig fills defaults and refuses inconsistent settings', () => {
  const base = { id: 'n1', dataDir: '/tmp/x', listenClient: '127.0.0.1:8001', listenPeer: '127.0.0.1:7001', initialCluster: CLUSTER };
  const config = resolveConfig(base);
  assert.equal(config.tickMs, 50);
  assert.equal(config.electionTicks, 10);
  assert.equal(config.heartbeatTicks, 1);
  assert.equal(config.snapshotEntries, 10_000);
  assert.equal(config.limits.valueBytesMax, 1024 * 1024);
  assert.equal(config.limits.keyBytesMax, 4096);
  assert.ok(config.commandBytesMax >= 2 * config.limits.valueBytesMax);
  assert.ok(config.frameBytesMax > config.commandBytesMax, 'every entry fits in one transport frame');
  assert.equal(config.clusterId, deriveClusterId(parseInitialCluster(CLUSTER)));
  assert.equal(resolveConfig({ ...base, clusterId: 'mine' }).clusterId, 'mine');
  const big = resolveConfig({ ...base, valueBytesMax: 16 * 1024 * 1024 });
  assert.ok(big.frameBytesMax > big.commandBytesMax && big.commandBytesMax > 2 * 16 * 1024 * 1024);
  const bad: Record<string, unknown>[] = [
    { id: 'n9' },
    { id: 'n 1' },
    { listenPeer: '127.0.0.1:7002' },
    { electionTicks: 1 },
    { heartbeatTicks: 10 },
    { tickMs: 0 },
    { valueBytesMax: 0 },
    { valueBytesMax: 65 * 1024 * 1024 },
    { proposalsPendingMax: 1.5 },
  ];
  for (const override of bad) assert.equal(code(() => resolveConfig({ ...base, ...override } as typeof base)), 'CHORUS_CONFIG_INVALID', JSON.stringify(override));
});

test('the YAML subset: top-level key: value, comments, quotes, kebab-case keys', () => {
  const parsed = parseYamlSubset([
    '# a member',
    'id: n1',
    'data-dir: "/var/lib/chorus # not a comment"',
    "listen-client: '127.0.0.1:8001'",
    'tick-ms: 50   # fast',
    'enable-test-faults: false',
    '',
  ].join('\n'));
  assert.deepEqual(parsed, { id: 'n1', dataDir: '/var/lib/chorus # not a comment', listenClient: '127.0.0.1:8001', tickMs: 50, enableTestFaults: false });
  for (const bad of ['id: n1\nid: n2', '  nested: 1', 'list: [1, 2]', 'no colon', 'empty:', 'x: "unterminated']) {
    assert.equal(code(() => parseYamlSubset(bad)), 'CHORUS_CONFIG_INVALID', bad);
  }
});

test('chorus start merges a config file with flags (flags win) and checks every setting', async (t) => {
  const dir = await tempDir(t);
  const yaml = join(dir, 'chorus.yaml');
  await writeFile(yaml, `id: n1\ndata-dir: ${dir}/n1\nlisten-client: 127.0.0.1:8001\nlisten-peer: 127.0.0.1:7001\ninitial-cluster: ${CLUSTER}\ntick-ms: 50\n`);
  const config = startConfig({ config: yaml, tickMs: 20 });
  assert.equal(config.id, 'n1');
  assert.equal(config.tickMs, 20);
  assert.equal(config.initialCluster, CLUSTER);
  const json = join(dir, 'chorus.json');
  await writeFile(json, JSON.stringify({ id: 'n2', 'data-dir': `${dir}/n2`, listenClient: '127.0.0.1:8002', listenPeer: '127.0.0.1:7002', initialCluster: CLUSTER }));
  assert.equal(startConfig({ config: json }).id, 'n2');
  assert.deepEqual(loadConfigFile(json)['dataDir'], `${dir}/n2`);
  assert.equal(code(() => startConfig({ config: join(dir, 'missing.yaml') })), 'CHORUS_CONFIG_INVALID');
  assert.equal(code(() => startConfig({ id: 'n1' })), 'CHORUS_CONFIG_INVALID');
  await writeFile(yaml, 'id: n1\ntypo-setting: 1\n');
  assert.match(String(code(() => startConfig({ config: yaml }))), /CHORUS_CONFIG_INVALID/);
});

test('replication settings: defaults, validation, the lease default, and joining', () => {
  const base = { id: 'n1', dataDir: '/tmp/x', listenClient: '127.0.0.1:0', listenPeer: '127.0.0.1:7001', initialCluster: CLUSTER };
  const resolved = resolveConfig(base);
  assert.equal(resolved.synchronousCommit, 'on');
  assert.equal(resolved.synchronousStandbyNames, '');
  assert.equal(resolved.syncStandbyTimeoutMs, 5000);
  assert.equal(resolved.leaseTicks, 8, 'electionTicks - 2');
  assert.equal(resolved.heartbeatDelayMaxMs, 50);
  assert.equal(resolved.join, false);
  assert.equal(resolveConfig({ ...base, electionTicks: 2, heartbeatTicks: 1 }).leaseTicks, 0);
  assert.equal(resolveConfig({ ...base, synchronousStandbyNames: 'n2, n3' }).synchronousStandbyNames, 'FIRST 1 (n2, n3)', 'stored canonical');
  assert.equal(resolveConfig({ ...base, synchronousCommit: 'REMOTE_APPLY' }).synchronousCommit, 'remote_apply');
  for (const bad of [
    { synchronousCommit: 'sometimes' },
    { synchronousStandbyNames: 'FIRST 3 (n2, n3)' },
    { leaseTicks: 10 },
    { syncStandbyTimeoutMs: 0 },
    { initialClusterState: 'old' },
    { join: true },
    { initialClusterState: 'existing' },
  ]) {
    assert.equal(code(() => resolveConfig({ ...base, ...bad })), 'CHORUS_CONFIG_INVALID', JSON.stringify(bad));
  }
  assert.equal(resolveConfig({ ...base, join: true, clusterId: 'abc' }).join, true);
  assert.equal(resolveConfig({ ...base, initialClusterState: 'existing', clusterId: 'abc' }).join, true);
});

test('config files take PostgreSQL-style names; flags override them', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'chorus.yaml');
  await writeFile(file, [
    'id: n1',
    'data_dir: /tmp/n1',
    'listen-client: 127.0.0.1:8001',
    'listen-peer: 127.0.0.1:7001',
    `initial-cluster: ${CLUSTER}`,
    'synchronous_commit: remote_apply',
    "synchronous_standby_names: 'FIRST 1 (n3)'",
    'sync-standby-timeout-ms: 2000',
    'lease-ticks: 0',
    '',
  ].join('\n'));
  const config = startConfig({ config: file });
  assert.equal(config.synchronousCommit, 'remote_apply');
  assert.equal(config.synchronousStandbyNames, 'FIRST 1 (n3)');
  assert.equal(config.syncStandbyTimeoutMs, 2000);
  assert.equal(config.leaseTicks, 0);
  assert.equal(config.dataDir, '/tmp/n1');
  const flagged = startConfig({ config: file, synchronousCommit: 'local', join: true, clusterId: 'c', initialClusterState: 'existing' });
  assert.equal(flagged.synchronousCommit, 'local');
  assert.equal(flagged.join, true);
  assert.equal(code(() => startConfig({ config: file, join: 'yes' })), 'CHORUS_CONFIG_INVALID');
});
