// Deterministic one-line descriptions of messages and readies, used in logs, simulator traces
// and failure reports alike.
import type { Entry, Message, Ready } from './types.ts';

export function describeEntry(e: Entry): string {
  switch (e.type) {
    case 'noop':
      return `${e.index}/${e.term}:noop`;
    case 'config':
      return `${e.index}/${e.term}:config(v=${e.config?.voters.join(',') ?? ''};l=${e.config?.learners.join(',') ?? ''})`;
    case 'normal':
      return `${e.index}/${e.term}:${e.data?.byteLength ?? 0}B`;
  }
}

function describeEntries(entries: readonly Entry[]): string {
  if (entries.length === 0) return '[]';
  if (entries.length <= 3) return `[${entries.map(describeEntry).join(' ')}]`;
  return `[${describeEntry(entries[0]!)} .. ${describeEntry(entries[entries.length - 1]!)} (${entries.length})]`;
}

export function describeMessage(m: Message): string {
  const head = `${m.from}->${m.to} ${m.type} term=${m.term}`;
  switch (m.type) {
    case 'PreVote':
      return `${head} last=${m.lastIndex}/${m.lastTerm}`;
    case 'Vote':
      return `${head} last=${m.lastIndex}/${m.lastTerm}${m.transfer ? ' transfer' : ''}`;
    case 'PreVoteResp':
    case 'VoteResp':
      return `${head} ${m.granted ? 'granted' : 'rejected'}`;
    case 'Append':
      return `${head} log=${m.prevIndex}/${m.prevTerm} commit=${m.commit} entries=${describeEntries(m.entries)} seq=${m.seq}`;
    case 'AppendResp':
      return m.reject
        ? `${head} reject=${m.index} hint=${m.conflictIndex}/${m.conflictTerm} seq=${m.seq}`
        : `${head} match=${m.index} seq=${m.seq}`;
    case 'Heartbeat':
      return `${head} commit=${m.commit} seq=${m.seq}`;
    case 'HeartbeatResp':
      return `${head} seq=${m.seq}`;
    case 'Snapshot':
      return `${head} snap=${m.meta.index}/${m.meta.term} bytes=${m.offset}+${m.chunk.byteLength}/${m.totalBytes}`;
    case 'SnapshotResp':
      return `${head} snap=${m.snapshotIndex} next=${m.nextOffset}${m.done ? ' done' : ''}${m.reject ? ' reject' : ''}`;
    case 'TimeoutNow':
      return head;
    case 'ReadIndex':
      return `${head} read=${m.readId}`;
    case 'ReadIndexResp':
      return `${head} read=${m.readId} index=${m.index}`;
  }
}

export function describeReady(r: Ready): string {
  const parts: string[] = [];
  if (r.hardState !== null) parts.push(`hs=${r.hardState.term}/${r.hardState.vote ?? '-'}/${r.hardState.commit}`);
  if (r.snapshot !== null) parts.push(`snapshot=${r.snapshot.meta.index}/${r.snapshot.meta.term}(${r.logAfterSnapshot})`);
  if (r.entries.length > 0) parts.push(`entries=${describeEntries(r.entries)}`);
  if (r.committedEntries.length > 0) parts.push(`apply=${describeEntries(r.committedEntries)}`);
  const sends = r.messagesBeforePersist.length + r.messages.length;
  if (sends > 0) parts.push(`msgs=${r.messagesBeforePersist.length}+${r.messages.length}`);
  if (r.readStates.length > 0) parts.push(`reads=${r.readStates.map((s) => `${s.readId}@${s.index}`).join(',')}`);
  if (r.readFailures.length > 0) parts.push(`readfail=${r.readFailures.map((s) => `${s.readId}:${s.reason}`).join(',')}`);
  return parts.length === 0 ? 'ready{}' : `ready{${parts.join(' ')}}`;
}
