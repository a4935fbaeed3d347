"""sam-tiny on an out-of-family test set (synth_shapes_ood.py: shape families, drawing code, fills and backgrounds
that training never sees), with the in-family evaluations' rules: single-point mIoU (an interior click, the best of
masks 1-3 by predicted IoU), box mIoU (mask 0), and the automatic masks (amg_eval.py: SAM's default thresholds,
points_per_side 16) as recall and precision at IoU 0.5.

    /usr/bin/python3 ood_eval.py [--n=150] [--auto-n=12] [--diag] [--write] [--ckpt=.cache/other.pt]

evaluates the checkpoint in .cache (or --ckpt; one rebuilt from the shipped files by recover_from_onnx.py is the
shipped model); --write adds the figures to eval.json's sam-tiny entry."""
from __future__ import annotations

import json
import random
import sys
import time

import numpy as np
import torch

import amg_eval
import train_sam
from common import CACHE_DIR, MODELS_DIR, mask_iou, setup_threads, update_eval
from synth_shapes_ood import render_ood

PROMPT_SEED = 2468  # the in-family sets use 12345 (prompts) and 4321 (automatic masks), training 21-24
AUTO_SEED = 8642
PROMPT_SIZES = [(640, 480), (480, 640), (800, 450), (500, 500)]  # as train_sam.evaluate


def prompt_metrics(enc, dec, n: int, seed: int = PROMPT_SEED) -> dict:
    rng = random.Random(seed)
    point_ious, box_ious = [], []
    for _ in range(n):
        w, h = rng.choice(PROMPT_SIZES)
        img, masks = render_ood(rng, w, h)
        m = masks[rng.randrange(len(masks))]
        ms, iou = train_sam.segment(enc, dec, img, [train_sam.interior_point(rng, m)], [1])
        point_ious.append(mask_iou(train_sam.pick(ms, iou, True), m))
        ms, iou = train_sam.segment(enc, dec, img, [], [], train_sam.bbox(m))
        box_ious.append(mask_iou(train_sam.pick(ms, iou, False), m))
    return {"single_point_mIoU": float(np.mean(point_ious)), "box_mIoU": float(np.mean(box_ious))}


def auto_images(n: int, seed: int = AUTO_SEED):
    rng = random.Random(seed)
    for i in range(n):
        w, h = amg_eval.HELD_OUT_SIZES[i % len(amg_eval.HELD_OUT_SIZES)]
        yield render_ood(rng, w, h)


def ood_metrics(enc, dec, n: int = 150, auto_n: int = amg_eval.HELD_OUT_IMAGES, diag: bool = False) -> dict:
    p = prompt_metrics(enc, dec, n)
    a = amg_eval.evaluate_auto(enc, dec, auto_images(auto_n), amg_eval.POINTS_PER_SIDE, diag)
    return {
        "ood_generator": "synth_shapes_ood.py: stars (5-9 points), crescents, off-centre elliptic rings, Fourier blobs, rounded polygons, "
                         "crosses, hearts; anti-aliased, shaded/hatched/textured/outlined fills; noise, wood, tile, gradient, paper "
                         "backgrounds; vignette, blur, noise, JPEG",
        "ood_eval_images": n,
        "ood_eval_seed": PROMPT_SEED,
        "ood_single_point_mIoU": round(p["single_point_mIoU"], 4),
        "ood_box_mIoU": round(p["box_mIoU"], 4),
        "ood_auto_masks_images": auto_n,
        "ood_auto_masks_seed": AUTO_SEED,
        "ood_auto_masks_recall_iou50": round(a["recall"], 4),
        "ood_auto_masks_precision_iou50": round(a["precision"], 4),
        "ood_auto_masks_counts": f"{a['found']}/{a['shapes']} shapes found, {a['good']}/{a['masks']} masks good",
    }


def load(path) -> tuple[train_sam.Encoder, train_sam.Decoder]:
    enc, dec = train_sam.Encoder(), train_sam.Decoder()
    sd = torch.load(path)
    enc.load_state_dict(sd["enc"])
    dec.load_state_dict(sd["dec"])
    return enc.eval(), dec.eval()


if __name__ == "__main__":
    setup_threads()
    arg = lambda k, d: next((a.split("=", 1)[1] for a in sys.argv if a.startswith(f"--{k}=")), d)  # noqa: E731
    enc, dec = load(arg("ckpt", str(CACHE_DIR / "sam-tiny.pt")))
    t0 = time.process_time()
    metrics = ood_metrics(enc, dec, int(arg("n", "150")), int(arg("auto-n", str(amg_eval.HELD_OUT_IMAGES))), "--diag" in sys.argv)
    print("[sam] out-of-family", json.dumps(metrics, indent=1), f"({time.process_time() - t0:.0f} CPU-s)", flush=True)
    if "--write" in sys.argv:
        entry = json.loads((MODELS_DIR / "eval.json").read_text())["sam-tiny"]
        entry.update(metrics)
        update_eval("sam-tiny", entry)
