// A steady write load for the real-process tests: workers put unique keys until stopped and
// record what was acknowledged (200), what has an unknown outcome (504 or a connection broken
// after sending) and what certainly failed. Only acknowledged writes are checked afterwards.
import assert from 'node:assert/strict';
import { ChorusClient, ChorusClientError } from '../../src/client/index.ts';
import type { CommitLevel } from '../../src/client/index.ts';
import { pool } from './helpers.ts';

export class WriteLoad {
  readonly acked = new Map<string, string>();
  unknown = 0;
  failed = 0;
  readonly failures = new Map<string, number>();
  private next = 0;
  private stopped = false;
  private readonly done: Promise<void>;
  private readonly client: ChorusClient;

  constructor(endpoints: readonly string[], readonly prefix: string, concurrency: number, readonly level?: CommitLevel) {
    this.client = new ChorusClient({ endpoints, timeoutMs: 10_000 });
    this.done = Promise.all(Array.from({ length: concurrency }, () => this.worker())).then(() => undefined);
  }

  private async worker(): Promise<void> {
    while (!this.stopped) {
      const key = `${this.prefix}/${String(this.next++).padStart(6, '0')}`;
      const value = `v-${key}`;
      try {
        await this.client.put(key, value, this.level === undefined ? {} : { commit: this.level });
        this.acked.set(key, value);
      } catch (error) {
        const code = error instanceof ChorusClientError ? error.code : 'ERROR';
        if (error instanceof ChorusClientError && (error.status === 504 || error.code === 'CHORUS_TIMEOUT')) this.unknown++;
        else this.failed++;
        this.failures.set(code, (this.failures.get(code) ?? 0) + 1);
      }
    }
  }

  /** Resolves once `count` more writes were acknowledged. */
  async ackedAtLeast(count: number, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.acked.size < count) {
      if (Date.now() > deadline) throw new Error(`only ${this.acked.size} of ${count} writes acknowledged`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }

  summary(): string {
    const failures = [...this.failures].map(([code, n]) => `${code}=${n}`).join(' ');
    return `acked ${this.acked.size}, unknown ${this.unknown}, failed ${this.failed}${failures === '' ? '' : ` (${failures})`}`;
  }
}

/** The acknowledged keys that `endpoint` does not hold with their value. */
export async function missingAt(endpoint: string, acked: ReadonlyMap<string, string>, consistency: 'linearizable' | 'stale' = 'linearizable'): Promise<string[]> {
  const client = new ChorusClient({ endpoints: [endpoint], timeoutMs: 15_000 });
  const missing: string[] = [];
  await pool([...acked], 32, async ([key, value]) => {
    const got = await client.getText(key, { consistency });
    if (got !== value) missing.push(key);
  });
  return missing.sort();
}

export async function assertNoneMissing(endpoint: string, acked: ReadonlyMap<string, string>, consistency: 'linearizable' | 'stale' = 'linearizable'): Promise<void> {
  const missing = await missingAt(endpoint, acked, consistency);
  assert.deepEqual(missing.slice(0, 10), [], `${missing.length} of ${acked.size} acknowledged writes are missing at ${endpoint}`);
}
