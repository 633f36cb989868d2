// Type-aware lint (STYLE.md): floating promises are errors, type-only
// imports are marked, no import cycles, and the program boundaries of
// docs/design.md: which folder may import which. gen/ is generated and not
// linted.
import js from '@eslint/js';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';
import { importX } from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

/** Imports of `target` from any of `from` are errors, with `message` as the reason. */
function zone(target, from, message) {
  return { target, from, message };
}

export default tseslint.config(
  { ignores: ['dist/**', 'build/**', 'gen/**', 'node_modules/**', '.cache/**', 'test/ferretdb/**', 'test/tools/**', 'eslint.config.js', 'docs/codegen-study/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      // One program for lint, the build's (tsconfig.json); the per-program
      // configs are checked by tsc (npm run check:programs).
      parserOptions: { project: './tsconfig.json', tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
    settings: {
      // Resolves `./x.js` to `./x.ts` as tsc does under NodeNext.
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: `${import.meta.dirname}/tsconfig.json` })],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/extensions': ['.ts', '.js'],
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      // Cycles through value imports; `import type` edges are erased by tsc and not followed.
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-restricted-paths': [
        'error',
        {
          basePath: import.meta.dirname,
          zones: [
            zone('./agent', ['./server', './cli', './console', './test', './bench'], 'The agent is its own program: it shares code through shared/ only.'),
            zone('./server', ['./agent', './cli', './console', './test', './bench'], 'The server is its own program: it shares code through shared/ only (it serves the console\'s build, never its code).'),
            zone('./cli', ['./console', './test', './bench'], 'Programs never import tests, benchmarks or the console.'),
            zone('./console', ['./server', './agent', './cli', './test', './bench'], 'The console is its own program: it imports gen/ and pure shared/ code only.'),
            zone('./test', ['./console'], 'Tests drive the console through a browser, never by importing it.'),
            {
              target: './shared',
              from: '.',
              except: ['./shared', './gen', './node_modules'],
              message: 'shared/ imports only shared/, gen/, node builtins and npm packages.',
            },
          ],
        },
      ],
    },
  },
  {
    // Nothing below the transport boundary knows gRPC: the programs build
    // their channels and credentials; shared/ hands them plain values.
    files: ['shared/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['@grpc/*', 'grpc-*'], message: 'shared/ must not know gRPC: keep transport code in agent/, server/ or cli/.' }] },
      ],
    },
  },
  {
    // Build scripts (deploy/pack-agent.mjs) are plain JavaScript outside the
    // TypeScript program: linted without type information.
    files: ['deploy/**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    // The web console: a browser program with its own tsconfig (DOM types).
    files: ['console/**/*.ts', 'console/**/*.tsx'],
    languageOptions: {
      parserOptions: { project: './console/tsconfig.json', tsconfigRootDir: import.meta.dirname, ecmaFeatures: { jsx: true } },
    },
    settings: {
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: `${import.meta.dirname}/console/tsconfig.json` })],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts', '.tsx'] },
      'import-x/extensions': ['.ts', '.tsx', '.js'],
    },
    rules: {
      // User text is rendered as text: no raw HTML from strings.
      'no-restricted-syntax': [
        'error',
        { selector: "JSXAttribute[name.name='dangerouslySetInnerHTML']", message: 'Render user text as text (issue 17: no raw HTML).' },
        { selector: "AssignmentExpression[left.property.name=/^(innerHTML|outerHTML)$/]", message: 'Render user text as text (issue 17: no raw HTML).' },
      ],
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-unused-expressions': 'off' },
  },
);
