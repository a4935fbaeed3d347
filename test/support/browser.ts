import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';

// Browser tests drive Debian's Chromium through playwright-core. Outside CI a machine without Chromium skips them
// (./aperture test installs it when it may); in CI a missing Chromium is a failure, never a silent skip.
export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const hasChromium = existsSync(chromiumPath);
export const browserTestsRun = hasChromium || process.env.CI === 'true';

export async function launchChromium(): Promise<Browser> {
  if (!hasChromium) throw new Error(`no Chromium at ${chromiumPath}: apt-get install chromium, or set CHROMIUM_PATH`);
  return chromium.launch({
    executablePath: chromiumPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/** Where tests leave screenshots for people to look at: tmp/screenshots/<name>.png. */
export function screenshotPath(name: string): string {
  const dir = join(process.cwd(), 'tmp', 'screenshots');
  mkdirSync(dir, { recursive: true });
  return join(dir, `${name}.png`);
}

/**
 * Chromium's reading of an SVG document loaded on its own: the root element's name and the count of parser errors
 * (a malformed SVG becomes an error page). The expression runs in the page, so it is a string (no DOM types here).
 */
export const SVG_PARSE_CHECK =
  "({ root: document.documentElement.localName, errors: document.getElementsByTagName('parsererror').length })";

/** Loads the SVG in a new Chromium page and answers SVG_PARSE_CHECK. */
export async function parseSvgInChromium(svg: string): Promise<{ root: string; errors: number }> {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    await page.goto(`data:image/svg+xml;base64,${Buffer.from(svg, 'utf8').toString('base64')}`);
    return await page.evaluate<{ root: string; errors: number }>(SVG_PARSE_CHECK);
  } finally {
    await browser.close();
  }
}
