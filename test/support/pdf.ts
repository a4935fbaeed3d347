import jsQRModule from 'jsqr';
import * as mupdf from 'mupdf';
import { qrCell } from '@aperture/qr/qr-layout.js';

// jsqr is a UMD bundle: Node's default import is the function itself, its typings describe `.default`.
const jsQR = ((jsQRModule as unknown as { default?: unknown }).default ?? jsQRModule) as typeof jsQRModule.default;

/** Opens a PDF with MuPDF (an independent reader), counts its pages and decodes the QR symbol in one grid cell. */
export function readQrPdf(pdf: Buffer): {
  pages: number;
  decodeCell(page: number, index: number): string | null;
  pageText(page: number): string;
} {
  const doc = mupdf.Document.openDocument(pdf, 'application/pdf');
  return {
    pages: doc.countPages(),
    pageText: (page: number) => doc.loadPage(page).toStructuredText('preserve-whitespace').asText(),
    decodeCell(page: number, index: number): string | null {
      const scale = 2;
      const pix = doc.loadPage(page).toPixmap(mupdf.Matrix.scale(scale, scale), mupdf.ColorSpace.DeviceRGB, false, true);
      const w = pix.getWidth();
      const n = pix.getNumberOfComponents(); // 3: RGB on white
      const samples = pix.getPixels();
      const cell = qrCell(index);
      const x0 = Math.floor(cell.x * scale);
      const y0 = Math.floor(cell.y * scale);
      const cw = Math.floor(cell.w * scale);
      const ch = Math.floor(cell.h * scale);
      const crop = new Uint8ClampedArray(cw * ch * 4);
      for (let y = 0; y < ch; y++) {
        for (let x = 0; x < cw; x++) {
          const src = ((y0 + y) * w + x0 + x) * n;
          const dst = (y * cw + x) * 4;
          crop[dst] = samples[src]!;
          crop[dst + 1] = samples[src + 1]!;
          crop[dst + 2] = samples[src + 2]!;
          crop[dst + 3] = 255;
        }
      }
      return jsQR(crop, cw, ch)?.data ?? null;
    },
  };
}
