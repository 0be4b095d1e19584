// The dashboard in a real browser (Debian's Chromium through playwright-core) against a live
// three-member cluster of real processes: the leader is marked; when it is killed, the new
// leader and the leader-change event appear. Screenshots are kept in test-artifacts/ (ignored
// by git). The page must load nothing from anywhere but the member serving it.
//
// Chromium is required: CI installs it (apt-get install chromium). Without it this test fails
// with a message saying so; it never skips.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { REPO_ROOT, startProcessCluster } from '../process/helpers.ts';
import { WriteLoad } from '../process/load.ts';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(REPO_ROOT, 'test-artifacts');
/** Generous bounds for what the page shows (it polls every second), not measurements. */
const SHOWN_WITHIN_MS = 20_000;

async function launch(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    assert.fail(`Chromium is not installed at ${CHROMIUM}. The dashboard test needs Debian's chromium package (sudo apt-get install chromium); CI installs it. This test does not skip.`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
}

async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, name), fullPage: true });
}

test('the dashboard marks the leader, and shows the new leader and the event when the leader is killed', async (t) => {
  const browser = await launch();
  t.after(() => browser.close());
  const cluster = await startProcessCluster(t, 3);
  try {
    const leader = await cluster.leader();
    const viewer = cluster.spec.ids.find((id) => id !== leader)!;
    const origin = cluster.url(viewer);

    const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
    const foreign: string[] = [];
    const pageErrors: string[] = [];
    page.on('request', (request) => {
      if (!request.url().startsWith(`${origin}/`)) foreign.push(request.url());
    });
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error' && !/Failed to load resource|ERR_CONNECTION_REFUSED/.test(message.text())) pageErrors.push(message.text());
    });

    const response = await page.goto(`${origin}/ui`);
    assert.equal(response?.status(), 200);
    assert.match(response?.headers()['content-security-policy'] ?? '', /default-src 'none'/);
    await page.locator(`#members .member[data-member="${leader}"][data-role="leader"]`).waitFor({ timeout: SHOWN_WITHIN_MS });
    assert.equal(await page.locator('#members .member[data-role="leader"]').count(), 1, 'one leader marked');
    assert.equal(await page.locator(`#topology .node[data-role="leader"][data-member="${leader}"]`).count(), 1, 'and in the diagram');
    assert.equal(await page.locator('#members .member').count(), 3);
    assert.equal(await page.locator('#leader-id').getAttribute('data-leader'), leader);

    // Some writes: the lag charts get their series (the leader's view, through the follower).
    const load = new WriteLoad(cluster.urls(), 'ui', 2);
    await load.ackedAtLeast(30);
    await page.locator('#chart-entries polyline.series').first().waitFor({ timeout: SHOWN_WITHIN_MS });
    await load.stop();
    await page.locator('#events li[data-kind="leader-change"]').first().waitFor({ timeout: SHOWN_WITHIN_MS });
    await screenshot(page, 'dashboard-leader.png');

    await cluster.kill(leader);
    const next = page.locator(`#members .member[data-role="leader"]:not([data-member="${leader}"])`);
    await next.waitFor({ timeout: SHOWN_WITHIN_MS });
    const newLeader = await next.getAttribute('data-member');
    assert.ok(newLeader !== null && newLeader !== leader);
    assert.equal(await cluster.leader(), newLeader, 'the page shows the leader the members agree on');
    await page.locator('#events li[data-kind="leader-change"]', { hasText: `${newLeader} is the leader of term` }).first().waitFor({ timeout: SHOWN_WITHIN_MS });
    await page.locator(`#members .member[data-member="${leader}"][data-health="down"]`).waitFor({ timeout: SHOWN_WITHIN_MS });
    assert.equal(await page.locator('#members .member[data-role="leader"]').count(), 1);
    await screenshot(page, 'dashboard-new-leader.png');

    assert.deepEqual(foreign, [], 'every request went to the member serving the page');
    assert.deepEqual(pageErrors, []);
  } catch (error) {
    t.diagnostic(cluster.describe());
    throw error;
  }
});
