import { resolve } from 'node:path';
import sharp from 'sharp';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maskIoU, rleDecode, type Rle } from '@aperture/inference/mask.js';
import { createTestApp, type TestApp } from './support/app.js';
import { browserTestsRun, parseSvgInChromium } from './support/browser.js';
import { testEnv } from './support/env.js';
import { FakeDrive, makeServiceAccount } from './support/fake-drive.js';
import { fixtures, gt } from './support/fixtures.js';
import { expectProblem, type LoggedIn, registerAndLogin } from './support/http.js';

/** POST /segment/objects and /segment/objects/async through HTTP, the queue, the worker (sam-tiny) and a fake Drive. */

const FOLDER = 'objects-folder';
const OTHER_FOLDER = 'objects-second-folder';
/** Small grid: sam-tiny's decoder runs once per point. */
const FAST = { points_per_side: '4', pred_iou_thresh: '0.5', stability_score_thresh: '0.8' };

interface Shape {
  mask: Rle;
  point: [number, number];
  box: [number, number, number, number];
}
const truth = gt<{ images: { file: string; width: number; height: number; shapes: Shape[] }[] }>('sam/ground-truth.json');
const img = truth.images[3]!; // 500×500, three shapes
const file = resolve(fixtures, img.file);

interface ObjectOut {
  index: number;
  bbox: number[];
  area: number;
  score: number;
  stability_score: number | null;
  crop_box: [number, number, number, number];
  object_file: string;
  mask_file: string;
  object_url: string;
  mask_url: string;
}
interface Answer {
  job_id: string;
  model: string;
  width: number;
  height: number;
  mode: string;
  saved: string[];
  skipped: number;
  objects: ObjectOut[];
  drive_files: { name: string; file_id: string; web_view: string }[];
  drive_error: string | null;
  overlay_url: string;
  metadata_url: string;
  visualization_url: string;
}
interface ArtifactOut {
  id: string;
  name: string;
  content_type: string;
  size_bytes: number;
  url: string;
}

const binary = (res: request.Response, cb: (err: Error | null, body: Buffer) => void): void => {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => cb(null, Buffer.concat(chunks)));
};

/** Raw pixels of a PNG, with its channel count as stored (a greyscale PNG is read as one channel). */
async function pixels(png: Buffer): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const { channels } = await sharp(png).metadata();
  const image = channels === 1 ? sharp(png).extractChannel(0) : sharp(png);
  const { data, info } = await image.raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: channels === 1 ? 1 : info.channels };
}

describe('POST /segment/objects (object extraction)', () => {
  let t: TestApp;
  let alice: LoggedIn;
  let bob: LoggedIn;
  const fake = new FakeDrive();
  const account = makeServiceAccount();
  let original: Buffer;
  beforeAll(async () => {
    await fake.start();
    fake.addServiceAccount(account);
    fake.addFolder(FOLDER);
    fake.addFolder(OTHER_FOLDER);
    const env = testEnv('objects', {
      GOOGLE_DRIVE_ENABLED: 'true',
      GOOGLE_SERVICE_ACCOUNT_JSON: JSON.stringify(account.json),
      DRIVE_FOLDER_ID: FOLDER,
      GOOGLE_DRIVE_ROOT_URL: fake.rootUrl,
      GOOGLE_DRIVE_TOKEN_URL: fake.tokenUrl,
    });
    t = await createTestApp(env, { worker: true });
    alice = await registerAndLogin(t.server, 'objects_a');
    bob = await registerAndLogin(t.server, 'objects_b');
    original = await sharp(file).removeAlpha().raw().toBuffer();
  });
  afterAll(async () => {
    await t?.close();
    await fake.stop();
  });

  const post = (path: string, fields: Record<string, string>, user = alice, attach: string | Buffer | null = file): request.Test => {
    let req = request(t.server).post(`/api/v1/segment/objects${path}`).set(user.auth);
    if (typeof attach === 'string') req = req.attach('image', attach);
    else if (attach) req = req.attach('image', attach, 'file.png');
    for (const [k, v] of Object.entries(fields)) req = req.field(k, v);
    return req;
  };
  const download = async (url: string, user = alice): Promise<request.Response> =>
    request(t.server).get(url).set(user.auth).buffer(true).parse(binary);
  const finished = async (jobId: string): Promise<Answer & { status: string }> => {
    const r = await request(t.server).get(`/api/v1/jobs/${jobId}/result?wait_ms=30000`).set(alice.auth);
    expect(r.body.status, JSON.stringify(r.body)).toBe('completed');
    return { job_id: jobId, status: r.body.status, ...(r.body.result as Omit<Answer, 'job_id'>) };
  };
  const jobTotal = async (user = alice): Promise<number> =>
    (await request(t.server).get('/api/v1/jobs?type=segment.objects').set(user.auth)).body.total as number;

  /** The object's RGBA PNG against its mask PNG: the crop is tight, alpha is 255 on the mask, 0 off it; RGB is the image's. */
  async function checkObject(o: ObjectOut, feather: number): Promise<Uint8Array> {
    const objRes = await download(o.object_url);
    expect(objRes.status).toBe(200);
    expect(objRes.headers['content-type']).toMatch(/^image\/png/);
    const obj = await pixels(objRes.body as Buffer);
    const maskRes = await download(o.mask_url);
    const mask = await pixels(maskRes.body as Buffer);
    expect([mask.width, mask.height, mask.channels]).toEqual([img.width, img.height, 1]);
    const [cx, cy, cw, ch] = o.crop_box;
    expect([obj.width, obj.height, obj.channels]).toEqual([cw, ch, 4]);
    // Counted, then asserted once (an expect per pixel would cost seconds).
    const full = new Uint8Array(img.width * img.height);
    let area = 0;
    let notBinary = 0;
    for (let i = 0; i < full.length; i++) {
      if (mask.data[i] !== 0 && mask.data[i] !== 255) notBinary++;
      if (mask.data[i]) {
        full[i] = 1;
        area++;
      }
    }
    expect(notBinary).toBe(0);
    expect(area).toBe(o.area);
    const rowsOn = new Set<number>();
    const colsOn = new Set<number>();
    const bad = { alphaOff: 0, alphaOn: 0, rgb: 0 };
    let partial = 0;
    for (let y = 0; y < ch; y++) {
      for (let x = 0; x < cw; x++) {
        const on = full[(cy + y) * img.width + cx + x] === 1;
        const p = (y * cw + x) * 4;
        const alpha = obj.data[p + 3]!;
        if (!on && alpha !== 0) bad.alphaOff++;
        if (on && feather === 0 && alpha !== 255) bad.alphaOn++;
        if (on && feather > 0 && alpha < 255) partial++;
        if (on) {
          rowsOn.add(y);
          colsOn.add(x);
          const q = ((cy + y) * img.width + cx + x) * 3;
          if (obj.data[p] !== original[q] || obj.data[p + 1] !== original[q + 1] || obj.data[p + 2] !== original[q + 2]) bad.rgb++;
        }
      }
    }
    expect(bad).toEqual({ alphaOff: 0, alphaOn: 0, rgb: 0 });
    // Tight: the mask touches every side of the crop, and nothing of it lies outside the crop.
    expect([rowsOn.has(0), rowsOn.has(ch - 1), colsOn.has(0), colsOn.has(cw - 1)]).toEqual([true, true, true, true]);
    let inside = 0;
    for (const y of rowsOn) for (let x = 0; x < cw; x++) inside += full[(cy + y) * img.width + cx + x]!;
    expect(inside).toBe(o.area);
    if (feather > 0) expect(partial).toBeGreaterThan(0);
    expect(o.bbox).toEqual([cx, cy, cw - 1, ch - 1]);
    return full;
  }

  let autoJob: Answer;

  it('sync, automatic masks: every object is a tight RGBA crop with its mask as alpha; every artifact downloads', async () => {
    const res = await post('', { ...FAST, min_pixels: '0' });
    expect(res.status, JSON.stringify(res.body).slice(0, 500)).toBe(200);
    const a = res.body as Answer;
    autoJob = a;
    const stored = await request(t.server).get(`/api/v1/jobs/${a.job_id}/result`).set(alice.auth);
    expect(stored.body.result).toEqual(a);
    expect(a).toMatchObject({ model: 'sam-tiny', width: 500, height: 500, mode: 'auto', skipped: 0, drive_files: [], drive_error: null });
    expect(a.objects.length).toBeGreaterThan(1);
    expect(a.saved).toEqual(a.objects.map((o) => `object_${o.index}.png`));
    expect(a.objects.map((o) => o.index)).toEqual(a.objects.map((_, i) => i));
    const areas = a.objects.map((o) => o.area);
    expect(areas).toEqual([...areas].sort((x, y) => y - x));
    for (const o of a.objects) {
      expect(o.score).toBeGreaterThan(0.5);
      expect(o.stability_score).toBeGreaterThanOrEqual(0.8);
      await checkObject(o, 0);
    }
    // The biggest objects are the drawn shapes.
    const best = await Promise.all(
      img.shapes.map(async (s) => {
        const gtMask = rleDecode(s.mask);
        let top = 0;
        for (const o of a.objects) {
          const m = await pixels((await download(o.mask_url)).body as Buffer);
          top = Math.max(
            top,
            maskIoU(
              Uint8Array.from(m.data, (v) => (v ? 1 : 0)),
              gtMask,
            ),
          );
        }
        return top;
      }),
    );
    expect(Math.max(...best)).toBeGreaterThanOrEqual(0.8);

    // Every artifact through the jobs route, and the job's record lists exactly these files.
    const job = await request(t.server).get(`/api/v1/jobs/${a.job_id}`).set(alice.auth);
    expect(job.body).toMatchObject({ type: 'segment.objects', status: 'completed', progress: 1 });
    const artifacts = job.body.artifacts as ArtifactOut[];
    const names = a.objects.flatMap((o) => [o.object_file, o.mask_file]).concat(['overlay.png', 'visualization.svg', 'metadata.json']);
    expect(artifacts.map((x) => x.name).sort()).toEqual([...names].sort());
    for (const x of artifacts) {
      const r = await download(x.url);
      expect(r.status, x.name).toBe(200);
      expect(r.headers['content-type']).toContain(x.content_type);
      expect((r.body as Buffer).length).toBe(x.size_bytes);
    }
    const meta = JSON.parse(((await download(a.metadata_url)).body as Buffer).toString('utf8'));
    expect(meta).toMatchObject({
      job_id: a.job_id,
      model: 'sam-tiny',
      image: { width: 500, height: 500 },
      saved: a.objects.length,
      skipped: 0,
    });
    expect(meta.params).toMatchObject({ mode: 'auto', min_pixels: 0, feather: 0, clean_area: 100 });
    expect(meta.objects).toEqual(a.objects.map(({ object_url: _o, mask_url: _m, ...o }) => o));
    const overlay = await pixels((await download(a.overlay_url)).body as Buffer);
    expect([overlay.width, overlay.height, overlay.channels]).toEqual([500, 500, 3]);
    const first = await checkObject(a.objects[0]!, 0);
    let tinted = 0;
    for (let i = 0; i < first.length; i++) {
      const d = Math.abs(overlay.data[i * 3]! - original[i * 3]!) + Math.abs(overlay.data[i * 3 + 1]! - original[i * 3 + 1]!);
      if (first[i] && d > 0) tinted++;
    }
    expect(tinted).toBeGreaterThan(a.objects[0]!.area * 0.9);
    const svg = await request(t.server).get(a.visualization_url).set(alice.auth).buffer(true).parse(binary);
    expect(svg.status).toBe(200);
    expect((svg.body as Buffer).toString('utf8').match(/<path /g)).toHaveLength(a.objects.length);
  }, 180_000);

  it('min_pixels drops the smaller masks and counts them in skipped', async () => {
    const areas = autoJob.objects.map((o) => o.area).sort((x, y) => x - y);
    const threshold = areas[Math.floor(areas.length / 2)]!;
    const res = await post('/async', { ...FAST, min_pixels: String(threshold) });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const a = await finished(res.body.job_id);
    expect(a.objects.map((o) => o.area)).toEqual(autoJob.objects.filter((o) => o.area >= threshold).map((o) => o.area));
    expect(a.skipped).toBe(areas.filter((v) => v < threshold).length);
    expect(a.skipped).toBeGreaterThan(0);
    expect(a.saved).toHaveLength(a.objects.length);
  }, 120_000);

  it('async, points and box prompts: one object per prompt set, the clicked shapes; feather softens the edge inside the mask', async () => {
    const [s0, s1] = [img.shapes[0]!, img.shapes[1]!];
    const pts = await post('/async', { points: JSON.stringify([{ x: s0.point[0], y: s0.point[1] }]), min_pixels: '100', feather: '3' });
    expect(pts.status, JSON.stringify(pts.body)).toBe(202);
    expect(pts.body).toEqual({
      job_id: pts.body.job_id,
      status: 'queued',
      status_url: `/api/v1/jobs/${pts.body.job_id}/status`,
      result_url: `/api/v1/jobs/${pts.body.job_id}/result`,
    });
    const a = await finished(pts.body.job_id);
    expect(a).toMatchObject({ mode: 'prompts', skipped: 0 });
    expect(a.objects).toHaveLength(1);
    expect(a.objects[0]!.stability_score).toBeNull();
    const m0 = await checkObject(a.objects[0]!, 3);
    expect(maskIoU(m0, rleDecode(s0.mask))).toBeGreaterThanOrEqual(0.8);

    const boxes = [s0.box, s1.box].map(([x1, y1, x2, y2]) => ({
      x1: x1 / img.width,
      y1: y1 / img.height,
      x2: x2 / img.width,
      y2: y2 / img.height,
    }));
    const res = await post('', { box: JSON.stringify(boxes), min_pixels: '100', model_type: 'sam-tiny' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const b = res.body as Answer;
    expect(b.objects).toHaveLength(2);
    const masks = await Promise.all(b.objects.map((o) => checkObject(o, 0)));
    for (const s of [s0, s1]) expect(Math.max(...masks.map((m) => maskIoU(m, rleDecode(s.mask))))).toBeGreaterThanOrEqual(0.8);
  }, 120_000);

  it('save_to_drive: every file lands in the folder with the same bytes, named after the job', async () => {
    const point = JSON.stringify([{ x: img.shapes[1]!.point[0], y: img.shapes[1]!.point[1] }]);
    const res = await post('', { points: point, min_pixels: '100', save_to_drive: 'true' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const a = res.body as Answer;
    expect(a.drive_error).toBeNull();
    const job = await request(t.server).get(`/api/v1/jobs/${a.job_id}`).set(alice.auth);
    const artifacts = job.body.artifacts as ArtifactOut[];
    expect(a.drive_files.map((f) => f.name).sort()).toEqual(artifacts.map((x) => `${a.job_id}_${x.name}`).sort());
    for (const x of artifacts) {
      const f = a.drive_files.find((d) => d.name === `${a.job_id}_${x.name}`)!;
      const stored = fake.files.get(f.file_id)!;
      expect(stored).toMatchObject({ name: f.name, mimeType: x.content_type, parents: [FOLDER] });
      expect(f.web_view).toContain(f.file_id);
      expect(stored.content.equals((await download(x.url)).body as Buffer)).toBe(true);
    }

    const other = await post('/async', { points: point, min_pixels: '100', save_to_drive: 'true', drive_folder_id: OTHER_FOLDER });
    const b = await finished(other.body.job_id);
    expect(b.drive_files.length).toBeGreaterThan(0);
    for (const f of b.drive_files) expect(fake.files.get(f.file_id)!.parents).toEqual([OTHER_FOLDER]);
  }, 120_000);

  it('Drive refusing the token: 503 DRIVE_ERROR with the job id; the local artifacts are kept', async () => {
    const point = JSON.stringify([{ x: img.shapes[2]!.point[0], y: img.shapes[2]!.point[1] }]);
    const before = fake.files.size;
    fake.failWith = 401;
    let res: request.Response;
    try {
      res = await post('', { points: point, min_pixels: '100', save_to_drive: 'true' });
    } finally {
      fake.failWith = null;
    }
    expectProblem(res, 503, 'DRIVE_ERROR', /refused the service account's token.*The objects were saved/);
    const jobId = res.body.job_id as string;
    expect(res.body.result_url).toBe(`/api/v1/jobs/${jobId}/result`);
    expect(fake.files.size).toBe(before);
    const a = await finished(jobId);
    expect(a.drive_files).toEqual([]);
    expect(a.drive_error).toMatch(/refused the service account's token/);
    expect(a.objects).toHaveLength(1);
    await checkObject(a.objects[0]!, 0);
    expect((await download(a.metadata_url)).status).toBe(200);
    expect((await download(a.overlay_url)).status).toBe(200);

    // A folder the service account cannot reach: the async job completes with the reason in drive_error.
    const noAccess = await post('/async', { points: point, min_pixels: '100', save_to_drive: 'true', drive_folder_id: 'not-shared' });
    const b = await finished(noAccess.body.job_id);
    expect(b.drive_error).toMatch(/^No write access to Drive folder not-shared/);
    expect(b.drive_files).toEqual([]);
    expect(b.saved).toEqual(['object_0.png']);
  }, 120_000);

  it("another user's job, files and image are 404", async () => {
    const a = autoJob;
    expectProblem(await request(t.server).get(`/api/v1/jobs/${a.job_id}`).set(bob.auth), 404, 'JOB_NOT_FOUND');
    expectProblem(await request(t.server).get(`/api/v1/jobs/${a.job_id}/result`).set(bob.auth), 404, 'JOB_NOT_FOUND');
    expectProblem(await request(t.server).get(a.objects[0]!.object_url).set(bob.auth), 404, 'JOB_NOT_FOUND');
    expectProblem(await request(t.server).get(a.metadata_url).set(bob.auth), 404, 'JOB_NOT_FOUND');
    expectProblem(await request(t.server).get(a.visualization_url).set(bob.auth), 404, 'JOB_NOT_FOUND');
    const up = await request(t.server).post('/api/v1/images').set(alice.auth).attach('images', file);
    expect(up.status, JSON.stringify(up.body)).toBe(201);
    const imageId = up.body.data[0].id as string;
    const point = JSON.stringify([{ x: 0.5, y: 0.5 }]);
    expectProblem(await post('/async', { image_id: imageId, points: point }, bob, null), 404, 'NOT_FOUND');
    const own = await post('/async', { image_id: imageId, points: point, min_pixels: '0' }, alice, null);
    expect(own.status, JSON.stringify(own.body)).toBe(202);
    await finished(own.body.job_id);
  }, 120_000);

  it('refuses bad input with a clear 400 and stores nothing', async () => {
    const before = await jobTotal();
    const field = (res: request.Response, name: string, detail?: RegExp): void => {
      expectProblem(res, 400, 'VALIDATION_ERROR', detail);
      expect(res.body.errors.map((e: { field: string }) => e.field)).toContain(name);
    };
    expectProblem(await post('', { points: '[{"x":1,' }), 400, 'VALIDATION_ERROR', /points must be valid JSON/);
    expectProblem(await post('/async', { box: '{"x1":1' }), 400, 'VALIDATION_ERROR', /box must be valid JSON/);
    field(await post('', { min_pixels: '-1' }), 'min_pixels');
    field(await post('/async', { min_pixels: 'many' }), 'min_pixels');
    field(await post('/async', { feather: '101' }), 'feather');
    field(await post('/async', { feather: '-2' }), 'feather');
    field(await post('/async', { save_to_drive: 'maybe' }), 'save_to_drive');
    field(await post('/async', { save_to_drive: 'true', drive_folder_id: '../x' }), 'drive_folder_id');
    field(await post('/async', { points_per_side: '0' }), 'points_per_side');
    field(await post('/async', { points: '[{"x":0.5,"y":0.5}]', points_per_side: '8' }), 'points_per_side', /automatic generator only/);
    field(await post('/async', { points: '[]' }), 'points');
    expectProblem(await post('/async', { points: JSON.stringify([{ x: 900, y: 10 }]) }), 400, 'VALIDATION_ERROR', /outside the image/);
    expectProblem(await post('/async', { model: 'primitives-obb' }), 400, 'VALIDATION_ERROR', /sam-tiny/);
    expectProblem(await post('', {}, alice, Buffer.from('not an image at all')), 400, 'IMAGE_VALIDATION_ERROR');
    expectProblem(await post('/async', {}, alice, null), 400, 'VALIDATION_ERROR', /image/);
    expect(await jobTotal()).toBe(before);
  });

  it('the segment.auto job now has a visualization.svg too: one outline per mask, a valid SVG', async () => {
    const res = await request(t.server)
      .post('/api/v1/segment/auto/async')
      .set(alice.auth)
      .field('points_per_side', FAST.points_per_side)
      .field('pred_iou_thresh', FAST.pred_iou_thresh)
      .field('stability_score_thresh', FAST.stability_score_thresh)
      .attach('image', file);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const r = await request(t.server).get(`/api/v1/jobs/${res.body.job_id}/result?wait_ms=30000`).set(alice.auth);
    expect(r.body.status, JSON.stringify(r.body)).toBe('completed');
    const svg = await request(t.server).get(`/api/v1/jobs/${res.body.job_id}/visualization.svg`).set(alice.auth).buffer(true).parse(binary);
    expect(svg.status).toBe(200);
    expect(svg.headers['content-type']).toMatch(/^image\/svg\+xml/);
    const text = (svg.body as Buffer).toString('utf8');
    expect(text.match(/<path /g)).toHaveLength(r.body.result.masks.length);
    expect(text.match(/<image /g)).toHaveLength(1);
    if (browserTestsRun) expect(await parseSvgInChromium(text)).toEqual({ root: 'svg', errors: 0 });
  }, 120_000);
});

describe('POST /segment/objects with Google Drive disabled', () => {
  let t: TestApp;
  let alice: LoggedIn;
  beforeAll(async () => {
    t = await createTestApp(testEnv('objects_nodrive', { GOOGLE_DRIVE_ENABLED: 'false' }));
    alice = await registerAndLogin(t.server, 'objects_nodrive');
  });
  afterAll(() => t?.close());

  it('save_to_drive is 503 DRIVE_ERROR before anything is stored', async () => {
    for (const path of ['', '/async']) {
      const res = await request(t.server)
        .post(`/api/v1/segment/objects${path}`)
        .set(alice.auth)
        .field('save_to_drive', 'true')
        .field('points', '[{"x":0.5,"y":0.5}]')
        .attach('image', file);
      expectProblem(res, 503, 'DRIVE_ERROR', 'Google Drive is not enabled on this server (GOOGLE_DRIVE_ENABLED is false).');
    }
    expect((await request(t.server).get('/api/v1/jobs').set(alice.auth)).body.total).toBe(0);
    expect((await request(t.server).get('/api/v1/images').set(alice.auth)).body.total).toBe(0);
  });
});
