import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

/** Lints one line of code as if it were the given file, with the project's own ESLint configuration. */
async function restricted(filePath: string, code: string): Promise<string[]> {
  const [result] = await new ESLint().lintText(code, { filePath });
  const rules = ['no-restricted-imports', 'no-restricted-syntax'];
  return result!.messages.filter((m) => rules.includes(m.ruleId ?? '')).map((m) => m.message);
}

describe('module boundaries (eslint no-restricted-imports)', () => {
  const cases: [string, string, RegExp][] = [
    ['apps/api/src/x.ts', "import { letterbox } from '@aperture/inference/preprocess.js';", /never runs a model/],
    ['apps/api/src/x.ts', "import { fragmentSizes } from '@aperture/analysis/fragments.js';", /never runs a model/],
    ['apps/api/src/x.ts', "import { ModelRegistry } from '@aperture/models/model-registry.js';", /catalogue and control/],
    ['apps/api/src/x.ts', "import * as ort from 'onnxruntime-node';", /never runs a model/],
    ['apps/api/src/x.ts', "import { JobRunner } from '@apps/worker/job-runner.service.js';", /does not import the worker/],
    ['apps/worker/src/x.ts', "import { ApiModule } from '@apps/api/api.module.js';", /never imports the API/],
    ['libs/queue/src/x.ts', "import { JobRunner } from '@apps/worker/job-runner.service.js';", /never imports an app/],
    ['libs/models/src/x.ts', "import { ApiModule } from '@apps/api/api.module.js';", /never imports an app/],
    ['libs/common/src/x.ts', "import { Job } from '@aperture/database/entities/job.entity.js';", /imports none of them/],
    ['libs/queue/src/x.ts', "import { fragmentSizes } from '@aperture/analysis/fragments.js';", /never how a job is computed/],
    ['apps/api/src/jobs/x.ts', "import { JobsService } from '../../../../libs/queue/src/jobs.service.js';", /by its alias/],
    ['libs/queue/src/x.ts', "import { AppConfig } from '../../config/src/config.js';", /by its alias/],
    ['apps/api/src/x.ts', "import { fakeEm } from '@test/support/new-test-service.js';", /for specs only/],
    ['libs/common/src/x.ts', "export * from './pagination.js';", /no export \* barrels/],
  ];
  it.each(cases)('%s: %s is refused', async (file, code, why) => {
    const messages = await restricted(file, `${code}\nexport {};\n`);
    expect(messages.length).toBe(1);
    expect(messages[0]).toMatch(why);
  });

  it('allows what the boundaries permit', async () => {
    const allowed: [string, string][] = [
      ['apps/api/src/x.ts', "import { loadManifest } from '@aperture/models/manifest.js';"],
      ['apps/api/src/x.ts', "import { inspectImage } from '@aperture/imaging/inspect.js';"],
      ['apps/worker/src/x.ts', "import { letterbox } from '@aperture/inference/preprocess.js';"],
      ['libs/queue/src/x.ts', "import { Job } from '@aperture/database/entities/job.entity.js';"],
      ['libs/inference/src/postprocess/x.ts', "import { pyRound } from '../preprocess.js';"],
      ['apps/api/src/x.spec.ts', "import { fakeEm } from '@test/support/new-test-service.js';"],
    ];
    for (const [file, code] of allowed) expect(await restricted(file, `${code}\nexport {};\n`), `${file}: ${code}`).toEqual([]);
  });
});
