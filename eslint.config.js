import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// Module boundaries. Each rule lists every pattern that applies to its files (a later block replaces, not extends,
// the options of an earlier one for the same rule), so the shared pattern is repeated in each.
const byAlias = {
  regex: '^(\\.\\./)+((libs|apps)/|[a-z-]+/src/)',
  message: 'Import another lib or app by its alias (@aperture/<lib>/…, @apps/<app>/…), not by a relative path.',
};
const noApps = { regex: '^@apps/', message: 'A lib never imports an app: move the shared code into a lib.' };
const boundaries = (...patterns) => ['error', { patterns: [byAlias, ...patterns] }];
const noBarrels = { selector: 'ExportAllDeclaration', message: 'Import by path; no export * barrels.' };
const noTestHelpers = {
  selector: 'ImportDeclaration[source.value=/^@test\\//]',
  message: 'Test helpers (@test/…) are for specs only; production code never imports them.',
};

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      'coverage/**',
      'tmp/**',
      'data/**',
      'models/**',
      'libs/database/src/migrations/**',
      'packages/*/dist/**',
      'packages/sdk/src/generated/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': ['error', noBarrels],
      'no-restricted-imports': boundaries(),
      'max-len': ['error', { code: 140, ignoreUrls: true }],
    },
  },
  {
    // JavaScript (today only this file) keeps the same line length as the TypeScript.
    files: ['**/*.js'],
    rules: { 'max-len': ['error', { code: 140, ignoreUrls: true }] },
  },
  {
    // The API never runs a model: no ONNX Runtime, no inference or analysis code, only the models' catalogue and control types.
    files: ['apps/api/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [{ name: 'onnxruntime-node', message: 'The API never runs a model; inference belongs to the worker.' }],
          patterns: [
            byAlias,
            {
              regex: '^@aperture/(inference|analysis)/',
              message: 'The API never runs a model: inference and analysis code belong to the worker.',
            },
            {
              regex: '^@aperture/models/(?!(manifest|manifest\\.provider|model-ids|model-control|model-status|model-repository)\\.js$)',
              message:
                "The API uses only the models' catalogue and control channel (manifest, model-ids, model-control, model-status) " +
                'and the repository checks (model-repository), never their runtime.',
            },
            { regex: '^@apps/(worker|standalone)/', message: 'The API does not import the worker or the single-process host.' },
          ],
        },
      ],
    },
  },
  {
    files: ['apps/worker/**/*.ts'],
    rules: {
      'no-restricted-imports': boundaries({
        regex: '^@apps/(api|standalone)/',
        message: 'The worker serves no HTTP routes: it never imports the API.',
      }),
    },
  },
  {
    files: ['libs/**/*.ts'],
    ignores: ['libs/common/**', 'libs/queue/**'],
    rules: { 'no-restricted-imports': boundaries(noApps) },
  },
  {
    files: ['libs/common/**/*.ts'],
    rules: {
      'no-restricted-imports': boundaries(noApps, {
        regex: '^@aperture/(database|queue|models|inference|analysis)/',
        message: 'libs/common is the base every other lib builds on: it imports none of them.',
      }),
    },
  },
  {
    files: ['libs/queue/**/*.ts'],
    rules: {
      'no-restricted-imports': boundaries(noApps, {
        regex: '^@aperture/(analysis|inference|models)/',
        message: 'The job queue knows job types and their payloads, never how a job is computed.',
      }),
    },
  },
  {
    files: ['apps/**/*.ts', 'libs/**/*.ts', 'scripts/**/*.ts'],
    ignores: ['**/*.spec.ts', '**/*.int-spec.ts'],
    rules: { 'no-restricted-syntax': ['error', noBarrels, noTestHelpers] },
  },
);
