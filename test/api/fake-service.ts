// A MemberService without Raft for the API tests: writes apply at once to an in-memory SQLite
// state machine (real results, real validation), and every behaviour can be overridden.
import { performance } from 'node:perf_hooks';
import type { TestContext } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createApiServer } from '../../src/api/server.ts';
import type { ApiOptions } from '../../src/api/server.ts';
import type { MemberService } from '../../src/node/service.ts';
import type { ReadMode, ReplicationPatch, WriteAck, WriteOptions } from '../../src/shared/operations.ts';
import type { ClusterView, MemberChangeJson, Readiness, ReplicaHealth, ReplicationConfigJson, SwitchoverJson, TestFaults } from '../../src/shared/api-types.ts';
import { encodeCommand, resolveLimits } from '../../src/kv/commands.ts';
import type { Command, KvLimits } from '../../src/kv/commands.ts';
import { SqliteStateMachine } from '../../src/kv/sqlite-state-machine.ts';
import type { ApplyResult, KvRecord, RangeOptions, RangeResult } from '../../src/kv/sqlite-state-machine.ts';
import { ChorusError, NotLeaderError } from '../../src/shared/errors.ts';

export class FakeService implements MemberService {
  readonly id: string;
  readonly limits: KvLimits;
  readonly commandBytesMax = 256 * 1024;
  readonly sm = SqliteStateMachine.open(':memory:');
  private index = 0;
  /** null: this member leads. Otherwise the leader's id (or null inside) for NotLeaderError. */
  notLeader: { leaderId: string | null } | null = null;
  leaderAddress: string | null = null;
  barrierCalls = 0;
  proposeCalls = 0;
  faults: TestFaults | null = null;
  /** Overrides propose (after the not-leader check). */
  proposeHook: ((command: Command) => Promise<ApplyResult>) | null = null;
  barrierHook: (() => Promise<void>) | null = null;
  readinessValue: Readiness = { ready: true, leaderId: 'n1', commitIndex: 0, appliedIndex: 0 };
  /** The options of every propose call, in order. */
  readonly proposeOptions: WriteOptions[] = [];
  /** The modes of every readBarrier call, in order. */
  readonly barrierModes: ReadMode[] = [];
  /** min_revision waits: resolve when the revision is at most `appliedIndex`, else reject. */
  appliedIndex = 0;
  readonly appliedWaits: number[] = [];
  stalenessMs = 0;
  health: ReplicaHealth = { id: 'n1', role: 'leader', leaderId: 'n1', lagEntries: null };
  replication: ReplicationConfigJson = { synchronous_commit: 'on', synchronous_standby_names: '', source: 'config', revision: 0 };
  /** Every admin call, as "name arg...". */
  readonly adminCalls: string[] = [];
  /** Overrides the admin operations (after the not-leader check). */
  adminHook: ((call: string) => Promise<unknown>) | null = null;

  constructor(id = 'n1', limits: Partial<KvLimits> = { valueBytesMax: 1024 }) {
    this.id = id;
    this.limits = resolveLimits(limits);
  }

  nowMs(): number {
    return performance.now();
  }

  async propose(command: Command, _deadlineMs: number, options: WriteOptions = {}): Promise<WriteAck> {
    this.proposeCalls++;
    this.proposeOptions.push(options);
    if (this.notLeader !== null) throw new NotLeaderError(this.notLeader.leaderId);
    if (this.proposeHook !== null) return { committed: true, result: await this.proposeHook(command) };
    this.index++;
    const [result] = this.sm.applyBatch([{ index: this.index, type: 'normal', data: encodeCommand(command) }]);
    if (result === undefined) throw new Error('no result');
    if (result.kind === 'error') throw new ChorusError(result.code, result.message);
    if (options.level === 'off' || options.level === 'local') return { committed: false, revision: this.index };
    return { committed: true, result };
  }

  async readBarrier(_deadlineMs: number, mode: ReadMode = 'quorum'): Promise<void> {
    this.barrierCalls++;
    this.barrierModes.push(mode);
    if (this.barrierHook !== null) await this.barrierHook();
  }

  async waitForApplied(index: number): Promise<void> {
    this.appliedWaits.push(index);
    if (index > this.appliedIndex) throw new ChorusError('CHORUS_TIMEOUT', `revision ${index} was not applied in time`);
  }

  stalenessBoundMs(): number {
    return this.stalenessMs;
  }

  replicaHealth(): ReplicaHealth {
    return this.health;
  }

  replicationConfig(): ReplicationConfigJson {
    return this.replication;
  }

  private async admin<T>(call: string, fallback: () => T): Promise<T> {
    this.adminCalls.push(call);
    if (this.notLeader !== null) throw new NotLeaderError(this.notLeader.leaderId);
    if (this.adminHook !== null) return (await this.adminHook(call)) as T;
    return fallback();
  }

  async setReplicationConfig(patch: ReplicationPatch): Promise<ReplicationConfigJson> {
    return this.admin(`replication ${patch.synchronousCommit ?? '-'} ${patch.synchronousStandbyNames ?? '-'}`, () => {
      this.replication = {
        synchronous_commit: patch.synchronousCommit ?? this.replication.synchronous_commit,
        synchronous_standby_names: patch.synchronousStandbyNames ?? this.replication.synchronous_standby_names,
        source: 'replicated',
        revision: ++this.index,
      };
      return this.replication;
    });
  }

  async addMember(request: { id: string; peerAddress: string; learner: boolean }): Promise<MemberChangeJson> {
    return this.admin(`add ${request.id} ${request.peerAddress} ${String(request.learner)}`, () => (
      { id: request.id, peerAddress: request.peerAddress, role: request.learner ? 'learner' : 'voter', revision: ++this.index, commitIndex: this.index }
    ));
  }

  async promoteMember(id: string): Promise<MemberChangeJson> {
    return this.admin(`promote ${id}`, () => ({ id, peerAddress: null, role: 'voter', revision: ++this.index, commitIndex: this.index }));
  }

  async removeMember(id: string): Promise<MemberChangeJson> {
    return this.admin(`remove ${id}`, () => ({ id, peerAddress: null, role: 'removed', revision: ++this.index, commitIndex: this.index }));
  }

  async switchover(to: string | null): Promise<SwitchoverJson> {
    return this.admin(`switchover ${to ?? '(any)'}`, () => ({ previousLeaderId: this.id, leaderId: to ?? 'n2', term: 4 }));
  }

  get(key: string): KvRecord | undefined {
    return this.sm.get(key);
  }

  range(options: RangeOptions): RangeResult {
    return this.sm.range(options);
  }

  leader(): { leaderId: string | null; clientAddress: string | null } {
    if (this.notLeader === null) return { leaderId: this.id, clientAddress: this.leaderAddress };
    return { leaderId: this.notLeader.leaderId, clientAddress: this.leaderAddress };
  }

  clusterView(): ClusterView {
    const leads = this.notLeader === null;
    return {
      clusterId: 'c1',
      term: 3,
      leaderId: leads ? this.id : this.notLeader!.leaderId,
      self: { id: this.id, role: leads ? 'leader' : 'follower', commitIndex: this.index, appliedIndex: this.index, lastIndex: this.index, snapshotIndex: 0, clientAddress: null, peerAddress: null },
      members: [{
        id: this.id, peerAddress: null, clientAddress: null, role: leads ? 'leader' : 'follower', voter: true, reachable: true,
        matchIndex: leads ? this.index : null, appliedIndex: leads ? this.index : null, lagEntries: leads ? 0 : null,
        lagBytes: leads ? 0 : null, lagSeconds: leads ? 0 : null, progressing: leads ? true : null, canLead: leads ? true : null, whyNot: null,
      }],
      membersSource: leads ? 'leader' : 'local',
      replication: { ...this.replication, standbys: [], satisfiable: leads ? true : null },
    };
  }

  readiness(): Readiness {
    return this.readinessValue;
  }

  setTestFaults(faults: TestFaults): void {
    this.faults = faults;
  }
}

export const API_OPTIONS: ApiOptions = {
  requestTimeoutMs: 2000,
  forwardHopsMax: 2,
  forwardsPendingMax: 8,
  txnBodyBytesMax: 8 * 1024,
};

/** An API server on a fake member, closed when the test ends. */
export function apiFor(t: TestContext, service: FakeService, options: Partial<ApiOptions> = {}): FastifyInstance {
  const app = createApiServer(service, { ...API_OPTIONS, ...options });
  t.after(() => app.close());
  return app;
}

/** The same, listening on 127.0.0.1; returns its "host:port". */
export async function listening(t: TestContext, service: FakeService, options: Partial<ApiOptions> = {}): Promise<{ app: FastifyInstance; address: string }> {
  const app = apiFor(t, service, options);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  return { app, address: `127.0.0.1:${address.port}` };
}
