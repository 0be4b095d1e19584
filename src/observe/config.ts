// Settings of a member's observability: the alert rules (thresholds, defaults in alerts.ts), how
// often they are evaluated, and the optional webhook that receives raised and resolved alerts.
// They come from the `alerts` section of the config file, from ChorusNodeConfig.alerts when
// embedding, and from --alert-webhook; docs/observability.md lists them.
import { ChorusError } from '../shared/errors.ts';
import { defaultAlertRules } from './alerts.ts';
import type { AlertRules } from './alerts.ts';

/** What a user may set (every field optional). Units are in the names. */
export interface AlertsSettings extends Partial<AlertRules> {
  /** false: no rule is evaluated and nothing is sent (metrics and events stay). Default true. */
  readonly enabled?: boolean;
  /** How often the rules are evaluated (default 1000 ms). */
  readonly evaluateIntervalMs?: number;
  /** A slow fsync keeps its alert raised for this long after it happened (default 60 s). */
  readonly fsyncWindowSeconds?: number;
  /** POST every raised and resolved alert to this http(s) URL as JSON. */
  readonly webhook?: string;
  /** Deliveries waiting to be sent; beyond it the oldest is dropped and counted (default 256). */
  readonly webhookQueueMax?: number;
  /** Attempts per delivery before it is given up (default 5). */
  readonly webhookAttemptsMax?: number;
  /** First pause between attempts, doubled after each failure (default 500 ms)... */
  readonly webhookBackoffMs?: number;
  /** ...up to this (default 30 s). */
  readonly webhookBackoffMaxMs?: number;
  /** One attempt's deadline (default 5000 ms). */
  readonly webhookTimeoutMs?: number;
}

export interface WebhookConfig {
  readonly url: string;
  readonly queueMax: number;
  readonly attemptsMax: number;
  readonly backoffMs: number;
  readonly backoffMaxMs: number;
  readonly timeoutMs: number;
}

export interface ObserveConfig {
  readonly enabled: boolean;
  readonly rules: AlertRules;
  readonly evaluateIntervalMs: number;
  readonly fsyncWindowSeconds: number;
  readonly webhook: WebhookConfig | null;
}

/** Every key the `alerts` section accepts, with its kind. */
const SETTING_KINDS: Readonly<Record<keyof AlertsSettings, 'seconds' | 'int' | 'bool' | 'url'>> = {
  lagSecondsMax: 'seconds',
  lagBytesMin: 'int',
  stallSeconds: 'seconds',
  noLeaderSeconds: 'seconds',
  syncStandbyUnmetSeconds: 'seconds',
  fsyncSecondsMax: 'seconds',
  peerUnreachableSeconds: 'seconds',
  enabled: 'bool',
  evaluateIntervalMs: 'int',
  fsyncWindowSeconds: 'seconds',
  webhook: 'url',
  webhookQueueMax: 'int',
  webhookAttemptsMax: 'int',
  webhookBackoffMs: 'int',
  webhookBackoffMaxMs: 'int',
  webhookTimeoutMs: 'int',
};

function invalid(message: string): ChorusError {
  return new ChorusError('CHORUS_CONFIG_INVALID', message);
}

export function alertsSettingNames(): string[] {
  return Object.keys(SETTING_KINDS);
}

/** Checks a webhook URL: absolute http or https. */
export function parseWebhookUrl(text: string, what: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid(`${what} must be an absolute http(s) URL, got ${JSON.stringify(text)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid(`${what} must be an http or https URL, got ${JSON.stringify(text)}`);
  return url.toString();
}

/**
 * Validates the `alerts` section as read from a config file (camelCase keys; values are
 * numbers, booleans or strings, numbers possibly given as text). Unknown keys are an error, as
 * anywhere in the configuration.
 */
export function parseAlertsSettings(section: Readonly<Record<string, unknown>>, where = 'alerts'): AlertsSettings {
  const out: Record<string, unknown> = {};
  for (const [key, raw] of Object.entries(section)) {
    const kind = (SETTING_KINDS as Record<string, string | undefined>)[key];
    if (kind === undefined) throw invalid(`${where}: unknown setting ${key} (known: ${alertsSettingNames().join(', ')})`);
    if (kind === 'bool') {
      if (typeof raw !== 'boolean') throw invalid(`${where}.${key} must be true or false`);
      out[key] = raw;
    } else if (kind === 'url') {
      if (typeof raw !== 'string') throw invalid(`${where}.${key} must be a URL`);
      out[key] = parseWebhookUrl(raw, `${where}.${key}`);
    } else {
      const n = typeof raw === 'string' && /^\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw) : raw;
      if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) throw invalid(`${where}.${key} must be a non-negative number`);
      if (kind === 'int' && !Number.isSafeInteger(n)) throw invalid(`${where}.${key} must be an integer`);
      out[key] = n;
    }
  }
  return out as AlertsSettings;
}

function seconds(value: number | undefined, fallback: number, name: string): number {
  const v = value ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw invalid(`alerts.${name} must be a non-negative number of seconds`);
  return v;
}

function integer(value: number | undefined, fallback: number, name: string, min: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < min) throw invalid(`alerts.${name} must be an integer >= ${min}`);
  return v;
}

/** Settings with defaults filled in. `webhookFlag` (--alert-webhook) wins over alerts.webhook. */
export function resolveObserveConfig(settings: AlertsSettings | undefined, webhookFlag?: string): ObserveConfig {
  const s = settings ?? {};
  const d = defaultAlertRules;
  const rules: AlertRules = {
    lagSecondsMax: seconds(s.lagSecondsMax, d.lagSecondsMax, 'lagSecondsMax'),
    lagBytesMin: integer(s.lagBytesMin, d.lagBytesMin, 'lagBytesMin', 0),
    stallSeconds: seconds(s.stallSeconds, d.stallSeconds, 'stallSeconds'),
    noLeaderSeconds: seconds(s.noLeaderSeconds, d.noLeaderSeconds, 'noLeaderSeconds'),
    syncStandbyUnmetSeconds: seconds(s.syncStandbyUnmetSeconds, d.syncStandbyUnmetSeconds, 'syncStandbyUnmetSeconds'),
    fsyncSecondsMax: seconds(s.fsyncSecondsMax, d.fsyncSecondsMax, 'fsyncSecondsMax'),
    peerUnreachableSeconds: seconds(s.peerUnreachableSeconds, d.peerUnreachableSeconds, 'peerUnreachableSeconds'),
  };
  const url = webhookFlag ?? s.webhook;
  const webhook: WebhookConfig | null = url === undefined ? null : {
    url: parseWebhookUrl(url, webhookFlag === undefined ? 'alerts.webhook' : '--alert-webhook'),
    queueMax: integer(s.webhookQueueMax, 256, 'webhookQueueMax', 1),
    attemptsMax: integer(s.webhookAttemptsMax, 5, 'webhookAttemptsMax', 1),
    backoffMs: integer(s.webhookBackoffMs, 500, 'webhookBackoffMs', 0),
    backoffMaxMs: integer(s.webhookBackoffMaxMs, 30_000, 'webhookBackoffMaxMs', 0),
    timeoutMs: integer(s.webhookTimeoutMs, 5000, 'webhookTimeoutMs', 1),
  };
  if (s.enabled !== undefined && typeof s.enabled !== 'boolean') throw invalid('alerts.enabled must be true or false');
  return {
    enabled: s.enabled ?? true,
    rules,
    evaluateIntervalMs: integer(s.evaluateIntervalMs, 1000, 'evaluateIntervalMs', 10),
    fsyncWindowSeconds: seconds(s.fsyncWindowSeconds, 60, 'fsyncWindowSeconds'),
    webhook,
  };
}
