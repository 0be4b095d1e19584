// A small RESP2 client (the Redis protocol) over node:net, for the bench's Redis side: the load
// generator (bench/load.ts) drives it like HttpEndpoints, one request in flight per connection
// and one connection per worker, no pipelining, Nagle off; so Redis is timed exactly as Chorus
// and etcd are. Only what the bench sends is needed: commands as arrays of bulk strings, and
// the five reply types.
import net from 'node:net';
import { RequestFailure } from './load.ts';
import type { LoadTarget } from './load.ts';

/** A "-ERR ..." reply: an answer, not a failure to answer (the load generator counts it by code). */
export class RespError {
  constructor(readonly message: string) {}

  /** The first word: ERR, READONLY, LOADING, ... */
  get code(): string {
    return this.message.split(' ', 1)[0] ?? '';
  }
}

export type RespValue = string | number | Buffer | null | RespError | readonly RespValue[];

export interface RespRequest {
  /** Index into the addresses the requests are sent to. */
  readonly endpoint: number;
  /** The command and its arguments, e.g. ['SET', key, value]. */
  readonly args: readonly (string | Buffer)[];
}

export interface RespAddress {
  readonly host: string;
  readonly port: number;
}

const CRLF = Buffer.from('\r\n', 'latin1');

/** `*N\r\n` then each argument as `$LEN\r\nBYTES\r\n`. */
export function encodeCommand(args: readonly (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`, 'latin1')];
  for (const arg of args) {
    const bytes = typeof arg === 'string' ? Buffer.from(arg, 'utf8') : arg;
    parts.push(Buffer.from(`$${bytes.length}\r\n`, 'latin1'), bytes, CRLF);
  }
  return Buffer.concat(parts);
}

/** One reply starting at `offset`, and where it ends; null while it is incomplete. */
export function parseReply(buffer: Buffer, offset = 0): { readonly value: RespValue; readonly end: number } | null {
  const lineEnd = buffer.indexOf(CRLF, offset + 1);
  if (offset >= buffer.length || lineEnd < 0) return null;
  const line = buffer.toString('utf8', offset + 1, lineEnd);
  const next = lineEnd + 2;
  switch (String.fromCharCode(buffer[offset]!)) {
    case '+':
      return { value: line, end: next };
    case '-':
      return { value: new RespError(line), end: next };
    case ':':
      return { value: Number(line), end: next };
    case '$': {
      const length = Number(line);
      if (length < 0) return { value: null, end: next };
      if (buffer.length < next + length + 2) return null;
      return { value: Buffer.from(buffer.subarray(next, next + length)), end: next + length + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, end: next };
      const items: RespValue[] = [];
      let end = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buffer, end);
        if (item === null) return null;
        items.push(item.value);
        end = item.end;
      }
      return { value: items, end };
    }
    default:
      throw new Error(`not a RESP reply: ${JSON.stringify(buffer.toString('latin1', offset, Math.min(buffer.length, offset + 20)))}`);
  }
}

/** One connection with at most one request in flight. Once broken it stays broken. */
class RespConnection {
  private readonly socket: net.Socket;
  private received: Buffer | null = null;
  private waiting: { resolve: (value: RespValue) => void; reject: (error: Error) => void } | null = null;
  private broken: RequestFailure | null = null;

  constructor(address: RespAddress) {
    // Writes made before the connection is up are queued by the socket.
    this.socket = net.connect({ host: address.host, port: address.port, noDelay: true });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (error: NodeJS.ErrnoException) => this.fail(new RequestFailure(error.code ?? 'ERROR', error.message)));
    this.socket.on('close', () => this.fail(new RequestFailure('ECONNRESET', 'the server closed the connection')));
  }

  get usable(): boolean {
    return this.broken === null;
  }

  request(command: Buffer): Promise<RespValue> {
    if (this.broken !== null) return Promise.reject(this.broken);
    if (this.waiting !== null) return Promise.reject(new Error('a RESP connection carries one request at a time'));
    return new Promise<RespValue>((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.socket.write(command);
    });
  }

  fail(failure: RequestFailure): void {
    if (this.broken === null) this.broken = failure;
    const waiting = this.waiting;
    this.waiting = null;
    waiting?.reject(this.broken);
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.received = this.received === null ? chunk : Buffer.concat([this.received, chunk]);
    let reply;
    try {
      reply = parseReply(this.received);
    } catch (error) {
      this.fail(new RequestFailure('PROTOCOL', (error as Error).message));
      return;
    }
    if (reply === null) return;
    this.received = reply.end === this.received.length ? null : this.received.subarray(reply.end);
    const waiting = this.waiting;
    this.waiting = null;
    if (waiting === null || this.received !== null) {
      this.fail(new RequestFailure('PROTOCOL', 'a reply that no request asked for'));
      return;
    }
    waiting.resolve(reply.value);
  }
}

/** Connection pools to a fixed list of Redis servers: a request takes an idle connection or
 * opens one, and gives it back once answered (so N workers use N connections). */
export class RespEndpoints implements LoadTarget<RespRequest, RespValue> {
  private readonly idle: RespConnection[][];
  private readonly open = new Set<RespConnection>();

  constructor(readonly addresses: readonly RespAddress[]) {
    if (addresses.length === 0) throw new Error('at least one endpoint is needed');
    this.idle = addresses.map(() => []);
  }

  async send(spec: RespRequest, timeoutMs: number): Promise<RespValue> {
    const address = this.addresses[spec.endpoint];
    const idle = this.idle[spec.endpoint];
    if (address === undefined || idle === undefined) throw new Error(`no endpoint ${spec.endpoint}`);
    let connection = idle.pop();
    // A connection can break while idle (the server closed it): drop it, take the next.
    while (connection !== undefined && !connection.usable) {
      this.open.delete(connection);
      connection = idle.pop();
    }
    if (connection === undefined) {
      connection = new RespConnection(address);
      this.open.add(connection);
    }
    const used = connection;
    const timer = setTimeout(() => used.fail(new RequestFailure('TIMEOUT', `no answer within ${timeoutMs} ms`)), timeoutMs);
    try {
      const value = await used.request(encodeCommand(spec.args));
      idle.push(used);
      return value;
    } finally {
      clearTimeout(timer);
      if (!used.usable) this.open.delete(used);
    }
  }

  failureKind(answer: RespValue): string {
    return answer instanceof RespError ? `RESP ${answer.code}` : `RESP unexpected ${Buffer.isBuffer(answer) ? 'bulk' : typeof answer} reply`;
  }

  /** A management command (not measured); a "-ERR" reply throws. */
  async call(endpoint: number, args: readonly (string | Buffer)[], timeoutMs = 5000): Promise<RespValue> {
    const value = await this.send({ endpoint, args }, timeoutMs);
    if (value instanceof RespError) throw new Error(`${args[0]?.toString() ?? ''} answered ${value.message}`);
    return value;
  }

  close(): void {
    for (const connection of this.open) connection.fail(new RequestFailure('CLOSED', 'closed by the client'));
    this.open.clear();
    for (const idle of this.idle) idle.length = 0;
  }
}

/** The `field:value` lines of an INFO reply. */
export function parseInfo(reply: RespValue): Map<string, string> {
  if (!Buffer.isBuffer(reply) && typeof reply !== 'string') throw new Error('INFO did not answer a bulk string');
  const fields = new Map<string, string>();
  for (const line of reply.toString().split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}
