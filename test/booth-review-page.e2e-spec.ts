import type { AddressInfo } from 'node:net';
import { unzipSync } from 'fflate';
import sharp from 'sharp';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './support/app.js';
import { browserTestsRun, launchChromium, screenshotPath } from './support/browser.js';
import { asBuffer, type Auth, boothDatabase, photo, qrCodes, reviewable, STATION_PASSWORD, stationAuth, submit } from './support/booth.js';
import { testEnv } from './support/env.js';
import { expectProblem } from './support/http.js';

describe.runIf(browserTestsRun)("the reviewer's page in headless Chromium", () => {
  let t: TestApp;
  let base: string;
  let station: Auth;
  let codes: string[];

  let db: Awaited<ReturnType<typeof boothDatabase>>;

  beforeAll(async () => {
    db = await boothDatabase('booth_page');
    const env = testEnv('booth-page', { DATABASE_URL: db.url, STATION_PASSWORD });
    t = await createTestApp(env, { worker: true });
    await t.app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(t.server.address() as AddressInfo).port}`;
    station = await stationAuth(t.server);
    codes = await qrCodes(t.server, station, 2, env.DATABASE_URL!);
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });

  it('signs in with the station password, shows the options side by side, confirms one, shows it on the carousel', async () => {
    const res = await submit(
      t.server,
      station,
      { qr_content: codes[0], animal_name: 'Pixel', animal_type: 'cat' },
      photo('shapes-02-800x450.png'),
    );
    const jobId: string = res.body.job_id;
    await reviewable(t.server, station, jobId);
    const option2 = (await asBuffer(request(t.server).get(`/api/v1/jobs/${jobId}/options/2`).set(station))).body as Buffer;

    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
      const nav = await page.goto(`${base}/booth/review`);
      expect(nav?.status()).toBe(200);
      expect(nav?.headers()['content-security-policy']).toMatch(/script-src 'self'/);

      await page.fill('#password', 'not the password');
      await page.click('#signin-button');
      await page.waitForSelector('#signin-error:not(:empty)');
      expect(await page.textContent('#signin-error')).toMatch(/Incorrect/);
      errors.length = 0; // the refused sign-in's 401 is logged by the browser

      await page.fill('#password', STATION_PASSWORD);
      await page.click('#signin-button');
      const card = page.locator(`article[data-job-id="${jobId}"]`);
      await card.waitFor({ timeout: 60000 }).catch(async (e: unknown) => {
        await page.screenshot({ path: screenshotPath('booth-review-failed'), fullPage: true });
        throw new Error(`no card for job ${jobId}; status: "${await page.textContent('#status')}"; errors: ${errors.join(' | ')}`, {
          cause: e,
        });
      });
      expect(await card.locator('h3').textContent()).toBe('Pixel (cat) of Alice Smith');
      // The original and the three options, every one loaded (fetched with the station token).
      await page.waitForFunction(
        `(() => { const imgs = [...document.querySelectorAll('article[data-job-id="${jobId}"] img')];
                  return imgs.length === 4 && imgs.every((i) => i.complete && i.naturalWidth === 800 && i.naturalHeight === 450); })()`,
      );
      expect(await card.locator('figcaption').allTextContents()).toEqual(['Original', 'Option 0', 'Option 1', 'Option 2']);
      expect(await card.locator('button.confirm').allTextContents()).toEqual(['Confirm option 0', 'Confirm option 1', 'Confirm option 2']);
      await page.screenshot({ path: screenshotPath('booth-review'), fullPage: true });
      const shot = await sharp(screenshotPath('booth-review')).stats();
      expect(shot.channels[0]!.stdev).toBeGreaterThan(10); // the options are drawn, not a blank page

      await card.locator('button.confirm[data-choice="2"]').click();
      await page.waitForSelector('#empty');
      expect(await page.textContent('#status')).toBe('Confirmed option 2: carousel #0');
      expect(await page.locator('#carousel li a').getAttribute('href')).toBe('/api/v1/carousel/0');
      await page.screenshot({ path: screenshotPath('booth-review-confirmed'), fullPage: true });
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
    }
    // What the page confirmed is what the carousel and the owner's page serve.
    const zip = unzipSync(new Uint8Array((await asBuffer(request(t.server).get('/api/v1/carousel/0'))).body as Buffer));
    expect(Buffer.from(zip['xray.png']!).equals(option2)).toBe(true);
    expect((await request(t.server).get(`/api/v1/booth/results/${codes[0]}`)).status).toBe(200);
    expectProblem(await request(t.server).post(`/api/v1/jobs/${jobId}/review`).set(station).send({ decision: 'cancel' }), 409, 'CONFLICT');
  });
});
