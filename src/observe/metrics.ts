// Prometheus metrics of one member, in a registry of its own: tests run several members in one
// process, and each serves only its own numbers at GET /metrics. Every series carries the
// label member="<id>". Names follow the Prometheus conventions: the chorus_ prefix, base units
// (seconds, bytes), _total for counters. docs/observability.md lists them all.
//
// Two kinds of values: events counted as they happen (latencies, proposals, elections, ...)
// through the note* methods, and state read at scrape time (lag, indexes, queues) by refresh().
//
// The series of multi-master keyspaces (chorus_mm_*) are registered in this registry by
// src/mm-node/metrics.ts.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { TransportStats } from '../transport/types.ts';
import type { Alert } from './alerts.ts';
import type { EventKind } from './events.ts';
import type { Observation } from './conditions.ts';
import type { WebhookStats } from './webhook.ts';

/** Buckets in seconds, from 100 µs (an fsync on a fast disk) to 10 s (a stuck disk or quorum). */
const LATENCY_BUCKETS_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export type DropReason = 'pending-max' | 'uncommitted-max';

export interface ScrapeState {
  readonly observation: Observation;
  readonly proposalsPendingMax: number;
  readonly readsPendingMax: number;
  readonly transport: TransportStats | null;
  readonly alerts: readonly Alert[];
  readonly webhook: WebhookStats | null;
  readonly events: { readonly retained: number; readonly lastSeq: number };
}

/** Node's process metrics (process_*, nodejs_*): one set per process, however many members it
 * runs, collected from the first scrape on and appended to each member's answer. */
let processRegistry: Registry | null = null;

function processMetricsRegistry(): Registry {
  if (processRegistry === null) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** Sets a counter that mirrors a cumulative count kept elsewhere (transport, webhook). */
function mirror<T extends string>(counter: Counter<T>, values: readonly (readonly [Partial<Record<T, string>>, number])[]): void {
  counter.reset();
  for (const [labels, value] of values) counter.inc(labels, value);
}

export class ChorusMetrics {
  readonly registry = new Registry();
  private readonly processMetrics: boolean;

  // ---- replication, on the leader, per follower
  private readonly lagEntries: Gauge<'follower'>;
  private readonly lagBytes: Gauge<'follower'>;
  private readonly lagSeconds: Gauge<'follower'>;
  private readonly stalled: Gauge<'follower'>;
  private readonly reachable: Gauge<'follower'>;
  private readonly matchIndex: Gauge<'follower'>;
  private readonly standbySatisfied: Gauge<'set'>;
  // ---- this member's Raft state
  private readonly term: Gauge;
  private readonly role: Gauge<'role'>;
  private readonly isLeader: Gauge;
  private readonly hasLeader: Gauge;
  private readonly indexes: Gauge<'index'>;
  private readonly members: Gauge<'kind'>;
  private readonly elections: Counter;
  private readonly electionsWon: Counter;
  private readonly leaderChanges: Counter<'reason'>;
  // ---- latencies
  private readonly commitLatency: Histogram<'level'>;
  private readonly applyDuration: Histogram;
  private readonly walSyncDuration: Histogram;
  private readonly appliedEntries: Counter;
  private readonly walEntries: Counter;
  private readonly walBytes: Counter;
  // ---- requests
  private readonly proposals: Counter<'level'>;
  private readonly reads: Counter<'consistency' | 'outcome'>;
  // ---- snapshots
  private readonly snapshotsSent: Counter;
  private readonly snapshotSentBytes: Counter;
  private readonly snapshotsInstalled: Counter;
  private readonly snapshotInstalledBytes: Counter;
  private readonly snapshotsTaken: Counter;
  // ---- queues and drops
  private readonly pending: Gauge<'queue'>;
  private readonly pendingMax: Gauge<'queue'>;
  private readonly drops: Counter<'queue' | 'reason'>;
  private readonly transportQueued: Gauge<'peer'>;
  private readonly transportQueuedBytes: Gauge<'peer'>;
  private readonly transportConnected: Gauge<'peer'>;
  private readonly transportDropped: Counter<'peer'>;
  private readonly transportSentBytes: Counter<'peer'>;
  private readonly transportReconnects: Counter<'peer'>;
  private readonly transportReceivedBytes: Counter;
  // ---- alerts and events
  private readonly alertsFiring: Gauge<'rule' | 'severity'>;
  private readonly webhookQueued: Gauge;
  private readonly webhookDeliveries: Counter<'outcome'>;
  private readonly webhookRetries: Counter;
  private readonly eventsRecorded: Counter<'kind'>;
  private readonly eventsRetained: Gauge;

  constructor(memberId: string, options: { readonly processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ member: memberId });
    this.processMetrics = options.processMetrics !== false;
    const gauge = <T extends string>(name: string, help: string, labelNames: readonly T[] = []): Gauge<T> => new Gauge<T>({ name, help, labelNames, registers });
    const counter = <T extends string>(name: string, help: string, labelNames: readonly T[] = []): Counter<T> => new Counter<T>({ name, help, labelNames, registers });
    const histogram = <T extends string>(name: string, help: string, labelNames: readonly T[] = []): Histogram<T> =>
      new Histogram<T>({ name, help, labelNames, buckets: LATENCY_BUCKETS_SECONDS, registers });

    this.lagEntries = gauge('chorus_replication_lag_entries', 'Leader only: log entries a follower has not applied yet (leader last index - follower applied index).', ['follower']);
    this.lagBytes = gauge('chorus_replication_lag_bytes', 'Leader only: payload bytes of the entries a follower has not applied yet.', ['follower']);
    this.lagSeconds = gauge('chorus_replication_lag_seconds', 'Leader only: seconds since the leader appended the oldest entry a follower has not applied (0 when caught up, however old the last write).', ['follower']);
    this.stalled = gauge('chorus_replication_stalled', 'Leader only: 1 when a follower is behind and its applied index has not moved for alerts.stallSeconds.', ['follower']);
    this.reachable = gauge('chorus_replication_follower_reachable', 'Leader only: 1 when the follower acknowledged the leader within an election timeout.', ['follower']);
    this.matchIndex = gauge('chorus_replication_match_index', 'Leader only: the highest log index known to be durable on the follower.', ['follower']);
    this.standbySatisfied = gauge('chorus_sync_standby_satisfied', 'Leader only, when synchronous_standby_names is set (label set): 1 when enough standbys are connected for writes at on/remote_apply to complete.', ['set']);

    this.term = gauge('chorus_term', 'The current Raft term of this member.');
    this.role = gauge('chorus_role', '1 for the role this member has now (leader, follower, candidate, learner), 0 for the others.', ['role']);
    this.isLeader = gauge('chorus_is_leader', '1 when this member is the leader.');
    this.hasLeader = gauge('chorus_has_leader', '1 when this member knows a leader.');
    this.indexes = gauge('chorus_log_index', 'Log indexes of this member: commit, applied, last and snapshot.', ['index']);
    this.members = gauge('chorus_cluster_members', 'Members in the configuration this member holds, by kind (voter, learner).', ['kind']);
    this.elections = counter('chorus_elections_total', 'Elections this member started as a candidate (pre-votes excluded).');
    this.electionsWon = counter('chorus_elections_won_total', 'Elections this member won.');
    this.leaderChanges = counter('chorus_leader_changes_total', 'Changes of the leader this member knows, by the core\'s reason (election, transfer, check-quorum, higher-term, removed).', ['reason']);

    this.commitLatency = histogram('chorus_commit_latency_seconds', 'Leader only: from a proposal to its entry being committed, for writes at on/remote_apply (waits for synchronous standbys excluded).', ['level']);
    this.applyDuration = histogram('chorus_apply_batch_duration_seconds', 'Time to apply one batch of committed entries to the state machine (one SQLite transaction).');
    this.walSyncDuration = histogram('chorus_wal_fsync_duration_seconds', 'Time to append one ready\'s entries to the WAL and fsync them (group commit: one per ready).');
    this.appliedEntries = counter('chorus_applied_entries_total', 'Entries applied to the state machine.');
    this.walEntries = counter('chorus_wal_appended_entries_total', 'Entries appended to the WAL.');
    this.walBytes = counter('chorus_wal_appended_bytes_total', 'Payload bytes of the entries appended to the WAL.');

    this.proposals = counter('chorus_proposals_total', 'Proposals this member accepted as leader, by commit level (off, local, on, remote_apply).', ['level']);
    this.reads = counter('chorus_reads_total', 'Key reads served by this member\'s HTTP API, by consistency (linearizable, lease, stale) and outcome (ok: found or not found; error).', ['consistency', 'outcome']);

    this.snapshotsSent = counter('chorus_snapshots_sent_total', 'Snapshot transfers this leader started (one per follower and snapshot).');
    this.snapshotSentBytes = counter('chorus_snapshot_sent_bytes_total', 'Snapshot bytes sent in chunks to followers (resent chunks included).');
    this.snapshotsInstalled = counter('chorus_snapshots_installed_total', 'Snapshots received from a leader and installed.');
    this.snapshotInstalledBytes = counter('chorus_snapshot_installed_bytes_total', 'Bytes of the snapshots received and installed.');
    this.snapshotsTaken = counter('chorus_snapshots_taken_total', 'Snapshots this member took of its own state (log compaction).');

    this.pending = gauge('chorus_pending_requests', 'Requests waiting in this member: proposals (to commit) and reads (for a read index or for apply).', ['queue']);
    this.pendingMax = gauge('chorus_pending_requests_limit', 'The bound of each pending queue (proposalsPendingMax, readsPendingMax).', ['queue']);
    this.drops = counter('chorus_requests_dropped_total', 'Requests refused with CHORUS_BUSY, by queue (proposals, reads) and reason (pending-max: the queue was full; uncommitted-max: the core refused more uncommitted entries).', ['queue', 'reason']);
    this.transportQueued = gauge('chorus_transport_queued_messages', 'Raft messages queued for a peer while its socket is not writable.', ['peer']);
    this.transportQueuedBytes = gauge('chorus_transport_queued_bytes', 'Bytes of the Raft messages queued for a peer.', ['peer']);
    this.transportConnected = gauge('chorus_transport_connected', '1 when the connection to the peer is up.', ['peer']);
    this.transportDropped = counter('chorus_transport_dropped_messages_total', 'Raft messages to a peer dropped because its queue was full (or the message too large).', ['peer']);
    this.transportSentBytes = counter('chorus_transport_sent_bytes_total', 'Bytes handed to the socket of a peer.', ['peer']);
    this.transportReconnects = counter('chorus_transport_reconnects_total', 'Dial attempts to a peer after the first one.', ['peer']);
    this.transportReceivedBytes = counter('chorus_transport_received_bytes_total', 'Bytes of the Raft messages received from every peer.');

    this.alertsFiring = gauge('chorus_alerts_firing', 'Alerts raised by this member and not resolved, by rule and severity.', ['rule', 'severity']);
    this.webhookQueued = gauge('chorus_alert_webhook_queued', 'Alert deliveries waiting for the webhook (bounded by alerts.webhookQueueMax).');
    this.webhookDeliveries = counter('chorus_alert_webhook_deliveries_total', 'Alert deliveries by outcome: delivered, failed (given up or refused), dropped (queue full or member stopping).', ['outcome']);
    this.webhookRetries = counter('chorus_alert_webhook_retries_total', 'Webhook attempts after the first one of a delivery.');
    this.eventsRecorded = counter('chorus_events_total', 'Events recorded in this member\'s history, by kind.', ['kind']);
    this.eventsRetained = gauge('chorus_events_retained', 'Events held in the bounded history now.');
  }

  // ------------------------------------------------------------------ events as they happen

  noteCommitted(level: string, latencyMs: number): void {
    this.commitLatency.observe({ level }, latencyMs / 1000);
  }

  noteApplied(entries: number, durationMs: number): void {
    this.applyDuration.observe(durationMs / 1000);
    this.appliedEntries.inc(entries);
  }

  noteWalSynced(entries: number, bytes: number, durationMs: number): void {
    this.walSyncDuration.observe(durationMs / 1000);
    this.walEntries.inc(entries);
    this.walBytes.inc(bytes);
  }

  noteProposal(level: string): void {
    this.proposals.inc({ level });
  }

  noteRead(consistency: string, ok: boolean): void {
    this.reads.inc({ consistency, outcome: ok ? 'ok' : 'error' });
  }

  noteDropped(queue: 'proposals' | 'reads', reason: DropReason): void {
    this.drops.inc({ queue, reason });
  }

  noteElection(won: boolean): void {
    if (won) this.electionsWon.inc();
    else this.elections.inc();
  }

  noteLeaderChange(reason: string): void {
    this.leaderChanges.inc({ reason });
  }

  noteSnapshotSent(started: boolean, bytes: number): void {
    if (started) this.snapshotsSent.inc();
    this.snapshotSentBytes.inc(bytes);
  }

  noteSnapshotInstalled(bytes: number): void {
    this.snapshotsInstalled.inc();
    this.snapshotInstalledBytes.inc(bytes);
  }

  noteSnapshotTaken(): void {
    this.snapshotsTaken.inc();
  }

  noteEvent(kind: EventKind): void {
    this.eventsRecorded.inc({ kind });
  }

  // ------------------------------------------------------------------ state, read at scrape time

  refresh(state: ScrapeState): void {
    const o = state.observation;
    for (const g of [this.lagEntries, this.lagBytes, this.lagSeconds, this.stalled, this.reachable, this.matchIndex]) g.reset();
    for (const f of o.followers) {
      const labels = { follower: f.id };
      this.lagEntries.set(labels, f.lagEntries);
      this.lagBytes.set(labels, f.lagBytes);
      this.lagSeconds.set(labels, f.lagSeconds);
      this.stalled.set(labels, f.stalled ? 1 : 0);
      this.reachable.set(labels, f.reachable ? 1 : 0);
      this.matchIndex.set(labels, f.matchIndex);
    }
    this.standbySatisfied.reset();
    if (o.standby.names !== '' && o.standby.satisfiable !== null) this.standbySatisfied.set({ set: o.standby.names }, o.standby.satisfiable ? 1 : 0);

    this.term.set(o.term);
    for (const role of ['leader', 'follower', 'candidate', 'learner'] as const) this.role.set({ role }, o.role === role ? 1 : 0);
    this.isLeader.set(o.role === 'leader' ? 1 : 0);
    this.hasLeader.set(o.leaderId === null ? 0 : 1);
    this.indexes.set({ index: 'commit' }, o.commitIndex);
    this.indexes.set({ index: 'applied' }, o.appliedIndex);
    this.indexes.set({ index: 'last' }, o.lastIndex);
    this.indexes.set({ index: 'snapshot' }, o.snapshotIndex);
    this.members.set({ kind: 'voter' }, o.voters.length);
    this.members.set({ kind: 'learner' }, o.learners.length);

    this.pending.set({ queue: 'proposals' }, o.proposalsPending);
    this.pending.set({ queue: 'reads' }, o.readsPending);
    this.pendingMax.set({ queue: 'proposals' }, state.proposalsPendingMax);
    this.pendingMax.set({ queue: 'reads' }, state.readsPendingMax);

    this.transportQueued.reset();
    this.transportQueuedBytes.reset();
    this.transportConnected.reset();
    const peers = Object.entries(state.transport?.peers ?? {});
    for (const [peer, s] of peers) {
      this.transportQueued.set({ peer }, s.queuedMessages);
      this.transportQueuedBytes.set({ peer }, s.queuedBytes);
      this.transportConnected.set({ peer }, s.connected ? 1 : 0);
    }
    mirror(this.transportDropped, peers.map(([peer, s]) => [{ peer }, s.droppedMessages] as const));
    mirror(this.transportSentBytes, peers.map(([peer, s]) => [{ peer }, s.sentBytes] as const));
    mirror(this.transportReconnects, peers.map(([peer, s]) => [{ peer }, s.reconnects] as const));
    mirror(this.transportReceivedBytes, [[{}, state.transport?.inbound.receivedBytes ?? 0]]);

    this.alertsFiring.reset();
    for (const alert of state.alerts) this.alertsFiring.inc({ rule: alert.rule, severity: alert.severity });
    const w = state.webhook;
    this.webhookQueued.set(w === null ? 0 : w.queued);
    mirror(this.webhookDeliveries, w === null ? [] : [[{ outcome: 'delivered' }, w.delivered], [{ outcome: 'failed' }, w.failed], [{ outcome: 'dropped' }, w.dropped]]);
    mirror(this.webhookRetries, [[{}, w?.retries ?? 0]]);
    this.eventsRetained.set(state.events.retained);
  }

  async text(): Promise<string> {
    const own = await this.registry.metrics();
    if (!this.processMetrics) return own;
    return `${own}${own.endsWith('\n') ? '' : '\n'}${await processMetricsRegistry().metrics()}`;
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
