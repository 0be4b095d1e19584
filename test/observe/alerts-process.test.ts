// Alerts with real member processes and short thresholds (the config file's alerts section):
// a follower paused with SIGSTOP under write load raises a lag alert on the leader, which a
// local webhook receiver gets, and resolves after SIGCONT; an idle cluster raises nothing. The
// CLI's events, alerts and topology commands run against the live cluster.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { AlertJson, AlertsResponseJson, EventsResponseJson } from '../../src/observe/api-types.ts';
import { sleep, tempDir } from '../node/helpers.ts';
import { runCli, spawnChorus, startProcessCluster, waitFor } from '../process/helpers.ts';
import { WriteLoad } from '../process/load.ts';
import { find, parseExposition } from './prom.ts';

interface Delivery {
  readonly status: 'firing' | 'resolved';
  readonly member: string;
  readonly alert: { readonly id: string; readonly rule: string; readonly labels: Record<string, string> };
}

async function webhookReceiver(t: TestContext): Promise<{ url: string; deliveries: Delivery[] }> {
  const deliveries: Delivery[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => {
      body += chunk.toString('utf8');
    });
    req.on('end', () => {
      deliveries.push(JSON.parse(body) as Delivery);
      res.statusCode = 204;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/chorus-alerts`, deliveries };
}

/** Short thresholds, so that the test takes seconds; fsync is left out of it (the machine's disk
 * is not under test). */
async function alertsConfig(t: TestContext): Promise<string> {
  const file = join(await tempDir(t, 'chorus-alerts-'), 'chorus.yaml');
  await writeFile(file, [
    '# Only the alerts section: the rest comes from the flags.',
    'alerts:',
    '  lag-seconds-max: 1',
    '  lag-bytes-min: 1',
    '  stall-seconds: 2',
    '  no-leader-seconds: 3',
    '  fsync-seconds-max: 5',
    '  evaluate-interval-ms: 200',
    '  webhook-backoff-ms: 100',
    '',
  ].join('\n'));
  return file;
}

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200, url);
  return (await res.json()) as T;
}

/** Ticks of 100 ms (the default; election timeouts of 1-2 s) keep leadership steady on a loaded
 * test machine; the alert thresholds are short anyway. */
const STEADY = ['--tick-ms', '100'];

test('a follower paused under write load raises a lag alert on the leader, delivered to the webhook, resolved after it resumes', async (t) => {
  const hook = await webhookReceiver(t);
  const cluster = await startProcessCluster(t, 3, [...STEADY, '--config', await alertsConfig(t), '--alert-webhook', hook.url]);
  const leader = await cluster.leader();
  const victim = cluster.spec.ids.find((id) => id !== leader)!;
  const others = cluster.spec.ids.filter((id) => id !== victim);
  const victimProc = cluster.procs.get(victim)!;
  const load = new WriteLoad(cluster.urls(others), 'pause', 4);
  t.after(async () => {
    victimProc.child.kill('SIGCONT');
    await load.stop();
  });
  /** The alerts about the victim, from the members that run (lag alerts are the leader's; should
   * leadership move, the new leader raises them again). */
  const aboutVictim = async (): Promise<AlertJson[]> => {
    const answers = await Promise.all(others.map((id) => getJson<AlertsResponseJson>(`${cluster.url(id)}/v1/alerts`)));
    return answers.flatMap((a) => a.alerts).filter((a) => a.labels?.['follower'] === victim);
  };
  try {
    await load.ackedAtLeast(50);
    assert.deepEqual(await aboutVictim(), [], 'nothing before the pause');

    victimProc.child.kill('SIGSTOP');
    const raised = await waitFor(async () => (await aboutVictim()).find((a) => a.rule === 'replication-lag'), `replication-lag is raised for ${victim}`, 30_000);
    t.diagnostic(`raised by ${raised.member}: ${raised.message}`);
    assert.ok(others.includes(raised.member));
    assert.equal(raised.severity, 'warning');
    assert.equal(raised.labels?.['member'], raised.member);
    const firing = await waitFor(() => hook.deliveries.find((d) => d.status === 'firing' && d.alert.id === raised.id && d.member === raised.member), 'the webhook receives it');
    assert.equal(firing.alert.labels['follower'], victim);
    assert.equal(firing.alert.rule, 'replication-lag');
    // The same lag in the leader's metrics, and the alert in the cluster-wide listing of the
    // other running member (each member is asked for at most a second: retried on a loaded machine).
    await waitFor(async () => {
      for (const id of others) {
        const metrics = parseExposition(await (await fetch(`${cluster.url(id)}/metrics`)).text());
        if (find(metrics, 'chorus_replication_lag_seconds', { follower: victim }).some((s) => s.value > 1)
          && find(metrics, 'chorus_alerts_firing', { rule: 'replication-lag' }).some((s) => s.value >= 1)) return true;
      }
      return false;
    }, 'the leader\'s metrics show the lag and the alert');
    const other = others.find((id) => id !== raised.member)!;
    const clusterWide = await waitFor(async () => {
      const answer = await getJson<AlertsResponseJson>(`${cluster.url(other)}/v1/alerts?scope=cluster`);
      return answer.alerts.some((a) => a.rule === 'replication-lag' && a.labels?.['follower'] === victim) ? answer : undefined;
    }, 'the alert in the cluster-wide listing of another member');
    assert.ok(clusterWide.unreachable?.includes(victim), 'the paused member does not answer');

    victimProc.child.kill('SIGCONT');
    await waitFor(async () => (await aboutVictim()).length === 0, `the alerts about ${victim} resolve once it catches up`, 30_000);
    await waitFor(() => hook.deliveries.find((d) => d.status === 'resolved' && d.alert.id === raised.id && d.member === raised.member), 'the webhook receives the resolution');
    const acked = load.acked.size;
    await load.stop();
    t.diagnostic(`load: ${load.summary()}; webhook deliveries: ${hook.deliveries.map((d) => `${d.member} ${d.status} ${d.alert.id}`).join(', ')}`);
    assert.ok(acked >= 50);

    const history = (await getJson<EventsResponseJson>(`${cluster.url(raised.member)}/v1/events?limit=1000`)).events;
    const raisedAt = history.findIndex((e) => e.kind === 'alert-raised' && e.detail['alertId'] === raised.id);
    const resolvedAt = history.findIndex((e) => e.kind === 'alert-resolved' && e.detail['alertId'] === raised.id);
    assert.ok(raisedAt >= 0 && resolvedAt > raisedAt, 'raised, then resolved, in the history');
    assert.match(cluster.procs.get(raised.member)!.output, /"event":"alert-raised","alertId":"replication-lag:/, 'and in the log');
  } catch (error) {
    t.diagnostic(cluster.describe());
    throw error;
  }
});

test('an idle cluster raises no alert; chorus events, alerts and topology describe it', async (t) => {
  const hook = await webhookReceiver(t);
  const cluster = await startProcessCluster(t, 3, [...STEADY, '--config', await alertsConfig(t), '--alert-webhook', hook.url]);
  try {
    const leader = await cluster.leader();
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`${cluster.url(leader)}/v1/kv/idle/${i}`, { method: 'PUT', body: 'v' });
      assert.equal(res.status, 200);
    }
    // Idle for longer than every short threshold (lag 1 s, stall 2 s, no leader 3 s): sampled
    // all along, nothing may be raised.
    for (let i = 0; i < 10; i++) {
      await sleep(400);
      for (const id of cluster.spec.ids) {
        const answer = await getJson<AlertsResponseJson>(`${cluster.url(id)}/v1/alerts`);
        assert.deepEqual(answer.alerts, [], JSON.stringify(answer.alerts));
      }
    }
    for (const id of cluster.spec.ids) {
      const history = (await getJson<EventsResponseJson>(`${cluster.url(id)}/v1/events?limit=1000`)).events;
      assert.deepEqual(history.filter((e) => e.kind === 'alert-raised'), [], `${id} raised nothing`);
    }
    assert.deepEqual(hook.deliveries, []);

    const endpoints = cluster.urls().join(',');
    const events = await runCli(t, ['events', '--endpoints', endpoints]);
    assert.equal(events.code, 0, events.stderr);
    assert.match(events.stdout, new RegExp(`leader-change +${leader} is the leader of term \\d+`));
    const alerts = await runCli(t, ['alerts', '--endpoints', endpoints]);
    assert.equal(alerts.code, 0, alerts.stderr);
    assert.equal(alerts.stdout, 'no active alerts\n');
    const md = await runCli(t, ['topology', '--endpoints', endpoints]);
    assert.equal(md.code, 0, md.stderr);
    assert.match(md.stdout, /^# Chorus cluster [0-9a-f]+\n/);
    assert.match(md.stdout, new RegExp(`\\| Leader \\| ${leader} \\(term \\d+\\) \\|`));
    for (const id of cluster.spec.ids) assert.match(md.stdout, new RegExp(`\\| ${id} \\| (leader|follower) \\| yes \\| ${cluster.url(id).slice('http://'.length)} \\|`));
    assert.match(md.stdout, /```mermaid\nflowchart LR/);
    const mermaid = await runCli(t, ['topology', '--format', 'mermaid', '--endpoints', endpoints]);
    assert.equal(mermaid.code, 0, mermaid.stderr);
    assert.match(mermaid.stdout, /^flowchart LR\n/);
    assert.equal((mermaid.stdout.match(/-->/g) ?? []).length, 2, 'the leader replicates to two followers');

    // --follow prints new events as they come, and moves to the next endpoint when the member it
    // follows goes away.
    const follow = spawnChorus(t, ['events', '--follow', '--interval-ms', '200', '--endpoints', endpoints]);
    await waitFor(() => follow.stderr.includes('-- following n1'), 'chorus events --follow follows n1');
    const changed = await fetch(`${cluster.url(leader)}/v1/config/replication`, { method: 'PUT', body: JSON.stringify({ synchronous_commit: 'remote_apply' }) });
    assert.equal(changed.status, 200);
    await waitFor(() => /\bn1 +#\d+ +config +replication settings: synchronous_commit=remote_apply/.test(follow.output), 'the config event is printed');
    await cluster.kill('n1');
    await waitFor(() => /answers now: following n[23]/.test(follow.stderr), 'another endpoint is followed');
    follow.child.kill('SIGTERM');
  } catch (error) {
    t.diagnostic(cluster.describe());
    throw error;
  }
});
