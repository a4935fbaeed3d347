"""Synthetic scenes of shaded, rotated 2D primitives on textured backgrounds (the prediction scenes' cone, cube, cylinder,
sphere, torus), each scene type with its own distribution of primitives so the scene is learnable from them."""
from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from common import obb_corners, regularize

CLASSES = ["cone", "cube", "cylinder", "sphere", "torus"]
SCENES = ["office", "livingroom", "warehouse", "greenhouse"]

# Per scene: class weights, object count range, size range (fraction of the short image side), layout.
SCENE_SPECS = {
    "office": {"w": [0.05, 0.40, 0.40, 0.10, 0.05], "n": (3, 6), "size": (0.07, 0.13), "band": (0.2, 0.9)},
    "livingroom": {"w": [0.05, 0.15, 0.10, 0.35, 0.35], "n": (3, 6), "size": (0.09, 0.18), "band": (0.3, 0.95)},
    "warehouse": {"w": [0.02, 0.70, 0.26, 0.01, 0.01], "n": (6, 10), "size": (0.16, 0.26), "band": (0.1, 0.95)},
    "greenhouse": {"w": [0.60, 0.05, 0.15, 0.15, 0.05], "n": (6, 10), "size": (0.06, 0.12), "band": (0.05, 0.7)},
}



def _texture(rng: random.Random, w: int, h: int) -> Image.Image:
    kind = rng.choice(["noise", "stripes", "gradient", "checker", "blotches"])
    base = np.array([rng.randint(40, 215) for _ in range(3)], dtype=np.float32)
    nrng = np.random.default_rng(rng.randint(0, 2**31))
    if kind == "noise":
        small = nrng.normal(0, 28, (max(2, h // 8), max(2, w // 8), 3))
        arr = base + np.asarray(Image.fromarray(np.clip(small + 128, 0, 255).astype(np.uint8)).resize((w, h), Image.BILINEAR), dtype=np.float32) - 128
    elif kind == "stripes":
        period = rng.uniform(8, 40)
        ang = rng.uniform(0, math.pi)
        yy, xx = np.mgrid[0:h, 0:w]
        s = np.sin((xx * math.cos(ang) + yy * math.sin(ang)) * 2 * math.pi / period)
        arr = base + s[..., None] * rng.uniform(10, 35)
    elif kind == "gradient":
        other = np.array([rng.randint(40, 215) for _ in range(3)], dtype=np.float32)
        t = np.linspace(0, 1, h)[:, None, None] if rng.random() < 0.5 else np.linspace(0, 1, w)[None, :, None]
        arr = base * (1 - t) + other * t + np.zeros((h, w, 3))
    elif kind == "checker":
        cell = rng.randint(12, 48)
        yy, xx = np.mgrid[0:h, 0:w]
        c = ((xx // cell + yy // cell) % 2)[..., None]
        arr = base + (c - 0.5) * rng.uniform(15, 40)
    else:
        arr = np.zeros((h, w, 3)) + base
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        d = ImageDraw.Draw(img)
        for _ in range(rng.randint(5, 15)):
            r = rng.randint(10, 60)
            x, y = rng.randint(0, w), rng.randint(0, h)
            col = tuple(int(np.clip(v + rng.uniform(-30, 30), 0, 255)) for v in base)
            d.ellipse([x - r, y - r, x + r, y + r], fill=col)
        return img.filter(ImageFilter.GaussianBlur(3))
    arr = arr + nrng.normal(0, 4, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _ellipse_poly(cx, cy, a, b, t, n=48):
    c, s = math.cos(t), math.sin(t)
    pts = []
    for i in range(n):
        u = 2 * math.pi * i / n
        x, y = a * math.cos(u), b * math.sin(u)
        pts.append((cx + x * c - y * s, cy + x * s + y * c))
    return pts


def _rot(cx, cy, pts, t):
    c, s = math.cos(t), math.sin(t)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]


def _shade(img: Image.Image, mask: Image.Image, color, rng: random.Random, radial: bool, cx, cy, r) -> None:
    w, h = img.size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if radial:
        lx, ly = cx - r * 0.35, cy - r * 0.35
        d = np.sqrt((xx - lx) ** 2 + (yy - ly) ** 2) / max(r * 1.6, 1)
        f = np.clip(1.15 - d, 0.35, 1.15)
    else:
        ang = rng.uniform(0, 2 * math.pi)
        proj = (xx - cx) * math.cos(ang) + (yy - cy) * math.sin(ang)
        f = 0.75 + 0.35 * np.clip(proj / max(r, 1), -1, 1)
    col = np.clip(np.array(color, dtype=np.float32)[None, None, :] * f[..., None], 0, 255).astype(np.uint8)
    img.paste(Image.fromarray(col), (0, 0), mask)


def draw_primitive(img: Image.Image, cls: str, cx: float, cy: float, size: float, t: float, color, rng: random.Random):
    """Draws one primitive; returns its ground-truth oriented box (cx, cy, w, h, theta) regularized, w >= h."""
    w_img, h_img = img.size
    mask = Image.new("L", (w_img, h_img), 0)
    md = ImageDraw.Draw(mask)
    if cls == "sphere":
        r = size / 2
        md.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        _shade(img, mask, color, rng, True, cx, cy, r)
        box = (cx, cy, size, size, 0.0)
    elif cls == "cube":
        s = size * 0.8
        pts = _rot(cx, cy, [(-s / 2, -s / 2), (s / 2, -s / 2), (s / 2, s / 2), (-s / 2, s / 2)], t)
        md.polygon(pts, fill=255)
        _shade(img, mask, color, rng, False, cx, cy, s / 2)
        # a lighter "top face" band along one edge suggests the third dimension
        band = _rot(cx, cy, [(-s / 2, -s / 2), (s / 2, -s / 2), (s / 2, -s / 4), (-s / 2, -s / 4)], t)
        ImageDraw.Draw(img).polygon(band, fill=tuple(min(255, int(c * 1.25) + 20) for c in color))
        box = (cx, cy, s, s, t % (math.pi / 2))
    elif cls == "cylinder":
        L, R = size, size * 0.42
        body = _rot(cx, cy, [(-L / 2, -R), (L / 2, -R), (L / 2, R), (-L / 2, R)], t)
        md.polygon(body, fill=255)
        md.polygon(_ellipse_poly(cx + (L / 2) * math.cos(t), cy + (L / 2) * math.sin(t), R * 0.45, R, t), fill=255)
        _shade(img, mask, color, rng, False, cx, cy, R)
        cap = _ellipse_poly(cx - (L / 2) * math.cos(t), cy - (L / 2) * math.sin(t), R * 0.45, R, t)
        ImageDraw.Draw(img).polygon(cap, fill=tuple(min(255, int(c * 1.3) + 25) for c in color))
        box = (cx, cy, L + R * 0.45 * 2, 2 * R, t)
    elif cls == "cone":
        L, R = size, size * 0.38
        pts = _rot(cx, cy, [(-L / 2, -R), (L / 2, 0), (-L / 2, R)], t)
        md.polygon(pts, fill=255)
        _shade(img, mask, color, rng, False, cx, cy, R)
        ImageDraw.Draw(img).polygon(_ellipse_poly(cx - (L / 2) * math.cos(t), cy - (L / 2) * math.sin(t), R * 0.3, R, t), fill=tuple(int(c * 0.7) for c in color))
        box = (cx, cy, L + R * 0.3, 2 * R, t)
    else:  # torus: a tilted ring (an elliptical annulus) so it has an orientation
        a, b = size / 2, size * 0.3
        md.polygon(_ellipse_poly(cx, cy, a, b, t), fill=255)
        md.polygon(_ellipse_poly(cx, cy, a * 0.5, b * 0.4, t), fill=0)
        _shade(img, mask, color, rng, True, cx, cy, a)
        box = (cx, cy, 2 * a, 2 * b, t)
    w, h, th = regularize(box[2], box[3], box[4])
    return (box[0], box[1], w, h, th)


def primitive_box(cls: str, cx: float, cy: float, size: float, t: float) -> tuple:
    """The oriented box draw_primitive produces for these parameters (regularized), without drawing."""
    if cls == "sphere":
        box = (cx, cy, size, size, 0.0)
    elif cls == "cube":
        box = (cx, cy, size * 0.8, size * 0.8, t % (math.pi / 2))
    elif cls == "cylinder":
        box = (cx, cy, size + size * 0.42 * 0.9, size * 0.84, t)
    elif cls == "cone":
        box = (cx, cy, size + size * 0.38 * 0.3, size * 0.76, t)
    else:
        box = (cx, cy, size, size * 0.6, t)
    w, h, th = regularize(box[2], box[3], box[4])
    return (box[0], box[1], w, h, th)


def sample_scene(rng: random.Random, scene: str | None = None) -> dict:
    """A scene description: its type and primitives as (class, normalized cx, cy, size fraction, angle)."""
    scene = scene or rng.choice(SCENES)
    spec = SCENE_SPECS[scene]
    n = rng.randint(*spec["n"])
    prims = []
    for _ in range(n):
        cls = rng.choices(CLASSES, weights=spec["w"])[0]
        for _try in range(30):  # overlaps allowed, but no primitive mostly hidden behind another
            cand = {
                "cls": cls,
                "x": rng.uniform(0.08, 0.92),
                "y": rng.uniform(*spec["band"]) * 0.84 + 0.08,
                "size": rng.uniform(*spec["size"]),
                "angle": rng.uniform(0, math.pi),
            }
            if all(math.hypot(cand["x"] - q["x"], cand["y"] - q["y"]) > 0.45 * (cand["size"] + q["size"]) for q in prims):
                prims.append(cand)
                break
    return {"scene": scene, "primitives": prims}


def render_scene(desc: dict, width: int, height: int, rng: random.Random) -> tuple[Image.Image, list[dict]]:
    """Renders a scene at width x height. Returns the image and ground truth (class, oriented box, corners) in pixels."""
    img = _texture(rng, width, height)
    short = min(width, height)
    gts = []
    for p in desc["primitives"]:
        size = p["size"] * short
        cx, cy = p["x"] * width, p["y"] * height
        color = tuple(rng.randint(30, 230) for _ in range(3))
        box = draw_primitive(img, p["cls"], cx, cy, size, p["angle"], color, rng)
        gts.append({"cls": p["cls"], "class_id": CLASSES.index(p["cls"]), "box": list(box), "corners": obb_corners(*box)})
    # Later primitives may cover earlier ones; drop ground truth that is mostly hidden.
    return img, gts


def scene_features(prims: list[tuple[int, list[list[float]]]], width: int, height: int) -> np.ndarray:
    """Classifier input rows: one-hot class (5) + 4 corners normalized to [0,1] (8)."""
    rows = []
    for cls_id, corners in prims:
        oh = [0.0] * len(CLASSES)
        oh[cls_id] = 1.0
        flat = []
        for x, y in corners:
            flat += [x / width, y / height]
        rows.append(oh + flat)
    return np.array(rows, dtype=np.float32).reshape(-1, len(CLASSES) + 8)
