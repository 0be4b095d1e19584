// deploy/: the Prometheus alert rules and the Grafana dashboard only use metrics that members
// export (a renamed metric would leave a rule silently never firing).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startConfig } from '../../src/cli/start.ts';
import { resolveConfig } from '../../src/node/config.ts';
import { ChorusMetrics } from '../../src/observe/metrics.ts';
import { REPO_ROOT } from '../process/helpers.ts';

async function exported(): Promise<Set<string>> {
  const metrics = new ChorusMetrics('n1', { processMetrics: false });
  const names = new Set<string>();
  for (const m of await metrics.registry.getMetricsAsJSON()) {
    names.add(m.name);
    if (String(m.type) === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${m.name}${suffix}`);
  }
  return names;
}

function referenced(text: string): Set<string> {
  return new Set(text.match(/\bchorus_[a-z_]+\b/g) ?? []);
}

test('the Prometheus rules use exported metrics, and every rule has a severity and a summary', async () => {
  const text = readFileSync(join(REPO_ROOT, 'deploy/prometheus/chorus-alerts.yml'), 'utf8');
  const names = await exported();
  for (const name of referenced(text)) assert.ok(names.has(name), `${name} is exported`);
  const rules = text.split(/\n\s+- alert: /).slice(1);
  assert.ok(rules.length >= 8);
  for (const rule of rules) {
    const title = rule.split('\n')[0];
    assert.match(rule, /\n\s+expr: \S/, `${title} has an expr`);
    assert.match(rule, /\n\s+severity: (warning|critical)\n/, `${title} has a severity`);
    assert.match(rule, /\n\s+summary: "/, `${title} has a summary`);
  }
  assert.doesNotMatch(text, /\t/, 'YAML is indented with spaces');
});

test('the Grafana dashboard is valid JSON on exported metrics, with unique panel ids and positions', async () => {
  const text = readFileSync(join(REPO_ROOT, 'deploy/grafana/chorus.json'), 'utf8');
  const dashboard = JSON.parse(text) as { uid: string; panels: { id: number; type: string; title: string; gridPos: { x: number; y: number; w: number; h: number }; targets?: { expr: string }[] }[] };
  assert.equal(dashboard.uid, 'chorus-overview');
  const names = await exported();
  for (const name of referenced(text)) assert.ok(names.has(name), `${name} is exported`);
  const ids = dashboard.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'unique panel ids');
  const cells = new Set<string>();
  for (const p of dashboard.panels) {
    assert.ok(p.gridPos.x + p.gridPos.w <= 24, `${p.title} fits the 24-column grid`);
    for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
      for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
        assert.ok(!cells.has(`${x},${y}`), `${p.title} overlaps another panel`);
        cells.add(`${x},${y}`);
      }
    }
    if (p.type !== 'row') assert.ok((p.targets ?? []).length > 0 && p.targets!.every((t) => t.expr.includes('chorus_')), `${p.title} queries chorus metrics`);
  }
});

test('the demo config file (deploy/demo/alerts.yaml) is a valid alerts section', () => {
  const config = startConfig({
    config: join(REPO_ROOT, 'deploy/demo/alerts.yaml'),
    id: 'n1', dataDir: '/tmp/unused', listenClient: '127.0.0.1:8001', listenPeer: '127.0.0.1:7001', initialCluster: 'n1=127.0.0.1:7001',
  });
  const rules = resolveConfig(config).observe.rules;
  assert.equal(rules.lagSecondsMax, 2);
  assert.equal(rules.stallSeconds, 5);
});
