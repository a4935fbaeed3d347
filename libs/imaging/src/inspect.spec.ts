import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { bmp24 } from '@test/support/images.js';
import { ImageRejectedError, inspectImage } from './inspect.js';

/** A noisy 400x300 picture (noise keeps the compressed stream long, so a cut lands in pixel data). */
async function picture(format: 'jpeg' | 'png' | 'webp' | 'tiff'): Promise<Buffer> {
  const w = 400;
  const h = 300;
  const px = new Uint8Array(w * h * 3);
  let seed = 7;
  for (let i = 0; i < px.length; i++) px[i] = (seed = (seed * 1103515245 + 12345) & 0x7fffffff) >> 23;
  const img = sharp(px, { raw: { width: w, height: h, channels: 3 } });
  return (format === 'tiff' ? img.tiff({ compression: 'lzw' }) : img.toFormat(format)).toBuffer();
}

describe('inspectImage', () => {
  for (const format of ['jpeg', 'png', 'webp', 'tiff'] as const) {
    it(`accepts a whole ${format} and refuses it cut short`, async () => {
      const buf = await picture(format);
      await expect(inspectImage(buf, 4096)).resolves.toMatchObject({ format, width: 400, height: 300 });
      const cut = buf.subarray(0, Math.floor(buf.length * 0.6));
      await expect(inspectImage(cut, 4096)).rejects.toThrow(ImageRejectedError);
    });
  }

  it('checks the structure without decoding: markers and chunks, not a stray end marker or bytes after the end', async () => {
    const jpeg = await picture('jpeg');
    // An APP segment holding an end-of-image marker (as an EXIF thumbnail does) must not pass for the file's end.
    const app = Buffer.concat([Buffer.from([0xff, 0xe9, 0x00, 0x0a]), Buffer.from([1, 2, 0xff, 0xd9, 3, 4, 0xff, 0xd9])]);
    const withApp = Buffer.concat([jpeg.subarray(0, 2), app, jpeg.subarray(2)]);
    await expect(inspectImage(withApp, 4096)).resolves.toMatchObject({ format: 'jpeg', width: 400 });
    await expect(inspectImage(withApp.subarray(0, withApp.length - 2000), 4096)).rejects.toThrow(/JPEG file is damaged or truncated/);
    // Bytes after the end-of-image marker (cameras append data) are allowed.
    await expect(inspectImage(Buffer.concat([jpeg, Buffer.alloc(100, 7)]), 4096)).resolves.toMatchObject({ format: 'jpeg' });

    const png = Buffer.from(await picture('png'));
    const idat = png.indexOf('IDAT');
    png[idat + 100] = png[idat + 100]! ^ 0xff; // a flipped byte in the pixel data: its chunk's CRC no longer matches
    await expect(inspectImage(png, 4096)).rejects.toThrow(/PNG file is damaged or truncated \(bad CRC in its IDAT chunk\)/);

    const webp = await picture('webp');
    await expect(inspectImage(webp.subarray(0, webp.length - 10), 4096)).rejects.toThrow(/damaged or truncated|not an image/);
  });

  it('skips the hash when asked, with the same answer otherwise', async () => {
    const jpeg = await picture('jpeg');
    const full = await inspectImage(jpeg, 4096);
    expect(full.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(await inspectImage(jpeg, 4096, { hash: false })).toEqual({ ...full, sha256: '' });
  });

  it('reports the size after EXIF orientation, and refuses a side above the limit before decoding', async () => {
    const rotated = await sharp(await picture('jpeg'))
      .withMetadata({ orientation: 6 })
      .jpeg()
      .toBuffer();
    await expect(inspectImage(rotated, 4096)).resolves.toMatchObject({ width: 300, height: 400 });
    await expect(inspectImage(rotated, 350)).rejects.toThrow(/at most 350 px per side/);
  });

  it('reads an upload from its file as from its bytes, the same answer (a BMP too), and refuses a cut file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'inspect-'));
    try {
      const jpeg = await picture('jpeg');
      const rgb = await sharp(jpeg).resize(40, 30).removeAlpha().raw().toBuffer();
      for (const [name, bytes] of [
        ['a.jpg', jpeg],
        ['b.bmp', bmp24(rgb, 40, 30)],
      ] as const) {
        const path = join(dir, name);
        writeFileSync(path, bytes);
        const fromFile = await inspectImage(path, 4096);
        expect(fromFile).toEqual(await inspectImage(bytes, 4096));
        expect(fromFile.sha256).toMatch(/^[0-9a-f]{64}$/);
      }
      const cut = join(dir, 'cut.jpg');
      writeFileSync(cut, jpeg.subarray(0, Math.floor(jpeg.length * 0.6)));
      await expect(inspectImage(cut, 4096)).rejects.toThrow(/damaged or truncated/);
      const text = join(dir, 'notes.jpg');
      writeFileSync(text, 'just text');
      const fromBytes = await inspectImage(Buffer.from('just text'), 4096).catch((e: Error) => e.message);
      expect(fromBytes).toMatch(/not an image Aperture can read \(contains unsupported image format\)/);
      await expect(inspectImage(text, 4096)).rejects.toThrow(fromBytes as string);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
