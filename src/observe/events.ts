// A bounded, ordered history of what happened to the cluster: elections, leader changes with
// their reason, membership and configuration changes, snapshots, alerts. Oldest events fall
// out first; every event keeps its sequence number so a reader can ask for what it missed.

export type EventKind =
  | 'election'
  | 'leader-change'
  | 'membership'
  | 'config'
  | 'snapshot'
  | 'alert-raised'
  | 'alert-resolved'
  | 'member-started'
  | 'member-stopped';

export interface ClusterEvent {
  readonly seq: number;
  /** Wall-clock time, ISO 8601, for people and log correlation. */
  readonly time: string;
  readonly kind: EventKind;
  readonly member: string;
  readonly message: string;
  readonly detail: Readonly<Record<string, unknown>>;
}

export class EventHistory {
  private readonly events: ClusterEvent[] = [];
  private nextSeq = 1;
  private readonly listeners = new Set<(e: ClusterEvent) => void>();

  /** Invariant: events.length <= capacity. */
  constructor(private readonly capacity = 1000) {}

  record(kind: EventKind, member: string, message: string, detail: Record<string, unknown> = {}, time = new Date()): ClusterEvent {
    const event: ClusterEvent = { seq: this.nextSeq++, time: time.toISOString(), kind, member, message, detail };
    this.events.push(event);
    if (this.events.length > this.capacity) this.events.splice(0, this.events.length - this.capacity);
    for (const listener of this.listeners) listener(event);
    return event;
  }

  /** Events after `sinceSeq`, oldest first, at most `limit` (the newest ones when cut). */
  list(options: { sinceSeq?: number; limit?: number; kind?: EventKind } = {}): ClusterEvent[] {
    const since = options.sinceSeq ?? 0;
    let out = this.events.filter((e) => e.seq > since && (options.kind === undefined || e.kind === options.kind));
    if (options.limit !== undefined && out.length > options.limit) out = out.slice(out.length - options.limit);
    return out;
  }

  onEvent(listener: (e: ClusterEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
