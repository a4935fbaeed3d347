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


def draw_primitive(img: Image.Image, cls: str, cx: float, cy: float, size: float, t: float, color, rng: random.Random,
                   mask_out: list | None = None):
    """Draws one primitive; returns its ground-truth oriented box (cx, cy, w, h, theta) regularized, w >= h.
    With mask_out (a list), the primitive's silhouette mask (mode L) is appended to it."""
    w_img, h_img = img.size
    mask = Image.new("L", (w_img, h_img), 0)
    if mask_out is not None:
        mask_out.append(mask)
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


# ---------------------------------------------------------------- domain randomization (training data only)
# render_scene above is the in-family look (its seeded evaluation sets stay reproducible). render_scene_randomized
# draws the same scene descriptions with randomized looks and geometry, so the detector learns the shapes rather
# than this generator's backgrounds, colours, scale and lighting.


def _lowfreq(nrng: np.random.Generator, w: int, h: int, cells: int) -> np.ndarray:
    """Smooth noise in [-1, 1] of size h x w (bilinear upsampling of a cells-wide grid)."""
    gw, gh = max(2, cells), max(2, round(cells * h / max(w, 1)))
    small = nrng.uniform(0, 255, (gh, gw)).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC), dtype=np.float32) / 127.5 - 1.0


def _background_randomized(rng: random.Random, w: int, h: int) -> Image.Image:
    nrng = np.random.default_rng(rng.randint(0, 2**31))
    kind = rng.choice(["flat", "noise", "gradient", "texture", "clutter", "clutter", "photo"])
    base = np.array([rng.randint(0, 255) for _ in range(3)], dtype=np.float32)
    if kind == "texture":
        return _texture(rng, w, h)
    if kind == "flat":
        arr = np.zeros((h, w, 3), np.float32) + base
    elif kind == "noise":
        arr = base + sum(_lowfreq(nrng, w, h, c)[..., None] * rng.uniform(5, 45) for c in (4, 16, 64))
        arr = arr + nrng.normal(0, rng.uniform(2, 20), (h, w, 1 if rng.random() < 0.5 else 3))
    elif kind == "gradient":
        other = np.array([rng.randint(0, 255) for _ in range(3)], dtype=np.float32)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        if rng.random() < 0.5:
            ang = rng.uniform(0, 2 * math.pi)
            t = (xx * math.cos(ang) + yy * math.sin(ang))
        else:
            t = np.hypot(xx - rng.uniform(0, w), yy - rng.uniform(0, h))
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        arr = base * (1 - t[..., None]) + other * t[..., None]
    else:  # clutter / photo: a "room" of regions, edges, lines and blobs that are not primitives
        arr = np.zeros((h, w, 3), np.float32) + base
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        d = ImageDraw.Draw(img)
        if kind == "photo":  # horizon: wall and floor
            y0 = rng.uniform(0.2, 0.7) * h
            d.polygon([(0, y0), (w, y0 + rng.uniform(-0.1, 0.1) * h), (w, h), (0, h)], fill=tuple(rng.randint(0, 255) for _ in range(3)))
        for _ in range(rng.randint(5, 40)):
            col = tuple(rng.randint(0, 255) for _ in range(3))
            x, y = rng.uniform(0, w), rng.uniform(0, h)
            r = rng.uniform(0.01, 0.25) * min(w, h)
            k = rng.random()
            if k < 0.3:
                d.line([(x, y), (x + rng.uniform(-1, 1) * w, y + rng.uniform(-1, 1) * h)], fill=col, width=rng.randint(1, 8))
            elif k < 0.55:  # thin rectangles (shelves, frames)
                d.rectangle([x, y, x + r * rng.uniform(1, 6), y + r * rng.uniform(0.05, 0.4)], fill=col)
            elif k < 0.75:
                d.polygon([(x + rng.uniform(-r, r), y + rng.uniform(-r, r)) for _ in range(rng.randint(4, 7))], fill=col)
            elif k < 0.9:
                d.arc([x - r, y - r, x + r, y + r], rng.uniform(0, 360), rng.uniform(0, 360), fill=col, width=rng.randint(1, 5))
            else:
                d.text((x, y), "".join(rng.choice("ABCDEFGHKLMNOPRSTXYZ0123456789") for _ in range(rng.randint(2, 8))), fill=col)
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0, 4)))
        arr = np.asarray(img, dtype=np.float32) + _lowfreq(nrng, w, h, 8)[..., None] * rng.uniform(0, 40)
        arr = arr + nrng.normal(0, rng.uniform(1, 10), (h, w, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _random_color(rng: random.Random):
    if rng.random() < 0.15:  # greys, near-black, near-white
        v = rng.randint(5, 250)
        return tuple(int(np.clip(v + rng.randint(-12, 12), 0, 255)) for _ in range(3))
    return tuple(rng.randint(0, 255) for _ in range(3))


def _object_style(img: Image.Image, before: Image.Image, mask: Image.Image, rng: random.Random, nrng: np.random.Generator) -> Image.Image:
    """Re-textures and re-lights the pixels of one freshly drawn primitive (mask), over `before`; adds a shadow."""
    box = mask.getbbox()
    if box is None:
        return img
    x0, y0, x1, y1 = box
    pad = int(max(x1 - x0, y1 - y0) * 0.4) + 4
    X0, Y0, X1, Y1 = max(0, x0 - pad), max(0, y0 - pad), min(img.width, x1 + pad), min(img.height, y1 + pad)
    crop = (X0, Y0, X1, Y1)
    obj = np.asarray(img.crop(crop), dtype=np.float32)
    bg = np.asarray(before.crop(crop), dtype=np.float32)
    m = np.asarray(mask.crop(crop), dtype=np.float32) / 255.0
    # anything the drawing changed (caps, bands drawn outside the silhouette) belongs to the object
    m = np.maximum(m, (np.abs(obj - bg).sum(-1) > 0).astype(np.float32))
    h, w = m.shape
    r = max(x1 - x0, y1 - y0)
    if rng.random() < 0.5:  # texture the surface
        k = rng.random()
        if k < 0.4:
            tex = _lowfreq(nrng, w, h, max(2, int(w / max(r / 4, 2))))
        elif k < 0.7:
            ang, period = rng.uniform(0, math.pi), rng.uniform(0.1, 0.5) * r + 2
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            tex = np.sin((xx * math.cos(ang) + yy * math.sin(ang)) * 2 * math.pi / period)
        else:
            tex = nrng.normal(0, 0.6, (h, w)).astype(np.float32)
        obj = obj * (1 + tex[..., None] * rng.uniform(0.05, 0.35))
    if rng.random() < 0.5:  # a different light on the object: brighter/darker side, or flat
        ang = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        proj = ((xx - w / 2) * math.cos(ang) + (yy - h / 2) * math.sin(ang)) / max(r / 2, 1)
        obj = obj * (1 + np.clip(proj, -1, 1)[..., None] * rng.uniform(-0.3, 0.3))
    if rng.random() < 0.3:  # soften the silhouette's edge
        m = np.asarray(Image.fromarray((m * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5))), dtype=np.float32) / 255.0
    out = bg
    if rng.random() < 0.4:  # a cast shadow on what was there before
        dx, dy = rng.uniform(-0.25, 0.25) * r, rng.uniform(-0.25, 0.25) * r
        sm = Image.fromarray((m * 255).astype(np.uint8)).transform((w, h), Image.AFFINE, (1, 0, -dx, 0, 1, -dy))
        sm = np.asarray(sm.filter(ImageFilter.GaussianBlur(rng.uniform(1, 0.12 * r + 1))), dtype=np.float32) / 255.0
        out = out * (1 - sm[..., None] * rng.uniform(0.2, 0.6))
    out = out * (1 - m[..., None]) + obj * m[..., None]
    img.paste(Image.fromarray(np.clip(out, 0, 255).astype(np.uint8)), (X0, Y0))
    return img


def _photometric(img: Image.Image, rng: random.Random, nrng: np.random.Generator) -> Image.Image:
    """Global lighting, colour cast, contrast, blur, sensor noise and JPEG compression."""
    arr = np.asarray(img, dtype=np.float32)
    h, w = arr.shape[:2]
    if rng.random() < 0.5:  # uneven illumination / vignette
        arr = arr * (1 + _lowfreq(nrng, w, h, 3)[..., None] * rng.uniform(0.1, 0.45))
    if rng.random() < 0.6:
        arr = (arr - 128) * rng.uniform(0.6, 1.3) + 128 + rng.uniform(-40, 40)
        arr = arr * np.array([rng.uniform(0.8, 1.2) for _ in range(3)], dtype=np.float32)
    if rng.random() < 0.1:
        arr = arr.mean(-1, keepdims=True).repeat(3, -1)
    if rng.random() < 0.3:
        g = rng.uniform(0.6, 1.6)
        arr = 255.0 * (np.clip(arr, 0, 255) / 255.0) ** g
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if rng.random() < 0.35:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 2.0)))
    if rng.random() < 0.5:
        arr = np.asarray(img, dtype=np.float32) + nrng.normal(0, rng.uniform(1, 15), (h, w, 1 if rng.random() < 0.3 else 3))
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if rng.random() < 0.6:
        import io
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=rng.randint(20, 95))
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return img


def render_scene_randomized(desc: dict, width: int, height: int, rng: random.Random, scale: float = 1.0) -> tuple[Image.Image, list[dict]]:
    """render_scene with randomized backgrounds, object colours/textures, lighting, shadows, blur, noise and JPEG;
    primitive sizes multiplied by `scale`. Same ground-truth format."""
    nrng = np.random.default_rng(rng.randint(0, 2**31))
    img = _background_randomized(rng, width, height)
    short = min(width, height)
    gts = []
    for p in desc["primitives"]:
        size = p["size"] * short * scale * rng.uniform(0.85, 1.15)
        cx, cy = p["x"] * width, p["y"] * height
        before = img.copy()
        masks: list = []
        box = draw_primitive(img, p["cls"], cx, cy, size, p["angle"], _random_color(rng), rng, mask_out=masks)
        img = _object_style(img, before, masks[0], rng, nrng)
        gts.append({"cls": p["cls"], "class_id": CLASSES.index(p["cls"]), "box": list(box), "corners": obb_corners(*box)})
    return _photometric(img, rng, nrng), gts


def sample_randomized(rng: random.Random, max_render: int = 640) -> tuple[Image.Image, list[dict], dict]:
    """A training image as a client might send it: a size of 320-2048 px a side (any aspect ratio from 1:2 to 2:1),
    objects at 0.45-1.6x their scene's size, sometimes padded by up to 60% of a side (small objects in the model input).
    Rendered at most max_render px a side (the letterbox shrinks it to the model input anyway); ground truth in the
    rendered image's pixels. Returns (image, ground truth, info with the nominal size)."""
    W = rng.randint(320, 2048)
    H = int(np.clip(W * math.exp(rng.uniform(-math.log(2), math.log(2))), 320, 2048))
    r = min(1.0, max_render / max(W, H))
    w, h = max(64, round(W * r)), max(64, round(H * r))
    scale = math.exp(rng.uniform(math.log(0.45), math.log(1.6)))
    pad = rng.random() < 0.3
    if pad:  # the scene occupies part of the frame; the rest is a flat band or more background
        fw, fh = rng.uniform(0.55, 1.0), rng.uniform(0.55, 1.0)
        iw, ih = max(48, round(w * fw)), max(48, round(h * fh))
    else:
        iw, ih = w, h
    img, gts = render_scene_randomized(sample_scene(rng), iw, ih, rng, scale)
    if pad:
        col = (114, 114, 114) if rng.random() < 0.5 else tuple(rng.randint(0, 255) for _ in range(3))
        canvas = Image.new("RGB", (w, h), col)
        ox, oy = rng.randint(0, w - iw), rng.randint(0, h - ih)
        canvas.paste(img, (ox, oy))
        img = canvas
        for g in gts:
            g["box"][0] += ox
            g["box"][1] += oy
            g["corners"] = obb_corners(*g["box"])
    return img, gts, {"nominal": (W, H)}
