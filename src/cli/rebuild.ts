// `chorus rebuild`: rebuilds a member whose data is lost or damaged (CHORUS_WAL_CORRUPT, a
// dead disk) from its peers. Raft assumes a member never forgets what it acknowledged or voted,
// so the member is not simply wiped and restarted under its old identity: the cluster first
// removes it (committed by the remaining majority), its data directory is moved aside (never
// deleted), and it is added back as a learner that bootstraps from a snapshot streamed by the
// leader. Once it caught up, `chorus member promote` makes it a voter again.
import { createServer } from 'node:net';
import { existsSync, renameSync } from 'node:fs';
import { ChorusClient, ChorusClientError } from '../client/index.ts';
import { parseHostPort } from '../node/config.ts';
import type { ClientFlags } from './client-commands.ts';

export interface RebuildFlags extends ClientFlags {
  readonly dataDir: string;
  readonly peer: string;
}

/** Whether something listens on the address (then the member still runs: refuse). */
function addressInUse(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(true));
    probe.listen(port, host, () => probe.close(() => resolve(false)));
  });
}

export async function runRebuild(id: string, flags: RebuildFlags, now = new Date()): Promise<string> {
  const peer = parseHostPort(flags.peer, '--peer');
  if (await addressInUse(peer.host, peer.port)) {
    throw new ChorusClientError('CHORUS_BAD_REQUEST', 0, `${flags.peer} is in use: stop member ${id} before rebuilding it`, null);
  }
  const client = new ChorusClient({ endpoints: flags.endpoints, timeoutMs: flags.timeoutMs });
  const view = await client.cluster();
  if (view.members.some((m) => m.id === id)) {
    const removed = await client.removeMember(id);
    process.stdout.write(`removed ${id} from the cluster at revision ${removed.revision}\n`);
  } else {
    process.stdout.write(`${id} is not a member; adding it back\n`);
  }
  let movedTo = '';
  if (existsSync(flags.dataDir)) {
    movedTo = `${flags.dataDir.replace(/\/+$/, '')}.rebuilt-${now.toISOString().replace(/[:.]/g, '-')}`;
    renameSync(flags.dataDir, movedTo);
    process.stdout.write(`moved its old data aside to ${movedTo} (delete it once you no longer need it)\n`);
  }
  const added = await client.addMember({ id, peerAddress: flags.peer, learner: true });
  process.stdout.write(`added ${id} back as a learner at revision ${added.revision}\n`);
  const after = await client.cluster();
  const peers = after.members.filter((m) => m.peerAddress !== null && m.id !== id).map((m) => `${m.id}=${m.peerAddress!}`);
  process.stdout.write([
    'start it on an empty data directory; it bootstraps from the leader:',
    `  chorus start --id ${id} --data-dir ${flags.dataDir} --listen-client HOST:PORT --listen-peer ${flags.peer} \\`,
    `    --initial-cluster ${[...peers, `${id}=${flags.peer}`].join(',')} --cluster-id ${after.clusterId} --join`,
    `then, once \`chorus status\` shows it caught up: chorus member promote ${id}`,
    '',
  ].join('\n'));
  return movedTo;
}
