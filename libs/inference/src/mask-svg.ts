/**
 * The picture of a segmentation job (GET /jobs/{id}/visualization.svg): the image, downscaled and embedded as a
 * JPEG, under every mask's outline, a semi-transparent fill and its score. Coordinates are the image's pixels.
 */
import sharp from 'sharp';
import type { RgbImage } from '@aperture/imaging/decode.js';
import { maskToBoxXyxy } from './mask.js';
import { maskColorHex } from './objects.js';
import { type OutlineLoop, outlinePath, traceOutlines } from './outline.js';

/** Longest side of the image embedded in the visualization. */
export const SVG_MAX_SIDE = 1024;

/** One mask to draw: a full-image bitmap (row-major, 0 = background), its score and a tooltip. */
export interface SvgMask {
  mask: Uint8Array;
  score: number;
  title: string;
}

/** Escapes text for an SVG element or attribute. */
const xml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** The outlines of a mask traced on its box [x0, x1] × [y0, y1] (inclusive) only, in image coordinates. */
function boxOutlines(mask: Uint8Array, width: number, x0: number, y0: number, x1: number, y1: number): OutlineLoop[] {
  const bw = x1 - x0 + 1;
  const bh = y1 - y0 + 1;
  const crop = new Uint8Array(bw * bh);
  for (let y = 0; y < bh; y++) crop.set(mask.subarray((y0 + y) * width + x0, (y0 + y) * width + x1 + 1), y * bw);
  return traceOutlines(crop, bw, bh).map((loop) => loop.map((v, i) => v + (i % 2 === 0 ? x0 : y0)));
}

/** The SVG document: the image (≤ SVG_MAX_SIDE px long side, JPEG), then each mask's path and score label. */
export async function renderMaskSvg(img: RgbImage, masks: readonly SvgMask[]): Promise<string> {
  const { width: W, height: H } = img;
  const scale = Math.min(1, SVG_MAX_SIDE / Math.max(W, H));
  const w = Math.max(1, Math.round(W * scale));
  const h = Math.max(1, Math.round(H * scale));
  const jpeg = await sharp(img.data, { raw: { width: W, height: H, channels: 3 } })
    .resize(w, h)
    .jpeg({ quality: 80 })
    .toBuffer();
  const font = Math.max(10, Math.round(Math.max(W, H) / 50));
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`,
    `<image x="0" y="0" width="${W}" height="${H}" preserveAspectRatio="none" href="data:image/jpeg;base64,${jpeg.toString('base64')}"/>`,
  ];
  for (const [k, m] of masks.entries()) {
    if (m.mask.length !== W * H) throw new Error(`Mask ${k} does not match the ${W}×${H} image`);
    const color = maskColorHex(k);
    const [bx, by, bx1, by1] = maskToBoxXyxy(m.mask, W, H);
    const d = outlinePath(boxOutlines(m.mask, W, bx, by, bx1, by1));
    const score = Number.isFinite(m.score) ? m.score.toFixed(3) : '–';
    parts.push(
      `<path d="${d || 'M0 0Z'}" fill="${color}" fill-opacity="0.35" fill-rule="evenodd" stroke="${color}" stroke-width="2" ` +
        `vector-effect="non-scaling-stroke"><title>${xml(m.title)} score ${score}</title></path>`,
    );
    parts.push(
      `<text x="${bx}" y="${Math.max(font, by - 3)}" font-family="sans-serif" font-size="${font}" fill="${color}" ` +
        `stroke="#000" stroke-width="0.5">${score}</text>`,
    );
  }
  parts.push('</svg>');
  return parts.join('\n');
}
