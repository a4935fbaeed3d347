"""sam-tiny: a Segment-Anything-format pair with the official ONNX contracts, trained on synthetic shapes.

Encoder: `image` [1,3,1024,1024] (ResizeLongestSide(1024), normalized with SAM's mean/std on 0-255, zero-padded
bottom/right) -> `image_embeddings` [1,256,64,64].
Decoder (names, shapes and semantics of segment-anything's scripts/export_onnx_model.py):
  image_embeddings [1,256,64,64], point_coords [1,N,2] (1024 frame), point_labels [1,N] (1 fg, 0 bg, 2/3 box corners,
  -1 padding), mask_input [1,1,256,256], has_mask_input [1], orig_im_size [2] (H, W)
  -> masks [1,4,H,W] (logits at the original size), iou_predictions [1,4], low_res_masks [1,4,256,256].
Index 0 is the single-mask output, 1-3 the multimask set."""
from __future__ import annotations

import io
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFilter

from common import CACHE_DIR, FIXTURES_DIR, MODELS_DIR, base_metadata, device, fast_mode, mask_iou, seed_all, set_metadata, setup_threads, update_eval, version_of
from postprocess import sam_encoder_input, sam_prompt, sam_resize_params

MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)
SHAPES = ["disc", "rectangle", "triangle", "star", "blob", "ring"]


def conv(c1, c2, k=3, s=1):
    return nn.Sequential(nn.Conv2d(c1, c2, k, s, k // 2, bias=False), nn.BatchNorm2d(c2), nn.GELU())


class Res(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.a, self.b = conv(c, c), conv(c, c)

    def forward(self, x):
        return x + self.b(self.a(x))


class Encoder(nn.Module):
    """1024² -> 4x4 average pool (256²) -> 64² x 256: 12 channels carry the image itself at 128² (pixel-unshuffled),
    the other 244 are learned features from two stride-2 convolution stages."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(conv(3, 24, 3, 2), Res(24), conv(24, 48, 3, 2), Res(48), Res(48), nn.Conv2d(48, 244, 1))

    def forward_256(self, x256):
        colors = F.pixel_unshuffle(F.avg_pool2d(x256, 2), 2)  # (B, 12, 64, 64)
        return torch.cat([colors, self.body(x256)], 1)

    def forward(self, image):
        return self.forward_256(F.avg_pool2d(image, 4))


def grid(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.arange(n, dtype=torch.float32) + 0.5
    return g.view(1, n, 1).expand(1, n, n).reshape(1, 1, n, n).clone(), g.view(1, 1, n).expand(1, n, n).reshape(1, 1, n, n).clone()


def prompt_maps(coords, labels, gx, gy, cell: float, sigma: float, band: float):
    """Prompts rasterized on a grid of `cell`-pixel cells (1024 frame): positive and negative Gaussian bumps,
    the soft box region and its edge band (`band` cells wide)."""
    px = (coords[..., 0] / cell)[..., None, None]  # (B,N,1,1)
    py = (coords[..., 1] / cell)[..., None, None]
    d2 = (gx - px) ** 2 + (gy - py) ** 2  # (B,N,n,n)
    g = torch.exp(-d2 / (2 * sigma**2))
    lab = labels[..., None, None]
    pos = (g * (lab == 1).float()).sum(1, keepdim=True)
    neg = (g * (lab == 0).float()).sum(1, keepdim=True)
    is_tl, is_br = (labels == 2).float(), (labels == 3).float()
    has_box = is_tl.sum(1).clamp(max=1.0).view(-1, 1, 1, 1)
    tlx = (coords[..., 0] * is_tl).sum(1).view(-1, 1, 1, 1) / cell
    tly = (coords[..., 1] * is_tl).sum(1).view(-1, 1, 1, 1) / cell
    brx = (coords[..., 0] * is_br).sum(1).view(-1, 1, 1, 1) / cell
    bry = (coords[..., 1] * is_br).sum(1).view(-1, 1, 1, 1) / cell
    k = 2.0
    inside = torch.sigmoid((gx - tlx) * k) * torch.sigmoid((brx - gx) * k) * torch.sigmoid((gy - tly) * k) * torch.sigmoid((bry - gy) * k)
    box = inside * has_box
    core = torch.sigmoid((gx - tlx - band) * k) * torch.sigmoid((brx - band - gx) * k) * torch.sigmoid((gy - tly - band) * k) * torch.sigmoid((bry - band - gy) * k)
    return pos, neg, box, box * (1 - core)


def color_affinity(rgb, weights, tau: float):
    """exp(-|rgb - c|² / tau) where c is the weighted mean colour under `weights`; zero where the weights are empty."""
    s = weights.sum((2, 3), keepdim=True)
    c = (rgb * weights).sum((2, 3), keepdim=True) / s.clamp(min=1e-6)
    has = (s > 1e-3).float()
    return torch.exp(-((rgb - c) ** 2).sum(1, keepdim=True) / tau) * has


def local_spread(rgb, weights, tau: float = 0.3):
    """The colour spread around a click: the weighted variance (summed over the channels) of the colours under
    `weights` (a wide bump around the click), each pixel also weighted by its affinity (tau) to the weighted mean, so
    that a contrasting neighbour adds little and the shape's own shading or texture counts. (B,1,1,1); zero where the
    weights are empty."""
    s = weights.sum((2, 3), keepdim=True).clamp(min=1e-6)
    c = (rgb * weights).sum((2, 3), keepdim=True) / s
    d = ((rgb - c) ** 2).sum(1, keepdim=True)
    w = weights * torch.exp(-d / tau)
    return (w * d).sum((2, 3), keepdim=True) / w.sum((2, 3), keepdim=True).clamp(min=1e-6)


def box_cells(coords, labels):
    """The box prompt's corners in 128-grid cells (x0, y0, x1, y1, each (B,)) and whether there is one ((B,1,1,1))."""
    is_tl, is_br = (labels == 2).float(), (labels == 3).float()
    has_box = is_tl.sum(1).clamp(max=1.0).view(-1, 1, 1, 1)
    corner = lambda is_c, k: (coords[..., k] * is_c).sum(1) / 8.0  # noqa: E731
    return corner(is_tl, 0), corner(is_tl, 1), corner(is_br, 0), corner(is_br, 1), has_box


def line_affinity(rgb, xs, ys, weights=None):
    """Per pixel of the 128² grid: the best colour affinity (tau 0.5) to the colours sampled at (xs, ys) ((B,S) in
    cells), each sample counted with its weight in 0..1 when given."""
    b, samples = xs.shape
    grid_xy = torch.stack([xs / 64.0 - 1.0, ys / 64.0 - 1.0], -1).view(b, 1, samples, 2)  # align_corners=False
    cols = F.grid_sample(rgb, grid_xy, mode="bilinear", padding_mode="border", align_corners=False)  # (B,3,1,S)
    # Channel by channel: no (B,3,S,128,128) intermediate.
    d = sum((rgb[:, c : c + 1] - cols[:, c, 0][..., None, None]) ** 2 for c in range(3))  # (B,S,128,128)
    a = torch.exp(-d / 0.5)
    if weights is not None:
        a = a * weights[..., None, None]
    return a.amax(1, keepdim=True)  # (B,1,128,128)


def on_every_side(rgb, coords, labels, samples: int = 24, insets=(0.5, 1.5, 2.5)):
    """Per pixel of the 128² grid: min over the box's four sides of the best colour affinity (tau 0.5) to the colours
    sampled along lines just inside that side (several insets, for loose boxes). Zero without a box."""
    x0, y0, x1, y1, has_box = box_cells(coords, labels)
    t = (torch.arange(samples, dtype=torch.float32, device=rgb.device) + 0.5) / samples  # (S,)
    sides = []
    for side in range(4):
        best = None
        for inset in insets:
            if side < 2:  # top, bottom: x along, y fixed
                xs = x0[:, None] + (x1 - x0)[:, None] * t[None]
                ys = (y0 + inset if side == 0 else y1 - inset)[:, None].expand_as(xs)
            else:  # left, right
                ys = y0[:, None] + (y1 - y0)[:, None] * t[None]
                xs = (x0 + inset if side == 2 else x1 - inset)[:, None].expand_as(ys)
            a = line_affinity(rgb, xs, ys)
            best = a if best is None else torch.maximum(best, a)
        sides.append(best)
    m = torch.minimum(torch.minimum(sides[0], sides[1]), torch.minimum(sides[2], sides[3]))
    return m * has_box


def outside_colours(rgb, coords, labels, valid, samples: int = 24, offsets=(0.75, 2.0)):
    """Per pixel of the 128² grid: the best colour affinity (tau 0.5) to the colours sampled along lines just outside
    the box's four sides, within the image (`valid`: its width and height in cells). A box is tight around its
    shape, so what lies just outside it is background and neighbours, never the shape: this marks the background
    inside the box too (a ring's hole, the corners around a triangle). Zero without a box."""
    x0, y0, x1, y1, has_box = box_cells(coords, labels)
    vw, vh = valid[:, 0:1], valid[:, 1:2]
    t = (torch.arange(samples, dtype=torch.float32, device=rgb.device) + 0.5) / samples
    best = torch.zeros(rgb.shape[0], 1, 128, 128, device=rgb.device)
    for side in range(4):
        for off in offsets:
            if side < 2:
                xs = (x0 - off)[:, None] + (x1 - x0 + 2 * off)[:, None] * t[None]
                ys = (y0 - off if side == 0 else y1 + off)[:, None].expand_as(xs)
            else:
                ys = (y0 - off)[:, None] + (y1 - y0 + 2 * off)[:, None] * t[None]
                xs = (x0 - off if side == 2 else x1 + off)[:, None].expand_as(ys)
            inside = ((xs >= 0) & (xs <= vw) & (ys >= 0) & (ys <= vh)).float()  # (B,S)
            best = torch.maximum(best, line_affinity(rgb, xs, ys, inside))
    return best * has_box


N_AFF = 7


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        c = 48
        self.reduce = conv(244, c, 1)
        # Colour affinities at 128²: to the clicked colour (3 widths), to the negative clicks' colour, and inside the
        # box: "differs from the box border's colour", "a colour found near all four sides of the box" (a box is tight
        # around its shape, so the shape touches every side; another shape crossing the box rarely does) and "a colour
        # not found just outside the box" (the outside cue). They make flat shapes nearly explicit; the convolutions
        # add shape, connectivity and texture. The outside cue is the last channel of both inputs that take them; the
        # first training cycle runs without it (outside_cue False: the channel is zero).
        self.fuse_in = nn.Sequential(conv(c + 4 + N_AFF, c), Res(c))
        # Context at 16x16: a click near one edge of a large shape must reach its far side.
        self.context = nn.Sequential(conv(c, c), Res(c), Res(c))
        self.fuse = nn.Sequential(Res(c), Res(c))
        self.up = nn.Sequential(conv(c + N_AFF, 32), conv(32, 32), nn.Conv2d(32, 4, 3, 1, 1))
        self.iou = nn.Sequential(nn.Linear(c, 32), nn.GELU(), nn.Linear(32, 4))
        self.outside_cue = True
        self.local_tau = os.environ.get("SAM_AFF_LOCAL", "0") == "1"
        gy, gx = grid(64)
        self.register_buffer("gy", gy)
        self.register_buffer("gx", gx)
        gy2, gx2 = grid(128)
        self.register_buffer("gy2", gy2)
        self.register_buffer("gx2", gx2)

    def affinities(self, rgb128, coords, labels, valid):
        pos, neg, box, edge = prompt_maps(coords, labels, self.gx2, self.gy2, 8.0, 0.7, 2.0)
        if self.local_tau:
            # Click-local widths: each width grows by the colour spread around the click (a wider bump), so that a
            # shaded or textured shape is not only the colour under the click. A flat shape's spread is ~0: unchanged.
            wide = prompt_maps(coords, labels, self.gx2, self.gy2, 8.0, 3.0, 2.0)[0]
            spread = local_spread(rgb128, wide)
            a = [color_affinity(rgb128, pos, t + spread) for t in (0.1, 0.5, 2.0)]
        else:
            a = [color_affinity(rgb128, pos, t) for t in (0.1, 0.5, 2.0)]
        a.append(color_affinity(rgb128, neg, 0.5))
        a.append((1 - color_affinity(rgb128, edge, 0.5)) * box)
        a.append(on_every_side(rgb128, coords, labels) * box)
        a.append((1 - outside_colours(rgb128, coords, labels, valid)) * box if self.outside_cue else torch.zeros_like(box))
        return torch.cat(a, 1)  # (B,N_AFF,128,128)

    def cue_weights(self) -> list[torch.Tensor]:
        """The convolution weights that read the outside cue (the last input channel of fuse_in's and up's first)."""
        return [self.fuse_in[0][0].weight, self.up[0][0].weight]

    def low_res(self, emb, coords, labels, mask_input, has_mask_input, valid):
        """`valid`: (B,2) width and height of the resized image in the 1024 frame, in 8-pixel cells."""
        # A batch of B prompt sets on one image: the embedding (and a lone mask_input) has batch 1 and is shared; the
        # prompt-independent work (the colours, the feature reduction) runs once and is broadcast to the B sets.
        b = coords.shape[0]
        rgb128 = F.pixel_shuffle(emb[:, :12], 2).expand(b, -1, -1, -1)
        feats = self.reduce(emb[:, 12:]).expand(b, -1, -1, -1)
        aff = self.affinities(rgb128, coords, labels, valid)
        pos, neg, box, _ = prompt_maps(coords, labels, self.gx, self.gy, 16.0, 1.5, 1.0)
        prior = (F.avg_pool2d(mask_input, 4) * has_mask_input.view(-1, 1, 1, 1)).expand(b, -1, -1, -1)
        x = self.fuse_in(torch.cat([feats, pos, neg, box, torch.tanh(prior), F.avg_pool2d(aff, 2)], 1))
        x = self.fuse(x + F.interpolate(self.context(F.avg_pool2d(x, 4)), scale_factor=4.0, mode="bilinear", align_corners=False))
        iou = torch.sigmoid(self.iou(x.mean((2, 3))))
        y = self.up(torch.cat([F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False), aff], 1))
        return F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False), iou  # (B,4,256,256), (B,4)

    def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input, orig_im_size):
        scale = 1024.0 / torch.max(orig_im_size)
        pre_f = torch.floor(orig_im_size * scale + 0.5)
        valid = torch.stack([pre_f[1], pre_f[0]]).view(1, 2) / 8.0
        low, iou = self.low_res(image_embeddings, point_coords, point_labels, mask_input, has_mask_input, valid)
        # As segment_anything/utils/onnx.py: upscale to 1024, crop the resized image's area, resize to the original,
        # bilinear (half-pixel centres) each time. Bilinear resizing is separable, so it runs one axis at a time (a
        # resize that keeps an axis's size leaves it exactly as it is): rows first, then columns, with no
        # [B,4,1024,1024] intermediate (the largest is [B,4,1024,256], or [B,4,H,1024] for tall outputs).
        size = orig_im_size.to(torch.int64)
        pre = pre_f.to(torch.int64)
        rows = F.interpolate(low, (1024, 256), mode="bilinear", align_corners=False)[..., : pre[0], :]
        rows = F.interpolate(rows, (size[0], 256), mode="bilinear", align_corners=False)
        cols = F.interpolate(rows, (size[0], 1024), mode="bilinear", align_corners=False)[..., : pre[1]]
        masks = F.interpolate(cols, (size[0], size[1]), mode="bilinear", align_corners=False)
        return masks, iou, low


# ---------------------------------------------------------------- synthetic shapes

def _shape_mask(rng: random.Random, w: int, h: int, kind: str, cx: float, cy: float, r: float) -> np.ndarray:
    m = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(m)
    t = rng.uniform(0, math.pi)
    if kind == "disc":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif kind == "ring":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        d.ellipse([cx - r * 0.45, cy - r * 0.45, cx + r * 0.45, cy + r * 0.45], fill=0)
    elif kind == "rectangle":
        a, b = r, r * rng.uniform(0.45, 0.95)
        pts = [(-a, -b), (a, -b), (a, b), (-a, b)]
        d.polygon([(cx + x * math.cos(t) - y * math.sin(t), cy + x * math.sin(t) + y * math.cos(t)) for x, y in pts], fill=255)
    elif kind == "triangle":
        d.polygon([(cx + r * math.cos(t + k * 2 * math.pi / 3), cy + r * math.sin(t + k * 2 * math.pi / 3)) for k in range(3)], fill=255)
    elif kind == "star":
        pts = []
        for k in range(10):
            rr = r if k % 2 == 0 else r * 0.5
            pts.append((cx + rr * math.cos(t + k * math.pi / 5), cy + rr * math.sin(t + k * math.pi / 5)))
        d.polygon(pts, fill=255)
    else:
        n = 10
        pts = [(cx + r * rng.uniform(0.6, 1.0) * math.cos(2 * math.pi * k / n), cy + r * rng.uniform(0.6, 1.0) * math.sin(2 * math.pi * k / n)) for k in range(n)]
        d.polygon(pts, fill=255)
    return np.asarray(m) > 127


def render_shapes(rng: random.Random, w: int, h: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """RGB uint8 image and the visible mask of each shape (later shapes may partly cover earlier ones)."""
    nrng = np.random.default_rng(rng.randint(0, 2**31))
    bg = np.array([rng.randint(20, 235) for _ in range(3)], dtype=np.float32)
    img = np.zeros((h, w, 3), dtype=np.float32) + bg
    if rng.random() < 0.5:
        img += nrng.normal(0, rng.uniform(3, 18), (h, w, 1))
    masks: list[np.ndarray] = []
    short = min(w, h)
    for _ in range(rng.randint(2, 6)):
        r = rng.uniform(0.07, 0.2) * short
        cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
        m = _shape_mask(rng, w, h, rng.choice(SHAPES), cx, cy, r)
        col = np.array([rng.randint(0, 255) for _ in range(3)], dtype=np.float32)
        while np.abs(col - bg).sum() < 90:
            col = np.array([rng.randint(0, 255) for _ in range(3)], dtype=np.float32)
        if rng.random() < 0.5:  # textured
            tex = nrng.normal(0, rng.uniform(8, 25), (h, w, 1))
            img[m] = np.clip(col + tex[m], 0, 255)
        else:
            img[m] = col
        masks = [mm & ~m for mm in masks]
        masks.append(m)
    masks = [m for m in masks if m.sum() > 0.002 * w * h]
    return np.clip(img, 0, 255).astype(np.uint8), masks


def _dr_field(rng: random.Random, nrng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A random 0..1 field (h, w) for domain randomization: a linear ramp, low-frequency blotches, stripes, a checker
    or a radial falloff."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = rng.choice(["ramp", "blotch", "stripes", "checker", "radial"])
    t = rng.uniform(0, math.pi)
    if kind == "ramp":
        f = xx * math.cos(t) + yy * math.sin(t)
    elif kind == "blotch":
        small = nrng.random((rng.randint(3, 9), rng.randint(3, 9))).astype(np.float32)
        f = np.asarray(Image.fromarray(small, mode="F").resize((w, h), Image.BICUBIC), dtype=np.float32)
    elif kind == "stripes":
        f = np.sin(2 * math.pi * (xx * math.cos(t) + yy * math.sin(t)) / rng.uniform(4, 24))
    elif kind == "checker":
        s = rng.randint(4, 24)
        f = ((xx // s + yy // s) % 2).astype(np.float32)
    else:
        f = -np.hypot(xx - rng.uniform(0, w), yy - rng.uniform(0, h))
    lo, hi = float(f.min()), float(f.max())
    return (f - lo) / max(hi - lo, 1e-6)


def _dr_colour(rng: random.Random) -> np.ndarray:
    return np.array([rng.randint(0, 255) for _ in range(3)], dtype=np.float32)


def render_shapes_randomized(rng: random.Random, w: int, h: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """render_shapes with domain randomization (training only; the held-out sets use render_shapes): backgrounds
    (flat, ramps, blotches, stripes, checkers, noise), shape fills (flat, shaded by a ramp or a radial falloff,
    noise or stripe textures), shape sizes over a 7.5x range (radius 4-30% of the short side), then lighting (a
    multiplicative ramp), blur, sensor noise and JPEG compression."""
    nrng = np.random.default_rng(rng.randint(0, 2**31))
    c0 = _dr_colour(rng)
    kind = rng.choice(["flat", "field", "field", "noise"])
    if kind == "flat":
        img = np.zeros((h, w, 3), dtype=np.float32) + c0
    elif kind == "field":
        c1 = np.clip(c0 + np.array([rng.uniform(-80, 80) for _ in range(3)], dtype=np.float32), 0, 255)
        img = c0 + (c1 - c0) * _dr_field(rng, nrng, w, h)[..., None]
    else:
        img = c0 + nrng.normal(0, rng.uniform(8, 30), (h, w, 3 if rng.random() < 0.5 else 1)).astype(np.float32)
    masks: list[np.ndarray] = []
    short = min(w, h)
    for _ in range(rng.randint(2, 6)):
        r = math.exp(rng.uniform(math.log(0.04), math.log(0.3))) * short
        cx, cy = rng.uniform(r * 0.7, w - r * 0.7), rng.uniform(r * 0.7, h - r * 0.7)
        m = _shape_mask(rng, w, h, rng.choice(SHAPES), cx, cy, r)
        if not m.any():
            continue
        under = img[m].mean(0)
        col = _dr_colour(rng)
        for _ in range(20):
            if np.abs(col - under).sum() >= 90:
                break
            col = _dr_colour(rng)
        fill = rng.choice(["flat", "shade", "shade", "noise", "stripes"])
        if fill == "flat":
            img[m] = col
        elif fill == "shade":
            f = _dr_field(rng, nrng, w, h)[m][:, None]
            img[m] = col * (1 - rng.uniform(0.15, 0.5) * f)
        elif fill == "noise":
            img[m] = col + nrng.normal(0, rng.uniform(8, 30), (int(m.sum()), 1))
        else:
            f = _dr_field(rng, nrng, w, h)[m][:, None]
            img[m] = col + rng.uniform(15, 45) * (f - 0.5)
        masks = [mm & ~m for mm in masks]
        masks.append(m)
    if rng.random() < 0.6:  # lighting
        img *= 1 + rng.uniform(0.1, 0.6) * (_dr_field(rng, nrng, w, h)[..., None] - 0.5)
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    if rng.random() < 0.4:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    arr = np.asarray(out).astype(np.float32)
    if rng.random() < 0.5:
        arr += nrng.normal(0, rng.uniform(2, 12), arr.shape)
    out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if rng.random() < 0.4:
        buf = io.BytesIO()
        out.save(buf, format="JPEG", quality=rng.randint(25, 85))
        out = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    masks = [m for m in masks if m.sum() > 0.002 * w * h]
    if not masks:  # every shape covered or too small: draw again
        return render_shapes_randomized(rng, w, h)
    return np.asarray(out), masks


def interior_point(rng: random.Random, m: np.ndarray) -> tuple[float, float]:
    """A point well inside the mask (pixels whose 5x5 neighbourhood is in the mask when possible)."""
    er = m.copy()
    for dy in (-2, 0, 2):
        for dx in (-2, 0, 2):
            er &= np.roll(np.roll(m, dy, 0), dx, 1)
    ys, xs = np.nonzero(er if er.any() else m)
    i = rng.randrange(len(xs))
    return float(xs[i]) + 0.5, float(ys[i]) + 0.5


def bbox(m: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(m)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def grid_click_sample(rng: random.Random, w: int, h: int, masks: list[np.ndarray]):
    """A click anywhere in the image, as the automatic mask generator's grid puts them: on a shape, the target is that
    shape; on the background, the target is the background and the IoU target 0 (no object there: the generator's
    pred_iou_thresh must drop it)."""
    px, py = rng.uniform(0, w), rng.uniform(0, h)
    hit = [m for m in masks if m[min(int(py), h - 1), min(int(px), w - 1)]]
    target = np.zeros((256, 256), dtype=np.float32)
    if hit:
        target[:h, :w] = hit[0]
    else:
        bg = np.ones((h, w), dtype=bool)
        for m in masks:
            bg &= ~m
        target[:h, :w] = bg
    return target, [[px * 4, py * 4], [0.0, 0.0]], [1, -1], not hit


def train_sample(rng: random.Random, box_share: float = 0.5, tight_share: float = 0.0, grid_share: float = 0.0, dr_share: float = 0.0):
    """An image rendered directly at its resized (long side 256) size = the 1024 frame pooled by 4. `grid_share` of the
    prompts are a click anywhere (grid_click_sample); of the others, `box_share` have a box (three in ten of those
    exact and with a click too), the rest one click (three in ten of those with a negative click on another shape).
    Boxes are jittered by up to 3 px, `tight_share` of them by up to 1 px. The last value: whether the IoU target is
    0 (a click on the background)."""
    w, h = (256, rng.randint(144, 256)) if rng.random() < 0.5 else (rng.randint(144, 256), 256)
    # dr_share: that share of the images are domain-randomized (no extra draw from rng when 0, so the recipes
    # without it see exactly the images they always saw).
    img, masks = render_shapes_randomized(rng, w, h) if dr_share > 0 and rng.random() < dr_share else render_shapes(rng, w, h)
    x = np.zeros((3, 256, 256), dtype=np.float32)
    x[:, :h, :w] = ((img.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)
    if grid_share > 0 and rng.random() < grid_share:
        target, coords, labs, background = grid_click_sample(rng, w, h, masks)
        return x, coords, labs, target, (w / 2.0, h / 2.0), background
    m = masks[rng.randrange(len(masks))]
    target = np.zeros((256, 256), dtype=np.float32)
    target[:h, :w] = m
    mode = rng.random()
    pts, labs = [], []
    box = None
    points = 1.0 - box_share
    if mode < points * 0.7:
        pts.append(interior_point(rng, m))
        labs.append(1)
    elif mode < points:
        pts.append(interior_point(rng, m))
        labs.append(1)
        others = [o for o in masks if o is not m]
        if others:
            pts.append(interior_point(rng, others[rng.randrange(len(others))]))
            labs.append(0)
    elif mode < 1.0 - box_share * 0.3:
        x0, y0, x1, y1 = bbox(m)
        jit = 1.0 if tight_share > 0 and rng.random() < tight_share else 3.0
        j = lambda: rng.uniform(-jit, jit)  # noqa: E731
        box = (x0 + j(), y0 + j(), x1 + j(), y1 + j())
    else:
        x0, y0, x1, y1 = bbox(m)
        box = (x0, y0, x1, y1)
        pts.append(interior_point(rng, m))
        labs.append(1)
    # Prompt coords in the 1024 frame (4x the training frame), padding point when no box.
    coords = [[px * 4, py * 4] for px, py in pts]
    if box is not None:
        coords += [[box[0] * 4, box[1] * 4], [box[2] * 4, box[3] * 4]]
        labs += [2, 3]
    else:
        coords.append([0.0, 0.0])
        labs.append(-1)
    return x, coords, labs, target, (w / 2.0, h / 2.0), False


def dice_loss(logits, target):
    p = torch.sigmoid(logits)
    inter = (p * target).sum((-1, -2))
    return 1 - (2 * inter + 1) / (p.sum((-1, -2)) + target.sum((-1, -2)) + 1)


def fold_batch_norms(model: nn.Module) -> None:
    """Folds each BatchNorm into the convolution before it (the function is unchanged in eval mode), leaving the
    BatchNorm as the identity plus a bias: what the ONNX exporter does, and so what recover_from_onnx.py rebuilds. The
    fine-tuning cycle starts from this form either way, so a checkpoint rebuilt from the shipped files and one straight
    from cycle 1 train the same."""
    with torch.no_grad():
        for mod in model.modules():
            if not isinstance(mod, nn.Sequential):
                continue
            kids = list(mod)
            for conv_, bn in zip(kids, kids[1:]):
                if isinstance(conv_, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                    conv_.weight.mul_(scale.view(-1, 1, 1, 1))
                    bias = bn.bias - bn.running_mean * scale + (conv_.bias * scale if conv_.bias is not None else 0)
                    if conv_.bias is not None:
                        conv_.bias.zero_()
                    bn.weight.fill_(1.0)
                    bn.bias.copy_(bias)
                    bn.running_mean.zero_()
                    bn.running_var.fill_(1.0 - bn.eps)


def train_cycle(enc: Encoder, dec: Decoder, dev, steps: int, max_lr: float, seed: int, tag: str, box_share: float = 0.5, tight_share: float = 0.0, freeze_bn: bool = False,
                grid_share: float = 0.0, dr_share: float = 0.0, save_every: int = 0) -> None:
    """One one-cycle schedule over `steps` batches of 8 fresh synthetic samples, with a fresh AdamW. `freeze_bn` keeps
    the batch-norm statistics (a fine-tuning cycle; also what a checkpoint rebuilt from the ONNX files needs, its
    batch norms folded into the convolutions)."""
    params = list(enc.parameters()) + list(dec.parameters())
    bs = 8
    opt = torch.optim.AdamW(params, lr=max_lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=steps, pct_start=0.1)
    rng = random.Random(seed)
    t0 = time.time()
    enc.train()
    dec.train()
    if freeze_bn:
        for mod in [*enc.modules(), *dec.modules()]:
            if isinstance(mod, nn.BatchNorm2d):
                mod.eval()
    for step in range(steps):
        samples = [train_sample(rng, box_share, tight_share, grid_share, dr_share) for _ in range(bs)]
        x = torch.from_numpy(np.stack([s[0] for s in samples])).to(dev)
        emb = enc.forward_256(x)
        # One decoder pass for the batch: prompts padded to the same length with (0,0)/-1 points (ignored).
        n = max(len(s[1]) for s in samples)
        coords = torch.tensor([s[1] + [[0.0, 0.0]] * (n - len(s[1])) for s in samples], dtype=torch.float32, device=dev)
        labels = torch.tensor([s[2] + [-1] * (n - len(s[2])) for s in samples], dtype=torch.float32, device=dev)
        valid = torch.tensor([s[4] for s in samples], dtype=torch.float32, device=dev)
        low, iou = dec.low_res(emb, coords, labels, torch.zeros(bs, 1, 256, 256, device=dev), torch.zeros(bs, device=dev), valid)
        t = torch.from_numpy(np.stack([s[3] for s in samples])).to(dev)[:, None].expand_as(low)
        # Loss at 128² (the masks are smooth shapes; a quarter of the work).
        low_s = F.avg_pool2d(low, 2)
        t_s = F.avg_pool2d(t, 2)
        per = F.binary_cross_entropy_with_logits(low_s, t_s, reduction="none").mean((2, 3)) + dice_loss(low_s, t_s)
        with torch.no_grad():
            pm = (low_s > 0).float()
            tb = (t_s > 0.5).float()
            true_iou = (pm * tb).sum((2, 3)) / ((pm + tb) > 0).float().sum((2, 3)).clamp(min=1)
            true_iou = true_iou * torch.tensor([0.0 if s[5] else 1.0 for s in samples], device=dev)[:, None]
        loss = per.mean() + F.mse_loss(iou, true_iou)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"[sam] {tag} step {step}/{steps} loss {loss.item():.3f} ({time.time() - t0:.0f}s, {time.process_time():.0f} CPU-s)", flush=True)
        if save_every and step % save_every == save_every - 1:  # a checkpoint to stop at (unsharpened)
            CACHE_DIR.mkdir(parents=True, exist_ok=True)
            torch.save({"enc": enc.state_dict(), "dec": dec.state_dict(), "logit_scale": 1.0, "step": step}, CACHE_DIR / f"sam-tiny-{tag.replace(' ', '')}.pt")
    enc.eval()
    dec.eval()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    torch.save({"enc": enc.state_dict(), "dec": dec.state_dict()}, CACHE_DIR / "sam-tiny.pt")


# Input channels of the two convolutions that read the affinities (the outside cue is the last one).
CUE_INPUTS = {"fuse_in.0.0.weight": 48 + 4 + N_AFF, "up.0.0.weight": 48 + N_AFF}


def has_cue(sd: dict) -> bool:
    return all(sd[k].shape[1] == n for k, n in CUE_INPUTS.items())


def widen_old_decoder(sd: dict) -> dict:
    """A decoder state from before the outside cue (sam-tiny 1.0.0, e.g. rebuilt by recover_from_onnx.py from its
    files) gets zero weights for the new channel: the same function, ready for the second cycle."""
    for k, n in CUE_INPUTS.items():
        w = sd[k]
        if w.shape[1] == n - 1:
            sd[k] = torch.cat([w, torch.zeros(w.shape[0], 1, *w.shape[2:], dtype=w.dtype)], 1)
    return sd


def train():
    """Cycle 1: SAM_STEPS batches (default 1000) at a peak rate of 3e-3, without the outside cue. Cycle 2: the batch
    norms folded and frozen, the outside cue switched on with its weights starting at zero, SAM_STEPS2 batches
    (default 400) at 1e-3 on new samples, six in ten with a box (half of those within 1 px of tight).
    Cycle 3 (grid clicks, calibrate_iou): the IoU head alone is refitted on SAM_SAMPLES3 prompts (default 3200), half
    of them a click anywhere in the image as the automatic mask generator's grid puts them (a click on the background
    has an IoU target of 0), so that grid points on the background get low predicted IoUs; the masks do not change.
    Then the mask logits are sharpened: the last convolution is multiplied by LOGIT_SCALE (default 4). The masks
    (logits > 0) do not change; the band where |logit| < 1 gets LOGIT_SCALE times narrower, so the stability score of
    a well-found shape (its mask at thresholds −1 and +1 agree) rises above the generator's 0.95.
    Domain-randomization cycle (between cycle 2 and cycle 3, off unless SAM_STEPS_DR > 0): the batch norms folded and
    frozen, SAM_STEPS_DR batches at SAM_LR_DR (default 1e-3) of cycle 2's prompt mix, a quarter of them grid clicks,
    on images a SAM_DR share (default 0.5) of which come from render_shapes_randomized (backgrounds, fills, lighting,
    blur, noise, JPEG, sizes over 7.5x); cycle 3 then draws its prompts from the same mix. A checkpoint every 25
    batches (.cache/sam-tiny-cycledr.pt, unsharpened) to stop at.
    SAM_AFF_LOCAL=1 (tried, off by default; the decoder reads it when built, so evaluations of such a checkpoint need
    it too) widens the three clicked-colour affinities by the colour spread around the click (local_spread).
    SAM_RESUME=1 skips cycle 1 and starts cycle 2 from the checkpoint in .cache (one from before the outside cue
    is widened with zeros; one with it keeps its weights); SAM_RESUME=2 skips cycles 1 and 2 (a sharpened checkpoint
    is unsharpened first: by its logit_scale, or SAM_CKPT_LOGIT_SCALE for one rebuilt from the ONNX files, which
    does not know it); SAM_RESUME=3 likewise, for the domain-randomization cycle (with SAM_STEPS_DR)."""
    seed_all(0)
    setup_threads()
    dev = device()
    enc, dec = Encoder().to(dev), Decoder().to(dev)
    if fast_mode():
        train_cycle(enc, dec, dev, 30, 3e-3, 21, "cycle 1")
        return enc.eval(), dec.eval()
    fresh_cue = True
    resume = os.environ.get("SAM_RESUME", "0")
    if resume in ("1", "2", "3"):
        sd = torch.load(CACHE_DIR / "sam-tiny.pt", map_location=dev)
        enc.load_state_dict(sd["enc"])
        fresh_cue = not has_cue(sd["dec"])
        dec.load_state_dict(widen_old_decoder(sd["dec"]))
        # A checkpoint rebuilt from the ONNX files does not know its logit scale: SAM_CKPT_LOGIT_SCALE (4 for 1.2.0).
        sharpen(dec, 1.0 / float(sd.get("logit_scale", os.environ.get("SAM_CKPT_LOGIT_SCALE", "1"))))
    else:
        dec.outside_cue = False
        train_cycle(enc, dec, dev, int(os.environ.get("SAM_STEPS", "1000")), 3e-3, 21, "cycle 1")
    steps2 = 0 if resume in ("2", "3") else int(os.environ.get("SAM_STEPS2", "400"))
    if steps2 > 0:
        fold_batch_norms(enc)
        fold_batch_norms(dec)
        dec.outside_cue = True
        if fresh_cue:
            with torch.no_grad():
                for w in dec.cue_weights():
                    w[:, -1].zero_()
        train_cycle(enc, dec, dev, steps2, float(os.environ.get("SAM_LR2", "1e-3")), 22, "cycle 2", 0.6, 0.5, freeze_bn=True)
    dec.outside_cue = True
    dr_share = float(os.environ.get("SAM_DR", "0.5"))
    steps_dr = int(os.environ.get("SAM_STEPS_DR", "0"))
    if steps_dr > 0:
        # Domain randomization: cycle 2's prompt mix on images half of which are randomized (render_shapes_randomized),
        # a quarter of the prompts grid clicks (so that the IoU head keeps scoring background clicks low).
        fold_batch_norms(enc)
        fold_batch_norms(dec)
        train_cycle(enc, dec, dev, steps_dr, float(os.environ.get("SAM_LR_DR", "1e-3")), 24, "cycle dr", 0.6, 0.5, freeze_bn=True,
                    grid_share=0.25, dr_share=dr_share, save_every=25)
    samples3 = int(os.environ.get("SAM_SAMPLES3", "3200"))
    if samples3 > 0:
        calibrate_iou(enc, dec, dev, samples3, 23, dr_share=dr_share if steps_dr > 0 else 0.0)
    scale = float(os.environ.get("LOGIT_SCALE", "4"))
    sharpen(dec, scale)
    torch.save({"enc": enc.state_dict(), "dec": dec.state_dict(), "logit_scale": scale}, CACHE_DIR / "sam-tiny.pt")
    return enc.eval(), dec.eval()


@torch.no_grad()
def iou_head_data(enc: Encoder, dec: Decoder, dev, n: int, seed: int, grid_share: float, dr_share: float = 0.0):
    """The IoU head's inputs (the pooled decoder features) and targets (each output's true IoU at 128², 0 for a click
    on the background) for n fresh prompts: as cycle 2's mix, `grid_share` of them a click anywhere."""
    captured = {}
    hook = dec.iou.register_forward_hook(lambda _m, inp, _out: captured.__setitem__("x", inp[0]))
    rng = random.Random(seed)
    feats, targets = [], []
    bs = 8
    for _ in range(0, n, bs):
        samples = [train_sample(rng, 0.6, 0.5, grid_share, dr_share) for _ in range(bs)]
        x = torch.from_numpy(np.stack([s[0] for s in samples])).to(dev)
        m = max(len(s[1]) for s in samples)
        coords = torch.tensor([s[1] + [[0.0, 0.0]] * (m - len(s[1])) for s in samples], dtype=torch.float32, device=dev)
        labels = torch.tensor([s[2] + [-1] * (m - len(s[2])) for s in samples], dtype=torch.float32, device=dev)
        valid = torch.tensor([s[4] for s in samples], dtype=torch.float32, device=dev)
        low, _ = dec.low_res(enc.forward_256(x), coords, labels, torch.zeros(bs, 1, 256, 256, device=dev), torch.zeros(bs, device=dev), valid)
        t = torch.from_numpy(np.stack([s[3] for s in samples])).to(dev)[:, None].expand_as(low)
        pm = (F.avg_pool2d(low, 2) > 0).float()
        tb = (F.avg_pool2d(t, 2) > 0.5).float()
        true_iou = (pm * tb).sum((2, 3)) / ((pm + tb) > 0).float().sum((2, 3)).clamp(min=1)
        feats.append(captured["x"].clone())
        targets.append(true_iou * torch.tensor([0.0 if s[5] else 1.0 for s in samples], device=dev)[:, None])
    hook.remove()
    return torch.cat(feats), torch.cat(targets)


def calibrate_iou(enc: Encoder, dec: Decoder, dev, n: int, seed: int, grid_share: float = 0.5, epochs: int = 600, dr_share: float = 0.0) -> None:
    """Cycle 3: refits the IoU head (full batch, AdamW) on the pooled features of n prompts, a tenth held back to
    report; everything else is frozen, so the masks are unchanged."""
    t0 = time.time()
    enc.eval()
    dec.eval()
    x, y = iou_head_data(enc, dec, dev, n, seed, grid_share, dr_share)
    k = len(x) // 10
    xv, yv, xt, yt = x[:k], y[:k], x[k:], y[k:]
    head = dec.iou
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3, weight_decay=1e-4)
    mse = lambda a, b: F.mse_loss(torch.sigmoid(head(a)), b).item()  # noqa: E731
    with torch.no_grad():
        print(f"[sam] cycle 3: {len(x)} prompts ({time.time() - t0:.0f}s); IoU head MSE before: train {mse(xt, yt):.4f} held back {mse(xv, yv):.4f}", flush=True)
    for _ in range(epochs):
        loss = F.mse_loss(torch.sigmoid(head(xt)), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        print(f"[sam] cycle 3: IoU head MSE after: train {mse(xt, yt):.4f} held back {mse(xv, yv):.4f} ({time.time() - t0:.0f}s)", flush=True)


def sharpen(dec: Decoder, scale: float) -> None:
    """Multiplies the mask logits by `scale` (folded into the last convolution; the IoU head is untouched)."""
    with torch.no_grad():
        dec.up[-1].weight.mul_(scale)
        dec.up[-1].bias.mul_(scale)


def load():
    enc, dec = Encoder(), Decoder()
    sd = torch.load(CACHE_DIR / "sam-tiny.pt")
    enc.load_state_dict(sd["enc"])
    dec.load_state_dict(sd["dec"])
    return enc.eval(), dec.eval()


def export_decoder(dec: Decoder, dp, batched: bool) -> None:
    """The decoder with the official inputs and outputs. `batched`: dim 0 of point_coords/point_labels is dynamic (B
    prompt sets per run, each with its own points; image_embeddings stays [1,...], mask_input and has_mask_input
    take 1 or B) and the outputs have B rows; otherwise the official single-prompt graph (batch 1)."""
    dummy = (torch.zeros(1, 256, 64, 64), torch.tensor([[[500.0, 400.0], [0.0, 0.0]]]), torch.tensor([[1.0, -1.0]]),
             torch.zeros(1, 1, 256, 256), torch.zeros(1), torch.tensor([800.0, 1200.0]))
    axes = {"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}, "masks": {2: "height", 3: "width"}}
    if batched:
        axes = {"point_coords": {0: "num_prompts", 1: "num_points"}, "point_labels": {0: "num_prompts", 1: "num_points"},
                "mask_input": {0: "num_masks"}, "has_mask_input": {0: "num_masks"},
                "masks": {0: "num_prompts", 2: "height", 3: "width"}, "iou_predictions": {0: "num_prompts"}, "low_res_masks": {0: "num_prompts"}}
    torch.onnx.export(dec, dummy, str(dp), opset_version=17,
                      input_names=["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input", "orig_im_size"],
                      output_names=["masks", "iou_predictions", "low_res_masks"], dynamic_axes=axes)
    desc = "Aperture sam-tiny prompt decoder with the official segment-anything ONNX inputs/outputs (4 masks: 0 single, 1-3 multimask)"
    if batched:
        desc += "; a batch of prompt sets per run (dim 0 of point_coords)"
    meta = base_metadata(desc, "sam-decoder", version_of("sam-tiny"))
    meta.update({"multimask_output": "index 0 = single-mask token, 1..3 = multimask set", "mask_threshold": "0.0"})
    set_metadata(dp, meta)


def export(enc: Encoder, dec: Decoder) -> None:
    ep = MODELS_DIR / "sam-tiny-encoder.onnx"
    torch.onnx.export(enc, torch.zeros(1, 3, 1024, 1024), str(ep), opset_version=17, input_names=["image"], output_names=["image_embeddings"])
    meta = base_metadata("Aperture sam-tiny image encoder (Segment Anything format): ResizeLongestSide(1024), SAM mean/std on 0-255, zero-pad bottom/right", "sam-encoder", version_of("sam-tiny"))
    meta.update({"imgsz": "[1024, 1024]", "pixel_mean": "[123.675, 116.28, 103.53]", "pixel_std": "[58.395, 57.12, 57.375]", "embedding": "[1, 256, 64, 64]"})
    set_metadata(ep, meta)
    export_decoder(dec, MODELS_DIR / "sam-tiny-decoder.onnx", batched=True)
    # The same weights as the official single-prompt graph, for the tests of the one-prompt-per-run path.
    export_decoder(dec, FIXTURES_DIR / "sam/sam-tiny-decoder-single.onnx", batched=False)


def segment(enc, dec, rgb: np.ndarray, points, labels, box=None):
    h, w = rgb.shape[:2]
    with torch.no_grad():
        emb = enc(torch.from_numpy(sam_encoder_input(rgb)))
        c, l = sam_prompt(points, labels, box, w, h)
        masks, iou, _ = dec(emb, torch.from_numpy(c), torch.from_numpy(l), torch.zeros(1, 1, 256, 256), torch.zeros(1), torch.tensor([float(h), float(w)]))
    return masks[0].numpy(), iou[0].numpy()


def pick(masks, iou, single_point: bool) -> np.ndarray:
    """The Aperture rule: a lone point is ambiguous, take the best of the multimask set 1-3 by predicted IoU; otherwise 0."""
    i = 1 + int(np.argmax(iou[1:])) if single_point else 0
    return masks[i] > 0


def evaluate(enc, dec, n: int = 150, seed: int = 12345) -> dict:
    rng = random.Random(seed)
    point_ious, box_ious = [], []
    for _ in range(n):
        w, h = rng.choice([(640, 480), (480, 640), (800, 450), (500, 500)])
        img, masks = render_shapes(rng, w, h)
        m = masks[rng.randrange(len(masks))]
        ms, iou = segment(enc, dec, img, [interior_point(rng, m)], [1])
        point_ious.append(mask_iou(pick(ms, iou, True), m))
        ms, iou = segment(enc, dec, img, [], [], bbox(m))
        box_ious.append(mask_iou(pick(ms, iou, False), m))
    return {"eval_images": n, "eval_seed": seed, "single_point_mIoU": round(float(np.mean(point_ious)), 4), "box_mIoU": round(float(np.mean(box_ious)), 4),
            "selection_rule": "single point: best of masks 1-3 by iou_predictions; box or several points: mask 0"}


if __name__ == "__main__":
    e, d = train() if "--eval-only" not in sys.argv else load()
    export(e, d)
    metrics = evaluate(e, d, n=20 if fast_mode() else 150)
    import amg_eval  # noqa: E402 (it imports this module)

    metrics.update(amg_eval.auto_metrics(e, d, n=2 if fast_mode() else amg_eval.HELD_OUT_IMAGES))
    print("[sam]", metrics, flush=True)
    update_eval("sam-tiny", metrics)
