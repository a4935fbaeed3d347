"""fragments-seg: a small instance segmenter with the Ultralytics YOLO segment ONNX contract.
Input `images` [1,3,320,320]; outputs `output0` [1, 4+2+32, 2100] (cx, cy, w, h, 2 class scores, 32 mask coefficients)
and `output1` [1, 32, 80, 80] prototypes. Classes: fragment, calibration_ball."""
from __future__ import annotations

import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from common import (CACHE_DIR, MODELS_DIR, base_metadata, device, fast_mode, letterbox, mask_iou, py_repr_names, seed_all,
                    set_metadata, setup_threads, to_chw, update_eval, version_of)
from postprocess import decode_segment
from synth_fragments import CLASSES, dr_size, render_fragments, render_fragments_dr
from train_obb import STRIDES, TinyYolo, anchor_table, assign, focal_bce, freeze_bn

IMGSZ = 320
NC = len(CLASSES)
NM = 32
PROTO = IMGSZ // 4


# Training mix: the original look, domain-randomized scenes, and bare backgrounds (hard negatives: no fragment).
# FT_FAMILY sets the share of the original look (the rest split 0.89 : 0.11 between randomized and bare).
_FAM = float(os.environ.get("FT_FAMILY", "0.3"))
MIX = (("family", _FAM), ("random", (1 - _FAM) * 0.89), ("bare", (1 - _FAM) * 0.11))


# FT_TOUCH: share of the original-look images drawn with touching or overlapping neighbours (no gap of bed between
# them), so that two fragments are told apart by their edge and shading rather than by the gap. FT_HIRES: weight of
# the mask loss on the logits bilinearly upsampled to the input resolution, as inference upsamples them before the
# threshold at 0 (the prototype-resolution loss alone leaves the masks a few % too large); 0 keeps the loss at
# prototype resolution alone.
TOUCH = float(os.environ.get("FT_TOUCH", "0"))
HIRES = float(os.environ.get("FT_HIRES", "0"))


def pick_kind(rng: random.Random) -> str:
    u, acc = rng.random(), 0.0
    for kind, p in MIX:
        acc += p
        if u < acc:
            return kind
    return MIX[-1][0]


def make_sample(rng: random.Random, kind: str = "family"):
    if kind == "family":
        w, h = rng.choice([(rng.randint(400, 720), rng.randint(300, 480)), (rng.randint(300, 480), rng.randint(400, 720))])
        if TOUCH and rng.random() < TOUCH:
            s = render_fragments(rng, w, h, n_target=rng.randint(25, 45), touch=(rng.uniform(0.7, 0.92), rng.uniform(0.0, 1.5)))
        else:
            s = render_fragments(rng, w, h)
    else:
        w, h = dr_size(rng)
        s = render_fragments_dr(rng, w, h, bare=kind == "bare")
    lb_img, p = letterbox(s["image"], IMGSZ)
    boxes, masks = [], []
    labels = np.zeros((IMGSZ, IMGSZ), dtype=np.int16)  # instance index + 1 at the input resolution (for FT_HIRES)
    for k, (m, c) in enumerate(zip(s["masks"], s["classes"])):
        ys, xs = np.nonzero(m)
        x1, x2, y1, y2 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        g = p["gain"]
        bx = ((x1 + x2) / 2 * g + p["pad_x"], (y1 + y2) / 2 * g + p["pad_y"], (x2 - x1) * g, (y2 - y1) * g)
        boxes.append((*bx, 0.0, c))
        # The mask in the letterboxed frame at prototype resolution.
        mi = Image.fromarray(m.astype(np.uint8) * 255).resize((p["new_w"], p["new_h"]), Image.BILINEAR)
        canvas = np.zeros((IMGSZ, IMGSZ), dtype=np.uint8)
        canvas[p["pad_y"]:p["pad_y"] + p["new_h"], p["pad_x"]:p["pad_x"] + p["new_w"]] = np.asarray(mi)
        labels[canvas > 127] = k + 1
        masks.append(np.asarray(Image.fromarray(canvas).resize((PROTO, PROTO), Image.BILINEAR), dtype=np.float32) / 255)
    return lb_img, boxes, np.stack(masks) if masks else np.zeros((0, PROTO, PROTO), np.float32), labels


def hires_mask_loss(logits, gt, gi, labels, size=IMGSZ):
    """BCE of the mask logits as inference thresholds them: zeroed outside the box at prototype scale, bilinearly
    upsampled to the input resolution, against the instance's mask at that resolution, within the box grown by one
    prototype pixel. Computed on a crop around each box (the largest box of the image sets the crop size)."""
    dev = logits.device
    P = logits.shape[0]
    f = size // PROTO
    r = PROTO / size
    x1, y1, x2, y2 = ((gt[:, 0] - gt[:, 2] / 2) * r, (gt[:, 1] - gt[:, 3] / 2) * r, (gt[:, 0] + gt[:, 2] / 2) * r, (gt[:, 1] + gt[:, 3] / 2) * r)
    ar = torch.arange(PROTO, device=dev, dtype=torch.float32)
    inside = ((ar[None, None, :] >= x1[:, None, None]) & (ar[None, None, :] < x2[:, None, None])
              & (ar[None, :, None] >= y1[:, None, None]) & (ar[None, :, None] < y2[:, None, None])).float()
    z = logits * inside
    ix0, iy0 = torch.floor(x1).long() - 2, torch.floor(y1).long() - 2
    S = int(max((torch.ceil(x2).long() - ix0).max().item(), (torch.ceil(y2).long() - iy0).max().item())) + 2
    a = torch.arange(S, device=dev)
    iy = (iy0[:, None] + a[None]).clamp(0, PROTO - 1)
    ix = (ix0[:, None] + a[None]).clamp(0, PROTO - 1)
    crop = z[torch.arange(P, device=dev)[:, None, None], iy[:, :, None], ix[:, None, :]]
    up = F.interpolate(crop[:, None], scale_factor=f, mode="bilinear", align_corners=False)[:, 0]
    A = torch.arange(S * f, device=dev)
    Y = iy0[:, None] * f + A[None]
    X = ix0[:, None] * f + A[None]
    Yc, Xc = Y.clamp(0, size - 1), X.clamp(0, size - 1)
    lab = torch.from_numpy(labels).to(dev).long()
    target = (lab[Yc[:, :, None], Xc[:, None, :]] == (gi + 1)[:, None, None]).float()
    gx1, gy1, gx2, gy2 = x1 * f - f, y1 * f - f, x2 * f + f, y2 * f + f
    Yf, Xf = Y.float() + 0.5, X.float() + 0.5
    w = ((Y >= 0) & (Y < size))[:, :, None] & ((X >= 0) & (X < size))[:, None, :]
    w = (w & (Yf >= gy1[:, None])[:, :, None] & (Yf < gy2[:, None])[:, :, None] & (Xf >= gx1[:, None])[:, None, :] & (Xf < gx2[:, None])[:, None, :]).float()
    bce = F.binary_cross_entropy_with_logits(up, target, reduction="none")
    return ((bce * w).sum((1, 2)) / w.sum((1, 2)).clamp(min=1)).sum()


def seg_loss(out, raw, protos, batch, size=IMGSZ):
    dev = raw.device
    cls_t = torch.zeros((raw.shape[0], NC, raw.shape[2]), device=dev)
    box_l, mask_l, npos = torch.zeros((), device=dev), torch.zeros((), device=dev), 0
    table = torch.from_numpy(anchor_table(size)).to(dev)
    yy, xx = torch.meshgrid(torch.arange(PROTO, device=dev, dtype=torch.float32), torch.arange(PROTO, device=dev, dtype=torch.float32), indexing="ij")
    for b, item in enumerate(batch):
        labels, gmasks = item[0], item[1]
        pairs = assign(labels, size)
        if not pairs:
            continue
        ai = torch.tensor([p[0] for p in pairs], device=dev)
        gi = torch.tensor([p[1] for p in pairs], device=dev)
        gt = torch.tensor([labels[p[1]][:4] for p in pairs], device=dev, dtype=torch.float32)
        gc = torch.tensor([labels[p[1]][5] for p in pairs], device=dev)
        cls_t[b, gc, ai] = 1.0
        pred = out[b, :, ai].T
        s = table[ai, 0:1]
        box_l = box_l + (torch.abs(pred[:, 0:2] - gt[:, 0:2]) / s).sum() + torch.abs(torch.log(pred[:, 2:4] + 1e-3) - torch.log(gt[:, 2:4] + 1e-3)).sum()
        coef = pred[:, 4 + NC:]
        logits = (coef @ protos[b].reshape(NM, -1)).reshape(-1, PROTO, PROTO)
        target = torch.from_numpy(gmasks).to(dev)[gi]
        r = PROTO / size
        x1, y1 = (gt[:, 0] - gt[:, 2] / 2) * r, (gt[:, 1] - gt[:, 3] / 2) * r
        x2, y2 = (gt[:, 0] + gt[:, 2] / 2) * r, (gt[:, 1] + gt[:, 3] / 2) * r
        inside = ((xx[None] >= x1[:, None, None] - 1) & (xx[None] < x2[:, None, None] + 1) & (yy[None] >= y1[:, None, None] - 1) & (yy[None] < y2[:, None, None] + 1)).float()
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        if HIRES and len(item) > 2:
            mask_l = mask_l + (1 - HIRES) * ((bce * inside).sum((1, 2)) / inside.sum((1, 2)).clamp(min=1)).sum() \
                + HIRES * hires_mask_loss(logits, gt, gi, item[2], size)
        else:
            mask_l = mask_l + ((bce * inside).sum((1, 2)) / inside.sum((1, 2)).clamp(min=1)).sum()
        npos += len(pairs)
    npos = max(npos, 1)
    cls_l = focal_bce(raw[:, 4:4 + NC], cls_t) / npos
    return cls_l * 4 + box_l / npos + mask_l / npos * 4, (cls_l.item(), (box_l / npos).item(), (mask_l / npos).item())


def train() -> TinyYolo:
    seed_all(0)
    setup_threads()
    dev = device()
    pool_n, steps, bs = (120, 40, 8) if fast_mode() else (1500, 1100, 8)
    t0 = time.time()
    rng = random.Random(11)
    pool = [make_sample(rng, pick_kind(rng)) for _ in range(pool_n)]
    print(f"[seg] pool of {pool_n} images in {time.time() - t0:.0f}s", flush=True)
    model = TinyYolo(NC, extra=NM, angle=False, protos=NM).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    nrng = np.random.default_rng(0)
    model.train()
    for step in range(steps):
        idx = nrng.integers(0, pool_n, bs)
        x = torch.from_numpy(np.stack([to_chw(pool[i][0]) for i in idx])).to(dev)
        out, raw, protos = model(x)
        loss, parts = seg_loss(out, raw, protos, [(pool[i][1], pool[i][2]) for i in idx])
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"[seg] step {step}/{steps} loss {loss.item():.3f} cls {parts[0]:.3f} box {parts[1]:.3f} mask {parts[2]:.3f} ({time.time() - t0:.0f}s)", flush=True)
    model.eval()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), CACHE_DIR / "fragments-seg.pt")
    return model


def finetune() -> TinyYolo:
    """Fine-tunes the shipped weights (recover_from_onnx.py fragments-seg first) on the randomized mix, with a
    streaming pool (two fresh images per step) and a checkpoint (.cache/fragments-seg-ft.pt) every 50 steps, so it
    can be stopped and exported. BatchNorm stays frozen. FT_STEPS (default 1200), FT_MINUTES (wall-clock budget,
    default 40; the cosine learning-rate decay follows whichever runs out first) and FT_POOL (default 320) bound it;
    FT_INIT starts from another checkpoint, FT_LR sets the peak learning rate (default 4e-4)."""
    seed_all(1)
    setup_threads()
    dev = device()
    steps, bs, pool_n = int(os.environ.get("FT_STEPS", "1200")), 8, int(os.environ.get("FT_POOL", "320"))
    budget = float(os.environ.get("FT_MINUTES", "40")) * 60
    t0, c0 = time.time(), time.process_time()
    rng = random.Random(23)
    pool = [make_sample(rng, pick_kind(rng)) for _ in range(pool_n)]
    print(f"[seg-ft] pool of {pool_n} images in {time.time() - t0:.0f}s ({time.process_time() - c0:.0f}s CPU)", flush=True)
    model = load().to(dev)
    if os.environ.get("FT_INIT"):  # resume from an earlier fine-tuning checkpoint
        model.load_state_dict(torch.load(os.environ["FT_INIT"]))
    max_lr = float(os.environ.get("FT_LR", "4e-4"))
    opt = torch.optim.AdamW(model.parameters(), lr=max_lr, weight_decay=5e-4)
    nrng = np.random.default_rng(1)
    ckpt = CACHE_DIR / "fragments-seg-ft.pt"
    model.train()
    freeze_bn(model)
    # Cosine decay over whichever runs out first, the steps or the wall-clock budget (the machine may be shared, so
    # the rate is not known in advance), after a short warm-up.
    t1 = time.time()
    train_budget = max(60.0, budget - (t1 - t0))
    for step in range(steps):
        frac = min(1.0, max(step / steps, (time.time() - t1) / train_budget))
        lr = max_lr * min(1.0, (step + 1) / 30) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        for _ in range(2):
            pool[int(nrng.integers(0, pool_n))] = make_sample(rng, pick_kind(rng))
        idx = nrng.integers(0, pool_n, bs)
        x = torch.from_numpy(np.stack([to_chw(pool[i][0]) for i in idx])).to(dev)
        out, raw, protos = model(x)
        loss, parts = seg_loss(out, raw, protos, [pool[i][1:] for i in idx])
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        last = step == steps - 1 or frac >= 1.0
        if step % 50 == 0 or last:
            torch.save(model.state_dict(), ckpt)
            print(f"[seg-ft] step {step}/{steps} lr {lr:.2e} loss {loss.item():.3f} cls {parts[0]:.3f} box {parts[1]:.3f} mask {parts[2]:.3f} "
                  f"({time.time() - t0:.0f}s wall, {time.process_time() - c0:.0f}s CPU)", flush=True)
        if last:
            break
    model.eval()
    return model


def load() -> TinyYolo:
    m = TinyYolo(NC, extra=NM, angle=False, protos=NM)
    m.load_state_dict(torch.load(CACHE_DIR / "fragments-seg.pt"))
    return m.eval()


def export(model: TinyYolo) -> None:
    path = MODELS_DIR / "fragments-seg.onnx"
    torch.onnx.export(model.eval(), torch.zeros(1, 3, IMGSZ, IMGSZ), str(path), opset_version=17, input_names=["images"], output_names=["output0", "output1"])
    meta = base_metadata("Aperture fragments-seg: instance masks of rock fragments and the red calibration ball (synthetic-trained stand-in for a YOLO11n-seg export)", "segment", version_of("fragments-seg"))
    meta.update({"stride": 32, "batch": 1, "imgsz": f"[{IMGSZ}, {IMGSZ}]", "names": py_repr_names(CLASSES), "channels": 3})
    set_metadata(path, meta)


def predict(model: TinyYolo, img: Image.Image, conf=0.25, iou=0.7):
    lb_img, p = letterbox(img, IMGSZ)
    with torch.no_grad():
        out, protos = model(torch.from_numpy(to_chw(lb_img))[None])
    return decode_segment(out[0].numpy(), protos[0].numpy(), NC, p, img.width, img.height, IMGSZ, conf=conf, iou=iou)


def evaluate(model: TinyYolo, n: int = 100, seed: int = 12345) -> dict:
    """The in-family figures in one pass over the held-out set: fragments_eval.evaluate_set's matching (greedy per true
    fragment, IoU >= 0.5) and its D50 as the server computes it."""
    from fragments_eval import evaluate_set

    rng = random.Random(seed)
    samples = []
    for _ in range(n):
        w, h = rng.choice([(640, 480), (480, 640), (800, 600)])
        samples.append(render_fragments(rng, w, h))
    f = evaluate_set(lambda im: predict(model, im), samples)
    errs = [abs(e) for e in f["d50_error_pct_per_image"] if e is not None]
    return {
        "eval_images": n,
        "eval_seed": seed,
        "fragment_mask_mIoU_matched": f["fragment_mask_mIoU_matched"],
        "fragment_mask_mIoU_all_gt": f["fragment_mask_mIoU_all_gt"],
        "fragment_recall_iou50": f["fragment_recall_iou50"],
        "fragment_precision_iou50": f["fragment_precision_iou50"],
        "ball_found_rate": f["ball_found_rate"],
        "note": "mIoU_matched: mean mask IoU of ground-truth fragments matched (IoU >= 0.5) to a prediction; mIoU_all_gt counts unmatched ones as 0",
        "d50_abs_error_pct_mean": round(float(np.mean(errs)), 2) if errs else None,
        "d50_abs_error_pct_max": f["d50_max_abs_error_pct"],
    }


def evaluate_server_d50(model: TinyYolo, metrics: dict, n_ood: int = 20, ood_seed: int = 777) -> dict:
    """Adds the out-of-family figures (synth_fragments_ood, never trained on; D50 computed as the server does,
    fragments_eval.server_d50) beside the in-family keys."""
    from fragments_eval import evaluate_set
    from synth_fragments_ood import ood_set

    o = evaluate_set(lambda im: predict(model, im), ood_set(n_ood, ood_seed))
    metrics.update({
        "ood_generator": "synth_fragments_ood.py",
        "ood_eval_images": n_ood,
        "ood_eval_seed": ood_seed,
        "ood_fragment_recall_iou50": o["fragment_recall_iou50"],
        "ood_fragment_precision_iou50": o["fragment_precision_iou50"],
        "ood_fragment_mask_mIoU_matched": o["fragment_mask_mIoU_matched"],
        "ood_ball_found_rate": o["ball_found_rate"],
        "ood_d50_error_pct_per_image": o["d50_error_pct_per_image"],
        "ood_d50_abs_error_pct_max": o["d50_max_abs_error_pct"],
        "d50_note": "D50 as the server computes it (ball radius from red pixels, equivalent diameters, numpy linear "
                    "percentile) against the D50 of the true masks with the true ball radius; signed % per image",
    })
    return metrics


if __name__ == "__main__":
    if "--finetune" in sys.argv:
        m = finetune()
        torch.save(m.state_dict(), CACHE_DIR / "fragments-seg.pt")
    else:
        m = train() if "--eval-only" not in sys.argv else load()
    export(m)
    metrics = evaluate_server_d50(m, evaluate(m, n=20 if fast_mode() else 100), n_ood=6 if fast_mode() else 20)
    print("[seg]", metrics, flush=True)
    update_eval("fragments-seg", metrics)
