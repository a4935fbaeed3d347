import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import type { Locator, Page, Response as PageResponse } from 'playwright-core';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './support/app.js';
import { browserTestsRun, launchChromium, screenshotPath } from './support/browser.js';
import { testEnv } from './support/env.js';
import { fixtures } from './support/fixtures.js';
import { uniqueName } from './support/http.js';

/** A real photo from the shipped fixtures, uploaded through Swagger UI's file input. */
const PHOTO = resolve(fixtures, 'primitives', 'livingroom-03-800x600.jpg');

/** The response to the next request whose path and method match, started by `act`. */
async function responseTo(page: Page, method: string, path: string, act: () => Promise<void>): Promise<PageResponse> {
  const [res] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === method && new URL(r.url()).pathname === path),
    act(),
  ]);
  return res;
}

/** Expands an operation, presses "Try it out" (after `fill`, if any, fills its form) and "Execute". */
async function tryItOut(page: Page, opId: string, method: string, path: string, fill?: (op: Locator) => Promise<void>) {
  const op = page.locator(`#${opId}`);
  await op.locator('.opblock-summary-control').click();
  await op.locator('button.try-out__btn').click();
  if (fill) await fill(op);
  const res = await responseTo(page, method, path, () => op.locator('button.execute').click());
  // The rendered live response: its status and body as Swagger UI shows them.
  const live = op.locator('.live-responses-table .response');
  await live.locator('.response-col_status').waitFor();
  return {
    op,
    res,
    status: (await live.locator('.response-col_status').textContent())?.trim(),
    body: live.locator('.response-col_description'),
  };
}

describe.runIf(browserTestsRun)('Swagger UI at /docs in headless Chromium', () => {
  let t: TestApp;
  let base: string;
  const username = uniqueName('swagger');
  const password = 'swagger-ui-password';

  beforeAll(async () => {
    t = await createTestApp(testEnv('swagger-ui', { API_DOCS: 'public' }));
    await t.app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(t.server.address() as AddressInfo).port}`;
    const reg = await request(t.server)
      .post('/api/v1/auth/register')
      .send({ username, email: `${username}@example.com`, password });
    expect(reg.status, JSON.stringify(reg.body)).toBe(201);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('signs in with Authorize (OAuth2 password flow), then tries GET /auth/me and a multipart image upload', async () => {
    const browser = await launchChromium();
    const shot = screenshotPath('swagger-ui');
    const errors: string[] = [];
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    try {
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
      const nav = await page.goto(`${base}/docs`);
      expect(nav?.status()).toBe(200);
      await page.locator('#operations-auth-me').waitFor();

      // Authorize: the oauth2 scheme's password flow posts the form to its tokenUrl.
      await page.locator('.auth-wrapper button.authorize').click();
      const oauth = page
        .locator('.modal-ux .auth-container')
        .filter({ has: page.locator('h4', { hasText: /^oauth2 \(OAuth2, password\)/ }) });
      await oauth.locator('#oauth_username').fill(username);
      await oauth.locator('#oauth_password').fill(password);
      const token = await responseTo(page, 'POST', '/api/v1/auth/token', () => oauth.locator('button.authorize').click());
      expect(token.status(), await token.text()).toBe(200);
      expect(token.request().headers()['content-type']).toMatch(/^application\/x-www-form-urlencoded/);
      const form = new URLSearchParams(token.request().postData() ?? '');
      expect([form.get('grant_type'), form.get('username'), form.get('password')]).toEqual(['password', username, password]);
      await oauth.locator('h6', { hasText: 'Authorized' }).waitFor(); // Swagger UI took the token
      await page.locator('.modal-ux button.close-modal').click();

      // Try it out: GET /api/v1/auth/me sends the token and shows the signed-in user.
      const me = await tryItOut(page, 'operations-auth-me', 'GET', '/api/v1/auth/me');
      expect(me.res.request().headers()['authorization']).toMatch(/^Bearer /);
      expect(me.status).toBe('200');
      expect(await me.body.textContent()).toContain(`"username": "${username}"`);

      // Try it out: POST /api/v1/images with a real photo in Swagger UI's file input for the `images` array.
      const up = await tryItOut(page, 'operations-images-uploadImages', 'POST', '/api/v1/images', async (op) => {
        const body = op.locator('.opblock-section-request-body');
        // The `images` row (the form also lists the deprecated `file`): the array's first item is already there.
        await body.locator('tr').filter({ hasText: 'One or more image files' }).locator('input[type=file]').setInputFiles(PHOTO);
      });
      expect(up.res.request().headers()['content-type']).toMatch(/^multipart\/form-data; boundary=/);
      expect(up.status).toBe('201');
      const text = (await up.body.textContent()) ?? '';
      expect(text).toContain('"width": 800');
      expect(text).toContain('"height": 600');

      // The upload is really stored for the user Swagger UI signed in as.
      const images = await request(t.server)
        .get('/api/v1/images')
        .set('Authorization', (await me.res.request().allHeaders())['authorization']!);
      expect(images.status).toBe(200);
      expect(images.body.total).toBe(1);

      // The screenshot shows the two operations tried: every other tag section and the schemas are hidden.
      const tried = '#operations-auth-me, #operations-images-uploadImages';
      const hidden = [
        `.opblock-tag-section:not(:has(${tried}))`,
        `.opblock:not(${tried})`,
        'section.models',
        '.responses-table:not(.live-responses-table)',
      ];
      await page.addStyleTag({ content: `${hidden.join(', ')} { display: none !important; }` });
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`Swagger UI screenshot: ${shot}`);
      expect(errors).toEqual([]);
    } catch (e) {
      await page.screenshot({ path: shot, fullPage: true }).catch(() => undefined);
      console.log(`Swagger UI screenshot (failed run): ${shot}; page errors: ${errors.join(' | ') || 'none'}`);
      throw e;
    } finally {
      await browser.close();
    }
  });
});
