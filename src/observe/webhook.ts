// Delivers raised and resolved alerts to a webhook: one JSON POST per change, in order, one at a
// time. A failed attempt (network error, timeout, 408, 429 or 5xx) is retried after a pause that
// doubles up to a cap; other answers (a 4xx: the receiver refuses it) are not retried. Deliveries
// wait in a bounded queue: when it is full the oldest waiting one is dropped and counted, since
// the newest state of an alert matters more than an old one. Alerts must never slow the member
// down, so nothing here blocks the caller.
import type { Logger } from '../shared/logger.ts';
import type { WebhookConfig } from './config.ts';

export interface WebhookStats {
  /** Deliveries waiting (the one being sent excluded). Invariant: queued <= queueMax. */
  readonly queued: number;
  readonly inFlight: boolean;
  readonly delivered: number;
  /** Given up after attemptsMax attempts, or refused by the receiver. */
  readonly failed: number;
  /** Dropped from a full queue, or abandoned when the member stopped. */
  readonly dropped: number;
  /** Attempts after the first one. */
  readonly retries: number;
}

export interface WebhookOptions {
  readonly logger?: Logger;
  /** For tests; default the global fetch. */
  readonly fetch?: typeof fetch;
}

interface Delivery {
  readonly id: string;
  readonly body: string;
}

export class AlertWebhook {
  private readonly queue: Delivery[] = [];
  private running = false;
  private closed = false;
  private inFlight = false;
  private delivered = 0;
  private failed = 0;
  private dropped = 0;
  private retries = 0;
  private abort: AbortController | null = null;
  private wakeSleeper: (() => void) | null = null;
  private idleWaiters: (() => void)[] = [];
  private readonly fetchImpl: typeof fetch;

  constructor(readonly config: WebhookConfig, private readonly options: WebhookOptions = {}) {
    this.fetchImpl = options.fetch ?? fetch;
  }

  /** Queues one delivery; false when the member stopped. `id` travels in the
   * chorus-delivery-id header so that a receiver can drop a retried duplicate. */
  enqueue(id: string, doc: unknown): boolean {
    if (this.closed) return false;
    this.queue.push({ id, body: JSON.stringify(doc) });
    if (this.queue.length > this.config.queueMax) {
      const lost = this.queue.shift()!;
      this.dropped++;
      this.options.logger?.warn('alert-webhook-dropped', { deliveryId: lost.id, queueMax: this.config.queueMax });
    }
    if (!this.running) void this.drain();
    return true;
  }

  stats(): WebhookStats {
    return {
      queued: this.queue.length, inFlight: this.inFlight, delivered: this.delivered, failed: this.failed, dropped: this.dropped, retries: this.retries,
    };
  }

  /** Resolves once nothing is queued or being sent (tests). */
  idle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops: the attempt in flight is aborted and what is queued is dropped (counted). */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.dropped += this.queue.length;
      this.queue.length = 0;
      this.abort?.abort();
      this.wakeSleeper?.();
    }
    return this.idle();
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (!this.closed && this.queue.length > 0) {
        const next = this.queue.shift()!;
        this.inFlight = true;
        try {
          await this.deliver(next);
        } finally {
          this.inFlight = false;
        }
      }
    } finally {
      this.running = false;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  private async deliver(delivery: Delivery): Promise<void> {
    let pauseMs = this.config.backoffMs;
    for (let attempt = 1; ; attempt++) {
      if (this.closed) {
        this.dropped++;
        return;
      }
      const outcome = await this.attempt(delivery);
      if (outcome.ok) {
        this.delivered++;
        return;
      }
      if (this.closed) {
        this.dropped++;
        return;
      }
      if (!outcome.retry || attempt >= this.config.attemptsMax) {
        this.failed++;
        this.options.logger?.warn('alert-webhook-failed', { deliveryId: delivery.id, attempts: attempt, error: outcome.error });
        return;
      }
      this.retries++;
      await this.pause(pauseMs);
      pauseMs = Math.min(this.config.backoffMaxMs, Math.max(1, pauseMs * 2));
    }
  }

  private async attempt(delivery: Delivery): Promise<{ ok: boolean; retry: boolean; error: string }> {
    const abort = new AbortController();
    this.abort = abort;
    const timer = setTimeout(() => abort.abort(), this.config.timeoutMs);
    timer.unref();
    try {
      const res = await this.fetchImpl(this.config.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'chorus-delivery-id': delivery.id, 'user-agent': 'chorus-alerts/1' },
        body: delivery.body,
        signal: abort.signal,
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.status >= 200 && res.status < 300) return { ok: true, retry: false, error: '' };
      const retry = res.status === 408 || res.status === 429 || res.status >= 500;
      return { ok: false, retry, error: `HTTP ${res.status}` };
    } catch (error) {
      return { ok: false, retry: true, error: abort.signal.aborted ? `no answer within ${this.config.timeoutMs} ms` : (error as Error).message };
    } finally {
      clearTimeout(timer);
      this.abort = null;
    }
  }

  /** Waits `ms`, or less when close() wakes it. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | null = null;
      const done = (): void => {
        if (timer !== null) clearTimeout(timer);
        this.wakeSleeper = null;
        resolve();
      };
      timer = setTimeout(done, ms);
      timer.unref();
      this.wakeSleeper = done;
    });
  }
}
