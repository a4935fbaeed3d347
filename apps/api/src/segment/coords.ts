import { badRequest } from '@aperture/common/problem.js';

export const COORD_MODES = ['auto', 'normalized', 'pixels'] as const;
export type CoordMode = (typeof COORD_MODES)[number];

export interface PromptPoint {
  x: number;
  y: number;
  label: 0 | 1;
}

export interface PromptBox {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

/** A box as sent: {x, y, width, height} or {x1, y1, x2, y2}. */
export interface BoxInput {
  x?: number | undefined;
  y?: number | undefined;
  width?: number | undefined;
  height?: number | undefined;
  x1?: number | undefined;
  y1?: number | undefined;
  x2?: number | undefined;
  y2?: number | undefined;
}

const defined = (...v: (number | undefined)[]): boolean => v.every((x) => x !== undefined);
const none = (...v: (number | undefined)[]): boolean => v.every((x) => x === undefined);

/** A box in either form as corners; x2 ≤ x1, y2 ≤ y1 or a mixed form is a 400 naming box[i]. */
export function boxCorners(b: BoxInput, i: number): PromptBox {
  const field = `box[${i}]`;
  let c: PromptBox;
  if (defined(b.x1, b.y1, b.x2, b.y2) && none(b.x, b.y, b.width, b.height)) {
    c = { x1: b.x1!, y1: b.y1!, x2: b.x2!, y2: b.y2! };
  } else if (defined(b.x, b.y, b.width, b.height) && none(b.x1, b.y1, b.x2, b.y2)) {
    c = { x1: b.x!, y1: b.y!, x2: b.x! + b.width!, y2: b.y! + b.height! };
  } else {
    throw badRequest(`${field} must be {x, y, width, height} or {x1, y1, x2, y2}.`, {
      errors: [{ field, messages: ['must be {x, y, width, height} or {x1, y1, x2, y2}'] }],
    });
  }
  if (c.x2 <= c.x1 || c.y2 <= c.y1) {
    const detail = `${field} is empty: x2 must be greater than x1 and y2 greater than y1 (width and height positive).`;
    throw badRequest(detail, { errors: [{ field, messages: ['x2 must be > x1 and y2 > y1'] }] });
  }
  return c;
}

/**
 * The prompts in image pixels. `coords` says how x and y were given: normalized (every value in [0, 1], a fraction
 * of the width or height), pixels, or auto (the default): normalized when every coordinate of the request (points
 * and boxes) is at most 1, pixels otherwise. Anything outside the image is a 400 naming the first such value.
 */
export function toPixels(
  points: readonly PromptPoint[],
  boxes: readonly PromptBox[],
  mode: CoordMode,
  width: number,
  height: number,
): { points: PromptPoint[]; boxes: PromptBox[]; normalized: boolean } {
  const values = [...points.flatMap((p) => [p.x, p.y]), ...boxes.flatMap((b) => [b.x1, b.y1, b.x2, b.y2])];
  const normalized = mode === 'normalized' || (mode === 'auto' && values.every((v) => v <= 1));
  const [maxX, maxY] = normalized ? [1, 1] : [width, height];
  const frame = normalized ? 'normalized coordinates must lie in [0, 1]' : `the image is ${width}×${height} pixels`;
  const check = (x: number, y: number, field: string): void => {
    if (x < 0 || y < 0 || x > maxX || y > maxY) {
      throw badRequest(`${field} (${x}, ${y}) is outside the image: ${frame}.`, {
        errors: [{ field, messages: ['outside the image'] }],
      });
    }
  };
  points.forEach((p, i) => check(p.x, p.y, `points[${i}]`));
  boxes.forEach((b, i) => {
    check(b.x1, b.y1, `box[${i}]`);
    check(b.x2, b.y2, `box[${i}]`);
  });
  const sx = normalized ? width : 1;
  const sy = normalized ? height : 1;
  return {
    points: points.map((p) => ({ x: p.x * sx, y: p.y * sy, label: p.label })),
    boxes: boxes.map((b) => ({ x1: b.x1 * sx, y1: b.y1 * sy, x2: b.x2 * sx, y2: b.y2 * sy })),
    normalized,
  };
}

/** One SAM prompt set in image pixels: the points, a box, or both. */
export interface PromptSet {
  points?: PromptPoint[];
  box?: PromptBox;
}

/**
 * The prompt sets of one image, checked against its size (see toPixels): one set per box, with the points added to
 * each, or one set of the points alone when there is no box.
 */
export function promptSets(
  points: readonly PromptPoint[],
  boxes: readonly PromptBox[],
  mode: CoordMode,
  width: number,
  height: number,
): PromptSet[] {
  const px = toPixels(points, boxes, mode, width, height);
  if (px.boxes.length === 0) return [{ points: px.points }];
  return px.boxes.map((box) => (px.points.length ? { points: px.points, box } : { box }));
}

/** Points as sent (label optional) with the default label 1 (foreground). */
export const withLabels = (list: readonly { x: number; y: number; label?: 0 | 1 | undefined }[]): PromptPoint[] =>
  list.map((q) => ({ x: q.x, y: q.y, label: q.label ?? 1 }));
