// Runs every *.test.ts under the given folders (default: test/) on Node's built-in test runner.
// Node 20's runner does not expand globs, so the files are listed here.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

// Usage: node scripts/run-tests.mjs [folders...] [--exclude=folder] [--test-concurrency=N ...]
const roots = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const excluded = process.argv.slice(2).filter((a) => a.startsWith('--exclude=')).map((a) => a.slice('--exclude='.length).replace(/\/$/, ''));
const passThrough = process.argv.slice(2).filter((a) => a.startsWith('--') && !a.startsWith('--exclude='));
const concurrency = passThrough.some((a) => a.startsWith('--test-concurrency')) ? [] : ['--test-concurrency=2'];
// A hung test must fail, not stall CI: every test gets a deadline, and the runner exits after.
const limits = passThrough.some((a) => a.startsWith('--test-timeout')) ? [] : ['--test-timeout=240000'];
const files = [];
function walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (excluded.includes(path)) continue;
    if (statSync(path).isDirectory()) walk(path);
    else if (name.endsWith('.test.ts')) files.push(path);
  }
}
for (const root of roots.length > 0 ? roots : ['test']) {
  if (statSync(root).isDirectory()) walk(root);
  else files.push(root);
}
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-reporter=spec', ...concurrency, ...limits, '--test-force-exit', ...passThrough, ...files],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
