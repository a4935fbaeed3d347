"""An out-of-family test set for primitives-obb and scene-gru: the same five primitives and scene layouts
(synth_primitives.sample_scene, so the scene classes mean the same), drawn by separate code with other looks:
outlined, cel-shaded or specular primitives with their own geometry details, on wood, tile, bokeh, sky/floor and
fabric backgrounds. No training script imports this file; only evaluation does."""
from __future__ import annotations

import colorsys
import io
import math
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from common import obb_corners, regularize
from synth_primitives import CLASSES


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def _background(rng: random.Random, w: int, h: int) -> Image.Image:
    kind = rng.choice(["wood", "tiles", "bokeh", "room", "fabric"])
    nrng = np.random.default_rng(rng.randint(0, 2**31))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "wood":
        base = np.array(_hsv(rng.uniform(0.05, 0.11), rng.uniform(0.4, 0.7), rng.uniform(0.4, 0.8)), np.float32)
        warp = np.asarray(Image.fromarray(nrng.uniform(0, 255, (6, 6)).astype(np.uint8)).resize((w, h), Image.BICUBIC), np.float32) / 255
        rings = np.sin((yy / rng.uniform(6, 14) + warp * rng.uniform(4, 10)) * math.pi) * 0.5 + 0.5
        arr = base[None, None] * (0.75 + 0.3 * rings[..., None])
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        if rng.random() < 0.5:
            img = img.rotate(90, expand=True).resize((w, h))
        return img
    if kind == "tiles":
        cell = rng.randint(24, 90)
        c1 = np.array(_hsv(rng.random(), rng.uniform(0, 0.3), rng.uniform(0.6, 0.95)), np.float32)
        grout = np.array(_hsv(rng.random(), 0.1, rng.uniform(0.2, 0.5)), np.float32)
        line = ((xx % cell) < 3) | ((yy % cell) < 3)
        jitter = nrng.normal(0, 6, (h // cell + 1, w // cell + 1)).repeat(cell, 0).repeat(cell, 1)[:h, :w]
        arr = np.where(line[..., None], grout[None, None], c1[None, None] + jitter[..., None])
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if kind == "bokeh":
        img = Image.new("RGB", (w, h), _hsv(rng.random(), rng.uniform(0.3, 0.8), rng.uniform(0.1, 0.4)))
        d = ImageDraw.Draw(img)
        for _ in range(rng.randint(15, 40)):
            r = rng.uniform(0.03, 0.12) * min(w, h)
            x, y = rng.uniform(0, w), rng.uniform(0, h)
            d.ellipse([x - r, y - r, x + r, y + r], fill=_hsv(rng.random(), rng.uniform(0.2, 0.7), rng.uniform(0.4, 1.0)))
        return img.filter(ImageFilter.GaussianBlur(rng.uniform(6, 14)))
    if kind == "room":  # a wall with a window and a floor: two gradients and a few straight edges
        y0 = int(rng.uniform(0.3, 0.6) * h)
        top = np.array(_hsv(rng.random(), rng.uniform(0, 0.3), rng.uniform(0.6, 0.95)), np.float32)
        bot = np.array(_hsv(rng.random(), rng.uniform(0.2, 0.6), rng.uniform(0.3, 0.7)), np.float32)
        t = (yy / h)[..., None]
        arr = np.where((yy < y0)[..., None], top * (1.1 - 0.3 * t), bot * (0.7 + 0.4 * t))
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        d = ImageDraw.Draw(img)
        wx, ww = rng.uniform(0.1, 0.6) * w, rng.uniform(0.15, 0.3) * w
        d.rectangle([wx, 0.05 * h, wx + ww, y0 * 0.8], fill=_hsv(0.58, 0.3, 0.95), outline=(60, 60, 60), width=4)
        d.line([(wx + ww / 2, 0.05 * h), (wx + ww / 2, y0 * 0.8)], fill=(60, 60, 60), width=3)
        return img
    # fabric: a woven cross-hatch
    c = np.array(_hsv(rng.random(), rng.uniform(0.3, 0.8), rng.uniform(0.4, 0.9)), np.float32)
    p = rng.uniform(3, 7)
    weave = np.sin(xx * 2 * math.pi / p) * np.sin(yy * 2 * math.pi / p)
    arr = c[None, None] * (0.85 + 0.15 * weave[..., None]) + nrng.normal(0, 5, (h, w, 1))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _rot(cx, cy, pts, t):
    c, s = math.cos(t), math.sin(t)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]


def _ellipse(cx, cy, a, b, t, n=40):
    return _rot(cx, cy, [(a * math.cos(2 * math.pi * i / n), b * math.sin(2 * math.pi * i / n)) for i in range(n)], t)


def _tone(color, k: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(c * k, 0, 255)) for c in color)


class _Painter:
    """Draws on a 2x supersampled layer (anti-aliased edges once shrunk) in one of three styles."""

    def __init__(self, w: int, h: int, style: str, outline):
        self.ss = 2
        self.layer = Image.new("RGBA", (w * 2, h * 2), (0, 0, 0, 0))
        self.d = ImageDraw.Draw(self.layer)
        self.style, self.outline = style, outline

    def poly(self, pts, fill, edge: bool = True):
        pts = [(x * self.ss, y * self.ss) for x, y in pts]
        ow = 3 * self.ss if (edge and self.style == "outline") else 0
        self.d.polygon(pts, fill=fill + (255,))
        if ow:
            self.d.line(pts + [pts[0]], fill=self.outline + (255,), width=ow, joint="curve")

    def image(self, size) -> Image.Image:
        return self.layer.resize(size, Image.LANCZOS)


def draw_ood(img: Image.Image, cls: str, cx: float, cy: float, size: float, t: float, color, style: str, rng: random.Random):
    """Draws one primitive with this file's own rendering; returns the same oriented-box convention as the training
    generator (synth_primitives.primitive_box)."""
    pnt = _Painter(img.width, img.height, style, _tone(color, 0.35))
    light, dark, mid = _tone(color, 1.35), _tone(color, 0.6), color
    if cls == "sphere":
        r = size / 2
        if style == "cel":  # three flat bands of tone, offset toward the light
            pnt.poly(_ellipse(cx, cy, r, r, 0), dark)
            pnt.poly(_ellipse(cx - r * 0.12, cy - r * 0.12, r * 0.8, r * 0.8, 0), mid, edge=False)
            pnt.poly(_ellipse(cx - r * 0.35, cy - r * 0.35, r * 0.3, r * 0.3, 0), light, edge=False)
        else:
            for k in range(10, 0, -1):  # concentric gradient to a specular spot
                f = k / 10
                pnt.poly(_ellipse(cx - r * 0.4 * (1 - f), cy - r * 0.4 * (1 - f), r * f, r * f, 0), _tone(color, 0.55 + 0.7 * (1 - f)), edge=(k == 10))
            pnt.poly(_ellipse(cx - r * 0.45, cy - r * 0.45, r * 0.12, r * 0.12, 0), (250, 250, 250), edge=False)
        box = (cx, cy, size, size, 0.0)
    elif cls == "cube":  # two triangular facets of different tone instead of a top band, and an edge highlight
        s = size * 0.8
        c = [(-s / 2, -s / 2), (s / 2, -s / 2), (s / 2, s / 2), (-s / 2, s / 2)]
        pnt.poly(_rot(cx, cy, c, t), mid)
        pnt.poly(_rot(cx, cy, [c[0], c[1], c[2]], t), light if style != "specular" else _tone(color, 1.15), edge=False)
        pnt.poly(_rot(cx, cy, [(-s / 2 + s * 0.1, -s / 2 + s * 0.1), (s / 2 - s * 0.1, -s / 2 + s * 0.1), (s / 2 - s * 0.1, s / 2 - s * 0.1),
                               (-s / 2 + s * 0.1, s / 2 - s * 0.1)], t), _tone(color, 0.95), edge=False)
        if style == "outline":
            pnt.poly(_rot(cx, cy, c, t), mid)
        box = (cx, cy, s, s, t % (math.pi / 2))
    elif cls == "cylinder":  # lengthwise stripes of tone, both end caps visible as rims
        L, R = size, size * 0.42
        n = 6
        for i in range(n):
            y0, y1 = -R + 2 * R * i / n, -R + 2 * R * (i + 1) / n
            k = 0.6 + 0.7 * math.sin(math.pi * (i + 0.5) / n)
            pnt.poly(_rot(cx, cy, [(-L / 2, y0), (L / 2, y0), (L / 2, y1), (-L / 2, y1)], t), _tone(color, k), edge=False)
        pnt.poly(_ellipse(cx + (L / 2) * math.cos(t), cy + (L / 2) * math.sin(t), R * 0.45, R, t), _tone(color, 0.8), edge=False)
        pnt.poly(_ellipse(cx - (L / 2) * math.cos(t), cy - (L / 2) * math.sin(t), R * 0.45, R, t), light)
        pnt.poly(_ellipse(cx - (L / 2) * math.cos(t), cy - (L / 2) * math.sin(t), R * 0.3, R * 0.75, t), _tone(color, 1.1), edge=False)
        box = (cx, cy, L + R * 0.45 * 2, 2 * R, t)
    elif cls == "cone":  # shaded across its width (two half-triangles), base as a dark rim
        L, R = size, size * 0.38
        pnt.poly(_ellipse(cx - (L / 2) * math.cos(t), cy - (L / 2) * math.sin(t), R * 0.3, R, t), dark)
        pnt.poly(_rot(cx, cy, [(-L / 2, -R), (L / 2, 0), (-L / 2, 0)], t), light if style == "cel" else _tone(color, 1.15), edge=False)
        pnt.poly(_rot(cx, cy, [(-L / 2, 0), (L / 2, 0), (-L / 2, R)], t), _tone(color, 0.75), edge=False)
        if style == "outline":
            pnt.poly(_rot(cx, cy, [(-L / 2, -R), (L / 2, 0), (-L / 2, R)], t), mid)
        box = (cx, cy, L + R * 0.3, 2 * R, t)
    else:  # torus: a ring drawn as a thick band with an inner shadow (the hole shows the background)
        a, b = size / 2, size * 0.3
        pnt.poly(_ellipse(cx, cy, a, b, t), mid)
        pnt.poly(_ellipse(cx, cy - b * 0.08, a * 0.85, b * 0.8, t), light, edge=False)
        pnt.poly(_ellipse(cx, cy, a * 0.62, b * 0.55, t), dark, edge=False)
        layer = pnt.layer
        hole = Image.new("L", layer.size, 0)
        ImageDraw.Draw(hole).polygon([(x * 2, y * 2) for x, y in _ellipse(cx, cy, a * 0.5, b * 0.4, t)], fill=255)
        alpha = np.asarray(layer.getchannel("A"), np.int32) - np.asarray(hole, np.int32)
        layer.putalpha(Image.fromarray(np.clip(alpha, 0, 255).astype(np.uint8)))
        box = (cx, cy, 2 * a, 2 * b, t)
    layer = pnt.image(img.size)
    if rng.random() < 0.6:  # a soft contact shadow below, from the layer's alpha
        sh = layer.getchannel("A").filter(ImageFilter.GaussianBlur(max(1.0, size * 0.06)))
        sh = sh.transform(img.size, Image.AFFINE, (1, 0, -size * 0.08, 0, 1, -size * 0.1))
        dark_img = Image.eval(img, lambda v: int(v * 0.55))
        img.paste(dark_img, (0, 0), Image.eval(sh, lambda v: int(v * 0.7)))
    img.paste(layer, (0, 0), layer)
    w, h, th = regularize(box[2], box[3], box[4])
    return (box[0], box[1], w, h, th)


def render_scene_ood(desc: dict, width: int, height: int, rng: random.Random) -> tuple[Image.Image, list[dict]]:
    """Renders a synth_primitives.sample_scene description with this file's looks. Same ground-truth format as
    synth_primitives.render_scene."""
    img = _background(rng, width, height)
    style = rng.choice(["outline", "cel", "specular"])
    palette = rng.random()
    short = min(width, height)
    gts = []
    for p in desc["primitives"]:
        size = p["size"] * short
        cx, cy = p["x"] * width, p["y"] * height
        color = _hsv(palette + rng.uniform(-0.25, 0.25), rng.uniform(0.35, 0.95), rng.uniform(0.45, 0.95))
        box = draw_ood(img, p["cls"], cx, cy, size, p["angle"], color, style, rng)
        gts.append({"cls": p["cls"], "class_id": CLASSES.index(p["cls"]), "box": list(box), "corners": obb_corners(*box)})
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=rng.randint(70, 92))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), gts
