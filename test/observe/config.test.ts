// Alert settings: defaults, validation, the config file's `alerts` section (YAML subset and
// JSON) and --alert-webhook.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startConfig } from '../../src/cli/start.ts';
import { resolveConfig } from '../../src/node/config.ts';
import { defaultAlertRules } from '../../src/observe/alerts.ts';
import { parseAlertsSettings, resolveObserveConfig } from '../../src/observe/config.ts';
import { tempDir } from '../node/helpers.ts';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

test('defaults: the rules of defaultAlertRules, evaluated every second, no webhook', () => {
  const config = resolveObserveConfig(undefined);
  assert.deepEqual(config.rules, defaultAlertRules);
  assert.equal(config.enabled, true);
  assert.equal(config.evaluateIntervalMs, 1000);
  assert.equal(config.webhook, null);
});

test('settings are validated; the flag wins over alerts.webhook', () => {
  const config = resolveObserveConfig({ lagSecondsMax: 0.5, webhook: 'http://a.example/x', webhookQueueMax: 3 }, 'https://b.example/hook?token=1');
  assert.equal(config.rules.lagSecondsMax, 0.5);
  assert.equal(config.rules.stallSeconds, defaultAlertRules.stallSeconds);
  assert.equal(config.webhook?.url, 'https://b.example/hook?token=1');
  assert.equal(config.webhook?.queueMax, 3);
  assert.equal(code(() => resolveObserveConfig({}, 'ftp://x')), 'CHORUS_CONFIG_INVALID');
  assert.equal(code(() => resolveObserveConfig({}, 'not a url')), 'CHORUS_CONFIG_INVALID');
  assert.equal(code(() => resolveObserveConfig({ lagSecondsMax: -1 })), 'CHORUS_CONFIG_INVALID');
  assert.equal(code(() => resolveObserveConfig({ webhookQueueMax: 0 }, 'http://x.example')), 'CHORUS_CONFIG_INVALID');
  assert.equal(code(() => parseAlertsSettings({ lagSecondMax: 3 })), 'CHORUS_CONFIG_INVALID', 'a misspelt rule is an error, not a silent default');
  assert.equal(code(() => parseAlertsSettings({ lagBytesMin: 1.5 })), 'CHORUS_CONFIG_INVALID');
  assert.deepEqual(parseAlertsSettings({ fsyncSecondsMax: '0.25', enabled: false }), { fsyncSecondsMax: 0.25, enabled: false });
  // The member's own configuration carries them.
  const member = resolveConfig({
    id: 'n1', dataDir: '/tmp/x', listenClient: '127.0.0.1:0', listenPeer: '127.0.0.1:7001', initialCluster: 'n1=127.0.0.1:7001',
    alerts: { noLeaderSeconds: 1 }, alertWebhook: 'http://127.0.0.1:9/hook',
  });
  assert.equal(member.observe.rules.noLeaderSeconds, 1);
  assert.equal(member.observe.webhook?.url, 'http://127.0.0.1:9/hook');
});

test('the alerts section of a YAML config file, and of a JSON one', async (t) => {
  const dir = await tempDir(t);
  const yaml = join(dir, 'chorus.yaml');
  await writeFile(yaml, [
    'id: n1',
    `data-dir: ${dir}/n1`,
    'listen-client: 127.0.0.1:8001',
    'listen-peer: 127.0.0.1:7001',
    'alerts:',
    '  # thresholds',
    '  lag-seconds-max: 2.5',
    '  lag_bytes_min: 100',
    '',
    '  webhook: "http://127.0.0.1:9000/hook"',
    'initial-cluster: n1=127.0.0.1:7001',
    'tick-ms: 20',
  ].join('\n'));
  const fromYaml = startConfig({ config: yaml });
  assert.deepEqual(fromYaml.alerts, { lagSecondsMax: 2.5, lagBytesMin: 100, webhook: 'http://127.0.0.1:9000/hook' });
  assert.equal(fromYaml.tickMs, 20, 'settings after the section are read');
  assert.equal(resolveConfig(fromYaml).observe.rules.lagSecondsMax, 2.5);
  assert.equal(startConfig({ config: yaml, alertWebhook: 'http://127.0.0.1:9001/other' }).alertWebhook, 'http://127.0.0.1:9001/other');

  const json = join(dir, 'chorus.json');
  await writeFile(json, JSON.stringify({
    id: 'n1', dataDir: `${dir}/n1`, listenClient: '127.0.0.1:8001', listenPeer: '127.0.0.1:7001', initialCluster: 'n1=127.0.0.1:7001',
    alerts: { 'stall-seconds': 4, noLeaderSeconds: 1 },
  }));
  assert.deepEqual(startConfig({ config: json }).alerts, { stallSeconds: 4, noLeaderSeconds: 1 });

  const bad = join(dir, 'bad.yaml');
  await writeFile(bad, 'id: n1\nalerts:\n  lag-seconds-max: [1]\n');
  assert.equal(code(() => startConfig({ config: bad })), 'CHORUS_CONFIG_INVALID');
  await writeFile(bad, 'id: n1\nalerts: 3\n');
  assert.equal(code(() => startConfig({ config: bad })), 'CHORUS_CONFIG_INVALID');
  await writeFile(bad, 'id: n1\nalerts:\n  unknown-rule: 3\n');
  assert.match(String((() => { try { startConfig({ config: bad }); } catch (e) { return (e as Error).message; } return ''; })()), /unknown setting unknownRule/);
});
