import { resolve } from 'node:path';
import sharp from 'sharp';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maskIoU, rleDecode, type Rle } from '@aperture/inference/mask.js';
import { type TestApp, workerAppWithTwoUsers } from './support/app.js';
import { browserTestsRun, launchChromium, screenshotPath, SVG_PARSE_CHECK } from './support/browser.js';
import { fixtures, gt } from './support/fixtures.js';
import { expectProblem, type LoggedIn, waitFor } from './support/http.js';

/** Prompt segmentation through HTTP, the queue and the worker (sam-tiny), on the SAM fixtures with ground truth. */

interface Shape {
  mask: Rle;
  point: [number, number];
  box: [number, number, number, number];
}
interface Mask {
  mask_index: number;
  score: number;
  bbox: number[];
  area: number;
  mask: Rle | string | { size: [number, number]; counts: string };
}
interface Answer {
  job_id: string;
  model: string;
  width: number;
  height: number;
  results: { prompt_index: number; masks: Mask[] }[];
}

const truth = gt<{ images: { file: string; width: number; height: number; shapes: Shape[] }[] }>('sam/ground-truth.json');
const img = truth.images[1]!; // portrait 480×640
const shape = img.shapes[0]!;
const file = resolve(fixtures, img.file);
const best = (masks: Mask[]): Mask => masks.reduce((a, b) => (b.score > a.score ? b : a));
const iou = (m: Mask, s: Shape): number => maskIoU(rleDecode(m.mask as Rle), rleDecode(s.mask));

/**
 * Chromium parses the SVG as a document of its own (a parse error would replace it with an error page), shows the
 * embedded image where no mask is, and tints the clicked shape. The screenshot is left in tmp/screenshots.
 */
async function expectChromiumRenders(svg: string): Promise<void> {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: img.width, height: img.height } });
    const render = async (doc: string, name?: string) => {
      await page.goto(`data:image/svg+xml;base64,${Buffer.from(doc, 'utf8').toString('base64')}`);
      const parsed = await page.evaluate(SVG_PARSE_CHECK);
      expect(parsed).toEqual({ root: 'svg', errors: 0 });
      const shot = await page.screenshot(name ? { path: screenshotPath(name) } : {});
      return sharp(shot).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    };
    const drawn = await render(svg, 'segment-visualization');
    const bare = await render(svg.replace(/<path [^]*?<\/path>/g, '').replace(/<text [^]*?<\/text>/g, ''));
    const original = await sharp(file).removeAlpha().raw().toBuffer();
    const w = drawn.info.width;
    const at = (buf: Buffer, x: number, y: number, width = w): number[] => [...buf.subarray((y * width + x) * 3, (y * width + x) * 3 + 3)];
    const diff = (a: number[], b: number[]): number => Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
    // The embedded photo is the image (JPEG-close); masks leave a far corner alone and tint the clicked shape.
    const [px, py] = shape.point.map(Math.round) as [number, number];
    expect(diff(at(bare.data, px, py), at(original, px, py, img.width))).toBeLessThan(24);
    expect(diff(at(drawn.data, 2, img.height - 3), at(bare.data, 2, img.height - 3))).toBe(0);
    expect(diff(at(drawn.data, px, py), at(bare.data, px, py))).toBeGreaterThan(24);
  } finally {
    await browser.close();
  }
}

describe('POST /segment/points and /segment/box (SAM prompts)', () => {
  let t: TestApp;
  let alice: LoggedIn;
  let bob: LoggedIn;
  beforeAll(async () => {
    ({ t, alice, bob } = await workerAppWithTwoUsers('segment'));
  });
  afterAll(() => t?.close());

  const post = (path: string, fields: Record<string, string>, user = alice, attach: string | Buffer | null = file) => {
    let req = request(t.server).post(`/api/v1/segment/${path}`).set(user.auth);
    if (typeof attach === 'string') req = req.attach('image', attach);
    else if (attach) req = req.attach('image', attach, 'file.png');
    for (const [k, v] of Object.entries(fields)) req = req.field(k, v);
    return req;
  };

  it('points in pixels: 3 multimask outputs by default, the best of which is the clicked shape', async () => {
    const res = await post('points', { points: JSON.stringify([{ x: shape.point[0], y: shape.point[1] }]) });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const a = res.body as Answer;
    expect(a).toMatchObject({ model: 'sam-tiny', width: img.width, height: img.height });
    expect(a.results).toHaveLength(1);
    expect(a.results[0]!.masks.map((m) => m.mask_index)).toEqual([1, 2, 3]);
    for (const m of a.results[0]!.masks) {
      expect(rleDecode(m.mask as Rle).reduce((s, v) => s + v, 0)).toBe(m.area);
      expect(m.bbox).toHaveLength(4);
    }
    expect(iou(best(a.results[0]!.masks), shape)).toBeGreaterThanOrEqual(0.8);
  });

  it('normalized points (coords auto) give the same mask as the pixel ones; multimask_output=false gives one', async () => {
    const [x, y] = [shape.point[0] / img.width, shape.point[1] / img.height];
    const res = await post('points', { points: JSON.stringify([{ x, y, label: 1 }]), multimask_output: 'false' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const masks = (res.body as Answer).results[0]!.masks;
    expect(masks).toHaveLength(1);
    expect(iou(masks[0]!, shape)).toBeGreaterThanOrEqual(0.8);
  });

  it('box as {x, y, width, height} and as {x1, y1, x2, y2}, several boxes: one result per box', async () => {
    const [x1, y1, x2, y2] = shape.box;
    const other = img.shapes[1]!;
    const [u1, v1, u2, v2] = other.box;
    const res = await post('box', {
      box: JSON.stringify([
        { x: x1, y: y1, width: x2 - x1, height: y2 - y1 },
        { x1: u1, y1: v1, x2: u2, y2: v2 },
      ]),
      multimask_output: 'false',
      model_type: 'sam-tiny',
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const a = res.body as Answer;
    expect(a.results.map((r) => r.prompt_index)).toEqual([0, 1]);
    expect(iou(a.results[0]!.masks[0]!, shape)).toBeGreaterThanOrEqual(0.8);
    expect(iou(a.results[1]!.masks[0]!, other)).toBeGreaterThanOrEqual(0.8);
  });

  it('output png and coco_rle hold the same mask (same area)', async () => {
    const [x1, y1, x2, y2] = shape.box;
    const box = JSON.stringify({ x1, y1, x2, y2 });
    const rle = (await post('box', { box, multimask_output: 'false' })).body as Answer;
    const png = (await post('box', { box, multimask_output: 'false', output: 'png' })).body as Answer;
    const coco = (await post('box', { box, multimask_output: 'false', output: 'coco_rle' })).body as Answer;
    const area = rle.results[0]!.masks[0]!.area;
    const raw = await sharp(Buffer.from(png.results[0]!.masks[0]!.mask as string, 'base64'))
      .extractChannel(0)
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect(raw.info).toMatchObject({ width: img.width, height: img.height });
    expect(raw.data.reduce((s, v) => s + (v > 127 ? 1 : 0), 0)).toBe(area);
    const c = coco.results[0]!.masks[0]!.mask as { size: number[]; counts: string };
    expect(c.size).toEqual([img.height, img.width]);
    expect(typeof c.counts).toBe('string');
    expect(coco.results[0]!.masks[0]!.area).toBe(area);
  });

  it('async: 202 with the job URLs, the result at /jobs/{id}/result; SVG visualization; 404 for another user', async () => {
    const res = await post('points/async', { points: JSON.stringify([{ x: shape.point[0], y: shape.point[1] }]) });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const { job_id, status_url, result_url } = res.body as { job_id: string; status_url: string; result_url: string };
    expect(status_url).toBe(`/api/v1/jobs/${job_id}/status`);
    const r = await request(t.server).get(`${result_url}?wait_ms=30000`).set(alice.auth);
    expect(r.body.status, JSON.stringify(r.body)).toBe('completed');
    expect(r.body.result.results[0].masks).toHaveLength(3);
    const svg = await request(t.server)
      .get(`/api/v1/jobs/${job_id}/visualization.svg`)
      .set(alice.auth)
      .buffer(true)
      .parse((res2, cb) => {
        let s = '';
        res2.on('data', (c: Buffer) => (s += c.toString('utf8')));
        res2.on('end', () => cb(null, s));
      });
    expect(svg.status).toBe(200);
    expect(svg.headers['content-type']).toMatch(/^image\/svg\+xml/);
    const text = svg.body as string;
    expect(text.startsWith('<svg')).toBe(true);
    expect(text.trimEnd().endsWith('</svg>')).toBe(true);
    expect(text.match(/<path /g)).toHaveLength(3);
    expect(text.match(/<image /g)).toHaveLength(1);
    expect(text).toContain('data:image/jpeg;base64,');
    if (browserTestsRun) await expectChromiumRenders(text);
    expectProblem(await request(t.server).get(`/api/v1/jobs/${job_id}/visualization.svg`).set(bob.auth), 404, 'JOB_NOT_FOUND');
    expectProblem(await request(t.server).get(`/api/v1/jobs/${job_id}/result`).set(bob.auth), 404, 'JOB_NOT_FOUND');
  });

  it('an image_id of your own images works; another user cannot use it', async () => {
    const up = await request(t.server).post('/api/v1/images').set(alice.auth).attach('images', file);
    expect(up.status, JSON.stringify(up.body)).toBeLessThan(300);
    const imageId = up.body.data[0].id as string;
    const [x1, y1, x2, y2] = shape.box;
    const ok = await post('box/async', { image_id: imageId, box: JSON.stringify({ x1, y1, x2, y2 }) }, alice, null);
    expect(ok.status, JSON.stringify(ok.body)).toBe(202);
    const job = await waitFor(async () => {
      const s = (await request(t.server).get(`/api/v1/jobs/${ok.body.job_id}`).set(alice.auth)).body;
      return s.status === 'completed' || s.status === 'failed' ? s : null;
    }, 60000);
    expect(job.status, JSON.stringify(job)).toBe('completed');
    expectProblem(await post('box', { image_id: imageId, box: JSON.stringify({ x1, y1, x2, y2 }) }, bob, null), 404, 'NOT_FOUND');
  });
  // Bad input and ownership: test/segment-bad-input.e2e-spec.ts (one table for every segment route).
});
