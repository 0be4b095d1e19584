// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The consensus core must stay pure and deterministic: no I/O, no clocks, no randomness,
// no timers, no process state. The simulator depends on it, so the rule is enforced here
// and again by test/core-purity.test.ts.
const impureGlobals = [
  'Date', 'process', 'setTimeout', 'setInterval', 'setImmediate', 'clearTimeout',
  'clearInterval', 'clearImmediate', 'queueMicrotask', 'performance', 'require', 'Buffer', 'fetch',
].map((name) => ({ name, message: 'src/core is pure: inject clocks, timers and I/O through ports.' }));

// Layers of src/, lowest first. A folder may import from its own layer and the layers below it,
// never from a layer above (checked on relative import paths). The client is stricter: it may
// import only the core, src/shared and the transport's frame splitter (pure byte framing, no
// sockets), so that it never pulls in a server or the member.
const layers = [
  ['core'],
  ['ports'],
  ['storage', 'transport', 'kv'],
  ['shared'],
  ['observe'],
  ['runtime'],
  ['node', 'mm-node'],
  ['api'],
  ['client'],
  // The command line and the composition root (which wires the member, its driver and the
  // servers): they may import anything.
  ['cli', 'server'],
];

/** Import patterns of every src/ folder in a layer above `folder`'s. */
function higherFolders(folder) {
  const level = layers.findIndex((names) => names.includes(folder));
  return layers.slice(level + 1).flat().map((name) => `**/${name}/**`);
}

/** The no-restricted-imports pattern group that keeps `folder` within its layer. */
function layerPatterns(folder, group = higherFolders(folder)) {
  return { group, message: `src/${folder} may not import from a higher layer (see the layers in eslint.config.js).` };
}

const layerBlocks = [
  ...['ports', 'storage', 'transport', 'kv', 'shared', 'observe', 'runtime', 'node', 'api'].map((folder) => ({
    files: [`src/${folder}/**`],
    rules: { 'no-restricted-imports': ['error', { patterns: [layerPatterns(folder)] }] },
  })),
  {
    // The multi-master member sits beside the node, and must not reach into it.
    files: ['src/mm-node/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: [layerPatterns('mm-node', [...higherFolders('mm-node'), '**/node/**'])] }] },
  },
  {
    files: ['src/client/**'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{
          group: [
            '**/ports/**', '**/storage/**', '**/transport/**', '!**/transport/frame-decoder.ts', '**/kv/**', '**/observe/**',
            '**/runtime/**', '**/node/**', '**/mm-node/**', '**/api/**', '**/cli/**', '**/server/**',
          ],
          message: 'src/client may import only src/core, src/shared and the transport\'s frame splitter.',
        }],
      }],
    },
  },
];

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'chorus-data/', 'test-artifacts/', 'src/observe/ui/assets/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        console: 'readonly', process: 'readonly', Buffer: 'readonly', setTimeout: 'readonly',
        clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly',
        setImmediate: 'readonly', clearImmediate: 'readonly', URL: 'readonly', TextEncoder: 'readonly',
        TextDecoder: 'readonly', AbortController: 'readonly', AbortSignal: 'readonly', performance: 'readonly',
        queueMicrotask: 'readonly', fetch: 'readonly', structuredClone: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      // One rule per file: the layer patterns live here too, or this block would replace them.
      'no-restricted-imports': ['error', { patterns: [
        { group: ['node:*', 'fs', 'net', 'os', 'crypto', 'timers', 'child_process', 'worker_threads'], message: 'src/core is pure: no Node.js modules.' },
        layerPatterns('core'),
      ] }],
      'no-restricted-globals': ['error', ...impureGlobals],
      'no-restricted-properties': ['error', { object: 'Math', property: 'random', message: 'src/core is pure: use the injected Random port.' }],
    },
  },
  ...layerBlocks,
);
