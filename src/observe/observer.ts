// A member's observability: it is told what the runtime does (the note* and observe* calls from
// ChorusNode), keeps the metrics and the event history, evaluates the alert rules every
// evaluateIntervalMs, and reports each raised or resolved alert as an event, a log line and a
// webhook delivery. It reads the runtime only through ObserveSource, so that it can be tested
// with a fake one.
import type { ClusterView } from '../shared/api-types.ts';
import type { LeaderChangeReason } from '../core/raft/raft.ts';
import type { Membership, Message, Role } from '../core/raft/types.ts';
import type { Logger } from '../shared/logger.ts';
import type { TransportStats } from '../transport/types.ts';
import { AlertEngine } from './alerts.ts';
import type { Alert, AlertChanges } from './alerts.ts';
import { alertConditions } from './conditions.ts';
import type { FollowerObservation, Observation, PeerObservation, SlowFsync } from './conditions.ts';
import type { ObserveConfig } from './config.ts';
import { EventHistory } from './events.ts';
import type { ClusterEvent, EventKind } from './events.ts';
import { ProgressWatch } from './lag.ts';
import { LagHistory } from './lag-history.ts';
import { ChorusMetrics } from './metrics.ts';
import type { DropReason } from './metrics.ts';
import { AlertWebhook } from './webhook.ts';
import type { WebhookStats } from './webhook.ts';

/** Events kept per member; older ones fall out (GET /v1/events reports the oldest kept). */
export const EVENTS_MAX = 1000;

/** What the observer reads of the runtime. */
export interface ObserveSource {
  /** The member's own view (lag per member only when it leads). */
  clusterView(): ClusterView;
  pending(): { readonly proposals: number; readonly reads: number };
  transportStats(): TransportStats | null;
  /** The peers of this member's multi-master keyspaces (the peer-unreachable rule). */
  multiMasterPeers?(): readonly PeerObservation[];
}

export interface ObserverOptions {
  readonly memberId: string;
  readonly clusterId: string;
  readonly config: ObserveConfig;
  readonly logger: Logger;
  readonly source: ObserveSource;
  readonly proposalsPendingMax: number;
  readonly readsPendingMax: number;
  /** A monotonic clock in ms (default performance.now). */
  readonly nowMs?: () => number;
  /** Default true; false leaves Node's process metrics out (tests with many members). */
  readonly processMetrics?: boolean;
  /** For tests: the webhook's fetch. */
  readonly fetch?: typeof fetch;
}

/** An alert as the API lists it: which member raised it. */
export interface AlertJson extends Alert {
  readonly member: string;
}

/** Human wording of the core's reasons for a leader change. */
export function describeLeaderChangeReason(reason: LeaderChangeReason): string {
  switch (reason) {
    case 'election': return 'election (a follower\'s election timeout fired)';
    case 'transfer': return 'leadership transfer';
    case 'check-quorum': return 'check-quorum step-down (the leader lost contact with a majority)';
    case 'higher-term': return 'a higher term was seen';
    case 'removed': return 'removed from the configuration';
    case 'boot': return 'member start';
  }
}

export class NodeObserver {
  readonly events = new EventHistory(EVENTS_MAX);
  readonly engine = new AlertEngine();
  readonly metrics: ChorusMetrics;
  readonly webhook: AlertWebhook | null;
  /** The followers' lag over the last minutes, while this member leads. */
  readonly lagHistory = new LagHistory();
  readonly config: ObserveConfig;
  private readonly memberId: string;
  private readonly clusterId: string;
  private readonly logger: Logger;
  private readonly source: ObserveSource;
  private readonly nowMs: () => number;
  private readonly progress = new ProgressWatch();
  /** Members the progress watch holds state for. */
  private readonly watched = new Set<string>();
  private readonly limits: { readonly proposals: number; readonly reads: number };
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private eventsRecorded = 0;
  private lastSeq = 0;

  // ---- what observeRaft saw last
  private lastRole: Role | null = null;
  private lastLeader: string | null = null;
  private lastTerm = 0;
  private lastCampaignTerm = 0;
  private lastConfig: Membership | null = null;
  /** Snapshot transfers under way: follower -> snapshot index. Bounded by the members. */
  private readonly snapshotsSending = new Map<string, number>();
  /** The slowest WAL sync over fsyncSecondsMax, kept for fsyncWindowSeconds. */
  private slowSync: { readonly atMs: number; readonly seconds: number } | null = null;
  /** When the evaluation timer last ran, and the last time it ran late because the whole process
   * was not running (SIGSTOP, swapping, a long GC or a blocked event loop). */
  private lastTimerMs: number | null = null;
  private lastStall: { readonly fromMs: number; readonly toMs: number } | null = null;

  constructor(options: ObserverOptions) {
    this.memberId = options.memberId;
    this.clusterId = options.clusterId;
    this.config = options.config;
    this.logger = options.logger.child({ component: 'observe' });
    this.source = options.source;
    this.nowMs = options.nowMs ?? (() => performance.now());
    this.limits = { proposals: options.proposalsPendingMax, reads: options.readsPendingMax };
    this.metrics = new ChorusMetrics(options.memberId, { processMetrics: options.processMetrics ?? true });
    this.webhook = options.config.enabled && options.config.webhook !== null
      ? new AlertWebhook(options.config.webhook, { logger: this.logger, ...(options.fetch === undefined ? {} : { fetch: options.fetch }) })
      : null;
    this.events.onEvent((e) => {
      this.eventsRecorded++;
      this.lastSeq = e.seq;
      this.metrics.noteEvent(e.kind);
    });
  }

  /** Starts evaluating the rules and sampling lag (the member is serving). */
  start(details: Record<string, unknown>): void {
    this.record('member-started', `${this.memberId} started`, details);
    if (this.timer !== null || this.stopped) return;
    this.timer = setInterval(() => {
      try {
        this.noteTimer();
        this.evaluate();
      } catch (error) {
        // Observability must never take the member down.
        this.logger.warn('alert-evaluation-failed', { error });
      }
    }, this.config.evaluateIntervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.webhook?.close();
  }

  record(kind: EventKind, message: string, detail: Record<string, unknown> = {}): ClusterEvent {
    return this.events.record(kind, this.memberId, message, detail);
  }

  // ------------------------------------------------------------------ runtime notes

  /** After each ready: role, leader, term and membership as the core has them now. */
  observeRaft(role: Role, leaderId: string | null, term: number, config: Membership, reason: () => LeaderChangeReason): void {
    if (role === this.lastRole && leaderId === this.lastLeader && term === this.lastTerm && config === this.lastConfig) return;
    const firstLook = this.lastRole === null;
    if (role !== this.lastRole) {
      if (role === 'candidate' && term > this.lastCampaignTerm) {
        this.lastCampaignTerm = term;
        this.metrics.noteElection(false);
        this.record('election', `${this.memberId} started an election for term ${term}`, { term });
      } else if (role === 'leader') {
        if (term > this.lastCampaignTerm) {
          // The campaign came and went between two looks.
          this.lastCampaignTerm = term;
          this.metrics.noteElection(false);
        }
        this.metrics.noteElection(true);
        this.record('election', `${this.memberId} won the election for term ${term}`, { term, won: true });
      }
    }
    if (leaderId !== this.lastLeader && !(firstLook && leaderId === null)) {
      const why = reason();
      this.metrics.noteLeaderChange(why);
      const text = describeLeaderChangeReason(why);
      const previous = this.lastLeader;
      const message = leaderId === null
        ? previous === this.memberId
          ? `${this.memberId} stepped down in term ${term}: ${text}`
          : `${this.memberId} lost its leader ${previous ?? '(none)'} in term ${term}: ${text}`
        : `${leaderId} is the leader of term ${term}${previous === null ? '' : ` (was ${previous})`}: ${text}`;
      this.record('leader-change', message, { leaderId, previousLeaderId: previous, term, reason: why, reasonText: text });
      if (leaderId !== this.memberId) this.snapshotsSending.clear();
    }
    if (config !== this.lastConfig) {
      if (this.lastConfig !== null) this.recordMembership(this.lastConfig, config);
      this.lastConfig = config;
      // Per-member state is kept for members of the configuration only (bounded by it).
      const members = new Set([...config.voters, ...config.learners]);
      for (const id of [...this.snapshotsSending.keys()]) if (!members.has(id)) this.snapshotsSending.delete(id);
      for (const id of this.watched) {
        if (members.has(id)) continue;
        this.progress.forget(id);
        this.watched.delete(id);
      }
    }
    this.lastRole = role;
    this.lastLeader = leaderId;
    this.lastTerm = term;
  }

  private recordMembership(before: Membership, after: Membership): void {
    const changes: string[] = [];
    for (const id of after.voters) {
      if (before.learners.includes(id)) changes.push(`${id} promoted to voter`);
      else if (!before.voters.includes(id)) changes.push(`${id} added as a voter`);
    }
    for (const id of after.learners) if (!before.learners.includes(id) && !before.voters.includes(id)) changes.push(`${id} added as a learner`);
    for (const id of [...before.voters, ...before.learners]) {
      if (!after.voters.includes(id) && !after.learners.includes(id)) changes.push(`${id} removed`);
    }
    if (changes.length === 0) return;
    this.record('membership', `membership: ${changes.join(', ')} (voters ${after.voters.join(', ') || 'none'}; learners ${after.learners.join(', ') || 'none'})`, {
      voters: [...after.voters], learners: [...after.learners], changes,
    });
  }

  /** Messages of a ready as they leave: snapshot chunks are counted, a new transfer recorded. */
  noteMessagesSent(messages: readonly Message[]): void {
    for (const m of messages) {
      if (m.type !== 'Snapshot') continue;
      const started = this.snapshotsSending.get(m.to) !== m.meta.index;
      if (started) {
        this.snapshotsSending.set(m.to, m.meta.index);
        this.record('snapshot', `sending the snapshot at index ${m.meta.index} (${m.totalBytes} bytes) to ${m.to}`, {
          direction: 'send', to: m.to, snapshotIndex: m.meta.index, bytes: m.totalBytes,
        });
      }
      this.metrics.noteSnapshotSent(started, m.chunk.byteLength);
    }
  }

  noteSnapshotInstalled(index: number, bytes: number, from: string | null): void {
    this.metrics.noteSnapshotInstalled(bytes);
    this.record('snapshot', `installed the snapshot at index ${index} (${bytes} bytes)${from === null ? '' : ` from ${from}`}`, {
      direction: 'install', from, snapshotIndex: index, bytes,
    });
  }

  /** Log compaction: only the snapshot's position is saved (bytes 0), the state database holds
   * the state. */
  noteSnapshotTaken(index: number): void {
    this.metrics.noteSnapshotTaken();
    this.record('snapshot', `compacted the log at index ${index} (the state database holds the state)`, { direction: 'take', snapshotIndex: index, bytes: 0 });
  }

  /** An image of the state made for a follower that needs one. */
  noteSnapshotImage(index: number, bytes: number): void {
    this.record('snapshot', `made an image of the state at index ${index} (${bytes} bytes) for a follower`, { direction: 'image', snapshotIndex: index, bytes });
  }

  noteSettingsApplied(settings: { readonly synchronousCommit: string; readonly synchronousStandbyNames: string }, revision: number): void {
    this.record('config', `replication settings: synchronous_commit=${settings.synchronousCommit}, synchronous_standby_names="${settings.synchronousStandbyNames}" (revision ${revision})`, {
      synchronousCommit: settings.synchronousCommit, synchronousStandbyNames: settings.synchronousStandbyNames, revision,
    });
  }

  noteWalSynced(entries: readonly { readonly data?: Uint8Array }[], durationMs: number): void {
    let bytes = 0;
    for (const e of entries) bytes += e.data?.byteLength ?? 0;
    this.metrics.noteWalSynced(entries.length, bytes, durationMs);
    const seconds = durationMs / 1000;
    if (seconds > this.config.rules.fsyncSecondsMax) {
      const now = this.nowMs();
      if (this.overlapsStall(now - durationMs, now)) return;
      const current = this.currentSlowSync(now);
      if (current === null || seconds >= current.seconds) this.slowSync = { atMs: now, seconds };
    }
  }

  /**
   * The evaluation timer ran: if it ran later than the fsync threshold allows, the process itself
   * stood still, and a WAL sync timed across that stall measured the stall, not the disk (a
   * follower paused with SIGSTOP would otherwise raise slow-fsync when it resumes).
   */
  noteTimer(now = this.nowMs()): void {
    const last = this.lastTimerMs;
    this.lastTimerMs = now;
    if (last === null || now - last <= this.config.evaluateIntervalMs + this.config.rules.fsyncSecondsMax * 1000) return;
    this.lastStall = { fromMs: last, toMs: now };
    this.logger.warn('process-stalled', { seconds: Math.round(now - last - this.config.evaluateIntervalMs) / 1000 });
    const sync = this.slowSync;
    if (sync !== null && this.overlapsStall(sync.atMs - sync.seconds * 1000, sync.atMs)) this.slowSync = null;
  }

  private overlapsStall(fromMs: number, toMs: number): boolean {
    return this.lastStall !== null && fromMs < this.lastStall.toMs && toMs > this.lastStall.fromMs;
  }

  noteApplied(entries: number, durationMs: number): void {
    if (entries > 0) this.metrics.noteApplied(entries, durationMs);
  }

  noteCommitted(level: string, latencyMs: number): void {
    this.metrics.noteCommitted(level, latencyMs);
  }

  noteProposal(level: string): void {
    this.metrics.noteProposal(level);
  }

  noteDropped(queue: 'proposals' | 'reads', reason: DropReason): void {
    this.metrics.noteDropped(queue, reason);
  }

  noteRead(consistency: string, ok: boolean): void {
    this.metrics.noteRead(consistency, ok);
  }

  private currentSlowSync(now: number): { readonly atMs: number; readonly seconds: number } | null {
    if (this.slowSync !== null && now - this.slowSync.atMs > this.config.fsyncWindowSeconds * 1000) this.slowSync = null;
    return this.slowSync;
  }

  // ------------------------------------------------------------------ observation and alerts

  /** Samples the runtime. Followers (with lag) only while this member leads. */
  observe(): Observation {
    const view = this.source.clusterView();
    const now = this.nowMs();
    const stallMs = this.config.rules.stallSeconds * 1000;
    const followers: FollowerObservation[] = [];
    if (view.membersSource === 'leader' && view.self.role === 'leader') {
      for (const m of view.members) {
        if (m.id === view.self.id || m.appliedIndex === null || m.matchIndex === null) continue;
        const behind = m.appliedIndex < view.self.commitIndex;
        const progressing = this.progress.observe(m.id, m.appliedIndex, !behind, now, stallMs);
        this.watched.add(m.id);
        followers.push({
          id: m.id,
          voter: m.voter,
          reachable: m.reachable,
          matchIndex: m.matchIndex,
          appliedIndex: m.appliedIndex,
          lagEntries: m.lagEntries ?? 0,
          lagBytes: m.lagBytes ?? 0,
          lagSeconds: m.lagSeconds ?? 0,
          stalled: !progressing,
        });
      }
    }
    const pending = this.source.pending();
    const replication = view.replication as ClusterView['replication'] | undefined;
    return {
      self: view.self.id,
      role: view.self.role,
      term: view.term,
      leaderId: view.leaderId,
      commitIndex: view.self.commitIndex,
      appliedIndex: view.self.appliedIndex,
      lastIndex: view.self.lastIndex,
      snapshotIndex: view.self.snapshotIndex,
      voters: view.members.filter((m) => m.voter).map((m) => m.id),
      learners: view.members.filter((m) => !m.voter).map((m) => m.id),
      followers,
      standby: {
        names: replication?.synchronous_standby_names ?? '',
        standbys: replication?.standbys ?? [],
        satisfiable: replication?.satisfiable ?? null,
      },
      proposalsPending: pending.proposals,
      readsPending: pending.reads,
    };
  }

  /** Evaluates the rules once; raised and resolved alerts become events, log lines and webhook
   * deliveries. Called by the timer; public for tests. */
  evaluate(observation: Observation = this.observe()): AlertChanges {
    const now = this.nowMs();
    const sync = this.currentSlowSync(now);
    const slowFsync: SlowFsync | null = sync === null ? null : { seconds: sync.seconds, agoSeconds: (now - sync.atMs) / 1000 };
    // Disabled alerts: nothing holds, but the lag history is still kept.
    const conditions = this.config.enabled ? alertConditions({ observation, slowFsync, peers: this.source.multiMasterPeers?.() ?? [] }, this.config.rules) : [];
    const changes = this.engine.evaluate(conditions, now);
    if (observation.role === 'leader') this.lagHistory.record(observation.followers, now, Date.now());
    else this.lagHistory.clear();
    for (const alert of changes.raised) this.report('firing', alert);
    for (const alert of changes.resolved) this.report('resolved', alert);
    return changes;
  }

  private report(status: 'firing' | 'resolved', alert: Alert): void {
    const fields = { alertId: alert.id, rule: alert.rule, severity: alert.severity, message: alert.message, labels: alert.labels ?? {}, since: alert.since };
    const event = status === 'firing'
      ? this.record('alert-raised', `${alert.severity} alert ${alert.rule}: ${alert.message}`, fields)
      : this.record('alert-resolved', `resolved alert ${alert.rule}: ${alert.message}`, fields);
    if (status === 'firing') this.logger.warn('alert-raised', fields);
    else this.logger.info('alert-resolved', fields);
    this.webhook?.enqueue(`${this.clusterId}/${this.memberId}/${event.seq}`, {
      version: 1,
      status,
      clusterId: this.clusterId,
      member: this.memberId,
      time: event.time,
      eventSeq: event.seq,
      alert: { id: alert.id, rule: alert.rule, severity: alert.severity, message: alert.message, labels: alert.labels ?? {}, since: alert.since },
      ...(status === 'resolved' ? { resolvedAt: event.time } : {}),
    });
  }

  activeAlerts(): AlertJson[] {
    return this.engine.active().map((a) => ({ ...a, member: this.memberId }));
  }

  webhookStats(): WebhookStats | null {
    return this.webhook?.stats() ?? null;
  }

  /** Events after `sinceSeq` (oldest first, at most `limit`), with the oldest and newest seq held. */
  listEvents(options: { sinceSeq?: number; limit?: number; kind?: EventKind }): { firstSeq: number; lastSeq: number; events: ClusterEvent[] } {
    const events = this.events.list(options);
    const retained = Math.min(this.eventsRecorded, EVENTS_MAX);
    return { firstSeq: retained === 0 ? 0 : this.lastSeq - retained + 1, lastSeq: this.lastSeq, events };
  }

  /** The metrics text, with the state-based series read now. */
  async scrape(): Promise<string> {
    this.metrics.refresh({
      observation: this.observe(),
      proposalsPendingMax: this.limits.proposals,
      readsPendingMax: this.limits.reads,
      transport: this.source.transportStats(),
      alerts: this.engine.active(),
      webhook: this.webhookStats(),
      events: { retained: Math.min(this.eventsRecorded, EVENTS_MAX), lastSeq: this.lastSeq },
    });
    return this.metrics.text();
  }
}

