// Checks that the simulator is strong enough: each mutant below re-introduces one classic Raft
// bug into a copy of the core, and the simulator must find a violation within the seed budget.
// Usage: node scripts/mutants.mjs [--seeds 2000] [--only NAME]
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { seeds: { type: 'string', default: '2000' }, only: { type: 'string' } } });

const mutants = [
  {
    name: 'commit-old-term',
    what: 'counting replicas for an entry of an earlier term (Raft §5.4.2 / Figure 8)',
    file: 'src/core/raft/raft.ts',
    from: 'this.raftLog.term(candidate) === this.term',
    to: 'this.raftLog.term(candidate) !== undefined',
  },
  {
    name: 'vote-no-log-check',
    what: 'granting a vote without checking that the candidate log is up to date',
    file: 'src/core/raft/raft.ts',
    from: 'const upToDate = this.raftLog.isUpToDate(m.lastIndex, m.lastTerm);',
    to: 'const upToDate = m.lastIndex >= 0;',
  },
  {
    name: 'vote-before-persist',
    what: 'replying to a vote request before the vote is durable',
    file: 'src/core/raft/raft.ts',
    from: "this.send({ type, from: this.id, to, term, granted }, 'after');",
    to: "this.send({ type, from: this.id, to, term, granted }, 'before');",
  },
  {
    name: 'apply-uncommitted',
    what: 'applying an entry before it is committed',
    file: 'src/core/raft/log.ts',
    from: 'const hi = Math.min(this.committed, this.persisted);',
    to: 'const hi = this.persisted;',
  },
  {
    name: 'follower-commit-past-match',
    what: 'a follower committing up to min(leaderCommit, its own last index) instead of the last entry the append proved to match (Figure 2, AppendEntries rule 5)',
    file: 'src/core/raft/log.ts',
    from: 'this.commitTo(Math.min(leaderCommit, lastNew));',
    to: 'this.commitTo(Math.min(leaderCommit, this.lastIndex()));',
  },
  {
    name: 'heartbeat-commit-past-match',
    what: 'a heartbeat carrying the leader commit index to a follower not known to hold that much of its log',
    file: 'src/core/raft/replication.ts',
    from: 'commit: Math.min(pr.match, this.log.committed), leaderCommit,',
    to: 'commit: this.log.committed, leaderCommit,',
  },
  {
    name: 'no-step-down',
    what: 'a leader that does not step down when isolated while lease reads are on',
    file: 'src/core/raft/lease.ts',
    from: 'return now - since > windowTicks;',
    to: 'return now - since > windowTicks && this.settings.leaseTicks === 0;',
  },
];

const root = process.cwd();
let failures = 0;
for (const mutant of mutants) {
  if (values.only !== undefined && values.only !== mutant.name) continue;
  const dir = mkdtempSync(join(tmpdir(), `chorus-mutant-${mutant.name}-`));
  try {
    for (const part of ['src', 'sim', 'package.json', 'tsconfig.json']) cpSync(join(root, part), join(dir, part), { recursive: true });
    symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
    const path = join(dir, mutant.file);
    const source = readFileSync(path, 'utf8');
    const count = source.split(mutant.from).length - 1;
    if (count !== 1) throw new Error(`${mutant.name}: expected the pattern once in ${mutant.file}, found ${count}`);
    writeFileSync(path, source.replace(mutant.from, mutant.to));
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'sim/run.ts', '--seeds', values.seeds, '--start', '1', '--stop-on-violation', '--quiet'], { cwd: dir, encoding: 'utf8' });
    const violation = run.stdout.split('\n').find((line) => line.startsWith('seed='));
    if (run.status !== 0 && violation !== undefined) {
      console.log(`caught   ${mutant.name}: ${mutant.what}\n         ${violation.slice(0, 200)}`);
    } else {
      failures++;
      console.log(`MISSED   ${mutant.name}: ${mutant.what} (${values.seeds} seeds, exit ${run.status})\n${run.stderr.slice(-500)}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
console.log(failures === 0 ? 'all mutants caught' : `${failures} mutants missed`);
process.exit(failures === 0 ? 0 : 1);
