/** Small geometry for tests: IoU of convex polygons (oriented boxes given by their corners). */
export type Pt = [number, number];

function area(poly: Pt[]): number {
  let a = 0;
  for (let i = 0; i < poly.length; i++) {
    const [x1, y1] = poly[i]!;
    const [x2, y2] = poly[(i + 1) % poly.length]!;
    a += x1 * y2 - x2 * y1;
  }
  return Math.abs(a) / 2;
}

/** Counter-clockwise (in the maths sense) copy, so the clipper's inside test has one sign. */
function ccw(poly: Pt[]): Pt[] {
  let s = 0;
  for (let i = 0; i < poly.length; i++) {
    const [x1, y1] = poly[i]!;
    const [x2, y2] = poly[(i + 1) % poly.length]!;
    s += x1 * y2 - x2 * y1;
  }
  return s >= 0 ? poly : [...poly].reverse();
}

/** Sutherland–Hodgman: subject clipped by a convex clip polygon. */
function clip(subject: Pt[], clipPoly: Pt[]): Pt[] {
  let out = subject;
  for (let i = 0; i < clipPoly.length && out.length; i++) {
    const a = clipPoly[i]!;
    const b = clipPoly[(i + 1) % clipPoly.length]!;
    const inside = (p: Pt): boolean => (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]) >= 0;
    const cross = (p: Pt, q: Pt): Pt => {
      const a1 = b[1] - a[1];
      const b1 = a[0] - b[0];
      const c1 = a1 * a[0] + b1 * a[1];
      const a2 = q[1] - p[1];
      const b2 = p[0] - q[0];
      const c2 = a2 * p[0] + b2 * p[1];
      const det = a1 * b2 - a2 * b1;
      return [(b2 * c1 - b1 * c2) / det, (a1 * c2 - a2 * c1) / det];
    };
    const input = out;
    out = [];
    for (let j = 0; j < input.length; j++) {
      const cur = input[j]!;
      const prev = input[(j + input.length - 1) % input.length]!;
      if (inside(cur)) {
        if (!inside(prev)) out.push(cross(prev, cur));
        out.push(cur);
      } else if (inside(prev)) out.push(cross(prev, cur));
    }
  }
  return out;
}

export function polygonIoU(p: Pt[], q: Pt[]): number {
  const a = ccw(p);
  const b = ccw(q);
  const inter = area(clip(a, b));
  const union = area(a) + area(b) - inter;
  return union > 0 ? inter / union : 0;
}
