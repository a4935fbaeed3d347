/** Page geometry of QR batch PDFs, shared by the renderer and the tests that read the PDF back. Units: PDF points. */
export const QR_LAYOUT = {
  pageWidth: 595.28, // A4
  pageHeight: 841.89,
  margin: 28,
  headerHeight: 34,
  columns: 4,
  rows: 5,
  qrSize: 104,
  labelGap: 6,
  labelSize: 8,
} as const;

export const QR_PER_PAGE = QR_LAYOUT.columns * QR_LAYOUT.rows;

export function qrPageCount(n: number): number {
  return Math.ceil(n / QR_PER_PAGE);
}

/** The cell rectangle (x, y, w, h) of the i-th code on its page, top-left origin. */
export function qrCell(indexOnPage: number): { x: number; y: number; w: number; h: number } {
  const L = QR_LAYOUT;
  const w = (L.pageWidth - 2 * L.margin) / L.columns;
  const h = (L.pageHeight - 2 * L.margin - L.headerHeight) / L.rows;
  const col = indexOnPage % L.columns;
  const row = Math.floor(indexOnPage / L.columns);
  return { x: L.margin + col * w, y: L.margin + L.headerHeight + row * h, w, h };
}
