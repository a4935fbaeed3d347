/**
 * The pre-processing overrides a model.json may give (`preprocess` of a model entry) on top of what its kind's
 * pipeline does: `pad_value` (0-255, the letterbox canvas; Ultralytics' 114 by default) and `mean` / `std` (three
 * values each, on 0-255 pixel values, applied after the letterbox or crop: (x·255 − mean) / std per channel).
 */
export interface TensorGeometry {
  tensor: Float32Array;
  inputW: number;
  inputH: number;
  /** The letterboxed image inside the canvas (absent: the whole tensor is image). */
  padX?: number;
  padY?: number;
  newW?: number;
  newH?: number;
}

const triple = (v: unknown): [number, number, number] | null =>
  Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x))
    ? (v as [number, number, number])
    : null;

/** Problems with the overrides a model.json gives (each names the field). */
export function checkPreprocessOverrides(pre: Record<string, unknown>, where: string): string[] {
  const problems: string[] = [];
  const pad = pre['pad_value'];
  if (pad !== undefined && !(typeof pad === 'number' && Number.isInteger(pad) && pad >= 0 && pad <= 255))
    problems.push(`${where}: "preprocess.pad_value" must be an integer from 0 to 255`);
  for (const k of ['mean', 'std']) {
    if (pre[k] !== undefined && !triple(pre[k])) problems.push(`${where}: "preprocess.${k}" must be three numbers (R, G, B on 0-255)`);
  }
  const std = triple(pre['std']);
  if (std?.some((s) => s <= 0)) problems.push(`${where}: "preprocess.std" values must be greater than 0`);
  return problems;
}

/** Applies a model's pad_value, mean and std to a [1, 3, H, W] RGB /255 tensor in place; a no-op for the defaults. */
export function applyPreprocessOverrides(g: TensorGeometry, pre: Record<string, unknown> | undefined): void {
  if (!pre) return;
  const plane = g.inputW * g.inputH;
  const pad = pre['pad_value'];
  if (typeof pad === 'number' && pad !== 114 && g.newW !== undefined && g.newH !== undefined) {
    const x0 = g.padX ?? 0;
    const y0 = g.padY ?? 0;
    const v = pad / 255;
    for (let y = 0; y < g.inputH; y++) {
      const inside = y >= y0 && y < y0 + g.newH;
      for (let x = 0; x < g.inputW; x++) {
        if (inside && x >= x0 && x < x0 + g.newW) continue;
        const i = y * g.inputW + x;
        g.tensor[i] = v;
        g.tensor[plane + i] = v;
        g.tensor[2 * plane + i] = v;
      }
    }
  }
  const mean = triple(pre['mean']);
  const std = triple(pre['std']);
  if (!mean && !std) return;
  for (let c = 0; c < 3; c++) {
    const m = mean?.[c] ?? 0;
    const s = std?.[c] ?? 255;
    const base = c * plane;
    for (let i = 0; i < plane; i++) g.tensor[base + i] = (g.tensor[base + i]! * 255 - m) / s;
  }
}
