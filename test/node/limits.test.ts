// The bounds of a member's waiting requests: proposals beyond proposalsPendingMax and reads
// beyond readsPendingMax are refused at once with 503 CHORUS_BUSY (nothing was done), while
// those admitted, which cannot complete on an isolated leader, end at their deadline.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { http, startCluster, waitFor } from './helpers.ts';

// electionTicks 50 (1 s at 20 ms): the isolated leader keeps leading long enough to take the
// requests, so the bound, not a step-down, decides the answers.
const OPTIONS = { electionTicks: 50, requestTimeoutMs: 1500, proposalsPendingMax: 3, readsPendingMax: 2 };

test('proposalsPendingMax: the write beyond it gets 503 CHORUS_BUSY; admitted ones time out with 504', async (t) => {
  const cluster = await startCluster(t, 3, OPTIONS);
  const leader = await cluster.leader();
  leader.setTestFaults({ isolate: true }); // nothing can commit now
  const admitted = [0, 1, 2].map((i) => http('PUT', `${leader.clientUrl}/v1/kv/p${i}`, 'v'));
  await waitFor(() => leader.debugState().proposalsPending === 3, 'three writes pending');
  const refused = await http('PUT', `${leader.clientUrl}/v1/kv/p3`, 'v');
  assert.equal(refused.status, 503, refused.text);
  assert.equal((refused.json() as { code: string }).code, 'CHORUS_BUSY');
  const refusedTxn = await http('POST', `${leader.clientUrl}/v1/txn`, JSON.stringify({ success: [{ op: 'put', key: 't', value: 'v' }] }));
  assert.equal((refusedTxn.json() as { code: string }).code, 'CHORUS_BUSY');
  for (const answer of await Promise.all(admitted)) {
    assert.equal(answer.status, 504, answer.text);
    assert.equal((answer.json() as { code: string }).code, 'CHORUS_TIMEOUT');
  }
  assert.equal(leader.debugState().proposalsPending, 0, 'timed-out writes no longer count');
});

test('readsPendingMax: the read beyond it gets 503 CHORUS_BUSY; admitted ones end at their deadline', async (t) => {
  const cluster = await startCluster(t, 3, OPTIONS);
  const leader = await cluster.leader();
  await http('PUT', `${leader.clientUrl}/v1/kv/r`, 'v');
  leader.setTestFaults({ isolate: true }); // no quorum can confirm a read index now
  const admitted = [0, 1].map(() => http('GET', `${leader.clientUrl}/v1/kv/r`));
  await waitFor(() => leader.debugState().readsPending === 2, 'two reads pending');
  const refused = await http('GET', `${leader.clientUrl}/v1/kv/r`);
  assert.equal(refused.status, 503, refused.text);
  assert.equal((refused.json() as { code: string }).code, 'CHORUS_BUSY');
  const refusedList = await http('GET', `${leader.clientUrl}/v1/kv?prefix=r`);
  assert.equal((refusedList.json() as { code: string }).code, 'CHORUS_BUSY');
  // A stale read needs no confirmation and is not bounded by readsPendingMax.
  assert.equal((await http('GET', `${leader.clientUrl}/v1/kv/r?consistency=stale`)).text, 'v');
  for (const answer of await Promise.all(admitted)) {
    assert.ok(answer.status === 504 || answer.status === 503, answer.text);
    assert.notEqual(answer.status, 200, 'an unconfirmed read is never served');
  }
  assert.equal(leader.debugState().readsPending, 0);
});
