// What the parts of a member share: its identity and configuration, the core (through the one
// driver), the state machine, the observer, and the replicated settings in force.
import type { Raft } from '../core/raft/raft.ts';
import type { ApplyResult, SqliteStateMachine } from '../kv/sqlite-state-machine.ts';
import type { NodeObserver } from '../observe/observer.ts';
import type { Clock } from '../ports/index.ts';
import type { Driver } from '../runtime/driver.ts';
import type { ResolvedConfig } from './config.ts';
import type { Logger } from '../shared/logger.ts';
import type { ReplicationState } from './replication.ts';

export interface MemberContext {
  readonly id: string;
  readonly config: ResolvedConfig;
  readonly logger: Logger;
  readonly raft: Raft;
  readonly driver: Driver<ApplyResult>;
  readonly stateMachine: SqliteStateMachine;
  readonly observer: NodeObserver;
  readonly clock: Clock;
  /** The replication settings in force (they change when a replicated value applies). */
  replication(): ReplicationState;
}
