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
      'no-restricted-imports': ['error', { patterns: [{ group: ['node:*', 'fs', 'net', 'os', 'crypto', 'timers', 'child_process', 'worker_threads'], message: 'src/core is pure: no Node.js modules.' }] }],
      'no-restricted-globals': ['error', ...impureGlobals],
      'no-restricted-properties': ['error', { object: 'Math', property: 'random', message: 'src/core is pure: use the injected Random port.' }],
    },
  },
);
