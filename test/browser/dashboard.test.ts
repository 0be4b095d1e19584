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
import { REPO_ROOT, startProcessCluster, waitFor } from '../process/helpers.ts';
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
  // Ticks of 100 ms (the default): leadership stays put on a loaded test machine until killed.
  const cluster = await startProcessCluster(t, 3, ['--tick-ms', '100']);
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
    const origins = new Set<string>();
    const foreign: string[] = [];
    const pageErrors: string[] = [];
    page.on('request', (request) => {
      if (![...origins].some((o) => request.url().startsWith(`${o}/`))) foreign.push(request.url());
    });
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error' && !/Failed to load resource|ERR_CONNECTION_REFUSED/.test(message.text())) pageErrors.push(message.text());
    });

    /** The leader the page marks (its card, the diagram and the header agree), once it is the
     * leader every running member names (and not `not`). */
    const marked = (not: string | null): Promise<string> => waitFor(async () => {
      const cards = page.locator('#members .member[data-role="leader"]');
      const nodes = page.locator('#topology .node[data-role="leader"]');
      if ((await cards.count()) !== 1 || (await nodes.count()) !== 1) return undefined;
      const shown = await cards.getAttribute('data-member');
      const agreed = await cluster.leader();
      if (shown !== agreed || shown === not) return undefined;
      const drawn = await nodes.getAttribute('data-member');
      const header = await page.locator('#leader-id').getAttribute('data-leader');
      return drawn === agreed && header === agreed ? agreed : undefined;
    }, `the page marks the leader the members agree on${not === null ? '' : ` (not ${not})`}`, SHOWN_WITHIN_MS);

    // The page is served by a follower (if leadership moves to it meanwhile, by another one).
    let leader = await cluster.leader();
    let viewer = '';
    const serveFromFollower = async (): Promise<void> => {
      for (let attempt = 0; attempt < 3 && (viewer === '' || viewer === leader); attempt++) {
        viewer = cluster.spec.ids.find((id) => id !== leader)!;
        origins.add(cluster.url(viewer));
        const response = await page.goto(`${cluster.url(viewer)}/ui`);
        assert.equal(response?.status(), 200);
        assert.match(response?.headers()['content-security-policy'] ?? '', /default-src 'none'/);
        leader = await marked(null);
      }
      assert.notEqual(viewer, leader, 'the page is served by a follower');
    };
    await serveFromFollower();
    assert.equal(await page.locator('#members .member').count(), 3);

    // Some writes: the lag charts get their series (the leader's view, through the follower).
    const load = new WriteLoad(cluster.urls(), 'ui', 2);
    await load.ackedAtLeast(30);
    await page.locator('#chart-entries polyline.series').first().waitFor({ timeout: SHOWN_WITHIN_MS });
    await load.stop();
    await page.locator('#events li[data-kind="leader-change"]').first().waitFor({ timeout: SHOWN_WITHIN_MS });
    leader = await marked(null);
    if (leader === viewer) await serveFromFollower();
    await screenshot(page, 'dashboard-leader.png');

    await cluster.kill(leader);
    const newLeader = await marked(leader);
    await page.locator('#events li[data-kind="leader-change"]', { hasText: `${newLeader} is the leader of term` }).first().waitFor({ timeout: SHOWN_WITHIN_MS });
    await page.locator(`#members .member[data-member="${leader}"][data-health="down"]`).waitFor({ timeout: SHOWN_WITHIN_MS });
    await screenshot(page, 'dashboard-new-leader.png');

    assert.deepEqual(foreign, [], 'every request went to the member serving the page');
    assert.deepEqual(pageErrors, []);
  } catch (error) {
    t.diagnostic(cluster.describe());
    throw error;
  }
});
