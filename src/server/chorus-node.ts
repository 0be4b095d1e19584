// The composition root of a member process: opens the data directory and wires the durable
// stores, the SQLite state machine, the Raft core and the one driver (src/runtime), the member
// and its parts (src/node), the multi-master host (src/mm-node), the observer (src/observe), the
// TCP transport (src/transport) and the HTTP and binary servers (src/api). Nothing below this
// file builds a socket, a timer or a store itself: they reach it through ports.
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Raft } from '../core/raft/raft.ts';
import type { Message } from '../core/raft/types.ts';
import { MultiMasterHost } from '../mm-node/host.ts';
import { MultiMasterStore } from '../mm-node/store.ts';
import { registerMultiMasterMetrics } from '../mm-node/metrics.ts';
import type { WireMessage } from '../transport/types.ts';
import type { ApplyResult } from '../kv/sqlite-state-machine.ts';
import { NodeObserver } from '../observe/observer.ts';
import { TcpTransport } from '../transport/tcp-transport.ts';
import { registerObserveRoutes } from '../api/observe-routes.ts';
import { createApiServer } from '../api/server.ts';
import { BINARY_SERVER_DEFAULTS, BinaryServer } from '../api/binary-server.ts';
import { Driver, DRIVER_DEFAULTS } from '../runtime/driver.ts';
import type { TestFaults } from '../shared/api-types.ts';
import { ChorusError } from '../shared/errors.ts';
import { createJsonLogger, transportLogger } from '../shared/logger.ts';
import type { Logger } from '../shared/logger.ts';
import { IMAGES_DIR, isPositionOnly, openStorage } from '../node/boot.ts';
import type { OpenedStorage } from '../node/boot.ts';
import { formatHostPort, parseHostPort, resolveConfig } from '../node/config.ts';
import type { ChorusNodeConfig, HostPort, ResolvedConfig } from '../node/config.ts';
import { Member } from '../node/member.ts';
import { cryptoRandom, eventLoopScheduler, processClock, sqliteStateMachinePort } from '../node/member-ports.ts';
import { timeoutError } from '../node/proposals.ts';
import type { KeyspaceService, MemberService } from '../node/service.ts';

/** A running member process: `await ChorusNode.start(config)`, `await node.stop()`. It serves
 * the member's API (MemberService) by handing each call to the member. */
export class ChorusNode implements MemberService, KeyspaceService {
  private transport: TcpTransport | null = null;
  private api: FastifyInstance | null = null;
  private binary: BinaryServer | null = null;
  private boundBinary: HostPort | null = null;
  private boundClient: HostPort | null = null;
  private advertised: string | null = null;
  private stopping: Promise<void> | null = null;
  // ---- test faults
  private dropFrom: ReadonlySet<string> = new Set();
  private isolatedNow = false;
  /** When the first chunk of the image being received arrived (null: none is being received). */
  private imageReceiveStartedMs: number | null = null;
  readonly member: Member;
  readonly observer: NodeObserver;
  readonly mm: MultiMasterHost;

  private constructor(
    readonly config: ResolvedConfig,
    readonly logger: Logger,
    private readonly storage: OpenedStorage,
    private readonly mmStore: MultiMasterStore,
    private readonly onFatal: ((error: Error) => void) | undefined,
  ) {
    const clock = processClock;
    this.mm = new MultiMasterHost({
      self: config.id,
      store: mmStore,
      send: (m) => this.transport?.send(m),
      wallClockMs: () => Date.now(),
      monotonicMs: () => clock.nowMs(),
      random: Math.random,
      logger: logger.child({ component: 'multi-master' }),
      onFatal: (error) => this.driver.fail(error),
      tuning: config.multiMaster,
      replicaOptions: { keyBytesMax: config.limits.keyBytesMax, valueBytesMax: config.limits.valueBytesMax, recordBytesMax: config.mmRecordBytesMax },
    });
    const raft = new Raft(
      {
        id: config.id,
        random: cryptoRandom,
        electionTicks: config.electionTicks,
        heartbeatTicks: config.heartbeatTicks,
        preVote: true,
        checkQuorum: true,
        leaseTicks: config.leaseTicks,
      },
      {
        // A joining member knows nothing of the configuration: it learns it from the leader's
        // image or log, and never campaigns before.
        initialConfig: config.join ? { voters: [], learners: [] } : { voters: [...config.initialCluster.keys()], learners: [] },
        hardState: storage.hardState,
        // A compaction's snapshot has no image: images are made when a follower needs one.
        ...(storage.snapshot !== null && isPositionOnly(storage.snapshot) ? { snapshotMeta: storage.snapshot.meta } : { snapshot: storage.snapshot }),
        entries: storage.entries,
      },
    );
    this.observer = new NodeObserver({
      memberId: config.id,
      clusterId: config.clusterId,
      config: config.observe,
      logger,
      proposalsPendingMax: config.proposalsPendingMax,
      readsPendingMax: config.readsPendingMax,
      source: {
        clusterView: () => this.member.clusterView(),
        pending: () => ({ proposals: this.member.proposals.pending, reads: this.member.reads.pending }),
        transportStats: () => this.transport?.stats() ?? null,
        multiMasterPeers: () => this.mm.stats().flatMap((ks) => ks.peers.map((p) => ({ id: p.peer, keyspace: ks.name, unreachableSeconds: p.suspected ? p.silentMs / 1000 : 0 }))),
      },
    });
    registerMultiMasterMetrics(this.observer.metrics.registry, () => this.mm.stats());
    const driver: Driver<ApplyResult> = new Driver<ApplyResult>(
      raft,
      {
        log: storage.logStore,
        stable: storage.stableStore,
        snapshots: storage.snapshotStore,
        stateMachine: sqliteStateMachinePort(storage.stateMachine, join(config.dataDir, IMAGES_DIR)),
        transport: { send: (m: Message) => this.transport?.send(m) ?? false, flush: () => this.transport?.flush() },
        clock,
        scheduler: eventLoopScheduler,
        random: cryptoRandom,
      },
      {
        fatal: (error) => this.fatal(error),
        applied: (entries, results, committedAtMs) => this.member.applied(entries, results, committedAtMs),
        readStates: (states, failures) => this.member.reads.confirmed(states, failures),
        beforeReady: () => this.member.beforeReady(),
        advanced: () => this.member.advanced(),
        ticked: (now) => this.member.ticked(now),
        readyTaken: (ready) => this.member.views.appending(ready.entries, clock.nowMs()),
        sentBeforePersist: (messages, now) => {
          this.observer.noteMessagesSent(messages);
          this.member.views.sent(messages, now);
        },
        logSynced: (entries, durationMs) => this.observer.noteWalSynced(entries, durationMs),
        imageRestored: (meta, bytes) => this.member.imageInstalled(meta.index, bytes),
        imageInstalled: (meta, bytes, timing) => {
          const startedMs = this.imageReceiveStartedMs;
          this.imageReceiveStartedMs = null;
          this.logger.info('snapshot-installed', {
            snapshotIndex: meta.index, appliedIndex: this.storage.stateMachine.appliedIndex(), bytes,
            receiveMs: startedMs === null ? 0 : Math.round(clock.nowMs() - timing.restoreMs - timing.saveMs - startedMs),
            restoreMs: Math.round(timing.restoreMs), saveMs: Math.round(timing.saveMs),
          });
        },
        compacted: (meta, logFirstIndex, durationMs) => {
          this.member.snapshotsTaken++;
          this.observer.noteSnapshotTaken(meta.index);
          this.logger.info('snapshot-taken', { snapshotIndex: meta.index, term: meta.term, logFirstIndex, durationMs: Math.round(durationMs) });
        },
        imageOffered: (image, durationMs) => {
          this.observer.noteSnapshotImage(image.index, image.bytes.byteLength);
          this.logger.info('snapshot-image', { imageIndex: image.index, bytes: image.bytes.byteLength, durationMs: Math.round(durationMs) });
        },
        imageDiscarded: (image, reason) => {
          const log = raft.log;
          this.logger.info('snapshot-image-discarded', { imageIndex: image.index, appliedIndex: log.applied, logFirstIndex: log.firstIndex(), reason });
        },
        imageFailed: (error) => this.logger.warn('snapshot-image-failed', { error }),
      },
      { tickMs: config.tickMs, electionTicks: config.electionTicks, snapshotEntries: config.snapshotEntries, walKeepEntries: config.walKeepEntries, ...DRIVER_DEFAULTS },
      storage.hardState,
    );
    this.member = new Member(config, logger, raft, driver, storage.stateMachine, this.observer, clock, this.mm, {
      peerAddressChanged: (id, address) => {
        if (this.transport === null) return;
        if (address === null) this.transport.removePeer(id);
        else this.transport.setPeer(id, parseHostPort(address, `address of ${id}`));
      },
      peerClientAddress: (id) => this.transport?.peerClientAddress(id) ?? null,
      peerConnected: (id) => this.transport?.stats().peers[id]?.connected ?? false,
      advertisedClient: () => this.advertised,
      isolated: () => this.isolatedNow,
    });
  }

  private get driver(): Driver<ApplyResult> {
    return this.member.driver;
  }

  get id(): string {
    return this.config.id;
  }

  get limits(): ResolvedConfig['limits'] {
    return this.config.limits;
  }

  get commandBytesMax(): number {
    return this.config.commandBytesMax;
  }

  /** Opens the data directory, recovers, and starts serving (HTTP, then the peer transport). */
  static async start(input: ChorusNodeConfig): Promise<ChorusNode> {
    const config = resolveConfig(input);
    const logger = input.logger ?? createJsonLogger({ level: config.logLevel, base: { member: config.id } });
    const storage = await openStorage({ dataDir: config.dataDir, id: config.id, clusterId: config.clusterId, limits: config.limits, logger });
    let mmStore: MultiMasterStore;
    try {
      mmStore = MultiMasterStore.open(join(config.dataDir, 'mm.db'));
    } catch (error) {
      await closeStorage(storage);
      throw error;
    }
    let node: ChorusNode;
    try {
      node = new ChorusNode(config, logger, storage, mmStore, input.onFatal);
    } catch (error) {
      await closeStorage(storage);
      mmStore.close();
      throw new ChorusError('CHORUS_RECOVERY_FAILED', `the stored Raft state is inconsistent: ${(error as Error).message}`, { cause: error });
    }
    try {
      await node.startServing();
    } catch (error) {
      await node.stop();
      throw error;
    }
    return node;
  }

  private async startServing(): Promise<void> {
    const config = this.config;
    const api = createApiServer(this, {
      requestTimeoutMs: config.requestTimeoutMs,
      forwardHopsMax: config.forwardHopsMax,
      forwardsPendingMax: config.forwardsPendingMax,
      txnBodyBytesMax: config.txnBodyBytesMax,
      enableTestFaults: config.enableTestFaults,
      logger: this.logger,
    });
    this.api = api;
    registerObserveRoutes(api, {
      observer: this.observer,
      memberId: this.id,
      peers: () => this.member.clusterView().members.map((m) => ({ id: m.id, clientAddress: m.clientAddress })),
      leader: () => this.member.leader(),
    });
    await api.listen({ host: config.listenClient.host, port: config.listenClient.port });
    const address = api.server.address();
    if (address === null || typeof address === 'string') throw new ChorusError('CHORUS_INTERNAL', 'the HTTP server has no TCP address');
    this.boundClient = { host: address.address, port: address.port };
    this.advertised = config.advertiseClient ?? defaultAdvertisedClient(this.boundClient, config.initialCluster.get(config.id));
    if (config.listenBinary !== null) {
      const binary = new BinaryServer(this, {
        ...BINARY_SERVER_DEFAULTS,
        requestTimeoutMs: config.requestTimeoutMs,
        forwardsPendingMax: config.forwardsPendingMax,
        logger: this.logger,
      });
      this.binary = binary;
      this.boundBinary = await binary.listen(config.listenBinary.host, config.listenBinary.port);
    }

    const peers = new Map<string, HostPort>();
    for (const [id, peer] of config.initialCluster) if (id !== config.id) peers.set(id, peer);
    // Addresses recorded through the log win over the initial cluster (null: removed).
    for (const [id, peer] of this.member.recordedAddresses()) {
      if (id === config.id) continue;
      if (peer === null) peers.delete(id);
      else peers.set(id, parseHostPort(peer, `address of ${id}`));
    }
    const transport = await TcpTransport.start({
      clusterId: config.clusterId,
      selfId: config.id,
      listen: config.listenPeer,
      peers,
      frameBytesMax: config.frameBytesMax,
      clientAddress: this.advertised,
      logger: transportLogger(this.logger),
    });
    this.transport = transport;
    transport.onMessage((m) => this.onMessage(m));
    for (const def of this.storage.stateMachine.keyspaces()) this.mm.ensure(def);
    this.mm.start();
    this.member.state = 'running';
    const status = this.member.raft.status();
    this.logger.info('member-started', {
      clusterId: config.clusterId,
      clientAddress: this.advertised,
      ...(this.boundBinary === null ? {} : { binaryAddress: formatHostPort(this.boundBinary) }),
      peerAddress: formatHostPort(config.listenPeer),
      term: status.term,
      commitIndex: status.commitIndex,
      lastIndex: status.lastIndex,
      snapshotIndex: status.snapshotIndex,
      appliedIndex: this.storage.stateMachine.appliedIndex(),
      voters: status.config.voters,
    });
    this.observer.start({ term: status.term, commitIndex: status.commitIndex, clientAddress: this.advertised });
    this.driver.start();
  }

  private onMessage(m: WireMessage): void {
    if (this.member.state !== 'running') return;
    if (this.isolatedNow || this.dropFrom.has(m.from)) return;
    if (m.type === 'MultiMaster') {
      this.mm.onMessage(m);
      return;
    }
    this.driver.step(m);
    const now = processClock.nowMs();
    // When the first chunk of an image arrived: 'snapshot-installed' reports the receive time.
    if (m.type === 'Snapshot' && m.offset === 0 && this.imageReceiveStartedMs === null) this.imageReceiveStartedMs = now;
    this.member.views.received(m, now);
  }

  /** The bound HTTP address (the actual port when 0 was asked for). */
  get clientAddress(): string {
    if (this.boundClient === null) throw new ChorusError('CHORUS_INTERNAL', 'not started');
    return formatHostPort(this.boundClient);
  }

  /** The bound address of the binary client protocol, or null when it is off. */
  get binaryAddress(): string | null {
    return this.boundBinary === null ? null : formatHostPort(this.boundBinary);
  }

  get clientUrl(): string {
    return `http://${this.clientAddress}`;
  }

  /** The Fastify instance (for inject() in tests). */
  get http(): FastifyInstance {
    if (this.api === null) throw new ChorusError('CHORUS_INTERNAL', 'not started');
    return this.api;
  }

  get keyspaceService(): KeyspaceService {
    return this;
  }

  nowMs(): number {
    return processClock.nowMs();
  }

  // ------------------------------------------------------------------ the member's API

  propose: Member['propose'] = (command, deadlineMs, options) => this.member.propose(command, deadlineMs, options);
  readBarrier: Member['readBarrier'] = (deadlineMs, mode) => this.member.readBarrier(deadlineMs, mode);
  waitForApplied: Member['waitForApplied'] = (index, deadlineMs) => this.member.waitForApplied(index, deadlineMs);
  stalenessBoundMs: Member['stalenessBoundMs'] = () => this.member.stalenessBoundMs();
  replicaHealth: Member['replicaHealth'] = () => this.member.replicaHealth();
  replicationConfig: Member['replicationConfig'] = () => this.member.replicationConfig();
  setReplicationConfig: Member['setReplicationConfig'] = (patch, deadlineMs) => this.member.setReplicationConfig(patch, deadlineMs);
  addMember: Member['addMember'] = (request, deadlineMs) => this.member.addMember(request, deadlineMs);
  promoteMember: Member['promoteMember'] = (id, deadlineMs) => this.member.promoteMember(id, deadlineMs);
  removeMember: Member['removeMember'] = (id, deadlineMs) => this.member.removeMember(id, deadlineMs);
  switchover: Member['switchover'] = (to, deadlineMs) => this.member.switchover(to, deadlineMs);
  readiness: Member['readiness'] = () => this.member.readiness();
  get: Member['get'] = (key) => this.member.get(key);
  range: Member['range'] = (options) => this.member.range(options);
  leader: Member['leader'] = () => this.member.leader();
  clusterView: Member['clusterView'] = () => this.member.clusterView();
  keyspaces: Member['keyspaces'] = () => this.member.keyspaces();
  keyspace: Member['keyspace'] = (name) => this.member.keyspace(name);
  createKeyspace: Member['createKeyspace'] = (request, deadlineMs) => this.member.createKeyspace(request, deadlineMs);
  mmWrite: Member['mmWrite'] = (keyspace, key, write, w, deadlineMs) => this.member.mmWrite(keyspace, key, write, w, deadlineMs);
  mmRead: Member['mmRead'] = (keyspace, key) => this.member.mmRead(keyspace, key);
  mmList: Member['mmList'] = (keyspace, prefix, limit) => this.member.mmList(keyspace, prefix, limit);

  /** Test-only network faults (the API exposes them with enableTestFaults). */
  setTestFaults(faults: TestFaults): void {
    const dropTo = new Set(faults.dropTo ?? []);
    this.dropFrom = new Set(faults.dropFrom ?? []);
    this.isolatedNow = faults.isolate === true;
    const isolated = this.isolatedNow;
    this.transport?.setFaults(isolated || dropTo.size > 0 ? { drop: (m) => isolated || dropTo.has(m.to) } : {});
    this.logger.warn('test-faults', { isolate: isolated, dropTo: [...dropTo], dropFrom: [...this.dropFrom] });
  }

  /** A snapshot of counters for tests and diagnostics. */
  debugState(): {
    proposalsPending: number; readsPending: number; role: string; term: number; leaderId: string | null;
    commitIndex: number; appliedIndex: number; snapshotIndex: number; snapshotsTaken: number; snapshotsInstalled: number;
  } {
    const raft = this.member.raft;
    return {
      snapshotsTaken: this.member.snapshotsTaken,
      snapshotsInstalled: this.member.snapshotsInstalled,
      proposalsPending: this.member.proposals.pending,
      readsPending: this.member.reads.pending,
      role: raft.currentRole(),
      term: raft.currentTerm(),
      leaderId: raft.currentLeader(),
      commitIndex: raft.log.committed,
      appliedIndex: this.storage.stateMachine.appliedIndex(),
      snapshotIndex: raft.log.snapshotIndex(),
    };
  }

  private fatal(error: Error): void {
    const state = this.member.state;
    if (state === 'failed' || state === 'stopped') return;
    this.driver.fail(error);
    this.logger.error('fatal', { code: 'CHORUS_FATAL', error, cause: (error as { code?: unknown }).code });
    this.member.failed();
    this.onFatal?.(error);
  }

  /** Stops serving: new requests are refused, waiting ones answered (writes: outcome unknown),
   * the in-flight ready finishes, then the transport, HTTP server and stores close. */
  stop(): Promise<void> {
    if (this.stopping === null) this.stopping = this.stopInner();
    return this.stopping;
  }

  private async stopInner(): Promise<void> {
    const failed = this.member.state === 'failed';
    if (!failed) this.member.state = 'stopping';
    // No more rule evaluations (they read the stores); webhook deliveries still queued are dropped.
    const observerStopped = this.observer.stop();
    this.member.failWaiting(() => timeoutError('the member is stopping'), () => new ChorusError('CHORUS_STOPPING', 'the member is stopping'));
    const closeApi = this.api?.close().catch((error: unknown) => this.logger.warn('http-close-failed', { error }));
    const closeBinary = this.binary?.close().catch((error: unknown) => this.logger.warn('binary-close-failed', { error }));
    await new Promise<void>((resolve) => this.driver.stop(resolve));
    this.mm.stop();
    await this.transport?.close();
    await closeApi;
    await closeBinary;
    await observerStopped;
    const unsaved = this.driver.hardStateToSave;
    if (!failed && unsaved !== null) {
      try {
        await this.storage.stableStore.save(unsaved);
      } catch (error) {
        this.logger.warn('hard-state-save-failed', { error });
      }
    }
    this.driver.releaseAllImages();
    for (const error of await closeStorage(this.storage)) this.logger.warn('store-close-failed', { error });
    try {
      this.mmStore.close();
    } catch (error) {
      this.logger.warn('store-close-failed', { error });
    }
    if (!failed) this.member.state = 'stopped';
    this.logger.info('member-stopped', {});
  }
}

/** The client address other members are told: the bound one, except that a wildcard host
 * (0.0.0.0, ::) is replaced by this member's host in the initial cluster, which peers can reach. */
function defaultAdvertisedClient(bound: HostPort, peer: HostPort | undefined): string {
  const wildcard = bound.host === '0.0.0.0' || bound.host === '::' || bound.host === '';
  return formatHostPort(wildcard && peer !== undefined ? { host: peer.host, port: bound.port } : bound);
}

/** Closes every store; returns the failures (a store that already failed may refuse to close). */
async function closeStorage(storage: OpenedStorage): Promise<unknown[]> {
  const results = await Promise.allSettled([storage.logStore.close(), storage.stableStore.close(), storage.snapshotStore.close()]);
  const failures: unknown[] = results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason);
  try {
    storage.stateMachine.close();
  } catch (error) {
    failures.push(error);
  }
  return failures;
}
