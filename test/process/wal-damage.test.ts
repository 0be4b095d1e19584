// Damaged write-ahead logs with real processes: a torn last record is cut off at restart and
// the member rejoins; a flipped bit in the middle stops the member with CHORUS_WAL_CORRUPT, and
// `chorus rebuild` then rebuilds it from its peers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, truncate } from 'node:fs/promises';
import { ChorusClient } from '../../src/client/index.ts';
import { newestSegment, pool, runCli, startProcessCluster, waitFor, walRecordsEnd } from './helpers.ts';

test('a torn last WAL record is cut at restart and the member rejoins; a flipped bit mid-log refuses to start; chorus rebuild restores it from its peers', async (t) => {
  const cluster = await startProcessCluster(t, 3);
  try {
    const leader = await cluster.leader();
    const client = new ChorusClient({ endpoints: cluster.urls(), timeoutMs: 15_000 });
    const keys = Array.from({ length: 200 }, (_, i) => `wal/${i}`);
    await pool(keys, 16, async (key) => {
      await client.put(key, `v-${key}`);
    });
    // Torn tail: cut a few bytes off the end of the leader's newest segment while it is down.
    // (Its last records were committed through the followers, which keep them: the new leader
    // probes the restarted member's shorter log from scratch and resends what was cut. A
    // follower that lost entries it had acknowledged to the current leader cannot be repaired
    // by the core: see docs/durability.md.)
    const torn = leader;
    await cluster.kill(torn, 'SIGKILL');
    const tornSegment = await newestSegment(cluster.spec.dirs.get(torn)!);
    // Five bytes off its last record (and the preallocated zeros after it).
    await truncate(tornSegment, (await walRecordsEnd(tornSegment)) - 5);
    const newLeader = await cluster.leader();
    const restarted = cluster.start(torn);
    await waitFor(async () => (await cluster.view(torn))?.leaderId === newLeader, 'the restarted member follows the new leader');
    assert.match(restarted.output, /torn record/, 'recovery reports the torn tail');
    await client.put('wal/after-torn', 'ok');
    const commit = (await cluster.view(newLeader))!.self.commitIndex;
    await cluster.appliedAtLeast(torn, commit);
    const direct = new ChorusClient({ endpoints: [cluster.url(torn)] });
    assert.equal(await direct.getText('wal/after-torn', { consistency: 'stale' }), 'ok');
    for (const key of keys) assert.equal(await direct.getText(key, { consistency: 'stale' }), `v-${key}`);

    // A flipped bit in the middle of the log, with valid records after it: corruption.
    const flipped = cluster.spec.ids.find((id) => id !== newLeader && id !== torn)!;
    await cluster.kill(flipped, 'SIGTERM');
    const segment = await newestSegment(cluster.spec.dirs.get(flipped)!);
    const offset = Math.floor((await walRecordsEnd(segment)) / 2);
    const handle = await open(segment, 'r+');
    try {
      const byte = Buffer.alloc(1);
      await handle.read(byte, 0, 1, offset);
      byte[0] = byte[0]! ^ 0x10;
      await handle.write(byte, 0, 1, offset);
    } finally {
      await handle.close();
    }
    const refused = cluster.start(flipped);
    await refused.exited;
    t.diagnostic(`the refused member said: ${refused.stderr.trim().split('\n').slice(-1).join('')}`);
    assert.notEqual(refused.exitCode, 0, 'a corrupt WAL stops the process with a non-zero exit code');
    assert.match(refused.stderr, /^chorus start: CHORUS_WAL_CORRUPT: .*$/m, 'a plain message on stderr');
    assert.ok(refused.stderr.includes(segment), 'the message names the damaged file');
    assert.match(refused.stderr, /offset \d+/, 'the message gives the byte offset');

    // The remaining majority keeps serving.
    await client.put('wal/after-corrupt', 'still-serving');
    assert.equal(await client.getText('wal/after-corrupt'), 'still-serving');

    // `chorus rebuild` rebuilds the damaged member from its peers: removed, data moved aside,
    // added back as a learner that bootstraps from a snapshot, then promoted.
    const others = cluster.urls(cluster.spec.ids.filter((id) => id !== flipped)).join(',');
    const rebuilt = await runCli(t, ['rebuild', flipped, '--data-dir', cluster.spec.dirs.get(flipped)!, '--peer', cluster.peerAddress(flipped), '--endpoints', others]);
    assert.equal(rebuilt.code, 0, rebuilt.stderr);
    assert.match(rebuilt.stdout, /moved its old data aside to (\S+)/);
    assert.match(rebuilt.stdout, /--join/);
    await cluster.join(flipped);
    const commitNow = (await cluster.view(newLeader))!.self.commitIndex;
    await cluster.appliedAtLeast(flipped, commitNow);
    const fromRebuilt = new ChorusClient({ endpoints: [cluster.url(flipped)] });
    for (const key of keys) assert.equal(await fromRebuilt.getText(key, { consistency: 'stale' }), `v-${key}`);
    const promoted = await runCli(t, ['member', 'promote', flipped, '--endpoints', others]);
    assert.equal(promoted.code, 0, promoted.stderr);
    await waitFor(async () => (await cluster.view(newLeader))?.members.find((m) => m.id === flipped)?.voter === true, 'the rebuilt member votes again');
  } catch (error) {
    t.diagnostic(cluster.describe());
    throw error;
  }
});
