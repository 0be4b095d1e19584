// Rough loopback throughput of small messages, for humans (not run by the test suite):
//   node --import tsx test/transport/throughput.bench.ts [seconds]
// The sender offers batches of messages every turn of the event loop, as a busy leader would,
// and backs off a turn when `send` refuses; the receiver counts deliveries.
import type { Message } from '../../src/core/raft/types.ts';
import { TcpTransport } from '../../src/transport/tcp-transport.ts';

const seconds = Number(process.argv[2] ?? 3);
const host = '127.0.0.1';

async function run(label: string, make: (seq: number) => Message): Promise<void> {
  const b = await TcpTransport.start({ clusterId: 'bench', selfId: 'b', listen: { host, port: 0 } });
  const a = await TcpTransport.start({ clusterId: 'bench', selfId: 'a', listen: { host, port: 0 }, peers: new Map([['b', b.address()]]) });
  let received = 0;
  b.onMessage(() => {
    received += 1;
  });
  while (a.stats().peers['b']?.connected !== true) await new Promise((r) => setTimeout(r, 5));
  const started = performance.now();
  const deadline = started + seconds * 1000;
  let seq = 0;
  let refused = 0;
  while (performance.now() < deadline) {
    for (let i = 0; i < 1000; i += 1) {
      if (a.send(make(seq))) seq += 1;
      else refused += 1;
    }
    await new Promise((r) => setImmediate(r));
  }
  const sent = seq;
  while (received < sent && performance.now() < deadline + 10_000) await new Promise((r) => setTimeout(r, 5));
  const elapsedS = (performance.now() - started) / 1000;
  console.log(`${label}: ${received} delivered in ${elapsedS.toFixed(2)} s = ${Math.round(received / elapsedS)} msg/s (refused ${refused})`);
  await a.close();
  await b.close();
}

await run('Heartbeat', (seq) => ({ type: 'Heartbeat', from: 'a', to: 'b', term: 5, seq, sentTick: seq, commit: seq, leaderCommit: seq }));
const data = new Uint8Array(100).fill(7);
await run('Append, 1 entry of 100 B', (seq) => ({
  type: 'Append', from: 'a', to: 'b', term: 5, seq, sentTick: seq, prevIndex: seq, prevTerm: 5, commit: seq,
  entries: [{ index: seq + 1, term: 5, type: 'normal', data }],
}));
