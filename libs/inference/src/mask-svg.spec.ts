import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { renderMaskSvg, SVG_MAX_SIDE } from './mask-svg.js';
import { outlinePath, traceOutlines } from './outline.js';

describe('renderMaskSvg', () => {
  it('embeds the image downscaled to SVG_MAX_SIDE and draws one path and one score label per mask', async () => {
    const W = 2048;
    const H = 1000;
    const img = { data: new Uint8Array(W * H * 3).fill(90), width: W, height: H };
    const a = new Uint8Array(W * H);
    a.fill(1, 10 * W, 20 * W); // rows 10..19
    const b = new Uint8Array(W * H);
    b[500 * W + 700] = 1;
    const svg = await renderMaskSvg(img, [
      { mask: a, score: 0.91234, title: 'object <0> & "a"' },
      { mask: b, score: 0.5, title: 'object 1' },
    ]);
    expect(svg.startsWith(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`)).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg.match(/<path /g)).toHaveLength(2);
    expect(svg.match(/<text /g)).toHaveLength(2);
    expect(svg).toContain('<title>object &lt;0&gt; &amp; &quot;a&quot; score 0.912</title>');
    expect(svg).toContain('>0.500</text>');
    expect(svg).toContain('d="M700 500L701 500L701 501L700 501Z"');
    const jpeg = Buffer.from(/base64,([^"]+)"/.exec(svg)![1]!, 'base64');
    const meta = await sharp(jpeg).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', SVG_MAX_SIDE, 500]);
  });

  it('traces each mask on its box: the same path as tracing the whole image', async () => {
    const W = 64;
    const H = 48;
    const img = { data: new Uint8Array(W * H * 3), width: W, height: H };
    const mask = new Uint8Array(W * H);
    for (let y = 10; y < 30; y++) for (let x = 20; x < 50; x++) if ((x - 35) ** 2 + (y - 20) ** 2 > 16) mask[y * W + x] = 1;
    mask[40 * W + 60] = 1;
    const svg = await renderMaskSvg(img, [{ mask, score: 1, title: 'm' }]);
    expect(svg).toContain(`<path d="${outlinePath(traceOutlines(mask, W, H))}"`);
  });

  it('refuses a mask of another size', async () => {
    const img = { data: new Uint8Array(12), width: 2, height: 2 };
    await expect(renderMaskSvg(img, [{ mask: new Uint8Array(3), score: 1, title: 'x' }])).rejects.toThrow(/does not match/);
  });
});
