// The alert webhook: retries with backoff, a bounded queue whose drops are counted, no retry of
// a refusal, and a clean stop. The receiver is a local HTTP server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import { AlertWebhook } from '../../src/observe/webhook.ts';
import type { WebhookConfig } from '../../src/observe/config.ts';
import { waitFor } from '../node/helpers.ts';

interface Received {
  readonly id: string;
  readonly body: unknown;
}

/** A receiver whose answer to each request is decided by `answer` (it may hold the request). */
async function receiver(t: TestContext, answer: (req: IncomingMessage, res: ServerResponse, n: number) => void): Promise<{ url: string; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
    });
    req.on('end', () => {
      received.push({ id: String(req.headers['chorus-delivery-id']), body: JSON.parse(text) as unknown });
      answer(req, res, received.length);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, received };
}

function config(url: string, overrides: Partial<WebhookConfig> = {}): WebhookConfig {
  return { url, queueMax: 16, attemptsMax: 5, backoffMs: 5, backoffMaxMs: 50, timeoutMs: 5000, ...overrides };
}

test('a failed delivery is retried with backoff until the receiver takes it', async (t) => {
  const { url, received } = await receiver(t, (_req, res, n) => {
    res.statusCode = n <= 2 ? 500 : 204;
    res.end();
  });
  const webhook = new AlertWebhook(config(url));
  t.after(() => webhook.close());
  assert.equal(webhook.enqueue('d1', { status: 'firing' }), true);
  await webhook.idle();
  assert.deepEqual(received.map((r) => r.id), ['d1', 'd1', 'd1'], 'the same delivery, three attempts');
  assert.deepEqual(received[2]!.body, { status: 'firing' });
  const stats = webhook.stats();
  assert.equal(stats.delivered, 1);
  assert.equal(stats.retries, 2);
  assert.equal(stats.failed, 0);
});

test('the queue is bounded: with the receiver stuck, the oldest waiting deliveries are dropped and counted', async (t) => {
  const held: ServerResponse[] = [];
  const { url, received } = await receiver(t, (_req, res, n) => {
    if (n === 1) held.push(res); // the first delivery hangs until released
    else res.end();
  });
  const webhook = new AlertWebhook(config(url, { queueMax: 2 }));
  t.after(() => webhook.close());
  webhook.enqueue('a', { n: 1 });
  await waitFor(() => held.length === 1, 'the first delivery reached the receiver');
  for (const id of ['b', 'c', 'd', 'e']) {
    webhook.enqueue(id, { id });
    assert.ok(webhook.stats().queued <= 2, 'never more than queueMax waiting');
  }
  assert.equal(webhook.stats().queued, 2);
  assert.equal(webhook.stats().dropped, 2, 'b and c fell out');
  held[0]!.end();
  await webhook.idle();
  assert.deepEqual(received.map((r) => r.id), ['a', 'd', 'e'], 'in order, the newest kept');
  assert.deepEqual({ ...webhook.stats(), inFlight: false }, { queued: 0, inFlight: false, delivered: 3, failed: 0, dropped: 2, retries: 0 });
});

test('a refusal (4xx) is not retried; a receiver that keeps failing is given up after attemptsMax', async (t) => {
  const { url, received } = await receiver(t, (req, res) => {
    res.statusCode = req.headers['chorus-delivery-id'] === 'refused' ? 400 : 503;
    res.end();
  });
  const webhook = new AlertWebhook(config(url, { attemptsMax: 3 }));
  t.after(() => webhook.close());
  webhook.enqueue('refused', {});
  webhook.enqueue('flaky', {});
  await webhook.idle();
  assert.deepEqual(received.map((r) => r.id), ['refused', 'flaky', 'flaky', 'flaky']);
  assert.equal(webhook.stats().failed, 2);
  assert.equal(webhook.stats().delivered, 0);
});

test('an unreachable receiver times out each attempt; close() abandons what is queued', async (t) => {
  const held: ServerResponse[] = [];
  const { url } = await receiver(t, (_req, res) => held.push(res));
  const webhook = new AlertWebhook(config(url, { timeoutMs: 50, attemptsMax: 1000, backoffMs: 10 }));
  webhook.enqueue('x', {});
  webhook.enqueue('y', {});
  await waitFor(() => webhook.stats().retries >= 2, 'attempts time out and are retried');
  await webhook.close();
  const stats = webhook.stats();
  assert.equal(stats.delivered, 0);
  assert.equal(stats.dropped, 2, 'the one being retried and the one waiting');
  assert.equal(webhook.enqueue('z', {}), false, 'nothing is taken after close');
  for (const res of held) res.end();
});
