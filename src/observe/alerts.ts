// Alert rules, raised and resolved as events. Each evaluation gets the conditions that hold
// now; a condition raises its alert once it has held for its rule's `forMs`, and resolves it
// as soon as it stops holding. Pure bookkeeping: the node feeds observations and a clock.

export type Severity = 'warning' | 'critical';

export interface AlertCondition {
  /** Stable identity, e.g. "replication-lag:n2". */
  readonly id: string;
  readonly rule: string;
  readonly severity: Severity;
  readonly message: string;
  /** How long the condition must hold before the alert is raised. */
  readonly forMs: number;
  readonly labels?: Readonly<Record<string, string>>;
}

export interface Alert extends AlertCondition {
  readonly since: string;
}

export interface AlertChanges {
  readonly raised: readonly Alert[];
  readonly resolved: readonly Alert[];
}

export class AlertEngine {
  private readonly pendingSinceMs = new Map<string, number>();
  private readonly firing = new Map<string, Alert>();

  /** `holding`: every condition true now. Returns the alerts raised and resolved by this step. */
  evaluate(holding: readonly AlertCondition[], nowMs: number, wallClock = new Date()): AlertChanges {
    const raised: Alert[] = [];
    const resolved: Alert[] = [];
    const holdingIds = new Set(holding.map((c) => c.id));
    for (const condition of holding) {
      if (this.firing.has(condition.id)) continue;
      const since = this.pendingSinceMs.get(condition.id) ?? nowMs;
      this.pendingSinceMs.set(condition.id, since);
      if (nowMs - since >= condition.forMs) {
        const alert: Alert = { ...condition, since: new Date(wallClock.getTime() - (nowMs - since)).toISOString() };
        this.firing.set(condition.id, alert);
        this.pendingSinceMs.delete(condition.id);
        raised.push(alert);
      }
    }
    for (const id of [...this.pendingSinceMs.keys()]) if (!holdingIds.has(id)) this.pendingSinceMs.delete(id);
    for (const [id, alert] of this.firing) {
      if (!holdingIds.has(id)) {
        this.firing.delete(id);
        resolved.push(alert);
      }
    }
    return { raised, resolved };
  }

  active(): Alert[] {
    return [...this.firing.values()];
  }
}

/** Thresholds, with defaults a newcomer can keep. Units are in the names. */
export interface AlertRules {
  /** A member behind by more than this many seconds while the leader is writing. */
  readonly lagSecondsMax: number;
  /** ...and by at least this many bytes (judged together, so an idle cluster raises nothing). */
  readonly lagBytesMin: number;
  /** A member behind whose index has not moved for this long. */
  readonly stallSeconds: number;
  /** No known leader for this long. */
  readonly noLeaderSeconds: number;
  /** The synchronous standby set not met for this long. */
  readonly syncStandbyUnmetSeconds: number;
  /** An fsync slower than this... */
  readonly fsyncSecondsMax: number;
  /** A multi-master peer unreachable for this long. */
  readonly peerUnreachableSeconds: number;
}

export const defaultAlertRules: AlertRules = {
  lagSecondsMax: 10,
  lagBytesMin: 1,
  stallSeconds: 30,
  noLeaderSeconds: 5,
  syncStandbyUnmetSeconds: 5,
  fsyncSecondsMax: 0.5,
  peerUnreachableSeconds: 60,
};
