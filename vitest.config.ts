import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';

// SWC compiles the tests and the code they import with decorator metadata, as tsc does for dist/.
const plugins = [swc.vite({ jsc: { parser: { syntax: 'typescript', decorators: true }, transform: { legacyDecorator: true, decoratorMetadata: true }, target: 'es2023' } })];

export default defineConfig({
  plugins,
  test: {
    // CI also writes a JSON report; .ci/run prints its one-line summary.
    reporters: process.env.CI ? ['default', ['json', { outputFile: 'tmp/vitest-report.json' }]] : ['default'],
    projects: [
      {
        plugins,
        test: {
          name: 'unit',
          include: ['apps/**/*.spec.ts', 'libs/**/*.spec.ts', 'models/**/*.spec.ts'],
          environment: 'node',
          testTimeout: 20000,
        },
      },
      {
        plugins,
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
