// What a read must wait for before a member serves it from its applied state, shared by the
// HTTP API and the binary protocol (the levels are documented in docs/replication.md).
import { KvError } from '../kv/errors.ts';
import { ChorusError } from '../shared/errors.ts';
import type { MemberService } from '../node/service.ts';

export type Consistency = 'linearizable' | 'lease' | 'stale';

export interface ReadOptions {
  readonly consistency: Consistency;
  readonly maxStalenessMs: number | undefined;
  readonly minRevision: number | undefined;
}

/** The read options from what a request gave (undefined: not given). */
export function readOptions(given: string | undefined, maxStalenessMs: number | undefined, minRevision: number | undefined): ReadOptions {
  if (given !== undefined && given !== 'linearizable' && given !== 'lease' && given !== 'stale') {
    throw new KvError('CHORUS_BAD_REQUEST', 'consistency must be linearizable, lease or stale');
  }
  const local = maxStalenessMs !== undefined || minRevision !== undefined;
  if (local && given !== undefined && given !== 'stale') {
    // Both bound what a member serves from its own state; a linearizable read needs neither.
    throw new KvError('CHORUS_BAD_REQUEST', 'max_staleness_ms and min_revision go with consistency=stale (the default when they are given)');
  }
  return { consistency: given ?? (local ? 'stale' : 'linearizable'), maxStalenessMs, minRevision };
}

/** Waits until this member may serve a read at `options`. */
export async function prepareRead(service: MemberService, options: ReadOptions, deadlineMs: number): Promise<void> {
  if (options.consistency === 'linearizable') return service.readBarrier(deadlineMs, 'quorum');
  if (options.consistency === 'lease') return service.readBarrier(deadlineMs, 'lease');
  if (options.minRevision !== undefined) await service.waitForApplied(options.minRevision, deadlineMs);
  if (options.maxStalenessMs !== undefined) {
    const boundMs = service.stalenessBoundMs();
    if (boundMs > options.maxStalenessMs) {
      throw new ChorusError('CHORUS_TOO_STALE', Number.isFinite(boundMs)
        ? `member ${service.id} can only show its state is at most ${Math.ceil(boundMs)} ms old, more than max_staleness_ms=${options.maxStalenessMs}; nothing was read, try another member or the leader`
        : `member ${service.id} cannot show how stale its state is (no recent attested heartbeat from a leader that it has applied); nothing was read, try another member or the leader`);
    }
  }
}
