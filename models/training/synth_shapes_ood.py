"""An out-of-family test set for sam-tiny: shapes that its training generator (train_sam.render_shapes and its
domain-randomized variant) never draws, with different drawing code.

Families: many-pointed stars with varying spikiness, crescents, thin or off-centre rings (ellipses with elliptic
holes), smooth Fourier blobs, rounded polygons (3-8 sides, rounded corners), crosses and hearts. Drawn supersampled 3x
and downsampled (anti-aliased edges); the mask of a shape is where its coverage is at least one half. Fills: sphere
shading (a highlight and a dark rim), linear gradients, hatching, value-noise textures, a dark outline. Backgrounds:
multi-octave value noise, wood-like rings, tiles with grout, diagonal gradients, paper grain. Then a vignette, blur,
noise and JPEG compression, each at random.

Used only for evaluation (`ood_eval.py`); nothing trains on it."""
from __future__ import annotations

import io
import math
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SS = 3  # supersampling factor
FAMILIES = ["star", "crescent", "ring", "blob", "rounded_polygon", "cross", "heart"]


def _value_noise(nrng: np.random.Generator, w: int, h: int, octaves: int) -> np.ndarray:
    """Sum of bicubically upsampled random grids, 0..1."""
    acc = np.zeros((h, w), dtype=np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        cells = 3 * 2**o
        small = nrng.random((cells, cells)).astype(np.float32)
        acc += amp * np.asarray(Image.fromarray(small, mode="F").resize((w, h), Image.BICUBIC), dtype=np.float32)
        total += amp
        amp *= 0.5
    acc /= total
    return (acc - acc.min()) / max(float(acc.max() - acc.min()), 1e-6)


def _colour(rng: random.Random) -> np.ndarray:
    # HSV-ish: a hue, a saturation and a value, so that pale, dark and vivid colours all occur.
    hue, sat, val = rng.random(), rng.uniform(0.15, 1.0), rng.uniform(0.2, 1.0)
    i = int(hue * 6) % 6
    f = hue * 6 - int(hue * 6)
    p, q, t = val * (1 - sat), val * (1 - sat * f), val * (1 - sat * (1 - f))
    rgb = [(val, t, p), (q, val, p), (p, val, t), (p, q, val), (t, p, val), (val, p, q)][i]
    return np.array(rgb, dtype=np.float32) * 255


def background(rng: random.Random, nrng: np.random.Generator, w: int, h: int) -> np.ndarray:
    kind = rng.choice(["noise", "wood", "tiles", "diagonal", "paper"])
    a, b = _colour(rng), _colour(rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "noise":
        f = _value_noise(nrng, w, h, rng.randint(2, 4))
        b = a + (b - a) * rng.uniform(0.3, 0.7)
    elif kind == "wood":
        cx, cy = rng.uniform(-w, 2 * w), rng.uniform(-h, 2 * h)
        d = np.hypot(xx - cx, yy - cy) + 25 * _value_noise(nrng, w, h, 2)
        f = 0.5 + 0.5 * np.sin(d / rng.uniform(3, 9))
        b = a + (b - a) * rng.uniform(0.2, 0.5)
    elif kind == "tiles":
        s = rng.randint(24, 70)
        grout = ((xx % s) < 2) | ((yy % s) < 2)
        f = np.where(grout, 1.0, 0.25 * _value_noise(nrng, w, h, 3)).astype(np.float32)
        b = a * 0.5 if rng.random() < 0.5 else np.minimum(a * 1.5 + 40, 255)
    elif kind == "diagonal":
        f = (xx + yy * rng.uniform(0.3, 3)) / (w + h * 3)
        f = (f - f.min()) / max(float(f.max() - f.min()), 1e-6)
    else:
        f = np.clip(0.5 + nrng.normal(0, 0.15, (h, w)), 0, 1).astype(np.float32)
        b = a + (b - a) * 0.25
    return a + (b - a) * f[..., None]


def _shape_alpha(rng: random.Random, w: int, h: int, family: str, cx: float, cy: float, r: float) -> np.ndarray:
    """Coverage 0..1 of one shape at (w, h), drawn at SS x and box-filtered down."""
    W, H = w * SS, h * SS
    img = Image.new("L", (W, H), 0)
    d = ImageDraw.Draw(img)
    X, Y, R = cx * SS, cy * SS, r * SS
    rot = rng.uniform(0, 2 * math.pi)
    rotp = lambda x, y: (X + x * math.cos(rot) - y * math.sin(rot), Y + x * math.sin(rot) + y * math.cos(rot))  # noqa: E731
    if family == "star":
        n, inner = rng.randint(5, 9), rng.uniform(0.35, 0.7)
        d.polygon([rotp(*(((R if k % 2 == 0 else R * inner) * math.cos(k * math.pi / n)), ((R if k % 2 == 0 else R * inner) * math.sin(k * math.pi / n)))) for k in range(2 * n)], fill=255)
    elif family == "crescent":
        d.ellipse([X - R, Y - R, X + R, Y + R], fill=255)
        off, rr = rng.uniform(0.35, 0.6) * R, rng.uniform(0.75, 0.95) * R
        ox, oy = X + off * math.cos(rot), Y + off * math.sin(rot)
        d.ellipse([ox - rr, oy - rr, ox + rr, oy + rr], fill=0)
    elif family == "ring":
        ax, ay = R, R * rng.uniform(0.6, 1.0)
        d.ellipse([X - ax, Y - ay, X + ax, Y + ay], fill=255)
        k = rng.uniform(0.5, 0.8)
        dx, dy = rng.uniform(-0.15, 0.15) * ax, rng.uniform(-0.15, 0.15) * ay
        d.ellipse([X + dx - ax * k, Y + dy - ay * k, X + dx + ax * k, Y + dy + ay * k], fill=0)
    elif family == "blob":
        coef = [(rng.uniform(0, 0.22) / (1 + 0.5 * j), rng.uniform(0, 2 * math.pi)) for j in range(2, 6)]
        pts = []
        for i in range(72):
            t = 2 * math.pi * i / 72
            rr = R * (0.75 + sum(a * math.cos(j * t + p) for j, (a, p) in enumerate(coef, start=2)))
            pts.append((X + rr * math.cos(t), Y + rr * math.sin(t)))
        d.polygon(pts, fill=255)
    elif family == "rounded_polygon":
        n = rng.randint(3, 8)
        corner = rng.uniform(0.15, 0.35) * R
        pts = [rotp((R - corner) * math.cos(2 * math.pi * k / n), (R - corner) * math.sin(2 * math.pi * k / n)) for k in range(n)]
        d.polygon(pts, fill=255)
        for px, py in pts:  # the corners: discs at the inset vertices, the edges: thick lines between them
            d.ellipse([px - corner, py - corner, px + corner, py + corner], fill=255)
        for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1]):
            d.line([(x0, y0), (x1, y1)], fill=255, width=int(2 * corner))
    elif family == "cross":
        arm = R * rng.uniform(0.25, 0.4)
        for x, y in ((R, arm), (arm, R)):
            d.polygon([rotp(-x, -y), rotp(x, -y), rotp(x, y), rotp(-x, y)], fill=255)
    else:  # heart: two discs and a triangle
        s = R * 0.55
        c1, c2 = rotp(-s * 0.8, -s * 0.4), rotp(s * 0.8, -s * 0.4)
        for px, py in (c1, c2):
            d.ellipse([px - s, py - s, px + s, py + s], fill=255)
        d.polygon([rotp(-s * 1.72, -s * 0.1), rotp(s * 1.72, -s * 0.1), rotp(0, R * 1.05)], fill=255)
    return np.asarray(img.resize((w, h), Image.BOX), dtype=np.float32) / 255.0


def _fill(rng: random.Random, nrng: np.random.Generator, w: int, h: int, col: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    """The shape's appearance over the whole image (h, w, 3); only its covered part is used."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = rng.choice(["sphere", "gradient", "hatch", "noise", "flat"])
    if kind == "sphere":  # a highlight up-left, darker towards the rim
        lx, ly = cx - 0.35 * r, cy - 0.35 * r
        d = np.clip(np.hypot(xx - lx, yy - ly) / (1.6 * r), 0, 1)
        return col * (1.25 - 0.6 * d[..., None])
    if kind == "gradient":
        t = rng.uniform(0, math.pi)
        f = np.clip(((xx - cx) * math.cos(t) + (yy - cy) * math.sin(t)) / (2 * r) + 0.5, 0, 1)
        return col * (0.7 + 0.5 * f[..., None])
    if kind == "hatch":
        t = rng.uniform(0, math.pi)
        f = (np.sin(((xx * math.cos(t) + yy * math.sin(t)) / rng.uniform(2, 5))) > 0.3).astype(np.float32)
        return col * (1 - rng.uniform(0.15, 0.3) * f[..., None])
    if kind == "noise":
        return col + (rng.uniform(30, 60) * (_value_noise(nrng, w, h, 4) - 0.5))[..., None]
    return np.zeros((h, w, 3), dtype=np.float32) + col


def render_ood(rng: random.Random, w: int, h: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """RGB uint8 image and the visible mask of each shape (later shapes may partly cover earlier ones)."""
    nrng = np.random.default_rng(rng.randint(0, 2**31))
    img = background(rng, nrng, w, h)
    masks: list[np.ndarray] = []
    short = min(w, h)
    for _ in range(rng.randint(2, 6)):
        r = rng.uniform(0.06, 0.22) * short
        cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
        alpha = _shape_alpha(rng, w, h, rng.choice(FAMILIES), cx, cy, r)
        m = alpha >= 0.5
        if not m.any():
            continue
        under = img[m].mean(0)
        col = _colour(rng)
        for _ in range(50):  # the same contrast rule as the training generator (L1 >= 90 on 0-255)
            if np.abs(col - under).sum() >= 90:
                break
            col = _colour(rng)
        fill = _fill(rng, nrng, w, h, col, cx, cy, r)
        if rng.random() < 0.3:  # a dark outline: the pixels of the shape near its edge
            edge = alpha - np.asarray(Image.fromarray((alpha * 255).astype(np.uint8)).filter(ImageFilter.MinFilter(5)), dtype=np.float32) / 255.0
            fill = fill * (1 - 0.6 * np.clip(edge * 2, 0, 1))[..., None]
        img = img * (1 - alpha[..., None]) + np.clip(fill, 0, 255) * alpha[..., None]
        masks = [mm & ~m for mm in masks]
        masks.append(m)
    if rng.random() < 0.5:  # vignette
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        d = np.hypot((xx - w / 2) / w, (yy - h / 2) / h)
        img = img * (1 - rng.uniform(0.2, 0.6) * d[..., None])
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    if rng.random() < 0.4:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
    if rng.random() < 0.5:
        arr = np.asarray(out).astype(np.float32) + nrng.normal(0, rng.uniform(3, 10), (h, w, 3))
        out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        buf = io.BytesIO()
        out.save(buf, format="JPEG", quality=rng.randint(30, 80))
        out = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    masks = [m for m in masks if m.sum() > 0.002 * w * h]
    if not masks:
        return render_ood(rng, w, h)
    return np.asarray(out), masks
