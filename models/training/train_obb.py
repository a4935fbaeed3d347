"""primitives-obb: a small oriented-box detector with the Ultralytics YOLO OBB ONNX contract.
Input `images` [1,3,320,320] (letterboxed RGB /255); output `output0` [1, 4+5+1, 2100]: cx, cy, w, h in input
pixels, 5 sigmoid class scores, angle = (sigmoid - 0.25) * pi; anchors of strides 8, 16, 32 (40² + 20² + 10²)."""
from __future__ import annotations

import math
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import (CACHE_DIR, MODELS_DIR, base_metadata, device, fast_mode, letterbox, py_repr_names, rotated_iou,
                    seed_all, set_metadata, setup_threads, to_chw, update_eval, version_of)
from postprocess import decode_obb
from synth_primitives import CLASSES, render_scene, sample_randomized, sample_scene

IMGSZ = 320
STRIDES = (8, 16, 32)
NC = len(CLASSES)
NO = 4 + NC + 1


def conv(c1, c2, k=3, s=1):
    return nn.Sequential(nn.Conv2d(c1, c2, k, s, k // 2, bias=False), nn.BatchNorm2d(c2), nn.SiLU())


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.a, self.b = conv(c, c, 3), conv(c, c, 3)

    def forward(self, x):
        return x + self.b(self.a(x))


class TinyYolo(nn.Module):
    """Backbone with 3 output strides, a small FPN, and one head per level. `out_ch` extra channels per anchor
    (mask coefficients for the segmenter); `protos` > 0 adds a prototype branch at stride 4."""

    def __init__(self, nc: int, extra: int = 0, angle: bool = True, protos: int = 0, width: int = 1):
        super().__init__()
        c = [16 * width, 32 * width, 48 * width, 64 * width, 96 * width]
        self.nc, self.extra, self.angle, self.np = nc, extra, angle, protos
        self.s1 = conv(3, c[0], 3, 2)
        self.s2 = nn.Sequential(conv(c[0], c[1], 3, 2), Block(c[1]))
        self.s3 = nn.Sequential(conv(c[1], c[2], 3, 2), Block(c[2]))
        self.s4 = nn.Sequential(conv(c[2], c[3], 3, 2), Block(c[3]))
        self.s5 = nn.Sequential(conv(c[3], c[4], 3, 2), Block(c[4]))
        n = 64
        self.l5, self.l4, self.l3 = conv(c[4], n, 1), conv(c[3], n, 1), conv(c[2], n, 1)
        self.n4, self.n3 = conv(n, n, 3), conv(n, n, 3)
        self.no = 4 + nc + extra + (1 if angle else 0)
        self.heads = nn.ModuleList(nn.Sequential(conv(n, n, 3), nn.Conv2d(n, self.no, 1)) for _ in STRIDES)
        for h in self.heads:
            nn.init.constant_(h[1].bias[4:4 + nc], -4.0)  # low initial scores
        if protos:
            self.l2 = conv(c[1], n, 1)
            self.proto = nn.Sequential(conv(n, n, 3), conv(n, n, 3), nn.Conv2d(n, protos, 1))

    def forward(self, x):
        f1 = self.s1(x)
        f2 = self.s2(f1)
        p3 = self.s3(f2)
        p4 = self.s4(p3)
        p5 = self.s5(p4)
        t5 = self.l5(p5)
        t4 = self.n4(self.l4(p4) + F.interpolate(t5, scale_factor=2.0, mode="nearest"))
        t3 = self.n3(self.l3(p3) + F.interpolate(t4, scale_factor=2.0, mode="nearest"))
        raws, decoded = [], []
        for feat, head, s in zip((t3, t4, t5), self.heads, STRIDES):
            r = head(feat)
            b, _, h, w = r.shape
            gy, gx = torch.meshgrid(torch.arange(h, dtype=r.dtype), torch.arange(w, dtype=r.dtype), indexing="ij")
            grid = torch.stack((gx, gy), 0)[None]
            xy = (torch.sigmoid(r[:, 0:2]) * 2 - 0.5 + grid) * s
            wh = (torch.sigmoid(r[:, 2:4]) * 4) ** 2 * s
            parts = [xy, wh, torch.sigmoid(r[:, 4:4 + self.nc])]
            if self.angle:
                parts.append((torch.sigmoid(r[:, 4 + self.nc:5 + self.nc]) - 0.25) * math.pi)
            if self.extra:
                parts.append(r[:, self.no - self.extra:])
            decoded.append(torch.cat(parts, 1).flatten(2))
            raws.append(r.flatten(2))
        out = torch.cat(decoded, 2)
        if self.np:
            pr = self.proto(F.interpolate(t3, scale_factor=2.0, mode="nearest") + self.l2(f2))
            return (out, pr) if not self.training else (out, torch.cat(raws, 2), pr)
        return out if not self.training else (out, torch.cat(raws, 2))


def anchor_table(size: int):
    """Per anchor: stride, cell x, cell y (matching the order of the flattened output)."""
    rows = []
    for s in STRIDES:
        n = size // s
        gy, gx = np.mgrid[0:n, 0:n]
        rows.append(np.stack([np.full(n * n, s), gx.ravel(), gy.ravel()], 1))
    return np.concatenate(rows, 0).astype(np.float32)


def level_offsets(size: int) -> list[int]:
    offs, o = [], 0
    for s in STRIDES:
        offs.append(o)
        o += (size // s) ** 2
    return offs


def choose_level(long_side: float, thresholds=(48.0, 112.0)) -> int:
    return 0 if long_side < thresholds[0] else 1 if long_side < thresholds[1] else 2


def assign(gts: list[tuple], size: int) -> list[tuple[int, int]]:
    """(anchor index, gt index) pairs: the center cell of the GT's level plus the 2 nearest neighbours (YOLOv5 style)."""
    offs = level_offsets(size)
    pairs = []
    for gi, g in enumerate(gts):
        cx, cy, w, h = g[0], g[1], g[2], g[3]
        lv = choose_level(max(w, h))
        s = STRIDES[lv]
        n = size // s
        gx, gy = cx / s, cy / s
        ix, iy = int(gx), int(gy)
        cells = {(ix, iy)}
        cells.add((ix - 1 if gx - ix < 0.5 else ix + 1, iy))
        cells.add((ix, iy - 1 if gy - iy < 0.5 else iy + 1))
        for x, y in cells:
            if 0 <= x < n and 0 <= y < n:
                pairs.append((offs[lv] + y * n + x, gi))
    return pairs


# Share of training images drawn with the plain in-family look (render_scene); the rest are domain-randomized.
PLAIN_SHARE = 0.2


def make_sample(rng: random.Random, size: int = IMGSZ, randomized: bool = True):
    """A rendered scene letterboxed to size; labels in letterboxed pixels. randomized: domain-randomized looks, sizes
    320-2048 px, object scale and padding (synth_primitives.sample_randomized) for all but PLAIN_SHARE of the images;
    otherwise the plain look at a random aspect ratio."""
    if randomized and rng.random() >= PLAIN_SHARE:
        img, gts, _ = sample_randomized(rng)
    else:
        w = rng.choice([rng.randint(300, 720), rng.randint(240, 400)])
        h = rng.choice([rng.randint(240, 480), rng.randint(400, 720)])
        desc = sample_scene(rng)
        img, gts = render_scene(desc, w, h, rng)
    lb_img, p = letterbox(img, size)
    labels = []
    for g in gts:
        cx, cy, bw, bh, t = g["box"]
        labels.append((cx * p["gain"] + p["pad_x"], cy * p["gain"] + p["pad_y"], bw * p["gain"], bh * p["gain"], t, g["class_id"]))
    return lb_img, labels


def focal_bce(logits, targets, gamma=1.5, alpha=0.25):
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    pt = p * targets + (1 - p) * (1 - targets)
    a = alpha * targets + (1 - alpha) * (1 - targets)
    return (a * (1 - pt) ** gamma * ce).sum()


SYM = {CLASSES.index("sphere"): 0, CLASSES.index("cube"): 4}  # angle symmetry: none (skip) / 90°; others 180°


def obb_loss(model_out, raw, batch_labels, size=IMGSZ):
    dev = raw.device
    cls_t = torch.zeros((raw.shape[0], NC, raw.shape[2]), device=dev)
    box_l, ang_l, npos = torch.zeros((), device=dev), torch.zeros((), device=dev), 0
    table = torch.from_numpy(anchor_table(size)).to(dev)
    for b, labels in enumerate(batch_labels):
        pairs = assign(labels, size)
        if not pairs:
            continue
        ai = torch.tensor([p[0] for p in pairs], device=dev)
        gt = torch.tensor([labels[p[1]][:5] for p in pairs], device=dev, dtype=torch.float32)
        gc = torch.tensor([labels[p[1]][5] for p in pairs], device=dev)
        cls_t[b, gc, ai] = 1.0
        pred = model_out[b, :, ai].T  # (P, NO)
        s = table[ai, 0:1]
        box_l = box_l + (torch.abs(pred[:, 0:2] - gt[:, 0:2]) / s).sum() + torch.abs(torch.log(pred[:, 2:4] + 1e-3) - torch.log(gt[:, 2:4] + 1e-3)).sum()
        k = torch.tensor([SYM.get(int(c), 2) for c in gc], device=dev, dtype=torch.float32)
        d = pred[:, 4 + NC] - gt[:, 4]
        ang_l = ang_l + ((1 - torch.cos(k * d)) * (k > 0)).sum()
        npos += len(pairs)
    npos = max(npos, 1)
    cls_l = focal_bce(raw[:, 4:4 + NC], cls_t) / npos
    return cls_l * 4 + box_l / npos + ang_l / npos, (cls_l.item(), (box_l / npos).item(), (ang_l / npos).item())


def build_pool(seed: int, n: int):
    rng = random.Random(seed)
    imgs, labels = [], []
    for _ in range(n):
        im, lab = make_sample(rng)
        imgs.append(im)
        labels.append(lab)
    return np.stack(imgs), labels


def flip_h(img: np.ndarray, labels, size=IMGSZ):
    out = [(size - cx, cy, w, h, (math.pi - t) % math.pi, c) for cx, cy, w, h, t, c in labels]
    return img[:, ::-1], out


def train() -> TinyYolo:
    seed_all(0)
    setup_threads()
    dev = device()
    fast = fast_mode()
    pool_n, steps, bs = (200, 60, 8) if fast else (2500, 2000, 16)
    t0 = time.time()
    imgs, labels = build_pool(1, pool_n)
    print(f"[obb] pool of {pool_n} scenes in {time.time() - t0:.0f}s", flush=True)
    model = TinyYolo(NC).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    rng = np.random.default_rng(0)
    model.train()
    for step in range(steps):
        idx = rng.integers(0, pool_n, bs)
        batch, labs = [], []
        for i in idx:
            im, lab = imgs[i], labels[i]
            if rng.random() < 0.5:
                im, lab = flip_h(im, lab)
            batch.append(to_chw(np.ascontiguousarray(im)))
            labs.append(lab)
        x = torch.from_numpy(np.stack(batch)).to(dev)
        out, raw = model(x)
        loss, parts = obb_loss(out, raw, labs)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"[obb] step {step}/{steps} loss {loss.item():.3f} cls {parts[0]:.3f} box {parts[1]:.3f} ang {parts[2]:.3f} ({time.time() - t0:.0f}s)", flush=True)
    model.eval()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), CACHE_DIR / "primitives-obb.pt")
    return model


def freeze_bn(model: nn.Module) -> None:
    """BatchNorm layers in eval mode (running statistics, no updates): the weights rebuilt from the ONNX file folded
    BatchNorm into the convolutions, so batch statistics would change the function being fine-tuned."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


def finetune(minutes: float, seed: int = 7, lr: float = 6e-4, bs: int = 12) -> TinyYolo:
    """Fine-tunes the shipped weights (.cache/primitives-obb.pt, see recover_from_onnx.py) on domain-randomized
    scenes for a budget of CPU-process minutes. The pool of rendered images grows as it trains (2 new per step);
    a checkpoint is written every 25 steps (.cache/primitives-obb-ft.pt) so a stopped run can still be exported."""
    seed_all(seed)
    setup_threads()
    model = TinyYolo(NC)
    model.load_state_dict(torch.load(CACHE_DIR / "primitives-obb.pt"))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    imgs, labels = [], []
    for _ in range(64):
        im, lab = make_sample(rng)
        imgs.append(im)
        labels.append(lab)
    t0, step = time.time(), 0
    budget = minutes * 60
    model.train()
    freeze_bn(model)
    while time.time() - t0 < budget:
        for _ in range(2):
            im, lab = make_sample(rng)
            imgs.append(im)
            labels.append(lab)
        frac = (time.time() - t0) / budget
        for g in opt.param_groups:  # warm-up then cosine decay over the time budget
            g["lr"] = lr * min(1.0, (step + 1) / 30) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        idx = nrng.integers(0, len(imgs), bs)
        batch, labs = [], []
        for i in idx:
            im, lab = imgs[i], labels[i]
            if nrng.random() < 0.5:
                im, lab = flip_h(im, lab)
            batch.append(to_chw(np.ascontiguousarray(im)))
            labs.append(lab)
        out, raw = model(torch.from_numpy(np.stack(batch)))
        loss, parts = obb_loss(out, raw, labs)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        step += 1
        if step % 25 == 0:
            torch.save(model.state_dict(), CACHE_DIR / "primitives-obb-ft.pt")
            cpu = time.process_time()
            print(f"[obb-ft] step {step} pool {len(imgs)} loss {loss.item():.3f} cls {parts[0]:.3f} box {parts[1]:.3f} ang {parts[2]:.3f}"
                  f" ({time.time() - t0:.0f}s wall, {cpu:.0f}s cpu)", flush=True)
    torch.save(model.state_dict(), CACHE_DIR / "primitives-obb-ft.pt")
    model.eval()
    return model


def export(model: TinyYolo) -> None:
    path = MODELS_DIR / "primitives-obb.onnx"
    model.eval()
    torch.onnx.export(model, torch.zeros(1, 3, IMGSZ, IMGSZ), str(path), opset_version=17, input_names=["images"], output_names=["output0"],
                      do_constant_folding=True)
    meta = base_metadata("Aperture primitives-obb: oriented boxes of cone, cube, cylinder, sphere, torus (synthetic-trained stand-in for a YOLO11n-obb export)", "obb",
                         version_of("primitives-obb"))
    meta.update({"stride": 32, "batch": 1, "imgsz": f"[{IMGSZ}, {IMGSZ}]", "names": py_repr_names(CLASSES), "channels": 3})
    set_metadata(path, meta)


def predict(model: TinyYolo, img, conf=0.25, iou=0.7):
    lb_img, p = letterbox(img, IMGSZ)
    with torch.no_grad():
        out = model(torch.from_numpy(to_chw(lb_img))[None])[0].numpy()
    return decode_obb(out, NC, conf=conf, iou=iou, lb=p)


def average_precision(tp: list, scores: list, npos: int) -> float:
    if npos == 0:
        return float("nan")
    order = np.argsort(-np.array(scores))
    tp_arr = np.array(tp, dtype=np.float64)[order]
    ctp, cfp = np.cumsum(tp_arr), np.cumsum(1 - tp_arr)
    rec = ctp / npos
    prec = ctp / np.maximum(ctp + cfp, 1e-9)
    mrec = np.concatenate([[0], rec, [1]])
    mpre = np.concatenate([[1], prec, [0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    i = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def angle_error(c: int, a: float, b: float) -> float | None:
    k = SYM.get(c, 2)
    if k == 0:
        return None
    period = 2 * math.pi / k
    d = abs(a - b) % period
    return math.degrees(min(d, period - d))


def pad_scene(img, gts: list[dict], frac: float = 0.5):
    """The image centred on a grey (114) canvas frac of its sides larger, ground truth moved with it: the scene shrinks
    in the model input as a client's padded upload does."""
    from PIL import Image
    w, h = img.size
    ox, oy = round(w * frac / 2), round(h * frac / 2)
    canvas = Image.new("RGB", (w + 2 * ox, h + 2 * oy), (114, 114, 114))
    canvas.paste(img, (ox, oy))
    out = []
    for g in gts:
        b = list(g["box"])
        b[0], b[1] = b[0] + ox, b[1] + oy
        out.append({**g, "box": b})
    return canvas, out


def evaluate(model: TinyYolo, n: int = 300, seed: int = 12345, render=render_scene, transform=None) -> dict:
    """mAP50 (rotated IoU) on n scenes drawn by render (synth_primitives.render_scene: in-family;
    synth_primitives_ood.render_scene_ood: out-of-family), optionally transformed (pad_scene)."""
    rng = random.Random(seed)
    per_cls = {c: {"tp": [], "scores": [], "npos": 0} for c in range(NC)}
    angle_errs = []
    for _ in range(n):
        w, h = rng.choice([(640, 480), (480, 640), (800, 450), (512, 512)])
        img, gts = render(sample_scene(rng), w, h, rng)
        if transform is not None:
            img, gts = transform(img, gts)
        dets = predict(model, img, conf=0.001)
        for g in gts:
            per_cls[g["class_id"]]["npos"] += 1
        matched = set()
        for d in sorted(dets, key=lambda d: -d["score"]):
            best, bi = 0.0, -1
            for gi, g in enumerate(gts):
                if gi in matched or g["class_id"] != d["class_id"]:
                    continue
                v = rotated_iou(tuple(d["box"]), tuple(g["box"]))
                if v > best:
                    best, bi = v, gi
            ok = best >= 0.5
            per_cls[d["class_id"]]["tp"].append(1 if ok else 0)
            per_cls[d["class_id"]]["scores"].append(d["score"])
            if ok:
                matched.add(bi)
                if d["score"] > 0.25:
                    e = angle_error(d["class_id"], d["box"][4], gts[bi]["box"][4])
                    if e is not None:
                        angle_errs.append(e)
    aps = {CLASSES[c]: average_precision(v["tp"], v["scores"], v["npos"]) for c, v in per_cls.items()}
    return {
        "eval_images": n,
        "eval_seed": seed,
        "mAP50": round(float(np.nanmean(list(aps.values()))), 4),
        "AP50_per_class": {k: round(v, 4) for k, v in aps.items()},
        "mean_angle_error_deg": round(float(np.mean(angle_errs)), 2) if angle_errs else None,
        "angle_error_note": "on matched boxes with score > 0.25; spheres skipped (no orientation), cubes modulo 90°, others modulo 180°",
    }


def robustness_metrics(model: TinyYolo, n: int = 200) -> dict:
    """Out-of-family mAP50 (synth_primitives_ood, never trained on) and in-family mAP50 with 50% grey padding."""
    from synth_primitives_ood import render_scene_ood
    ood = evaluate(model, n=n, seed=777001, render=render_scene_ood)
    pad = evaluate(model, n=n, seed=777002, transform=pad_scene)
    return {
        "ood_eval_images": n,
        "ood_eval_seed": 777001,
        "ood_generator": "synth_primitives_ood.py (other drawing code and looks; not used in training)",
        "ood_mAP50": ood["mAP50"],
        "ood_AP50_per_class": ood["AP50_per_class"],
        "ood_mean_angle_error_deg": ood["mean_angle_error_deg"],
        "padded_eval_images": n,
        "padded_eval_seed": 777002,
        "padded_note": "in-family scenes centred on a grey canvas 1.5x their width and height",
        "padded_mAP50": pad["mAP50"],
    }


if __name__ == "__main__":
    # train_obb.py: from scratch | --finetune MINUTES: from .cache/primitives-obb.pt | --eval-only: export + evaluate it
    if "--finetune" in sys.argv:
        m = finetune(float(sys.argv[sys.argv.index("--finetune") + 1]))
        torch.save(m.state_dict(), CACHE_DIR / "primitives-obb.pt")
    else:
        m = train() if "--eval-only" not in sys.argv else None
    if m is None:
        m = TinyYolo(NC)
        m.load_state_dict(torch.load(CACHE_DIR / "primitives-obb.pt"))
        m.eval()
    export(m)
    metrics = evaluate(m, n=60 if fast_mode() else 300)
    metrics.update(robustness_metrics(m, n=30 if fast_mode() else 200))
    print("[obb]", metrics, flush=True)
    update_eval("primitives-obb", metrics)
