import { describe, expect, it } from 'vitest';
import { readQrPdf } from '@test/support/pdf.js';
import { QR_PER_PAGE, qrPageCount } from './qr-layout.js';
import { renderQrPdf } from './qr-pdf.js';

describe('renderQrPdf', () => {
  const items = Array.from({ length: 23 }, (_, i) => ({
    code: `CODE${String(i).padStart(8, '0')}`,
    value: `https://x.example/q/CODE${i}`,
  }));

  it('lays codes out in a grid, one page per 20, each symbol decodable, with a dated header', async () => {
    const progress: number[] = [];
    const pdf = await renderQrPdf(items, {
      title: 'Test batch',
      date: new Date('2026-01-02T03:04:05Z'),
      onProgress: (d) => void progress.push(d),
    });
    const doc = readQrPdf(pdf);
    expect(doc.pages).toBe(qrPageCount(items.length));
    expect(QR_PER_PAGE).toBe(20);
    expect(doc.decodeCell(0, 0)).toBe(items[0]!.value);
    expect(doc.decodeCell(0, 19)).toBe(items[19]!.value);
    expect(doc.decodeCell(1, 2)).toBe(items[22]!.value);
    expect(doc.pageText(0)).toContain('2026-01-02');
    expect(doc.pageText(1)).toContain('page 2 of 2');
    expect(doc.pageText(0)).toContain(items[5]!.code);
    expect(progress).toEqual(items.map((_, i) => i + 1));
  });

  it('stops drawing new pages once aborted', async () => {
    const ctrl = new AbortController();
    const pdf = await renderQrPdf(items, {
      title: 't',
      date: new Date(),
      signal: ctrl.signal,
      onProgress: (d) => (d === 3 ? ctrl.abort() : undefined),
    });
    expect(readQrPdf(pdf).pages).toBe(1);
  });
});
