import { fileURLToPath } from 'node:url';
import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';

// The path aliases of tsconfig.json: @aperture/<lib>/… is libs/<lib>/src/…, @apps/<app>/… is apps/<app>/src/…,
// @test/… is test/… (test helpers, for specs only).
const root = fileURLToPath(new URL('.', import.meta.url));
const alias = [
  { find: /^@aperture\/([a-z-]+)\//, replacement: `${root}libs/$1/src/` },
  { find: /^@apps\/([a-z-]+)\//, replacement: `${root}apps/$1/src/` },
  { find: /^@test\//, replacement: `${root}test/` },
];

// SWC compiles the tests and the code they import with decorator metadata, as tsc does for dist/.
const plugins = [
  swc.vite({
    jsc: {
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
      target: 'es2023',
    },
  }),
];

export default defineConfig({
  plugins,
  resolve: { alias },
  test: {
    // CI also writes a JSON report; .ci/run prints its one-line summary.
    reporters: process.env.CI ? ['default', ['json', { outputFile: 'tmp/vitest-report.json' }]] : ['default'],
    // Three tiers, by file name: *.spec.ts unit (no network, no model sessions), *.int-spec.ts integration (real
    // Redis, PostgreSQL, SQLite or ONNX sessions, in one process), test/*.e2e-spec.ts end to end (HTTP, processes).
    projects: [
      {
        plugins,
        resolve: { alias },
        test: {
          name: 'unit',
          include: ['{apps,libs,test,models,scripts}/**/*.spec.ts'],
          environment: 'node',
          testTimeout: 20000,
        },
      },
      {
        plugins,
        resolve: { alias },
        test: {
          name: 'integration',
          include: ['{apps,libs,test}/**/*.int-spec.ts'],
          environment: 'node',
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 60000,
          hookTimeout: 60000,
        },
      },
      {
        plugins,
        resolve: { alias },
        test: {
          name: 'e2e',
          include: ['test/**/*.e2e-spec.ts'],
          environment: 'node',
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 60000,
          hookTimeout: 60000,
          fileParallelism: true,
        },
      },
    ],
  },
});
