import { setImmediate as yieldToLoop } from 'node:timers/promises';
import PDFDocument from 'pdfkit';
import QRCode from 'qrcode';
import { QR_LAYOUT, QR_PER_PAGE, qrCell, qrPageCount } from './qr-layout.js';

export interface QrItem {
  code: string;
  value: string;
}

export interface QrPdfOptions {
  title: string;
  date: Date;
  signal?: AbortSignal;
  /** Called after each code is drawn. */
  onProgress?: (done: number, total: number) => void | Promise<void>;
}

/** Draws one QR symbol as vector rectangles (one per horizontal run of dark modules), with its 4-module quiet zone inside size. */
function drawQr(doc: PDFKit.PDFDocument, value: string, x: number, y: number, size: number): void {
  const qr = QRCode.create(value, { errorCorrectionLevel: 'M' });
  const n = qr.modules.size;
  const data = qr.modules.data;
  const module = size / (n + 8);
  const ox = x + 4 * module;
  const oy = y + 4 * module;
  for (let r = 0; r < n; r++) {
    let c = 0;
    while (c < n) {
      if (!data[r * n + c]) {
        c++;
        continue;
      }
      const start = c;
      while (c < n && data[r * n + c]) c++;
      // A hair of overlap avoids white seams between runs in some viewers.
      doc.rect(ox + start * module, oy + r * module, (c - start) * module + 0.02, module + 0.02);
    }
  }
  doc.fill('#000000');
}

/** Renders codes into a print-ready A4 PDF: a grid with dashed cut lines and a dated header on every page. */
export async function renderQrPdf(items: QrItem[], opts: QrPdfOptions): Promise<Buffer> {
  const L = QR_LAYOUT;
  const doc = new PDFDocument({
    size: 'A4',
    margin: 0,
    autoFirstPage: false,
    compress: true,
    info: { Title: opts.title, Creator: 'Aperture' },
  });
  const chunks: Buffer[] = [];
  doc.on('data', (c: Buffer) => chunks.push(c));
  const ended = new Promise<void>((resolve, reject) => {
    doc.on('end', () => resolve());
    doc.on('error', reject);
  });
  const pages = qrPageCount(items.length);
  const dateText = opts.date.toISOString().slice(0, 10);
  for (let i = 0; i < items.length; i++) {
    const onPage = i % QR_PER_PAGE;
    if (onPage === 0) {
      if (opts.signal?.aborted) break;
      doc.addPage({ size: 'A4', margin: 0 });
      const page = i / QR_PER_PAGE + 1;
      doc.font('Helvetica-Bold').fontSize(11).fillColor('#000000').text(opts.title, L.margin, L.margin, { lineBreak: false });
      doc
        .font('Helvetica')
        .fontSize(9)
        .text(`${dateText}   ·   page ${page} of ${pages}   ·   ${items.length} codes`, L.margin, L.margin + 15, { lineBreak: false });
      drawCutLines(doc);
    }
    const cell = qrCell(onPage);
    const qx = cell.x + (cell.w - L.qrSize) / 2;
    const qy = cell.y + (cell.h - L.qrSize - L.labelGap - L.labelSize) / 2;
    drawQr(doc, items[i]!.value, qx, qy, L.qrSize);
    doc
      .font('Courier')
      .fontSize(L.labelSize)
      .fillColor('#000000')
      .text(items[i]!.code, cell.x, qy + L.qrSize + L.labelGap, { width: cell.w, align: 'center', lineBreak: false });
    if (opts.onProgress) await opts.onProgress(i + 1, items.length);
    if (i % 10 === 9) await yieldToLoop(); // keep the event loop (health probes, lock renewal) responsive
  }
  doc.end();
  await ended;
  return Buffer.concat(chunks);
}

function drawCutLines(doc: PDFKit.PDFDocument): void {
  const L = QR_LAYOUT;
  const first = qrCell(0);
  const last = qrCell(QR_PER_PAGE - 1);
  const left = first.x;
  const top = first.y;
  const right = last.x + last.w;
  const bottom = last.y + last.h;
  doc.save().lineWidth(0.5).strokeColor('#9a9a9a').dash(3, { space: 3 });
  for (let c = 0; c <= L.columns; c++) {
    const x = left + c * first.w;
    doc.moveTo(x, top).lineTo(x, bottom);
  }
  for (let r = 0; r <= L.rows; r++) {
    const y = top + r * first.h;
    doc.moveTo(left, y).lineTo(right, y);
  }
  doc.stroke().undash().restore();
}
