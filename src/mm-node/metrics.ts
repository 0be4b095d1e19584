// Prometheus series of the multi-master keyspaces, read from the host at scrape time (collect
// callbacks), in the member's registry beside the Raft series (src/observe/metrics.ts).
import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';
import type { KeyspaceStats } from './host.ts';

export function registerMultiMasterMetrics(registry: Registry, stats: () => readonly KeyspaceStats[]): void {
  const registers = [registry];
  // One read of the stats per scrape: every collect callback of a scrape runs within one turn.
  let cached: readonly KeyspaceStats[] = [];
  let cachedAt = -1;
  const read = (): readonly KeyspaceStats[] => {
    const now = performance.now();
    if (now - cachedAt > 50) {
      cached = stats();
      cachedAt = now;
    }
    return cached;
  };
  const perKeyspace = (name: string, help: string, pick: (s: KeyspaceStats) => number, kind: 'gauge' | 'counter'): void => {
    const collect = function (this: Gauge<'keyspace'> | Counter<'keyspace'>): void {
      this.reset();
      for (const s of read()) this.inc({ keyspace: s.name }, pick(s));
    };
    if (kind === 'gauge') new Gauge({ name, help, labelNames: ['keyspace'], registers, collect });
    else new Counter({ name, help, labelNames: ['keyspace'], registers, collect });
  };
  const perPeer = (name: string, help: string, pick: (p: KeyspaceStats['peers'][number]) => number): void => {
    new Gauge({
      name, help, labelNames: ['keyspace', 'peer'], registers,
      collect(this: Gauge<'keyspace' | 'peer'>) {
        this.reset();
        for (const s of read()) for (const p of s.peers) this.set({ keyspace: s.name, peer: p.peer }, pick(p));
      },
    });
  };
  perKeyspace('chorus_mm_keys', 'Multi-master: live keys held by this member.', (s) => s.keys, 'gauge');
  perKeyspace('chorus_mm_tombstones', 'Multi-master: deleted keys whose tombstones not every member has seen yet.', (s) => s.tombstones, 'gauge');
  perKeyspace('chorus_mm_local_seq', 'Multi-master: the number of this member\'s own changes (its last event seq).', (s) => s.lastSeq, 'gauge');
  perKeyspace('chorus_mm_lww_overwrites_total', 'Multi-master (lww): this member\'s writes lost to a concurrent write with a higher stamp.', (s) => s.lwwOverwrites, 'counter');
  perKeyspace('chorus_mm_repairs_total', 'Multi-master: records changed here by anti-entropy (divergence the stream missed).', (s) => s.repairs, 'counter');
  perKeyspace('chorus_mm_hints_applied_total', 'Multi-master: records changed here by hinted handoff.', (s) => s.hintsApplied, 'counter');
  perKeyspace('chorus_mm_hints_dropped_total', 'Multi-master: hints dropped or refused because a hint queue was full (anti-entropy repairs them).', (s) => s.hintsDropped + s.hintsRefused, 'counter');
  perKeyspace('chorus_mm_tombstones_collected_total', 'Multi-master: tombstones removed once every member had seen them.', (s) => s.tombstonesCollected, 'counter');
  perKeyspace('chorus_mm_clock_drift_rejections_total', 'Multi-master: messages refused because a stamp was further ahead of this member\'s clock than maxClockDriftMs.', (s) => s.clockDriftRejections, 'counter');
  perKeyspace('chorus_mm_messages_refused_total', 'Multi-master: malformed or foreign replication messages dropped.', (s) => s.messagesRefused, 'counter');
  perPeer('chorus_mm_backlog_seqs', 'Multi-master: this member\'s changes the peer has not acknowledged yet (events).', (p) => p.backlogSeqs);
  perPeer('chorus_mm_peer_suspected', 'Multi-master: 1 when the peer has not been heard from for suspectAfterMs (writes for it become hints).', (p) => (p.suspected ? 1 : 0));
  perPeer('chorus_mm_hints_queued', 'Multi-master: hints held here for the peer.', (p) => p.hintsQueued);
}
