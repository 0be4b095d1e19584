// src/core/mm must stay pure and deterministic like the Raft core: no Node.js modules, no
// clocks, no randomness, no timers, no process state. eslint enforces it too; this test keeps
// it true for anyone running only the tests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const DIR = new URL('../../src/core/mm/', import.meta.url).pathname;
const FORBIDDEN: readonly (readonly [RegExp, string])[] = [
  [/from\s+['"]node:/, 'a node: import'],
  [/from\s+['"](fs|net|os|crypto|timers|child_process|worker_threads|path)['"]/, 'a Node.js module'],
  [/\bDate\b/, 'Date'],
  [/Math\.random/, 'Math.random'],
  [/\b(setTimeout|setInterval|setImmediate|queueMicrotask)\b/, 'a timer'],
  [/\bprocess\./, 'process'],
  [/\bBuffer\b/, 'Buffer'],
  [/\bperformance\./, 'performance'],
  [/\brequire\(/, 'require'],
];

test('src/core/mm is pure: no Node.js modules, clocks, randomness, timers, process or Buffer', () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.ts'));
  assert.ok(files.length >= 10);
  for (const file of files) {
    // Comments may talk about clocks; code may not use them.
    const code = readFileSync(join(DIR, file), 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/\/\/.*$/gm, '');
    for (const [pattern, what] of FORBIDDEN) assert.doesNotMatch(code, pattern, `${file} uses ${what}`);
    for (const match of code.matchAll(/from\s+['"](\.[^'"]*)['"]/g)) {
      assert.match(match[1]!, /^\.\/[a-z-]+\.ts$/, `${file}: imports stay inside src/core/mm with a .ts extension`);
    }
  }
});
