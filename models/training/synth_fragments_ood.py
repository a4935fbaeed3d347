"""Out-of-family fragment images: a second, independent drawing of the fragment-sizing scene, used only to
evaluate fragments-seg (training never sees it). Plain convex rocks (convex hulls of random points, flat colour
with a soft lit side drawn as nested shrunken polygons) on a flat, noisy background, plus a red ball with a
specular spot. Different code, outlines, shading and backgrounds from synth_fragments.py."""
from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from synth_fragments import _hull



def _convex(rng: random.Random, cx: float, cy: float, rx: float, ry: float, rot: float) -> list[tuple[float, float]]:
    pts = []
    for _ in range(rng.randint(6, 16)):
        a = rng.uniform(0, 2 * math.pi)
        x, y = rx * math.cos(a), ry * math.sin(a)
        pts.append((cx + x * math.cos(rot) - y * math.sin(rot), cy + x * math.sin(rot) + y * math.cos(rot)))
    return _hull(pts)  # the convex hull is geometry, not a look: the drawing below is this set's own


def render_ood(rng: random.Random, w: int, h: int, n_target: int = 22) -> dict:
    """Image, instance masks (fragments then the ball), classes, ball centre/radius (same layout as render_fragments)."""
    short = min(w, h)
    bg = [rng.randint(60, 200)] * 3
    bg = (bg[0], int(bg[1] * rng.uniform(0.9, 1.0)), int(bg[2] * rng.uniform(0.8, 1.0)))
    img = Image.new("RGB", (w, h), bg)
    label = np.zeros((h, w), dtype=np.int32)  # 0 background, i+1 fragment i, -1 ball
    br = rng.uniform(0.03, 0.055) * short
    bx, by = rng.uniform(br + 10, w - br - 10), rng.uniform(br + 10, h - br - 10)
    occupied = Image.new("L", (w, h), 0)
    od = ImageDraw.Draw(occupied)
    od.ellipse([bx - br - 6, by - br - 6, bx + br + 6, by + br + 6], fill=255)
    draw = ImageDraw.Draw(img)
    dark = sum(bg) / 3 > 128
    masks = []
    tries = 0
    while len(masks) < n_target and tries < 4000:
        tries += 1
        r = rng.uniform(0.045, 0.1) * short
        cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
        poly = _convex(rng, cx, cy, r, r * rng.uniform(0.55, 1.0), rng.uniform(0, math.pi))
        if len(poly) < 3:
            continue
        m = Image.new("L", (w, h), 0)
        ImageDraw.Draw(m).polygon(poly, fill=255)
        mk = np.asarray(m) > 0
        if mk.sum() < 0.5 * math.pi * r * r * 0.4:
            continue
        # No overlap, a few pixels of background around each rock.
        grown = np.asarray(m.filter(ImageFilter.MaxFilter(7))) > 0
        if (np.asarray(occupied)[grown] > 0).any():
            continue
        od.polygon(poly, fill=255)
        v = rng.randint(15, 85) if dark else rng.randint(150, 235)
        col = (v, int(v * rng.uniform(0.85, 1.0)), int(v * rng.uniform(0.7, 0.95)))
        draw.polygon(poly, fill=col)
        # Lit side: nested polygons shrunk toward a point offset from the centre, each a little brighter.
        ox, oy = rng.uniform(-0.3, 0.3) * r, rng.uniform(-0.3, 0.3) * r
        for k in range(1, 5):
            t = 1 - k * 0.18
            sp = [(cx + ox + (x - cx - ox) * t, cy + oy + (y - cy - oy) * t) for x, y in poly]
            lv = min(255, int(v * (1 + 0.07 * k)))
            draw.polygon(sp, fill=(lv, int(lv * col[1] / max(v, 1)), int(lv * col[2] / max(v, 1))))
        masks.append(mk)
    # The ball: flat red disc with a lighter specular spot.
    red = (rng.randint(190, 230), rng.randint(15, 40), rng.randint(15, 40))
    draw.ellipse([bx - br, by - br, bx + br, by + br], fill=red)
    sr = br * 0.3
    draw.ellipse([bx - br * 0.4 - sr, by - br * 0.4 - sr, bx - br * 0.4 + sr, by - br * 0.4 + sr], fill=(240, 90, 90))
    yy, xx = np.mgrid[0:h, 0:w]
    ball = (xx + 0.5 - bx) ** 2 + (yy + 0.5 - by) ** 2 <= br ** 2
    # Flat noisy background (and rocks): per-pixel Gaussian noise, then a slight softening.
    nrng = np.random.default_rng(rng.randint(0, 2**31))
    arr = np.asarray(img, dtype=np.float32) + nrng.normal(0, rng.uniform(6, 16), (h, w, 1)).astype(np.float32)
    out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.5))
    return {"image": out, "masks": masks + [ball], "classes": [0] * len(masks) + [1], "ball": {"cx": bx, "cy": by, "r": br}}


OOD_SIZES = [(640, 480), (800, 600), (1024, 768), (600, 800), (1280, 960), (480, 640)]


def ood_set(n: int = 12, seed: int = 777) -> list[dict]:
    rng = random.Random(seed)
    return [render_ood(rng, *OOD_SIZES[i % len(OOD_SIZES)]) for i in range(n)]
