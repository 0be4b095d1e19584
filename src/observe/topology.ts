// A document of the live cluster (`chorus topology`): members, roles, addresses, replication
// settings, the synchronous standby set and the keyspaces, as Markdown with a Mermaid diagram,
// or the diagram alone. Pure: it renders a /v1/cluster answer.
import type { AlertJson } from './api-types.ts';
import type { ClusterMember, ClusterView } from '../shared/api-types.ts';

export interface TopologyInput {
  readonly view: ClusterView;
  /** The member that answered. */
  readonly endpoint: string;
  readonly generatedAt: Date;
  /** Active alerts across the cluster, when they could be fetched. */
  readonly alerts?: readonly AlertJson[] | null;
  /** The keyspace catalog (GET /v1/keyspaces), when it could be fetched. */
  readonly keyspaces?: readonly TopologyKeyspace[] | null;
}

export interface TopologyKeyspace {
  readonly name: string;
  readonly mode: 'consensus' | 'multi-master';
  readonly conflicts?: string;
  readonly members?: readonly string[];
  readonly builtin?: boolean;
}

function mermaidText(text: string): string {
  // Inside a quoted Mermaid label only the quote itself needs an entity.
  return text.replace(/"/g, '#quot;');
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

function lagText(m: ClusterMember): string {
  if (m.lagEntries === null) return 'unknown';
  return `${m.lagEntries} entries, ${formatBytes(m.lagBytes ?? 0)}, ${(m.lagSeconds ?? 0).toFixed(1)} s`;
}

function health(m: ClusterMember, leaderView: boolean): 'ok' | 'lagging' | 'stalled' | 'down' | 'unknown' {
  if (!m.reachable) return 'down';
  if (!leaderView) return 'unknown';
  if (m.progressing === false) return 'stalled';
  if ((m.lagSeconds ?? 0) > 1) return 'lagging';
  return 'ok';
}

/** The diagram: the leader replicates to every other member; learners dashed; standbys bold. */
export function topologyMermaid(view: ClusterView): string {
  const ids = new Map(view.members.map((m, i) => [m.id, `m${i}`] as const));
  const standbys = new Set(view.replication?.standbys ?? []);
  const leaderView = view.membersSource === 'leader';
  const lines = ['flowchart LR'];
  for (const m of view.members) {
    const parts = [
      `<b>${m.id}</b>`,
      `${m.role}${m.voter ? '' : ' (no vote)'}${standbys.has(m.id) ? ' · sync standby' : ''}`,
      `client ${m.clientAddress ?? '?'}`,
      `peer ${m.peerAddress ?? '?'}`,
    ];
    lines.push(`  ${ids.get(m.id)!}["${mermaidText(parts.join('<br/>'))}"]`);
  }
  const leader = view.leaderId === null ? undefined : ids.get(view.leaderId);
  if (leader !== undefined) {
    for (const m of view.members) {
      if (m.id === view.leaderId) continue;
      const label = leaderView ? `lag ${m.lagEntries ?? '?'} entries · ${(m.lagSeconds ?? 0).toFixed(1)} s` : 'replicates';
      const arrow = m.voter ? '-->' : '-.->';
      lines.push(`  ${leader} ${arrow}|"${mermaidText(label)}"| ${ids.get(m.id)!}`);
    }
  }
  for (const m of view.members) {
    const id = ids.get(m.id)!;
    if (m.id === view.leaderId) lines.push(`  class ${id} leader`);
    else if (standbys.has(m.id)) lines.push(`  class ${id} standby`);
    else if (!m.voter) lines.push(`  class ${id} learner`);
    if (!m.reachable) lines.push(`  class ${id} down`);
  }
  lines.push(
    '  classDef leader fill:#fef3c7,stroke:#b45309,stroke-width:3px',
    '  classDef standby stroke:#1d4ed8,stroke-width:3px',
    '  classDef learner stroke-dasharray:5 5',
    '  classDef down fill:#fee2e2,stroke:#b91c1c',
  );
  return `${lines.join('\n')}\n`;
}

export function topologyMarkdown(input: TopologyInput): string {
  const { view } = input;
  const leaderView = view.membersSource === 'leader';
  const voters = view.members.filter((m) => m.voter).map((m) => m.id);
  const learners = view.members.filter((m) => !m.voter).map((m) => m.id);
  const replication = view.replication;
  const out: string[] = [];
  out.push(`# Chorus cluster ${view.clusterId}`, '');
  out.push(`Generated ${input.generatedAt.toISOString()} from ${input.endpoint} (member ${view.self.id}; ${leaderView ? 'members as the leader sees them' : 'no leader could be asked: members as this member sees them, without lag'}).`, '');
  out.push('| | |', '| --- | --- |');
  out.push(`| Leader | ${view.leaderId ?? '**none**'} (term ${view.term}) |`);
  out.push(`| Voters | ${voters.join(', ') || 'none'} |`);
  out.push(`| Learners | ${learners.join(', ') || 'none'} |`);
  out.push(`| Commit index | ${view.self.commitIndex} (as ${view.self.id} knows it) |`, '');

  out.push('## Members', '');
  out.push('| Member | Role | Voter | Client address | Peer address | Reachable | Match | Applied | Lag | Health | Can lead |');
  out.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const m of view.members) {
    const canLead = m.canLead === null ? '?' : m.canLead ? 'yes' : `no (${m.whyNot ?? ''})`;
    out.push(`| ${cell(m.id)} | ${m.role} | ${m.voter ? 'yes' : 'no'} | ${cell(m.clientAddress ?? '?')} | ${cell(m.peerAddress ?? '?')} | ${m.reachable ? 'yes' : 'no'} | ${m.matchIndex ?? '?'} | ${m.appliedIndex ?? '?'} | ${lagText(m)} | ${health(m, leaderView)} | ${cell(canLead)} |`);
  }
  out.push('');

  out.push('## Replication', '');
  out.push('| Setting | Value |', '| --- | --- |');
  if (replication === undefined) {
    out.push('| (not reported by this member) | |');
  } else {
    out.push(`| synchronous_commit | ${replication.synchronous_commit} |`);
    out.push(`| synchronous_standby_names | ${replication.synchronous_standby_names === '' ? 'none (asynchronous to all but a majority)' : cell(replication.synchronous_standby_names)} |`);
    out.push(`| Settings source | ${replication.source}${replication.revision > 0 ? ` (revision ${replication.revision})` : ''} |`);
    out.push(`| Synchronous standbys now | ${replication.standbys.join(', ') || 'none'} |`);
    out.push(`| Standby set satisfiable | ${replication.satisfiable === null ? 'unknown (not the leader\'s view)' : replication.satisfiable ? 'yes' : '**no**: writes at on/remote_apply cannot complete'} |`);
  }
  out.push('');

  out.push('## Keyspaces', '');
  out.push('| Keyspace | Mode | Members |', '| --- | --- | --- |');
  out.push(`| default (/v1/kv) | consensus: one Raft log, linearizable | ${[...voters, ...learners].join(', ')} |`);
  for (const ks of input.keyspaces ?? []) {
    if (ks.builtin === true) continue;
    const mode = ks.mode === 'consensus' ? 'consensus: one Raft log, linearizable' : `multi-master (${cell(ks.conflicts ?? '?')}): every member accepts writes`;
    out.push(`| ${cell(ks.name)} | ${mode} | ${ks.mode === 'consensus' ? [...voters, ...learners].join(', ') : cell((ks.members ?? []).join(', '))} |`);
  }
  out.push('');
  if (input.keyspaces === null) out.push('(the keyspace catalog could not be fetched)', '');

  out.push('## Diagram', '', '```mermaid', topologyMermaid(view).trimEnd(), '```', '');

  if (input.alerts !== undefined) {
    out.push('## Active alerts', '');
    if (input.alerts === null) out.push('(could not be fetched)');
    else if (input.alerts.length === 0) out.push('None.');
    else for (const a of input.alerts) out.push(`- **${a.severity}** ${a.rule} (raised by ${a.member} since ${a.since}): ${a.message}`);
    out.push('');
  }
  return out.join('\n');
}
