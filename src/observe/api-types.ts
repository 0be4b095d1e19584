// The JSON shapes of the observability endpoints (docs/observability.md). Types only: the CLI
// and clients import them without pulling in the server.
import type { AlertRules, Severity } from './alerts.ts';
import type { EventKind } from './events.ts';

export interface AlertJson {
  /** Stable identity, e.g. "replication-lag:n3". */
  readonly id: string;
  readonly rule: string;
  readonly severity: Severity;
  readonly message: string;
  readonly labels?: Readonly<Record<string, string>>;
  /** When the condition started to hold (ISO 8601). */
  readonly since: string;
  /** The member that raised it (lag alerts: the leader). */
  readonly member: string;
}

export interface WebhookStatusJson {
  /** Scheme, host and port only: a path may carry a token. */
  readonly origin: string;
  readonly queued: number;
  readonly delivered: number;
  readonly failed: number;
  readonly dropped: number;
  readonly retries: number;
}

export interface AlertsResponseJson {
  /** The member that answered. */
  readonly member: string;
  readonly scope: 'local' | 'cluster';
  readonly enabled: boolean;
  readonly alerts: readonly AlertJson[];
  readonly rules: AlertRules;
  readonly webhook: WebhookStatusJson | null;
  /** scope=cluster: members that did not answer in time. */
  readonly unreachable?: readonly string[];
}

export interface EventJson {
  readonly seq: number;
  readonly time: string;
  readonly kind: EventKind;
  readonly member: string;
  readonly message: string;
  readonly detail: Readonly<Record<string, unknown>>;
}

export interface EventsResponseJson {
  /** The member whose history this is: sequence numbers are per member. */
  readonly member: string;
  /** The oldest event still held (0 when none): a reader whose `since` is below firstSeq - 1
   * missed events that fell out of the bounded history. */
  readonly firstSeq: number;
  /** The newest event's seq (0 when none): pass it as `since` to get what follows. */
  readonly lastSeq: number;
  readonly events: readonly EventJson[];
}

export interface LagHistoryResponseJson {
  /** The member whose measurements these are (the leader, unless it could not be asked). */
  readonly member: string;
  readonly leaderId: string | null;
  /** One sample per follower every intervalMs. */
  readonly intervalMs: number;
  /** Per follower, oldest first: [wall-clock ms, lag entries, lag bytes, lag seconds]. */
  readonly samples: Readonly<Record<string, readonly (readonly [number, number, number, number])[]>>;
}
