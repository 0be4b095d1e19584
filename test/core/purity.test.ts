// The consensus core must stay pure: no Node.js modules, no clocks, no randomness, no timers,
// no process state. eslint enforces this too; this test scans the sources independently, with
// comments ignored, and checks the scanner itself on known good and bad snippets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const coreDir = join(root, 'src', 'core');

const forbiddenModules = ['fs', 'net', 'os', 'crypto', 'child_process', 'timers', 'worker_threads'];
const forbiddenGlobals = ['Date', 'setTimeout', 'setInterval', 'setImmediate', 'queueMicrotask', 'process', 'performance', 'Buffer'];

interface Finding {
  readonly line: number;
  readonly what: string;
}

/**
 * Splits TypeScript source into code without comments (string literals kept, for import
 * specifiers) and code without comments or string contents (for identifiers). Template
 * literal text is blanked, its ${...} expressions kept. Newlines survive, so lines still count.
 */
function stripSource(source: string): { code: string; bare: string } {
  let code = '';
  let bare = '';
  const emit = (c: string, inString: boolean): void => {
    code += c;
    bare += inString && c !== '\n' ? ' ' : c;
  };
  // A stack of open template literals; each number counts the braces open in its current ${}.
  const templates: number[] = [];
  let i = 0;
  const n = source.length;
  let inTemplateText = false;
  while (i < n) {
    const c = source[i]!;
    const next = source[i + 1];
    if (inTemplateText) {
      if (c === '\\') {
        emit(c, true);
        if (next !== undefined) emit(next, true);
        i += 2;
      } else if (c === '`') {
        emit(c, false);
        templates.pop();
        inTemplateText = false;
        i++;
      } else if (c === '$' && next === '{') {
        emit('${', false);
        templates[templates.length - 1] = 0;
        inTemplateText = false;
        i += 2;
      } else {
        emit(c, true);
        i++;
      }
      continue;
    }
    if (c === '/' && next === '/') {
      while (i < n && source[i] !== '\n') i++;
      continue;
    }
    if (c === '/' && next === '*') {
      const end = source.indexOf('*/', i + 2);
      const stop = end === -1 ? n : end + 2;
      for (const skipped of source.slice(i, stop)) if (skipped === '\n') emit('\n', false);
      i = stop;
      continue;
    }
    if (c === "'" || c === '"') {
      emit(c, false);
      i++;
      while (i < n && source[i] !== c && source[i] !== '\n') {
        if (source[i] === '\\' && i + 1 < n) {
          emit(source[i]!, true);
          i++;
        }
        emit(source[i]!, true);
        i++;
      }
      if (i < n && source[i] === c) {
        emit(c, false);
        i++;
      }
      continue;
    }
    if (c === '`') {
      emit(c, false);
      templates.push(0);
      inTemplateText = true;
      i++;
      continue;
    }
    if (templates.length > 0 && c === '{') {
      templates[templates.length - 1]!++;
    } else if (templates.length > 0 && c === '}') {
      if (templates[templates.length - 1] === 0) {
        emit(c, false);
        inTemplateText = true;
        i++;
        continue;
      }
      templates[templates.length - 1]!--;
    }
    emit(c, false);
    i++;
  }
  return { code, bare };
}

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset; i++) if (text[i] === '\n') line++;
  return line;
}

function isForbiddenModule(specifier: string): boolean {
  if (specifier.startsWith('node:')) return true;
  const base = specifier.split('/')[0]!;
  return forbiddenModules.includes(base);
}

/** Everything impure the source does, outside comments. */
function scanSource(source: string): Finding[] {
  const { code, bare } = stripSource(source);
  const findings: Finding[] = [];
  const specifierPatterns = [
    /\b(?:import|export)\b[^;'"`]*?\bfrom\s*(['"])([^'"]+)\1/g,
    /\bimport\s*(['"])([^'"]+)\1/g,
    /\bimport\s*\(\s*(['"])([^'"]+)\1/g,
    /\brequire\s*\(\s*(['"])([^'"]+)\1/g,
  ];
  for (const pattern of specifierPatterns) {
    for (const match of code.matchAll(pattern)) {
      // The keyword itself must be code, not the text of a string (blanked in `bare`).
      if (bare[match.index] !== code[match.index]) continue;
      const specifier = match[2]!;
      if (isForbiddenModule(specifier)) findings.push({ line: lineOf(code, match.index), what: `imports '${specifier}'` });
    }
  }
  // Matched in the bare code (strings blanked), except Math['random'], which needs its string.
  const identifierPatterns: [RegExp, string, 'bare' | 'code'][] = [
    ...forbiddenGlobals.map((name): [RegExp, string, 'bare'] => [new RegExp(`(?<![\\w$.])${name}(?![\\w$])`, 'g'), name, 'bare']),
    [/(?<![\w$.])Math\s*\.\s*random(?![\w$])/g, 'Math.random', 'bare'],
    [/(?<![\w$.])Math\s*\[\s*(['"])random\1\s*\]/g, 'Math.random', 'code'],
    [/(?<![\w$.])require\s*\(/g, 'require(', 'bare'],
    [/(?<![\w$.])globalThis(?![\w$])/g, 'globalThis', 'bare'],
  ];
  for (const [pattern, what, where] of identifierPatterns) {
    const haystack = where === 'bare' ? bare : code;
    for (const match of haystack.matchAll(pattern)) findings.push({ line: lineOf(haystack, match.index), what });
  }
  return findings.sort((a, b) => a.line - b.line || a.what.localeCompare(b.what));
}

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...tsFiles(path));
    else if (name.endsWith('.ts')) out.push(path);
  }
  return out;
}

test('every .ts file under src/core is pure', () => {
  const files = tsFiles(coreDir);
  const names = files.map((f) => relative(root, f));
  assert.ok(names.includes(join('src', 'core', 'raft', 'raft.ts')), `scanned ${names.join(', ')}`);
  assert.ok(names.includes(join('src', 'core', 'raft', 'log.ts')));
  const problems: string[] = [];
  for (const file of files) {
    for (const f of scanSource(readFileSync(file, 'utf8'))) problems.push(`${relative(root, file)}:${f.line}: ${f.what}`);
  }
  assert.deepEqual(problems, []);
});

test('the scanner flags every kind of impurity', () => {
  const bad: [string, string][] = [
    ["import { readFileSync } from 'node:fs';", "imports 'node:fs'"],
    ['import fs from "fs";', "imports 'fs'"],
    ["import { join } from 'node:path';", "imports 'node:path'"],
    ["import { promises } from 'fs/promises';", "imports 'fs/promises'"],
    ["import type { Socket } from 'net';", "imports 'net'"],
    ["export { hostname } from 'os';", "imports 'os'"],
    ["import 'crypto';", "imports 'crypto'"],
    ["const cp = await import('child_process');", "imports 'child_process'"],
    ["import { setTimeout as sleep } from 'timers/promises';", "imports 'timers/promises'"],
    ["import {\n  Worker,\n} from 'worker_threads';", "imports 'worker_threads'"],
    ['const now = Date.now();', 'Date'],
    ['const d = new Date();', 'Date'],
    ['const r = Math.random();', 'Math.random'],
    ['const r = Math . random();', 'Math.random'],
    ["const r = Math['random']();", 'Math.random'],
    ['setTimeout(() => {}, 1);', 'setTimeout'],
    ['const h = setInterval(tick, 10);', 'setInterval'],
    ['setImmediate(run);', 'setImmediate'],
    ['queueMicrotask(run);', 'queueMicrotask'],
    ['const env = process.env.X;', 'process'],
    ['const t = performance.now();', 'performance'],
    ['const b = Buffer.from([1]);', 'Buffer'],
    ["const m = require('./x');", 'require('],
    ['const x = `${Date.now()}`;', 'Date'],
    ['const x = `a ${`b ${process.pid}`}`;', 'process'],
    ['const t = globalThis.setTimeout;', 'globalThis'],
  ];
  for (const [snippet, what] of bad) {
    const findings = scanSource(snippet);
    assert.ok(findings.some((f) => f.what === what), `${JSON.stringify(snippet)}: expected ${what}, got ${JSON.stringify(findings)}`);
  }
  // Line numbers point at the offence.
  assert.deepEqual(scanSource('const a = 1;\n// Date\n\nconst b = Date.now();'), [{ line: 4, what: 'Date' }]);
});

test('the scanner ignores comments, strings and look-alike names', () => {
  const good = [
    '// setTimeout(() => {}, 1); Date.now(); Math.random()',
    '/* import fs from "fs"; process.exit(1) */ const a = 1;',
    '/**\n * No Buffer in the core; no process either.\n */\nexport const b = 2;',
    "const message = 'the process stopped at Date X';",
    'const message = "use Buffer? no";',
    'const t = `template text mentions performance and setInterval ${1 + 1}`;',
    'function isUpToDate(lastIndex: number): boolean { return lastIndex > 0; }',
    'const processed = 1; const myDate = 2; const Buffered = 3;',
    'obj.process = 2; const x = this.performance; const y = a.Buffer;',
    "const hint = 'call Math.random() elsewhere';",
    "import { assert } from './assert.ts';",
    "import type { Entry } from './types.ts';",
    "const s = 'a // not a comment'; const t = Date0;",
    'const re = "/* not a comment */"; const u = 1;',
    "const doc = 'import x from \"fs\"'; const w = `require('os')`;",
  ];
  for (const snippet of good) assert.deepEqual(scanSource(snippet), [], JSON.stringify(snippet));
});

test('stripSource keeps code and line structure, blanks strings only in the bare form', () => {
  const source = "const a = 'x'; // c\n/* b\n */ const t = `q ${a} r`;";
  const { code, bare } = stripSource(source);
  assert.equal(code, "const a = 'x'; \n\n const t = `q ${a} r`;");
  assert.equal(bare, "const a = ' '; \n\n const t = `  ${a}  `;");
});
