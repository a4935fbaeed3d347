"""sam-tiny's automatic masks (SAM's automatic mask generator with its default thresholds, one crop) in PyTorch:
recall of the drawn shapes at IoU 0.5 and precision of the masks, on a held-out set of generated images and on the
SAM fixtures. For the checkpoint in .cache: `python3 amg_eval.py [--n=24] [--pps=16] [--diag]` prints the held-out
figures (`--diag` names each wrong mask and missed shape), `--fixtures` the fixtures', `--write` adds both to
eval.json. (train_sam.py runs it after training.)"""
from __future__ import annotations

import json
import random
import sys

import numpy as np
import torch
from PIL import Image

import train_sam
from common import FIXTURES_DIR, MODELS_DIR, mask_iou, rle_decode, setup_threads, update_eval
from postprocess import nms_xyxy, sam_encoder_input, sam_resize_params

HELD_OUT_SEED = 4321  # training uses seeds 21-23, the prompt evaluation 12345, the fixtures 779
HELD_OUT_SIZES = [(512, 384), (384, 512), (640, 360), (448, 448), (600, 352), (400, 600)]
HELD_OUT_IMAGES = 12
#: The grid the tests and eval.json use (points_per_side); the generator's other parameters are SAM's defaults.
POINTS_PER_SIDE = 16


def grid_points(n: int, w: int, h: int) -> np.ndarray:
    off = 1 / (2 * n)
    side = np.linspace(off, 1 - off, n)
    xs, ys = np.meshgrid(side * w, side * h)
    return np.stack([xs.ravel(), ys.ravel()], 1)


def stability(logits: torch.Tensor, offset: float = 1.0) -> torch.Tensor:
    inter = (logits > offset).sum((-1, -2)).float()
    union = (logits > -offset).sum((-1, -2)).float()
    return inter / union


@torch.no_grad()
def candidates(enc, dec, rgb: np.ndarray, pps: int, batch: int = 16):
    """Every multimask output (1-3) of every grid point: binary masks, predicted IoU, stability, point."""
    h, w = rgb.shape[:2]
    nw, nh, _ = sam_resize_params(w, h)
    emb = enc(torch.from_numpy(sam_encoder_input(rgb)))
    pts = grid_points(pps, w, h)
    out = []
    for s in range(0, len(pts), batch):
        p = pts[s:s + batch]
        b = len(p)
        coords = torch.zeros(b, 2, 2)
        coords[:, 0, 0] = torch.from_numpy(p[:, 0] * nw / w).float()
        coords[:, 0, 1] = torch.from_numpy(p[:, 1] * nh / h).float()
        labels = torch.tensor([[1.0, -1.0]]).expand(b, 2)
        masks, iou, _ = dec(emb, coords, labels, torch.zeros(1, 1, 256, 256), torch.zeros(1), torch.tensor([float(h), float(w)]))
        stab = stability(masks[:, 1:])
        for i in range(b):
            for k in range(1, 4):
                out.append({"mask": (masks[i, k] > 0).numpy(), "iou": float(iou[i, k]), "stab": float(stab[i, k - 1]), "point": p[i]})
    return out


def box_of(m: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(m)
    return [0, 0, 0, 0] if len(xs) == 0 else [xs.min(), ys.min(), xs.max(), ys.max()]


def generate(cands, iou_thresh=0.88, stab_thresh=0.95, nms=0.7):
    kept = [c for c in cands if c["iou"] > iou_thresh and c["stab"] >= stab_thresh]
    if not kept:
        return []
    boxes = np.array([box_of(c["mask"]) for c in kept], dtype=np.float64)
    keep = nms_xyxy(boxes, np.array([c["iou"] for c in kept]), nms)
    return [kept[i] for i in keep]


def score(masks: list[np.ndarray], gts: list[np.ndarray]) -> tuple[int, int]:
    found = sum(1 for g in gts if max([mask_iou(m, g) for m in masks], default=0) >= 0.5)
    good = sum(1 for m in masks if max([mask_iou(m, g) for g in gts], default=0) >= 0.5)
    return found, good


def held_out(n: int, seed: int = HELD_OUT_SEED):
    rng = random.Random(seed)
    for i in range(n):
        w, h = HELD_OUT_SIZES[i % len(HELD_OUT_SIZES)]
        yield train_sam.render_shapes(rng, w, h)


def fixtures():
    truth = json.loads((FIXTURES_DIR / "sam/ground-truth.json").read_text())
    for t in truth["images"]:
        rgb = np.asarray(Image.open(FIXTURES_DIR / t["file"]).convert("RGB"))
        yield rgb, [rle_decode(s["mask"]).astype(bool) for s in t["shapes"]]


def evaluate_auto(enc, dec, images, pps: int = 8, diag: bool = False) -> dict:
    found = shapes = good = total = 0
    for idx, (rgb, gts) in enumerate(images):
        cands = candidates(enc, dec, rgb, pps)
        masks = generate(cands)
        f, g = score([c["mask"] for c in masks], gts)
        found, shapes, good, total = found + f, shapes + len(gts), good + g, total + len(masks)
        if diag:
            fg = np.zeros(rgb.shape[:2], bool)
            for m in gts:
                fg |= m
            for c in masks:
                best = max(mask_iou(c["mask"], gt) for gt in gts)
                x, y = int(c["point"][0]), int(c["point"][1])
                if best < 0.5:
                    print(f"  img {idx} bad mask iou_pred {c['iou']:.3f} stab {c['stab']:.3f} best IoU {best:.2f} area {c['mask'].mean():.3f} point on {'shape' if fg[y, x] else 'background'}")
            for j, gt in enumerate(gts):
                ious = [(mask_iou(c["mask"], gt), c) for c in cands]
                bi, bc = max(ious, key=lambda t: t[0])
                hit = max([mask_iou(c["mask"], gt) for c in masks], default=0)
                if hit < 0.5:
                    print(f"  img {idx} missed shape {j} (area {gt.mean():.3f}): best candidate IoU {bi:.2f} iou_pred {bc['iou']:.3f} stab {bc['stab']:.3f}")
    return {"recall": found / shapes, "precision": good / total if total else 0.0, "shapes": shapes, "found": found, "masks": total, "good": good}


def auto_metrics(enc, dec, n: int = HELD_OUT_IMAGES, pps: int = POINTS_PER_SIDE) -> dict:
    """The held-out automatic-mask metrics for eval.json (and the SAM fixtures' for comparison)."""
    held = evaluate_auto(enc, dec, held_out(n), pps)
    fix = evaluate_auto(enc, dec, fixtures(), pps)
    return {
        "auto_masks_heldout_images": n,
        "auto_masks_heldout_seed": HELD_OUT_SEED,
        "auto_masks_points_per_side": pps,
        "auto_masks_heldout_recall_iou50": round(held["recall"], 4),
        "auto_masks_heldout_precision_iou50": round(held["precision"], 4),
        "auto_masks_heldout_counts": f"{held['found']}/{held['shapes']} shapes found, {held['good']}/{held['masks']} masks good",
        "auto_masks_fixtures_recall_iou50": round(fix["recall"], 4),
        "auto_masks_fixtures_precision_iou50": round(fix["precision"], 4),
        "auto_masks_note": "SAM's automatic mask generator, default thresholds (pred_iou 0.88, stability 0.95, box NMS 0.7), one crop; "
                           "recall = drawn shapes with a mask at IoU >= 0.5, precision = masks with a shape at IoU >= 0.5",
    }


if __name__ == "__main__":
    setup_threads()
    enc, dec = train_sam.load()
    diag = "--diag" in sys.argv
    pps = int(next((a.split("=")[1] for a in sys.argv if a.startswith("--pps=")), POINTS_PER_SIDE))
    if "--write" in sys.argv:  # add the held-out metrics to eval.json's sam-tiny entry
        metrics = json.loads((MODELS_DIR / "eval.json").read_text())["sam-tiny"]
        metrics.update(auto_metrics(enc, dec, pps=pps))
        update_eval("sam-tiny", metrics)
        print("[sam] auto masks", metrics, flush=True)
    elif "--fixtures" in sys.argv:
        print("fixtures", evaluate_auto(enc, dec, fixtures(), pps, diag))
    else:
        n = int(next((a.split("=")[1] for a in sys.argv if a.startswith("--n=")), HELD_OUT_IMAGES))
        print("held-out", evaluate_auto(enc, dec, held_out(n), pps, diag))
