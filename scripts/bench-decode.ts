/**
 * The detector's in-process figures on the 1920×1080 JPEG, decoding two ways, interleaved run by run:
 *  - two-step: decodeImage at full size, then letterbox (resize the raw pixels),
 *  - one-pass: ImageSource.open (the header) then letterboxImage (decode and resize in one sharp pipeline, JPEG
 *    shrink-on-load), what the worker does for POST /models/{name}/infer.
 * Prints the median decode+pre, run, post and total milliseconds of each (RUNS runs, default 40, after warm-up).
 *
 *   npm run build && node dist/scripts/bench-decode.js [runs]
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { decodeImage, ImageSource } from '@aperture/imaging/decode.js';
import { decodeYoloObb } from '@aperture/inference/postprocess/obb.js';
import { letterbox, type LetterboxResult, letterboxImage } from '@aperture/inference/preprocess.js';
import { float32Output, SessionHost } from '@aperture/inference/session-host.js';
import { loadManifest } from '@aperture/models/manifest.js';
import { ModelRegistry } from '@aperture/models/model-registry.js';

const root = resolve(import.meta.dirname, '..', '..');
const MODEL = 'primitives-obb';

type Phases = { decodePre: number; run: number; post: number; total: number };
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 40);
  const manifest = loadManifest();
  const host = new SessionHost({ poolSize: 1 });
  const registry = new ModelRegistry(manifest, host, { dir: resolve(root, 'models'), sessionOptions: { intraOpNumThreads: 0 } });
  try {
    const jpeg = readFileSync(resolve(root, 'models/fixtures/bench-1920x1080.jpg'));
    const size = manifest.models.find((m) => m.name === MODEL)!.input_size!;
    await registry.load(MODEL);
    const ways: Record<string, () => Promise<LetterboxResult>> = {
      'two-step': async () => {
        const img = await decodeImage(jpeg);
        return letterbox(img.data, img.width, img.height, size);
      },
      'one-pass': async () => letterboxImage(await ImageSource.open(jpeg), size),
    };
    const got: Record<string, Phases[]> = { 'two-step': [], 'one-pass': [] };
    let count: Record<string, number> = {};
    for (let i = 0; i < runs + 3; i++) {
      for (const [way, pre] of Object.entries(ways)) {
        const t0 = performance.now();
        const lb = await pre();
        const t1 = performance.now();
        const { outputs } = await registry.run(MODEL, 'model', { images: { type: 'float32', dims: lb.dims, data: lb.tensor } });
        const t2 = performance.now();
        const dets = decodeYoloObb(float32Output(outputs, 'output0'), lb);
        const t3 = performance.now();
        count = { ...count, [way]: dets.length };
        if (i >= 3) got[way]!.push({ decodePre: t1 - t0, run: t2 - t1, post: t3 - t2, total: t3 - t0 });
      }
    }
    console.log(`${MODEL} on the 1920×1080 JPEG, in process, median of ${runs} runs (ms):`);
    console.log('way        decode+pre     run    post   total  detections');
    for (const [way, xs] of Object.entries(got)) {
      const m = (k: keyof Phases): string =>
        median(xs.map((x) => x[k]))
          .toFixed(2)
          .padStart(7);
      console.log(`${way.padEnd(9)} ${m('decodePre')}    ${m('run')} ${m('post')} ${m('total')}  ${count[way]}`);
    }
  } finally {
    await registry.close();
    await host.close();
  }
}

await main();
