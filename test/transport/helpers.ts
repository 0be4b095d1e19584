// Shared fixtures for the transport tests: transports on 127.0.0.1 with ephemeral ports, a
// capturing logger, message factories, raw protocol clients and condition polling.
import { connect, createServer } from 'node:net';
import type { Socket } from 'node:net';
import type { TestContext } from 'node:test';
import type { AppendMessage, Entry, HeartbeatMessage, NodeId, SnapshotChunkMessage } from '../../src/core/raft/types.ts';
import type { WireMessage as Message } from '../../src/transport/types.ts';
import { TcpTransport } from '../../src/transport/tcp-transport.ts';
import { decodePayload, encodeFrame } from '../../src/transport/codec.ts';
import { FrameDecoder } from '../../src/transport/frame-decoder.ts';
import type { LogFields, PeerAddress, TcpTransportOptions, TransportLogger } from '../../src/transport/types.ts';

export const HOST = '127.0.0.1';
export const CLUSTER = 'cluster-test';

export interface LogRecord {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly message: string;
  readonly fields: LogFields;
}

export function capturingLogger(): { logger: TransportLogger; records: LogRecord[] } {
  const records: LogRecord[] = [];
  const at = (level: LogRecord['level']) => (message: string, fields?: LogFields): void => {
    records.push({ level, message, fields: fields ?? {} });
  };
  return { logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }, records };
}

export function hasCode(records: readonly LogRecord[], code: string): boolean {
  return records.some((r) => r.fields['code'] === code);
}

export interface Node {
  readonly id: NodeId;
  readonly transport: TcpTransport;
  readonly inbox: Message[];
  readonly records: LogRecord[];
  readonly address: PeerAddress;
}

type NodeOptions = Partial<Omit<TcpTransportOptions, 'selfId' | 'logger'>>;

/** Starts a transport that records what it receives; closed when the test ends. */
export async function startNode(t: TestContext, id: NodeId, options: NodeOptions = {}): Promise<Node> {
  const { logger, records } = capturingLogger();
  const transport = await TcpTransport.start({
    clusterId: CLUSTER,
    listen: { host: HOST, port: 0 },
    backoffMsMin: 10,
    backoffMsMax: 200,
    ...options,
    selfId: id,
    logger,
  });
  t.after(() => transport.close());
  const inbox: Message[] = [];
  transport.onMessage((m) => inbox.push(m));
  return { id, transport, inbox, records, address: transport.address() };
}

/** Starts nodes that all know each other. */
export async function startCluster(t: TestContext, ids: readonly NodeId[], options: NodeOptions = {}): Promise<Node[]> {
  const nodes: Node[] = [];
  for (const id of ids) nodes.push(await startNode(t, id, options));
  for (const a of nodes) {
    for (const b of nodes) if (a !== b) a.transport.setPeer(b.id, b.address);
  }
  return nodes;
}

export async function waitFor(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await sleep(5);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function connected(node: Node, peer: NodeId): boolean {
  return node.transport.stats().peers[peer]?.connected === true;
}

export function heartbeat(from: NodeId, to: NodeId, seq: number): HeartbeatMessage {
  return { type: 'Heartbeat', from, to, term: 3, seq, sentTick: 1000 + seq, commit: 7, leaderCommit: 9 };
}

export function append(from: NodeId, to: NodeId, seq: number, entries: readonly Entry[]): AppendMessage {
  return { type: 'Append', from, to, term: 3, seq, sentTick: 5, prevIndex: 9, prevTerm: 2, entries, commit: 8 };
}

export function snapshotChunk(from: NodeId, to: NodeId, chunk: Uint8Array): SnapshotChunkMessage {
  return {
    type: 'Snapshot',
    from,
    to,
    term: 4,
    seq: 1,
    sentTick: 2,
    meta: { index: 100, term: 4, config: { voters: ['a', 'b', 'c'], learners: [] } },
    offset: 0,
    totalBytes: chunk.length,
    chunk,
  };
}

/** Deterministic bytes, so corruption would show. */
export function pattern(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i += 1) bytes[i] = (i * 31 + seed * 17) & 0xff;
  return bytes;
}

export function seqsFrom(inbox: readonly Message[], from: NodeId): number[] {
  const seqs: number[] = [];
  for (const m of inbox) if (m.from === from && 'seq' in m) seqs.push(m.seq);
  return seqs;
}

export function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** A port on which nothing listens (bound, then released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen({ host: HOST, port: 0 }, resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A hand-driven client speaking (or abusing) the wire protocol. */
export interface RawClient {
  readonly socket: Socket;
  /** Decoded frames received from the transport. */
  readonly frames: unknown[];
  readonly closed: Promise<void>;
  isClosed(): boolean;
  sendFrame(value: unknown): void;
}

export async function rawConnect(t: TestContext, port: number): Promise<RawClient> {
  const socket = connect({ host: HOST, port });
  t.after(() => {
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.on('error', () => {});
  const frames: unknown[] = [];
  const decoder = new FrameDecoder(1 << 20, (payload) => frames.push(decodePayload(payload)));
  socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  let isClosed = false;
  const closed = new Promise<void>((resolve) => socket.once('close', () => {
    isClosed = true;
    resolve();
  }));
  return {
    socket,
    frames,
    closed,
    isClosed: () => isClosed,
    sendFrame: (value) => socket.write(encodeFrame(value)),
  };
}

export function hello(memberId: NodeId, clusterId = CLUSTER, protocolVersion = 1): unknown {
  return { kind: 'hello', clusterId, memberId, protocolVersion };
}

/** A raw client that has completed the handshake as `memberId`. */
export async function rawMember(t: TestContext, port: number, memberId: NodeId): Promise<RawClient> {
  const client = await rawConnect(t, port);
  client.sendFrame(hello(memberId));
  await waitFor(() => client.frames.length > 0, 'welcome');
  const reply = client.frames[0] as { kind?: unknown };
  if (reply.kind !== 'welcome') throw new Error(`expected welcome, got ${JSON.stringify(reply)}`);
  return client;
}

/** Writes a frame header announcing `length` bytes (and nothing else). */
export function header(length: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(length, 0);
  return bytes;
}
