// The replicated settings commands (replication-config, member-address): validation, the wire
// round trip, application into SQLite, snapshots carrying them, and the upgrade of databases
// and snapshot images written before they existed (schema version 1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Packr } from 'msgpackr';
import { decodeCommand, encodeCommand, validateCommand, validateMemberId, validatePeerAddress } from '../../src/kv/commands.ts';
import type { Command } from '../../src/kv/commands.ts';
import { SqliteStateMachine } from '../../src/kv/sqlite-state-machine.ts';
import { tempDir } from '../node/helpers.ts';
import { EntryLog, assertKvError, bytes } from './helpers.ts';

const forge = new Packr({ useRecords: false, mapsAsObjects: true });

test('settings commands validate their values: canonical standby names, known levels, member ids and addresses', () => {
  const good: Command[] = [
    { kind: 'replication-config', synchronousCommit: 'remote_apply', synchronousStandbyNames: 'FIRST 1 (n3)' },
    { kind: 'replication-config', synchronousCommit: 'off', synchronousStandbyNames: '' },
    { kind: 'replication-config', synchronousCommit: 'on', synchronousStandbyNames: 'ANY 2 (n2, n3, *)' },
    { kind: 'member-address', id: 'n4', peerAddress: '10.0.0.4:7001' },
    { kind: 'member-address', id: 'db-2.east', peerAddress: '[::1]:7001' },
    { kind: 'member-address', id: 'n4', peerAddress: null },
  ];
  for (const cmd of good) {
    validateCommand(cmd);
    assert.deepEqual(decodeCommand(encodeCommand(cmd)), cmd);
  }
  const bad: [unknown, string][] = [
    [{ kind: 'replication-config', synchronousCommit: 'remote_write', synchronousStandbyNames: '' }, 'CHORUS_BAD_CONFIG'],
    [{ kind: 'replication-config', synchronousCommit: 'on', synchronousStandbyNames: 'first 1 (n3)' }, 'CHORUS_BAD_CONFIG'],
    [{ kind: 'replication-config', synchronousCommit: 'on', synchronousStandbyNames: 'FIRST 2 (n3)' }, 'CHORUS_BAD_CONFIG'],
    [{ kind: 'replication-config', synchronousCommit: 'on', synchronousStandbyNames: 7 }, 'CHORUS_BAD_CONFIG'],
    [{ kind: 'member-address', id: '', peerAddress: '10.0.0.4:7001' }, 'CHORUS_BAD_CONFIG'],
    [{ kind: 'member-address', id: 'n4', peerAddress: '10.0.0.4' }, 'CHORUS_BAD_CONFIG'],
    [{ kind: 'member-address', id: 'n4', peerAddress: '10.0.0.4:0' }, 'CHORUS_BAD_CONFIG'],
    [{ kind: 'member-address', id: 'n4', peerAddress: 'a b:1' }, 'CHORUS_BAD_CONFIG'],
  ];
  for (const [cmd, code] of bad) assertKvError(() => validateCommand(cmd), code as 'CHORUS_BAD_CONFIG');
  assert.equal(validateMemberId('n1'), 'n1');
  assert.equal(validatePeerAddress('host.example:65535'), 'host.example:65535');
  // Forged payloads with the wrong types never decode into a command.
  assertKvError(() => decodeCommand(forge.pack({ kind: 'member-address', id: bytes('n4'), peerAddress: null })), 'CHORUS_BAD_COMMAND');
  assertKvError(() => decodeCommand(forge.pack({ kind: 'replication-config', synchronousCommit: 1, synchronousStandbyNames: '' })), 'CHORUS_BAD_COMMAND');
});

test('settings apply into SQLite, report what changed, and travel in snapshots', () => {
  const sm = SqliteStateMachine.open(':memory:');
  const log = new EntryLog();
  assert.equal(sm.replicationSettings(), null);
  assert.deepEqual([...sm.memberAddresses()], []);
  const results = sm.applyBatch([
    log.normal({ kind: 'put', key: 'k', value: bytes('v') }),
    log.normal({ kind: 'replication-config', synchronousCommit: 'remote_apply', synchronousStandbyNames: 'FIRST 1 (n3)' }),
    log.normal({ kind: 'member-address', id: 'n4', peerAddress: '10.0.0.4:7001' }),
    log.normal({ kind: 'member-address', id: 'n5', peerAddress: '10.0.0.5:7001' }),
    log.normal({ kind: 'member-address', id: 'n5', peerAddress: null }),
    // An invalid one (forged past the API) is an error result on every replica, and changes nothing.
    log.raw(forge.pack({ kind: 'replication-config', synchronousCommit: 'sometimes', synchronousStandbyNames: '' })),
  ]);
  assert.deepEqual(results.map((r) => r.kind), ['put', 'replication-config', 'member-address', 'member-address', 'member-address', 'error']);
  assert.deepEqual(results[1], { kind: 'replication-config', revision: 2, settings: { synchronousCommit: 'remote_apply', synchronousStandbyNames: 'FIRST 1 (n3)', revision: 2 } });
  assert.deepEqual(sm.replicationSettings(), { synchronousCommit: 'remote_apply', synchronousStandbyNames: 'FIRST 1 (n3)', revision: 2 });
  assert.deepEqual([...sm.memberAddresses()], [['n4', '10.0.0.4:7001'], ['n5', null]]);

  const other = SqliteStateMachine.open(':memory:');
  other.restore(sm.snapshot().data);
  assert.deepEqual(other.replicationSettings(), sm.replicationSettings());
  assert.deepEqual([...other.memberAddresses()], [...sm.memberAddresses()]);
  assert.equal(other.digest(), sm.digest(), 'settings are not key-value data');
});

/** A database as the previous version (schema 1) wrote it, with one key. */
function version1Database(file: string): void {
  const db = new Database(file);
  db.exec(`
CREATE TABLE kv (
  key TEXT NOT NULL PRIMARY KEY,
  value BLOB NOT NULL,
  create_revision INTEGER NOT NULL,
  mod_revision INTEGER NOT NULL,
  version INTEGER NOT NULL
) STRICT;
CREATE TABLE applied (
  id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
  applied_index INTEGER NOT NULL
) STRICT;
INSERT INTO applied (id, applied_index) VALUES (1, 0);
PRAGMA user_version = 1;
`);
  db.exec("INSERT INTO kv VALUES ('old', x'6f6c64', 1, 1, 1); UPDATE applied SET applied_index = 1");
  db.close();
}

test('a version-1 database file and a version-1 snapshot image are upgraded in place, keeping their data', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'state.db');
  version1Database(file);
  const sm = SqliteStateMachine.open(file);
  t.after(() => sm.close());
  assert.equal(sm.appliedIndex(), 1);
  assert.equal(Buffer.from(sm.get('old')!.value).toString(), 'old');
  assert.equal(sm.replicationSettings(), null);
  sm.applyBatch([{ index: 2, type: 'normal', data: encodeCommand({ kind: 'member-address', id: 'n4', peerAddress: '10.0.0.4:7001' }) }]);
  assert.deepEqual([...sm.memberAddresses()], [['n4', '10.0.0.4:7001']]);

  const imageFile = join(dir, 'image.db');
  version1Database(imageFile);
  const image = new Database(imageFile);
  const data = image.serialize();
  image.close();
  // Into a file-backed instance and an in-memory one.
  sm.restore(data);
  assert.equal(sm.appliedIndex(), 1);
  assert.equal(Buffer.from(sm.get('old')!.value).toString(), 'old');
  assert.deepEqual([...sm.memberAddresses()], [], 'the image had no addresses');
  const memory = SqliteStateMachine.open(':memory:');
  memory.restore(data);
  memory.applyBatch([{ index: 2, type: 'normal', data: encodeCommand({ kind: 'replication-config', synchronousCommit: 'local', synchronousStandbyNames: '' }) }]);
  assert.equal(memory.replicationSettings()?.synchronousCommit, 'local');
  sm.close();
  const reopened = SqliteStateMachine.open(file);
  assert.equal(reopened.appliedIndex(), 1);
  reopened.close();
});
