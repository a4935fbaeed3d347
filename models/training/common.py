"""Shared helpers for Aperture's shipped-model scripts: seeds, devices, geometry, letterbox, ONNX export."""
from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import random
from pathlib import Path

import numpy as np
import onnx
import torch
from PIL import Image

MODELS_DIR = Path(__file__).resolve().parent.parent
FIXTURES_DIR = MODELS_DIR / "fixtures"
CACHE_DIR = Path(__file__).resolve().parent / ".cache"
VERSION = "1.0.0"
# Models retrained since 1.0.0 with a change of recipe; the others are VERSION.
MODEL_VERSIONS = {"sam-tiny": "1.2.0", "primitives-obb": "1.1.0", "fragments-seg": "1.2.0", "scene-gru": "1.1.0"}


def version_of(model: str) -> str:
    return MODEL_VERSIONS.get(model, VERSION)


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def setup_threads() -> None:
    n = int(os.environ.get("TRAIN_THREADS", "0")) or max(1, os.cpu_count() or 1)
    torch.set_num_threads(n)


def fast_mode() -> bool:
    """FAST=1 shortens every training run (smoke test of the pipeline, not for shipping)."""
    return os.environ.get("FAST") == "1"


# ---------------------------------------------------------------- letterbox (Ultralytics LetterBox, auto=False)

def letterbox_params(w: int, h: int, size: int) -> dict:
    r = min(size / h, size / w)
    nw, nh = round(w * r), round(h * r)
    dw, dh = (size - nw) / 2, (size - nh) / 2
    top, left = round(dh - 0.1), round(dw - 0.1)
    return {"gain": r, "new_w": nw, "new_h": nh, "pad_x": left, "pad_y": top}


def letterbox(img: Image.Image, size: int) -> tuple[np.ndarray, dict]:
    """RGB PIL image -> HWC uint8 size x size with pad 114 (bilinear resize), plus the parameters."""
    p = letterbox_params(img.width, img.height, size)
    resized = img.resize((p["new_w"], p["new_h"]), Image.BILINEAR) if (p["new_w"], p["new_h"]) != img.size else img
    canvas = np.full((size, size, 3), 114, dtype=np.uint8)
    canvas[p["pad_y"]:p["pad_y"] + p["new_h"], p["pad_x"]:p["pad_x"] + p["new_w"]] = np.asarray(resized.convert("RGB"))
    return canvas, p


def to_chw(hwc: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(hwc.transpose(2, 0, 1), dtype=np.float32) / 255.0


# ---------------------------------------------------------------- oriented boxes

def regularize(w: float, h: float, t: float) -> tuple[float, float, float]:
    """Ultralytics regularize_rboxes: long side first, angle in [0, pi)."""
    if w < h:
        w, h, t = h, w, t + math.pi / 2
    return w, h, t % math.pi


def obb_corners(cx: float, cy: float, w: float, h: float, t: float) -> list[list[float]]:
    """xywhr -> 4 corners (Ultralytics xywhr2xyxyxyxy order)."""
    c, s = math.cos(t), math.sin(t)
    v1 = (w / 2 * c, w / 2 * s)
    v2 = (-h / 2 * s, h / 2 * c)
    return [
        [cx + v1[0] + v2[0], cy + v1[1] + v2[1]],
        [cx + v1[0] - v2[0], cy + v1[1] - v2[1]],
        [cx - v1[0] - v2[0], cy - v1[1] - v2[1]],
        [cx - v1[0] + v2[0], cy - v1[1] + v2[1]],
    ]


def polygon_area(p: list[list[float]]) -> float:
    a = 0.0
    for i in range(len(p)):
        x1, y1 = p[i]
        x2, y2 = p[(i + 1) % len(p)]
        a += x1 * y2 - x2 * y1
    return abs(a) / 2


def _clip(subject: list[list[float]], clip: list[list[float]]) -> list[list[float]]:
    """Sutherland-Hodgman for convex polygons (both counter- or both clockwise)."""
    def inside(p, a, b):
        return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]) >= 0

    def inter(p, q, a, b):
        x1, y1, x2, y2 = p[0], p[1], q[0], q[1]
        x3, y3, x4, y4 = a[0], a[1], b[0], b[1]
        d = (x1 - x2) * (y3 - y4) - (y1 - y2) * (x3 - x4)
        if abs(d) < 1e-12:
            return q
        t = ((x1 - x3) * (y3 - y4) - (y1 - y3) * (x3 - x4)) / d
        return [x1 + t * (x2 - x1), y1 + t * (y2 - y1)]

    out = subject
    for i in range(len(clip)):
        a, b = clip[i], clip[(i + 1) % len(clip)]
        inp, out = out, []
        if not inp:
            break
        s = inp[-1]
        for e in inp:
            if inside(e, a, b):
                if not inside(s, a, b):
                    out.append(inter(s, e, a, b))
                out.append(e)
            elif inside(s, a, b):
                out.append(inter(s, e, a, b))
            s = e
    return out


def _ccw(p):
    a = 0.0
    for i in range(len(p)):
        a += p[i][0] * p[(i + 1) % len(p)][1] - p[(i + 1) % len(p)][0] * p[i][1]
    return p if a > 0 else p[::-1]


def rotated_iou(a: tuple, b: tuple) -> float:
    """Exact IoU of two oriented boxes (cx, cy, w, h, theta)."""
    pa, pb = _ccw(obb_corners(*a)), _ccw(obb_corners(*b))
    inter = _clip(pa, pb)
    ia = polygon_area(inter) if len(inter) >= 3 else 0.0
    u = a[2] * a[3] + b[2] * b[3] - ia
    return ia / u if u > 0 else 0.0


# ---------------------------------------------------------------- masks (COCO uncompressed RLE, column-major)

def rle_encode(mask: np.ndarray) -> dict:
    h, w = mask.shape
    flat = mask.astype(np.uint8).flatten(order="F")
    counts = []
    prev, run = 0, 0
    for v in flat:
        if v != prev:
            counts.append(run)
            run, prev = 0, v
        run += 1
    counts.append(run)
    return {"size": [h, w], "counts": [int(c) for c in counts]}


def rle_decode(rle: dict) -> np.ndarray:
    h, w = rle["size"]
    flat = np.zeros(h * w, dtype=np.uint8)
    pos, val = 0, 0
    for c in rle["counts"]:
        flat[pos:pos + c] = val
        pos += c
        val ^= 1
    return flat.reshape((w, h)).T


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.logical_and(a, b).sum()
    union = np.logical_or(a, b).sum()
    return float(inter / union) if union else 0.0


# ---------------------------------------------------------------- ONNX export

def py_repr_names(names: list[str]) -> str:
    return "{" + ", ".join(f"{i}: {n!r}" for i, n in enumerate(names)) + "}"


def set_metadata(path: Path, meta: dict) -> None:
    """Writes metadata_props the way Ultralytics does: str(v) of each value (Python repr, not JSON)."""
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for k, v in meta.items():
        e = model.metadata_props.add()
        e.key = k
        e.value = v if isinstance(v, str) else str(v)
    onnx.save(model, str(path))


def base_metadata(description: str, task: str, version: str = VERSION) -> dict:
    return {
        "description": description,
        "author": "Aperture",
        "date": datetime.date.today().isoformat(),
        "version": version,
        "license": "MIT",
        "docs": "models/README.md",
        "task": task,
    }


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")


def update_eval(model: str, metrics: dict) -> None:
    p = MODELS_DIR / "eval.json"
    data = json.loads(p.read_text()) if p.exists() else {}
    data[model] = metrics
    write_json(p, dict(sorted(data.items())))
