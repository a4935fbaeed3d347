import { describe, expect, it } from 'vitest';
import {
  type AmgDecodeBatch,
  type CropBox,
  type Point,
  AMG_DEFAULTS,
  batchedMaskToBox,
  boxNms,
  boxXyxyToXywh,
  buildPointGrids,
  calculateStabilityScore,
  cocoEncodeRle,
  cocoRleString,
  generateCropBoxes,
  generateMasks,
  isBoxNearCropEdge,
  removeSmallRegions,
  resolveAmgOptions,
  rleEncodeCropMask,
  uncropBoxesXyxy,
  uncropMask,
  uncropPoints,
} from './amg.js';
import { maskToBoxXyxy, rleDecode, rleEncode } from './mask.js';

/** A bitmap from rows of '#' (foreground) and '.'. */
function bitmap(rows: string[]): { mask: Uint8Array; w: number; h: number } {
  const h = rows.length;
  const w = rows[0]!.length;
  const mask = new Uint8Array(w * h);
  rows.forEach((r, y) => [...r].forEach((c, x) => (mask[y * w + x] = c === '#' ? 1 : 0)));
  return { mask, w, h };
}

function rows(mask: Uint8Array, w: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < mask.length; i += w) out.push([...mask.subarray(i, i + w)].map((v) => (v ? '#' : '.')).join(''));
  return out;
}

interface Shape {
  name: string;
  /** Pixel membership (integer pixel coordinates, image frame). */
  has: (x: number, y: number) => boolean;
}

const rect = (name: string, x0: number, y0: number, x1: number, y1: number): Shape => ({
  name,
  has: (x, y) => x >= x0 && x <= x1 && y >= y0 && y <= y1,
});
const disc = (name: string, cx: number, cy: number, r: number): Shape => ({
  name,
  has: (x, y) => (x - cx) ** 2 + (y - cy) ** 2 <= r * r,
});

/**
 * A stand-in for the SAM decoder: a click inside a shape (`hit`, image frame) gives [the shape's mask, the same mask,
 * `extra` of it], as crisp ±20 logits cut to the crop, with IoU predictions `ious`; a click elsewhere gives three
 * empty planes scored 0.5 / 0.4 / 0.3. Planes are built once per crop and shared (the decoder is not what is timed).
 */
function syntheticDecoder(
  imW: number,
  imH: number,
  shapes: { shape: Shape; hit: Shape; extra: Shape }[],
  ious: [number, number, number] = [0.96, 0.93, 0.85],
): { decode: AmgDecodeBatch; calls: { crop: CropBox; n: number }[]; produced: Map<string, CropBox[]> } {
  const full = new Map<Shape, Float32Array>();
  const logitsOf = (s: Shape): Float32Array => {
    let m = full.get(s);
    if (!m) {
      m = new Float32Array(imW * imH);
      for (let y = 0, i = 0; y < imH; y++) for (let x = 0; x < imW; x++, i++) m[i] = s.has(x, y) ? 20 : -20;
      full.set(s, m);
    }
    return m;
  };
  const cropCache = new Map<string, Float32Array>();
  const planeOf = (s: Shape | null, c: CropBox): Float32Array => {
    const key = `${s?.name ?? 'none'}@${c.join(',')}`;
    let p = cropCache.get(key);
    if (!p) {
      const cw = c[2] - c[0];
      const ch = c[3] - c[1];
      p = new Float32Array(cw * ch).fill(-20);
      if (s) {
        const f = logitsOf(s);
        for (let y = 0; y < ch; y++) p.set(f.subarray((y + c[1]) * imW + c[0], (y + c[1]) * imW + c[2]), y * cw);
      }
      cropCache.set(key, p);
    }
    return p;
  };
  const calls: { crop: CropBox; n: number }[] = [];
  const produced = new Map<string, CropBox[]>();
  const decode: AmgDecodeBatch = async (crop, points) => {
    calls.push({ crop, n: points.length });
    const masks: Float32Array[] = [];
    const iouPredictions = new Float32Array(3 * points.length);
    points.forEach(([px, py], i) => {
      const x = Math.floor(px + crop[0]);
      const y = Math.floor(py + crop[1]);
      const s = shapes.find((e) => e.hit.has(x, y));
      if (s) {
        masks.push(planeOf(s.shape, crop), planeOf(s.shape, crop), planeOf(s.extra, crop));
        iouPredictions.set(ious, 3 * i);
        produced.set(s.shape.name, [...(produced.get(s.shape.name) ?? []), crop]);
      } else {
        const none = planeOf(null, crop);
        masks.push(none, none, none);
        iouPredictions.set([0.5, 0.4, 0.3], 3 * i);
      }
    });
    return { masks, iouPredictions };
  };
  return { decode, calls, produced };
}

function areaOf(s: Shape, w: number, h: number): number {
  let a = 0;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (s.has(x, y)) a++;
  return a;
}

describe('point grids and crop boxes (amg.py)', () => {
  it('builds the grid at (k + ½)/n, x fastest, int(n / factor^i) a side per layer', () => {
    const [g4] = buildPointGrids(4, 0, 1);
    const side = [0.125, 0.375, 0.625, 0.875];
    const expected: number[] = [];
    for (const y of side) for (const x of side) expected.push(x, y);
    expect([...g4!]).toEqual(expected);
    expect([...buildPointGrids(1, 0, 1)[0]!]).toEqual([0.5, 0.5]);
    expect([...buildPointGrids(2, 0, 1)[0]!]).toEqual([0.25, 0.25, 0.75, 0.25, 0.25, 0.75, 0.75, 0.75]);
    const layers = buildPointGrids(32, 2, 2);
    expect(layers.map((g) => g.length / 2)).toEqual([32 * 32, 16 * 16, 8 * 8]);
    // 32 a side: first 1/64, last 63/64 (linspace's endpoint is exact); ×1024 and ×768 as _process_crop scales it.
    expect(layers[0]![0]! * 1024).toBe(16);
    expect(layers[0]![1]! * 768).toBe(12);
    expect(layers[0]![2 * 31]).toBe(0.984375);
    expect(layers[0]![2 * 1023 + 1]).toBe(0.984375);
    const [g3] = buildPointGrids(5, 1, 2).slice(1); // int(5 / 2) = 2
    expect(g3!.length).toBe(8);
    const [g6] = buildPointGrids(6, 0, 1);
    expect(g6![2]).toBeCloseTo(0.25, 15); // 1/12 + (10/12)/5
  });

  it('crop boxes for 1024×768 with 1 and 2 layers equal the Python arithmetic', () => {
    // Layer 1: overlap = int(512/1500 · 768 · 1) = 262, crop 643 × 515, x0 ∈ {0, 381}, y0 ∈ {0, 253}.
    expect(generateCropBoxes(1024, 768, 1, 512 / 1500)).toEqual({
      boxes: [
        [0, 0, 1024, 768],
        [0, 0, 643, 515],
        [0, 253, 643, 768],
        [381, 0, 1024, 515],
        [381, 253, 1024, 768],
      ],
      layerIdxs: [0, 1, 1, 1, 1],
    });
    // Layer 2: overlap = int(131.072) = 131, crop ceil(1417/4) = 355 × ceil(1161/4) = 291, steps 224 and 160.
    const two = generateCropBoxes(1024, 768, 2, 512 / 1500);
    expect(two.layerIdxs).toEqual([0, 1, 1, 1, 1, ...Array<number>(16).fill(2)]);
    expect(two.boxes.slice(5)).toEqual([
      [0, 0, 355, 291],
      [0, 160, 355, 451],
      [0, 320, 355, 611],
      [0, 480, 355, 768],
      [224, 0, 579, 291],
      [224, 160, 579, 451],
      [224, 320, 579, 611],
      [224, 480, 579, 768],
      [448, 0, 803, 291],
      [448, 160, 803, 451],
      [448, 320, 803, 611],
      [448, 480, 803, 768],
      [672, 0, 1024, 291],
      [672, 160, 1024, 451],
      [672, 320, 1024, 611],
      [672, 480, 1024, 768],
    ]);
  });

  it('crop boxes for portrait 768×1024 and odd 1000×667', () => {
    expect(generateCropBoxes(768, 1024, 1, 512 / 1500).boxes.slice(1)).toEqual([
      [0, 0, 515, 643],
      [0, 381, 515, 1024],
      [253, 0, 768, 643],
      [253, 381, 768, 1024],
    ]);
    // overlap = int(227.669…) = 227; crop ceil(1227/2) = 614 × ceil(894/2) = 447; 387 + 614 = 1001 is clipped to 1000.
    expect(generateCropBoxes(1000, 667, 1, 512 / 1500).boxes.slice(1)).toEqual([
      [0, 0, 614, 447],
      [0, 220, 614, 667],
      [387, 0, 1000, 447],
      [387, 220, 1000, 667],
    ]);
    expect(generateCropBoxes(1000, 667, 0, 512 / 1500).boxes).toEqual([[0, 0, 1000, 667]]);
  });
});

describe('options', () => {
  it('has SAM defaults and rejects bad values with a clear error', () => {
    expect(resolveAmgOptions()).toEqual({
      points_per_side: 32,
      points_per_batch: 64,
      pred_iou_thresh: 0.88,
      stability_score_thresh: 0.95,
      stability_score_offset: 1,
      box_nms_thresh: 0.7,
      crop_n_layers: 0,
      crop_nms_thresh: 0.7,
      crop_overlap_ratio: 512 / 1500,
      crop_n_points_downscale_factor: 1,
      min_mask_region_area: 0,
      output_mode: 'binary_mask',
    });
    expect(AMG_DEFAULTS.crop_overlap_ratio).toBeCloseTo(0.341333, 6);
    expect(() => resolveAmgOptions({ points_per_side: 0 })).toThrow(/points_per_side must be an integer in 1–128/);
    expect(() => resolveAmgOptions({ points_per_side: 129 })).toThrow(/points_per_side/);
    expect(() => resolveAmgOptions({ crop_n_layers: 4 })).toThrow(/crop_n_layers must be an integer in 0–3/);
    expect(() => resolveAmgOptions({ pred_iou_thresh: 1.2, box_nms_thresh: -0.1 })).toThrow(/pred_iou_thresh.*box_nms_thresh/);
    expect(() => resolveAmgOptions({ points_per_side: 2, crop_n_layers: 2, crop_n_points_downscale_factor: 2 })).toThrow(/no points/);
    expect(() => resolveAmgOptions({ output_mode: 'png' as 'coco_rle' })).toThrow(/Unknown output_mode png/);
    expect(() => resolveAmgOptions({ pointsPerSide: 4 } as Partial<typeof AMG_DEFAULTS>)).toThrow(/unknown option pointsPerSide/);
  });
});

describe('per-mask helpers', () => {
  it('stability score = count(logit > t + offset) / count(logit > t − offset), strict, float32', () => {
    const logits = Float32Array.from([-3, -1, -0.5, 0, 0.5, 1, 1.5, 3, -2, -20, 2, -1.0001]);
    // > 1: 1.5, 3, 2 → 3; > −1: −0.5, 0, 0.5, 1, 1.5, 3, 2 → 7
    expect(calculateStabilityScore(logits, 0, 1)).toBe(Math.fround(3 / 7));
    expect(calculateStabilityScore(logits, 0, 0)).toBe(Math.fround(5 / 5));
    expect(calculateStabilityScore(logits, 1, 1)).toBe(Math.fround(1 / 5)); // > 2: only 3 (2 is not > 2); > 0: 5
    expect(calculateStabilityScore(new Float32Array(4).fill(-5), 0, 1)).toBeNaN();
  });

  it('boxes use an inclusive max, zeros when empty; near-crop-edge only for inner crop edges', () => {
    const { mask, w, h } = bitmap(['......', '..##..', '..###.', '......']);
    expect(maskToBoxXyxy(mask, w, h)).toEqual([2, 1, 4, 2]);
    expect([...batchedMaskToBox([mask, new Uint8Array(w * h)], w, h)]).toEqual([2, 1, 4, 2, 0, 0, 0, 0]);
    expect(boxXyxyToXywh([2, 1, 4, 2])).toEqual([2, 1, 2, 1]);
    const orig: CropBox = [0, 0, 1024, 768];
    const crop: CropBox = [381, 0, 1024, 515];
    // In the crop frame: x0 = 19 → 400 is 19 px from the crop's left edge (not an image edge): near.
    expect(isBoxNearCropEdge([19, 100, 200, 300], crop, orig)).toBe(true);
    expect(isBoxNearCropEdge([21, 100, 200, 300], crop, orig)).toBe(false);
    // Bottom (crop y0 = 0): 494 is 21 px from 515, 495 is 20 px (atol is inclusive).
    expect(isBoxNearCropEdge([100, 100, 200, 494], crop, orig)).toBe(false);
    expect(isBoxNearCropEdge([100, 100, 200, 495], crop, orig)).toBe(true);
    // Top and right edges of this crop are image edges: never "near".
    expect(isBoxNearCropEdge([100, 0, 642, 300], crop, orig)).toBe(false);
    // The whole image as the crop: nothing is near.
    expect(isBoxNearCropEdge([0, 0, 1023, 767], orig, orig)).toBe(false);
  });

  it('uncrops boxes, points and masks; the crop RLE equals rleEncode of the pasted mask', () => {
    const crop: CropBox = [3, 2, 7, 5];
    expect([...uncropBoxesXyxy([0, 1, 2, 2], crop)]).toEqual([3, 3, 5, 4]);
    expect([...uncropPoints([0.5, 1.25], crop)]).toEqual([3.5, 3.25]);
    const { mask } = bitmap(['.#..', '.##.', '...#']);
    const full = uncropMask(mask, crop, 9, 6);
    expect(rows(full, 9)).toEqual(['.........', '.........', '....#....', '....##...', '......#..', '.........']);
    expect(uncropMask(mask, [0, 0, 4, 3], 4, 3)).toBe(mask);
    const box = maskToBoxXyxy(mask, 4, 3);
    expect(rleEncodeCropMask(mask, box, crop, 9, 6)).toEqual(rleEncode(full, 9, 6));
    let seed = 11;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (const [cw, ch, x0, y0, iw, ih] of [
      [5, 4, 0, 0, 5, 4],
      [7, 3, 2, 5, 12, 9],
      [1, 1, 4, 4, 5, 5],
      [6, 6, 0, 3, 6, 9],
    ] as const) {
      for (const p of [0, 0.3, 0.8, 1]) {
        const m = new Uint8Array(cw * ch).map(() => (rnd() < p ? 1 : 0));
        const c: CropBox = [x0, y0, x0 + cw, y0 + ch];
        const rle = rleEncodeCropMask(m, maskToBoxXyxy(m, cw, ch), c, iw, ih);
        expect(rle).toEqual(rleEncode(uncropMask(m, c, iw, ih), iw, ih));
      }
    }
  });

  it('COCO RLE string equals pycocotools rleToString', () => {
    // counts [3, 2, 6, 1]: '3', '2', '6', then 1 − 2 = −1 → 31 + 48 = 'O'.
    expect(cocoRleString([3, 2, 6, 1])).toBe('326O');
    // A 5×5 square at x 2..6, y 3..7 of a 10×10 image: [23, 5 ×9, 32]. 23 needs two chars ('g0': 23|32 + 48, then 0);
    // from index 3 on, counts are differences with i − 2 (5 − 5 = 0 → '0'); 32 − 5 = 27 → 'k0'.
    const sq = new Uint8Array(100);
    for (let y = 3; y <= 7; y++) for (let x = 2; x <= 6; x++) sq[y * 10 + x] = 1;
    const rle = rleEncode(sq, 10, 10);
    expect(rle.counts).toEqual([23, 5, 5, 5, 5, 5, 5, 5, 5, 5, 32]);
    expect(cocoEncodeRle(rle)).toEqual({ size: [10, 10], counts: 'g0550000000k0' });
    // 100 → 4 | 32 + 48 = 'T', then 3 → '3'; 60 (index 2, no difference) → 28 | 32 + 48 = 'l', then 1 → '1'.
    expect(cocoRleString([100, 1, 60])).toBe('T31l1');
    // 50 → 'b1'; 10 − 50 = −40 → 24 | 32 + 48 = 'h', then −2 & 31 = 30 → 'N' (more stops at −1 with bit 4 set).
    expect(cocoRleString([0, 50, 1, 10])).toBe('0b11hN');
  });
});

describe('boxNms (torchvision nms semantics)', () => {
  it('suppresses IoU > thresh, keeps IoU == thresh, returns indices by score descending', () => {
    const boxes = [
      [0, 0, 10, 10], // 0: score 0.8
      [3, 3, 13, 13], // 1: IoU with 2 = 56 / 154 = 0.36 → kept
      [0, 0, 10, 11], // 2: best; IoU with 0 = 100 / 110 → suppresses 0
      [0, 0, 10, 7], // 3: IoU with 2 = 70 / 110 = 0.636 → kept
      [50, 50, 60, 60], // 4: disjoint
    ].flat();
    expect(boxNms(boxes, [0.8, 0.7, 0.9, 0.6, 0.95], 0.7)).toEqual([4, 2, 1, 3]);
    // Exactly 0.7 (70 / 100) is not > 0.7.
    expect(boxNms([0, 0, 10, 10, 0, 0, 10, 7], [0.9, 0.8], 0.7)).toEqual([0, 1]);
    // 0.75 is.
    expect(boxNms([0, 0, 4, 4, 0, 0, 4, 3], [0.9, 0.8], 0.7)).toEqual([0]);
    // Only kept boxes suppress: 0 suppresses 1, 1 would have suppressed 2 but 2 stays.
    expect(boxNms([0, 0, 10, 10, 2, 0, 12, 10, 4, 0, 14, 10], [0.9, 0.8, 0.7], 0.5)).toEqual([0, 2]);
    // Equal scores keep their input order; degenerate boxes (0/0) never suppress.
    expect(boxNms([0, 0, 10, 10, 20, 20, 30, 30, 0, 0, 10, 10], [1, 1, 1], 0.7)).toEqual([0, 1]);
    expect(boxNms([5, 5, 5, 5, 5, 5, 5, 5], [1, 0.5], 0.7)).toEqual([0, 1]);
    expect(boxNms([], [], 0.7)).toEqual([]);
  });
});

describe('removeSmallRegions (cv2 8-connectivity)', () => {
  it('fills holes below the area, not those at or above it', () => {
    const { mask, w, h } = bitmap(['.......', '.#####.', '.#####.', '.##.##.', '.#####.', '.#####.', '.......']);
    const filled = removeSmallRegions(mask, w, h, 2, 'holes');
    expect(filled.changed).toBe(true);
    expect(rows(filled.mask, w)[3]).toBe('.#####.');
    const same = removeSmallRegions(mask, w, h, 1, 'holes');
    expect(same).toEqual({ mask, changed: false });
    expect(same.mask).toBe(mask);
  });

  it('holes connected diagonally are one region (8-connectivity) and a border hole counts too', () => {
    const { mask, w, h } = bitmap(['.####', '#.###', '##.##', '#####', '#####']);
    // (0,0), (1,1), (2,2) form one background region of 3 pixels.
    expect(removeSmallRegions(mask, w, h, 3, 'holes').changed).toBe(false);
    const r = removeSmallRegions(mask, w, h, 4, 'holes');
    expect(r.changed).toBe(true);
    expect(r.mask.every((v) => v === 1)).toBe(true);
  });

  it('removes islands below the area; diagonal neighbours are one island', () => {
    const { mask, w, h } = bitmap(['#....', '.#...', '.....', '.....', '....#']);
    const r = removeSmallRegions(mask, w, h, 2, 'islands');
    expect(r.changed).toBe(true);
    expect(rows(r.mask, w)).toEqual(['#....', '.#...', '.....', '.....', '.....']);
  });

  it('keeps the largest island when every island is small, and still reports a change', () => {
    const { mask, w, h } = bitmap(['##...', '.....', '..###', '.....', '#....']);
    const r = removeSmallRegions(mask, w, h, 10, 'islands');
    expect(r.changed).toBe(true);
    expect(rows(r.mask, w)).toEqual(['.....', '.....', '..###', '.....', '.....']);
    // A single small island: the pixels stay, but amg.py still says "changed".
    const one = bitmap(['.#.', '...']);
    const single = removeSmallRegions(one.mask, one.w, one.h, 5, 'islands');
    expect(single.changed).toBe(true);
    expect([...single.mask]).toEqual([...one.mask]);
    expect(removeSmallRegions(new Uint8Array(6), 3, 2, 5, 'islands').changed).toBe(false);
  });
});

describe('generateMasks', () => {
  // 640×480, 16 points a side, crop layer 1 → crops [0,0,402,322], [0,159,402,480], [239,0,640,322], [239,159,640,480].
  const W = 640;
  const H = 480;
  const A = rect('A', 40, 30, 139, 109); // inside crop 1 only
  const D = disc('D', 320, 240, 100); // crosses every inner crop edge
  const C = rect('C', 500, 380, 599, 449); // inside crop 4 only
  const shapes = [
    { shape: A, hit: A, extra: rect('A+', 10, 0, 169, 139) },
    { shape: D, hit: D, extra: rect('D+', 190, 110, 450, 370) },
    { shape: C, hit: C, extra: rect('C+', 470, 350, 629, 479) },
  ];

  it('finds the 3 shapes with exact boxes and areas on the whole image', async () => {
    const { decode, calls } = syntheticDecoder(W, H, shapes);
    const progress: [number, number][] = [];
    const recs = await generateMasks({ width: W, height: H }, { points_per_side: 16 }, decode, {
      onProgress: (d, t) => progress.push([d, t]),
    });
    expect(recs).toHaveLength(3);
    const byBox = new Map(recs.map((r) => [r.bbox.join(','), r]));
    expect(byBox.get('40,30,99,79')!.area).toBe(8000);
    expect(byBox.get('500,380,99,69')!.area).toBe(7000);
    expect(byBox.get('220,140,200,200')!.area).toBe(areaOf(D, W, H));
    for (const r of recs) {
      expect(r.predicted_iou).toBe(Math.fround(0.96));
      expect(r.stability_score).toBe(1);
      expect(r.crop_box).toEqual([0, 0, 640, 480]);
      expect(r.segmentation).toBeInstanceOf(Uint8Array);
      expect(maskToBoxXyxy(r.segmentation, W, H)).toEqual([r.bbox[0], r.bbox[1], r.bbox[0] + r.bbox[2], r.bbox[1] + r.bbox[3]]);
      const [[px, py]] = r.point_coords;
      expect(shapes.some((s) => s.shape.has(Math.floor(px), Math.floor(py)) && r.bbox[0] <= px && px <= r.bbox[0] + r.bbox[2] + 1)).toBe(
        true,
      );
    }
    // Box NMS keeps the first of equal scores: A's first grid point is (60, 45) (x = 20 + 40k, y = 15 + 30k).
    expect(byBox.get('40,30,99,79')!.point_coords).toEqual([[60, 45]]);
    // 256 points in batches of 64, progress after each.
    expect(calls.map((c) => c.n)).toEqual([64, 64, 64, 64]);
    expect(progress).toEqual([
      [64, 256],
      [128, 256],
      [192, 256],
      [256, 256],
    ]);
  });

  it('with crop layer 1: drops masks at inner crop edges, prefers smaller crops, orders as SAM', async () => {
    const { decode, produced, calls } = syntheticDecoder(W, H, shapes);
    const recs = await generateMasks({ width: W, height: H }, { points_per_side: 16, crop_n_layers: 1 }, decode);
    expect(calls.filter((c) => c.crop.join() === '0,0,640,480')).toHaveLength(4);
    expect(calls).toHaveLength(4 * 5);
    // The disc was decoded in all four crops, cut by their inner edges there, so only the whole-image mask survives.
    const discCrops = new Set(produced.get('D')!.map((c) => c.join()));
    expect(discCrops).toEqual(new Set(['0,0,640,480', '0,0,402,322', '0,159,402,480', '239,0,640,322', '239,159,640,480']));
    // Cross-crop NMS scores 1 / crop area: 401·321 (C's crop) < 402·322 (A's) < 640·480.
    expect(recs.map((r) => [r.bbox, r.crop_box, r.area])).toEqual([
      [[500, 380, 99, 69], [239, 159, 401, 321], 7000],
      [[40, 30, 99, 79], [0, 0, 402, 322], 8000],
      [[220, 140, 200, 200], [0, 0, 640, 480], areaOf(D, W, H)],
    ]);
    // Points come back in the image frame: C's first grid point in crop 4 lies inside C.
    const [[px, py]] = recs[0]!.point_coords;
    expect(C.has(Math.floor(px), Math.floor(py))).toBe(true);
    expect(px).toBeCloseTo(239 + (10.5 / 16) * 401, 9);
  });

  it('honours pred_iou_thresh (strictly greater, in float32)', async () => {
    const lower = await generateMasks(
      { width: W, height: H },
      { points_per_side: 16, pred_iou_thresh: 0.8 },
      syntheticDecoder(W, H, shapes).decode,
    );
    expect(lower).toHaveLength(6);
    expect(lower.filter((r) => r.predicted_iou === Math.fround(0.85)).map((r) => r.bbox)).toEqual(
      expect.arrayContaining([
        [10, 0, 159, 139],
        [190, 110, 260, 260],
        [470, 350, 159, 129],
      ]),
    );
    const none = await generateMasks(
      { width: W, height: H },
      { points_per_side: 16, pred_iou_thresh: 0.97 },
      syntheticDecoder(W, H, shapes).decode,
    );
    expect(none).toHaveLength(0);
    const equal = syntheticDecoder(W, H, shapes, [0.88, 0.88, 0.88]);
    expect(await generateMasks({ width: W, height: H }, { points_per_side: 16 }, equal.decode)).toHaveLength(0);
    const off = syntheticDecoder(W, H, shapes, [0.1, 0.1, 0.1]);
    expect(await generateMasks({ width: W, height: H }, { points_per_side: 16, pred_iou_thresh: 0 }, off.decode)).toHaveLength(6);
  });

  it('min_mask_region_area fills holes, drops islands, recomputes boxes and prefers unchanged masks', async () => {
    // 200×150: R is a rectangle with a 2×2 hole plus a 3×3 island; S a clean rectangle.
    const w = 200;
    const h = 150;
    const body = rect('body', 20, 20, 99, 79);
    const R: Shape = {
      name: 'R',
      has: (x, y) => (body.has(x, y) && !(x >= 50 && x <= 51 && y >= 40 && y <= 41)) || (x >= 120 && x <= 122 && y >= 30 && y <= 32),
    };
    const S = rect('S', 130, 90, 179, 139);
    const dec = (): AmgDecodeBatch =>
      syntheticDecoder(w, h, [
        { shape: R, hit: body, extra: R },
        { shape: S, hit: S, extra: S },
      ]).decode;
    const raw = await generateMasks({ width: w, height: h }, { points_per_side: 8, output_mode: 'uncompressed_rle' }, dec());
    expect(raw.map((r) => [r.bbox, r.area])).toEqual(
      expect.arrayContaining([
        [[20, 20, 102, 59], 4800 - 4 + 9],
        [[130, 90, 49, 49], 2500],
      ]),
    );
    const post = await generateMasks(
      { width: w, height: h },
      { points_per_side: 8, min_mask_region_area: 10, output_mode: 'uncompressed_rle' },
      dec(),
    );
    // Unchanged S first (score 1), then the repaired R (score 0) with its new box and RLE.
    expect(post.map((r) => [r.bbox, r.area])).toEqual([
      [[130, 90, 49, 49], 2500],
      [[20, 20, 79, 59], 4800],
    ]);
    const repaired = rleDecode(post[1]!.segmentation);
    expect(repaired[40 * w + 50]).toBe(1);
    expect(repaired[31 * w + 121]).toBe(0);
  });

  it('writes coco_rle and uncompressed_rle segmentations for the same masks', async () => {
    const opts = { points_per_side: 16 } as const;
    const rle = await generateMasks(
      { width: W, height: H },
      { ...opts, output_mode: 'uncompressed_rle' },
      syntheticDecoder(W, H, shapes).decode,
    );
    const coco = await generateMasks({ width: W, height: H }, { ...opts, output_mode: 'coco_rle' }, syntheticDecoder(W, H, shapes).decode);
    expect(coco.map((r) => r.segmentation)).toEqual(rle.map((r) => cocoEncodeRle(r.segmentation)));
    expect(coco[0]!.segmentation.size).toEqual([480, 640]);
    expect(typeof coco[0]!.segmentation.counts).toBe('string');
  });

  it('rejects a decoder answer of the wrong shape', async () => {
    const bad: AmgDecodeBatch = async (_crop, points: Point[]) => ({
      masks: points.map(() => new Float32Array(4)),
      iouPredictions: new Float32Array(points.length),
    });
    await expect(generateMasks({ width: 8, height: 8 }, { points_per_side: 2 }, bad)).rejects.toThrow(/expected 3 each/);
  });

  it('[metrics] times post-processing for 32 points a side on 1024×768', async () => {
    const w = 1024;
    const h = 768;
    const perf = [
      { shape: rect('P1', 60, 50, 309, 259), extra: rect('P1+', 30, 20, 339, 289) },
      { shape: disc('P2', 560, 400, 150), extra: rect('P2+', 380, 220, 740, 580) },
      { shape: rect('P3', 800, 560, 999, 739), extra: rect('P3+', 770, 530, 1023, 767) },
    ].map((s) => ({ ...s, hit: s.shape }));
    const { decode } = syntheticDecoder(w, h, perf);
    await decode([0, 0, w, h], [[100, 100]]); // build the shared logit planes outside the timing
    const t0 = performance.now();
    const recs = await generateMasks({ width: w, height: h }, { points_per_side: 32, output_mode: 'uncompressed_rle' }, decode);
    const ms = performance.now() - t0;
    expect(recs).toHaveLength(3);
    console.log(`[metrics] amg generateMasks 1024×768, 32×32 points, 3 shapes (decoder stubbed): ${ms.toFixed(0)} ms`);
  });
});
