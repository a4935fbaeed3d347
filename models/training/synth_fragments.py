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


def render_fragments(rng: random.Random, w: int, h: int, n_target: int | None = None, ball_radius: float | None = None) -> dict:
    """Image, instance masks (fragments then the ball), classes, and the ball's center and radius in pixels."""
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
        if any(math.hypot(cx - px, cy - py) < (r + pr) * 0.98 + 3 for px, py, pr in placed):
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
        masks.append(mask)
        classes.append(0)
    # Red calibration ball with a highlight.
    d = np.sqrt((xx - bx) ** 2 + (yy - by) ** 2)
    ball = d <= br
    light = np.clip(1.15 - np.sqrt((xx - bx + br * 0.35) ** 2 + (yy - by + br * 0.35) ** 2) / (br * 1.8), 0.45, 1.15)
    red = np.stack([215 * light, 25 * light, 30 * light], -1)
    img[ball] = red[ball]
    masks.append(ball)
    classes.append(1)
    pil = Image.fromarray(img.astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.6))
    return {"image": pil, "masks": masks, "classes": classes, "ball": {"cx": bx, "cy": by, "r": br}}


def equivalent_diameter(area_px: float) -> float:
    return math.sqrt(4 * area_px / math.pi)
