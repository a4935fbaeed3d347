"""Synthetic fragment images (fragment sizing): packed, irregular, textured and shaded rock fragments on a dark bed, plus one
red calibration ball of known pixel radius. Returns instance masks and the true equivalent diameters."""
from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES = ["fragment", "calibration_ball"]


def _bed(rng: random.Random, w: int, h: int) -> np.ndarray:
    nrng = np.random.default_rng(rng.randint(0, 2**31))
    base = rng.uniform(25, 60)
    small = nrng.normal(0, 10, (max(2, h // 6), max(2, w // 6)))
    noise = np.asarray(Image.fromarray(np.clip(small + 128, 0, 255).astype(np.uint8)).resize((w, h), Image.BILINEAR), dtype=np.float32) - 128
    tint = np.array([1.0, rng.uniform(0.85, 1.0), rng.uniform(0.7, 0.95)], dtype=np.float32)
    return np.clip((base + noise)[..., None] * tint, 0, 255)


def _fragment_polygon(rng: random.Random, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    n = rng.randint(7, 12)
    start = rng.uniform(0, 2 * math.pi)
    elong = rng.uniform(0.65, 1.0)
    rot = rng.uniform(0, math.pi)
    pts = []
    for i in range(n):
        a = start + 2 * math.pi * i / n + rng.uniform(-0.2, 0.2)
        rr = r * rng.uniform(0.72, 1.0)
        x, y = rr * math.cos(a), rr * math.sin(a) * elong
        pts.append((cx + x * math.cos(rot) - y * math.sin(rot), cy + x * math.sin(rot) + y * math.cos(rot)))
    return pts


def render_fragments(rng: random.Random, w: int, h: int, n_target: int | None = None, ball_radius: float | None = None,
                     touch: tuple[float, float] | None = None) -> dict:
    """Image, instance masks (fragments then the ball), classes, and the ball's center and radius in pixels.
    touch (training only): (k, gap_px) packs the fragments tighter than the default thin gap of bed, centres at least
    k (r1 + r2) + gap_px apart and most of them placed right beside another, so neighbours touch or overlap (a later fragment covers an earlier one, and the masks
    say so). Without it the draws, and so the in-family sets and fixtures, are unchanged."""
    img = _bed(rng, w, h)
    short = min(w, h)
    nrng = np.random.default_rng(rng.randint(0, 2**31))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    placed: list[tuple[float, float, float]] = []
    # The ball first (placement), drawn last so it is never covered.
    br = ball_radius if ball_radius is not None else rng.uniform(0.035, 0.06) * short
    bx, by = rng.uniform(br + 4, w - br - 4), rng.uniform(br + 4, h - br - 4)
    placed.append((bx, by, br))
    masks, classes = [], []
    target = n_target if n_target is not None else rng.randint(12, 30)
    rmin, rmax = 0.035 * short, 0.11 * short
    tries = 0
    while len(masks) < target and tries < target * 60:
        tries += 1
        r = rng.uniform(rmin, rmax)
        cx, cy = rng.uniform(r * 0.6, w - r * 0.6), rng.uniform(r * 0.6, h - r * 0.6)
        k, gap = touch if touch is not None else (0.98, 3)
        if touch is not None and len(placed) > 1 and rng.random() < 0.7:  # beside a placed fragment
            px, py, pr = placed[rng.randrange(1, len(placed))]
            a = rng.uniform(0, 2 * math.pi)
            cx, cy = px + (r + pr) * (k + 0.02) * math.cos(a) + gap * math.cos(a), py + (r + pr) * (k + 0.02) * math.sin(a) + gap * math.sin(a)
            if not (r * 0.6 <= cx <= w - r * 0.6 and r * 0.6 <= cy <= h - r * 0.6):
                continue
        if any(math.hypot(cx - px, cy - py) < (r + pr) * k + gap for px, py, pr in placed):
            continue  # packed, but with a thin gap of bed between neighbours
        placed.append((cx, cy, r))
        m = Image.new("L", (w, h), 0)
        ImageDraw.Draw(m).polygon(_fragment_polygon(rng, cx, cy, r), fill=255)
        mask = np.asarray(m) > 127
        if mask.sum() < 30:
            continue
        # Texture and shading only inside the fragment's bounding box (whole-frame arrays are slow).
        x0, x1 = max(0, int(cx - r - 2)), min(w, int(cx + r + 3))
        y0, y1 = max(0, int(cy - r - 2)), min(h, int(cy + r + 3))
        sub = mask[y0:y1, x0:x1]
        base = np.array([rng.uniform(90, 190)] * 3, dtype=np.float32) * np.array([1.0, rng.uniform(0.85, 1.0), rng.uniform(0.7, 0.95)], dtype=np.float32)
        ang = rng.uniform(0, 2 * math.pi)
        sx, sy = xx[y0:y1, x0:x1], yy[y0:y1, x0:x1]
        shade = 0.75 + 0.3 * np.clip(((sx - cx) * math.cos(ang) + (sy - cy) * math.sin(ang)) / r, -1, 1)
        tex = nrng.normal(0, 14, sub.shape).astype(np.float32)
        col = np.clip(base[None, None, :] * shade[..., None] + tex[..., None], 0, 255)
        region = img[y0:y1, x0:x1]
        region[sub] = col[sub]
        if touch is not None:
            for prev in masks:
                prev &= ~mask
        masks.append(mask)
        classes.append(0)
    # Red calibration ball with a highlight.
    d = np.sqrt((xx - bx) ** 2 + (yy - by) ** 2)
    ball = d <= br
    if touch is not None:  # drop what the ball or later fragments covered
        keep = [i for i, m in enumerate(masks) if (m & ~ball).sum() >= 30]
        masks = [masks[i] & ~ball for i in keep]
        classes = [classes[i] for i in keep]
    light = np.clip(1.15 - np.sqrt((xx - bx + br * 0.35) ** 2 + (yy - by + br * 0.35) ** 2) / (br * 1.8), 0.45, 1.15)
    red = np.stack([215 * light, 25 * light, 30 * light], -1)
    img[ball] = red[ball]
    masks.append(ball)
    classes.append(1)
    pil = Image.fromarray(img.astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.6))
    return {"image": pil, "masks": masks, "classes": classes, "ball": {"cx": bx, "cy": by, "r": br}}


def equivalent_diameter(area_px: float) -> float:
    return math.sqrt(4 * area_px / math.pi)


# ---------------------------------------------------------------- domain-randomized variant (training only)
# render_fragments above stays byte-for-byte what it was: the in-family evaluation set and the fixtures are drawn
# from it by seed. render_fragments_dr draws the same two classes with everything else varied, so the segmenter
# learns "a compact blob that differs from its surroundings" rather than this generator's particular look.

def _lowfreq(nrng: np.random.Generator, w: int, h: int, cell: int, sigma: float) -> np.ndarray:
    small = nrng.normal(0, sigma, (max(2, h // cell), max(2, w // cell))).astype(np.float32)
    return np.asarray(Image.fromarray(small, mode="F").resize((w, h), Image.BILINEAR), dtype=np.float32)


def _dr_background(rng: random.Random, nrng: np.random.Generator, w: int, h: int) -> tuple[np.ndarray, float]:
    kind = rng.choice(["flat", "noise", "gradient", "texture", "clutter", "bed"])
    base = rng.uniform(10, 200)
    tint = np.array([1.0, rng.uniform(0.85, 1.1), rng.uniform(0.7, 1.15)], dtype=np.float32)
    lum = np.full((h, w), base, dtype=np.float32)
    if kind in ("noise", "clutter"):
        lum += nrng.normal(0, rng.uniform(4, 22), (h, w)).astype(np.float32)
    if kind == "gradient":
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        a = rng.uniform(0, 2 * math.pi)
        g = ((xx / w - 0.5) * math.cos(a) + (yy / h - 0.5) * math.sin(a))
        lum += g * rng.uniform(20, 90)
    if kind in ("texture", "bed", "clutter"):
        short = min(w, h)
        lum += _lowfreq(nrng, w, h, max(2, int(short * rng.uniform(0.005, 0.05))), rng.uniform(5, 25))
    if kind == "texture":
        lum += nrng.normal(0, rng.uniform(2, 10), (h, w)).astype(np.float32)
    img = np.clip(lum[..., None] * tint, 0, 255)
    if kind == "clutter":
        # Small specks, twigs and pebbles far below the fragment sizes: background, never labelled.
        pil = Image.fromarray(img.astype(np.uint8))
        d = ImageDraw.Draw(pil)
        short = min(w, h)
        for _ in range(rng.randint(20, 120)):
            x, y = rng.uniform(0, w), rng.uniform(0, h)
            v = int(np.clip(base + rng.uniform(-60, 60), 0, 255))
            col = (v, int(v * rng.uniform(0.85, 1.0)), int(v * rng.uniform(0.7, 1.0)))
            if rng.random() < 0.5:
                r = rng.uniform(0.002, 0.008) * short
                d.ellipse([x - r, y - r, x + r, y + r], fill=col)
            else:
                ln = rng.uniform(0.01, 0.05) * short
                a = rng.uniform(0, math.pi)
                d.line([x, y, x + ln * math.cos(a), y + ln * math.sin(a)], fill=col, width=max(1, int(0.002 * short)))
        img = np.asarray(pil, dtype=np.float32)
    return img, base


def _dr_polygon(rng: random.Random, cx: float, cy: float, r: float, elong: float) -> list[tuple[float, float]]:
    """Irregular (this generator's own outline) or convex (hull of random points) outlines."""
    rot = rng.uniform(0, math.pi)
    if rng.random() < 0.5:
        n = rng.randint(5, 14)
        start = rng.uniform(0, 2 * math.pi)
        jr = rng.uniform(0.6, 0.95)
        loc = []
        for i in range(n):
            a = start + 2 * math.pi * i / n + rng.uniform(-0.2, 0.2)
            rr = r * rng.uniform(jr, 1.0)
            loc.append((rr * math.cos(a), rr * math.sin(a) * elong))
    else:
        cloud = []
        for _ in range(rng.randint(8, 30)):
            a = rng.uniform(0, 2 * math.pi)
            rr = r * math.sqrt(rng.uniform(0.3, 1.0))
            cloud.append((rr * math.cos(a), rr * math.sin(a) * elong))
        loc = _hull(cloud)
    return [(cx + x * math.cos(rot) - y * math.sin(rot), cy + x * math.sin(rot) + y * math.cos(rot)) for x, y in loc]


def _hull(pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
    pts = sorted(set(pts))
    if len(pts) < 3:
        return pts

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lo, up = [], []
    for p in pts:
        while len(lo) >= 2 and cross(lo[-2], lo[-1], p) <= 0:
            lo.pop()
        lo.append(p)
    for p in reversed(pts):
        while len(up) >= 2 and cross(up[-2], up[-1], p) <= 0:
            up.pop()
        up.append(p)
    return lo[:-1] + up[:-1]


def render_fragments_dr(rng: random.Random, w: int, h: int, bare: bool = False) -> dict:
    """Domain-randomized fragments: same outputs as render_fragments. bare=True draws no fragment (a hard negative:
    background, clutter and the ball only)."""
    nrng = np.random.default_rng(rng.randint(0, 2**31))
    img, bg = _dr_background(rng, nrng, w, h)
    short = min(w, h)
    placed: list[tuple[float, float, float]] = []
    br = rng.uniform(0.02, 0.08) * short
    bx, by = rng.uniform(br + 2, w - br - 2), rng.uniform(br + 2, h - br - 2)
    placed.append((bx, by, br))
    # Fragment scale: a per-image median radius over 0.03..0.14 of the short side (4.7x), a per-image spread.
    rmed = math.exp(rng.uniform(math.log(0.03), math.log(0.14))) * short
    spread = rng.uniform(1.15, 2.0)
    rmin, rmax = max(4.0, rmed / spread), rmed * spread
    cover = rng.uniform(0.15, 0.55)
    target = 0 if bare else max(1, min(45, int(cover * w * h / (math.pi * rmed ** 2))))
    target = min(target, rng.randint(8, 45)) if not bare else 0
    gap = rng.uniform(1.0, 6.0)
    elong_lo = rng.uniform(0.4, 0.9)
    # Rock palette relative to the background: at least ~30 grey levels apart on average (visible to a person).
    masks, classes = [], []
    tries = 0
    shadow = rng.random() < 0.4
    sh_dx, sh_dy = rng.uniform(-0.25, 0.25), rng.uniform(-0.25, 0.25)
    while len(masks) < target and tries < target * 60:
        tries += 1
        r = math.exp(rng.uniform(math.log(rmin), math.log(rmax)))
        cx, cy = rng.uniform(r * 0.5, w - r * 0.5), rng.uniform(r * 0.5, h - r * 0.5)
        if any(math.hypot(cx - px, cy - py) < (r + pr) * 0.98 + gap for px, py, pr in placed):
            continue
        elong = rng.uniform(elong_lo, 1.0)
        poly = _dr_polygon(rng, cx, cy, r, elong)
        if len(poly) < 3:
            continue
        x0, x1 = max(0, int(cx - r - 3)), min(w, int(cx + r + 4))
        y0, y1 = max(0, int(cy - r - 3)), min(h, int(cy + r + 4))
        m = Image.new("L", (x1 - x0, y1 - y0), 0)
        ImageDraw.Draw(m).polygon([(x - x0, y - y0) for x, y in poly], fill=255)
        sub = np.asarray(m) > 127
        if sub.sum() < 20:
            continue
        placed.append((cx, cy, r))
        if shadow:
            # A soft darker patch offset from the rock, on the background only (drawn before the rock).
            sx0, sy0 = int(sh_dx * r), int(sh_dy * r)
            ys, xs = np.nonzero(sub)
            ys2, xs2 = np.clip(ys + y0 + sy0, 0, h - 1), np.clip(xs + x0 + sx0, 0, w - 1)
            img[ys2, xs2] *= rng.uniform(0.55, 0.85)
        mval = rng.uniform(20, 235)
        if abs(mval - bg) < 35:
            mval = bg + 35 * (1 if (bg < 128 and mval >= bg) or bg < 60 else -1) * rng.uniform(1.0, 2.0)
            mval = float(np.clip(mval, 5, 250))
        warm = rng.uniform(0.0, 0.25)
        base = np.array([mval, mval * (1 - warm * 0.6), mval * (1 - warm)], dtype=np.float32)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        ang = rng.uniform(0, 2 * math.pi)
        k = rng.uniform(0.0, 0.45)
        lin = np.clip(((xx - cx) * math.cos(ang) + (yy - cy) * math.sin(ang)) / r, -1, 1)
        shade = 1.0 - k / 2 + k / 2 * lin
        if rng.random() < 0.5:  # domed: darker toward the rim
            rad = np.clip(np.hypot(xx - cx, yy - cy) / r, 0, 1)
            shade = shade * (1.0 - rng.uniform(0.0, 0.35) * rad ** 2)
        tex = nrng.normal(0, rng.uniform(0, 22), sub.shape).astype(np.float32)
        if rng.random() < 0.5:
            tex += _lowfreq(nrng, x1 - x0, y1 - y0, max(2, int(r * rng.uniform(0.1, 0.4))), rng.uniform(4, 18))
        if rng.random() < 0.45:
            # Facets: a few chords across the rock, each side a different brightness (inner edges, not outlines).
            for _ in range(rng.randint(1, 4)):
                fa = rng.uniform(0, math.pi)
                off = rng.uniform(-0.6, 0.6) * r
                side = ((xx - cx) * math.cos(fa) + (yy - cy) * math.sin(fa)) > off
                shade = shade * np.where(side, rng.uniform(0.8, 1.25), 1.0).astype(np.float32)
        if rng.random() < 0.25:
            # A brighter inset patch (a lit face or a mineral band) inside the outline.
            t = rng.uniform(0.35, 0.75)
            ox, oy = rng.uniform(-0.3, 0.3) * r, rng.uniform(-0.3, 0.3) * r
            inner = Image.new("L", (x1 - x0, y1 - y0), 0)
            ImageDraw.Draw(inner).polygon([(cx + ox + (x - cx - ox) * t - x0, cy + oy + (y - cy - oy) * t - y0) for x, y in poly], fill=255)
            shade = shade * np.where(np.asarray(inner) > 127, rng.uniform(1.1, 1.4), 1.0).astype(np.float32)
        col = np.clip(base[None, None, :] * shade[..., None] + tex[..., None], 0, 255)
        region = img[y0:y1, x0:x1]
        region[sub] = col[sub]
        full = np.zeros((h, w), dtype=bool)
        full[y0:y1, x0:x1] = sub
        masks.append(full)
        classes.append(0)
    # Global lighting: a smooth multiplicative field.
    if rng.random() < 0.6:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        a = rng.uniform(0, 2 * math.pi)
        field = 1.0 + rng.uniform(0.05, 0.3) * ((xx / w - 0.5) * math.cos(a) + (yy / h - 0.5) * math.sin(a)) * 2
        img *= field[..., None]
    # The ball: red (saturated enough for the server's HSV check), shade and highlight varied.
    x0, x1 = max(0, int(bx - br - 2)), min(w, int(bx + br + 3))
    y0, y1 = max(0, int(by - br - 2)), min(h, int(by + br + 3))
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    d = np.sqrt((xx - bx) ** 2 + (yy - by) ** 2)
    ball_sub = d <= br
    hx, hy = rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5)
    light = np.clip(1.15 - np.sqrt((xx - bx - br * hx) ** 2 + (yy - by - br * hy) ** 2) / (br * rng.uniform(1.4, 2.6)), 0.45, 1.15)
    light *= rng.uniform(0.7, 1.0)
    rc = rng.uniform(170, 235)
    red = np.stack([rc * light, rng.uniform(10, 40) * light, rng.uniform(10, 45) * light], -1)
    img[y0:y1, x0:x1][ball_sub] = red[ball_sub]
    ball = np.zeros((h, w), dtype=bool)
    ball[y0:y1, x0:x1] = ball_sub
    masks.append(ball)
    classes.append(1)
    # Camera: blur, sensor noise, JPEG.
    if rng.random() < 0.7:
        img = img + nrng.normal(0, rng.uniform(1, 10), img.shape).astype(np.float32)
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    blur = rng.uniform(0.0, 1.6) * max(1.0, short / 600)
    if blur > 0.3:
        pil = pil.filter(ImageFilter.GaussianBlur(blur))
    if rng.random() < 0.6:
        import io
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=rng.randint(30, 95))
        buf.seek(0)
        pil = Image.open(buf).convert("RGB")
    return {"image": pil, "masks": masks, "classes": classes, "ball": {"cx": bx, "cy": by, "r": br}}


def dr_size(rng: random.Random) -> tuple[int, int]:
    """Image size for randomized samples: long side 320..2048 (log-uniform), aspect 1:1..16:9, either orientation."""
    long = int(math.exp(rng.uniform(math.log(320), math.log(2048))))
    ar = rng.uniform(1.0, 1.78)
    short = max(200, int(long / ar))
    return (long, short) if rng.random() < 0.6 else (short, long)
