"""Evaluation of fragments-seg the way the server sizes fragments: D50 of the detections' equivalent diameters,
calibrated by the ball radius measured on red pixels (a port of libs/analysis/src/fragments.ts measureBall /
analyzeFragments), against the D50 of the true masks with the true ball radius. Used for the in-family set
(synth_fragments.render_fragments) and the out-of-family set (synth_fragments_ood)."""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from common import mask_iou
from synth_fragments import equivalent_diameter as eq_diameter

BOX_GROWTH, MIN_RED_PIXELS, MIN_FILL = 0.2, 20, 0.7


def is_red(rgb: np.ndarray) -> np.ndarray:
    """fragments.ts isRedPixel: max = R, chroma >= 0.7 R, R >= 40, |G - B| * 60 <= chroma * 20."""
    r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))
    chroma = r - np.minimum(g, b)
    return (r >= g) & (r >= b) & (r >= 40) & (chroma >= 0.7 * r) & (chroma > 0) & (np.abs(g - b) * 60 <= chroma * 20)


def measure_ball(rgb: np.ndarray, box: list[float], mask: np.ndarray) -> float | None:
    """Radius in pixels of the calibration ball (red-pixel region, else the mask's equivalent radius)."""
    H, W = mask.shape
    area = int(mask.sum())
    x1, y1, x2, y2 = box
    gx, gy = BOX_GROWTH * max(0.0, x2 - x1), BOX_GROWTH * max(0.0, y2 - y1)
    X0, Y0 = max(0, math.floor(x1 - gx)), max(0, math.floor(y1 - gy))
    X1, Y1 = min(W, math.ceil(x2 + gx)), min(H, math.ceil(y2 + gy))
    if X0 < X1 and Y0 < Y1:
        win = mask[Y0:Y1, X0:X1]
        k = max(2, math.ceil(0.15 * math.sqrt(area / math.pi)))
        allowed = ndimage.maximum_filter(win.astype(np.uint8), size=2 * k + 1, mode="constant") > 0
        ys, xs = np.mgrid[Y0:Y1, X0:X1]
        inbox = (ys >= math.floor(y1)) & (ys < math.ceil(y2)) & (xs >= math.floor(x1)) & (xs < math.ceil(x2))
        fg = is_red(rgb[Y0:Y1, X0:X1]) & (allowed | inbox)
        lab, n = ndimage.label(fg, structure=np.ones((3, 3)))
        if n:
            sizes = ndimage.sum(fg, lab, range(1, n + 1))
            region = ndimage.binary_fill_holes(lab == (int(np.argmax(sizes)) + 1))
            cnt = int(region.sum())
            ry, rx = np.nonzero(region)
            cy, cx = ry.mean(), rx.mean()
            enc = math.sqrt(float(((rx - cx) ** 2 + (ry - cy) ** 2).max())) + 0.5
            fill = cnt / (math.pi * enc * enc)
            if cnt >= MIN_RED_PIXELS and fill >= MIN_FILL and (area == 0 or 0.5 * area <= cnt <= 2 * area):
                return math.sqrt(cnt / math.pi)
    return math.sqrt(area / math.pi) if area > 0 else None


def server_d50(rgb: np.ndarray, dets: list[dict], real_radius: float = 20.0) -> float | None:
    """analyzeFragments' D50: the highest-scored ball calibrates, every other detection is a fragment."""
    balls = sorted([d for d in dets if d["class_id"] == 1], key=lambda d: -d["score"])
    frags = [d for d in dets if d["class_id"] != 1]
    if not balls or not frags:
        return None
    r = measure_ball(rgb, balls[0]["box"], balls[0]["mask"])
    if not r:
        return None
    return float(np.percentile([eq_diameter(int(d["mask"].sum())) for d in frags], 50)) * real_radius / r


def true_d50(sample: dict, real_radius: float = 20.0) -> float:
    areas = [int(m.sum()) for m, c in zip(sample["masks"], sample["classes"]) if c == 0]
    return float(np.percentile([eq_diameter(a) for a in areas], 50)) * real_radius / sample["ball"]["r"]


def match(sample: dict, dets: list[dict]) -> tuple[list[float], int, int]:
    """Greedy per ground-truth fragment: IoUs of the matched (>= 0.5), the number of true fragments, of fragment detections."""
    frag_dets = [d for d in dets if d["class_id"] == 0]
    used: set[int] = set()
    ious = []
    gts = [m for m, c in zip(sample["masks"], sample["classes"]) if c == 0]
    for m in gts:
        ys, xs = np.nonzero(m)
        best, bi = 0.0, -1
        for j, d in enumerate(frag_dets):
            if j in used:
                continue
            bx = d["box"]
            if bx[0] > xs.max() + 1 or bx[2] < xs.min() or bx[1] > ys.max() + 1 or bx[3] < ys.min():
                continue
            v = mask_iou(m, d["mask"])
            if v > best:
                best, bi = v, j
        if best >= 0.5:
            used.add(bi)
            ious.append(best)
    return ious, len(gts), len(frag_dets)


def evaluate_set(predict, samples: list[dict], real_radius: float = 20.0) -> dict:
    """Recall / precision at IoU 0.5, mask mIoU of the matched, ball found, and the signed D50 error per image (%)."""
    all_ious, gt_n, det_n, d50_err, ball_found = [], 0, 0, [], 0
    for s in samples:
        dets = predict(s["image"])
        ious, g, d = match(s, dets)
        all_ious += ious
        gt_n += g
        det_n += d
        ball = s["masks"][-1]
        if any(x["class_id"] == 1 and mask_iou(ball, x["mask"]) >= 0.5 for x in dets):
            ball_found += 1
        got = server_d50(np.asarray(s["image"].convert("RGB")), dets, real_radius)
        want = true_d50(s, real_radius)
        d50_err.append(round(100 * (got - want) / want, 2) if got is not None else None)
    finite = [abs(e) for e in d50_err if e is not None]
    return {
        "images": len(samples),
        "fragment_recall_iou50": round(len(all_ious) / max(gt_n, 1), 4),
        "fragment_precision_iou50": round(len(all_ious) / max(det_n, 1), 4),
        "fragment_mask_mIoU_matched": round(float(np.mean(all_ious)), 4) if all_ious else 0.0,
        "fragment_mask_mIoU_all_gt": round(float(np.sum(all_ious)) / max(gt_n, 1), 4),
        "ball_found_rate": round(ball_found / max(len(samples), 1), 4),
        "d50_error_pct_per_image": d50_err,
        "d50_max_abs_error_pct": round(max(finite), 2) if len(finite) == len(d50_err) and finite else None,
    }
