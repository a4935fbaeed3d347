"""Reference post-processing in numpy, following docs/model-formats.md (Ultralytics semantics).
It is the independent implementation the TypeScript pipelines are checked against (golden files)."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


# ---------------------------------------------------------------- OBB: [1, 4+nc+1, N]

def probiou_matrix(b: np.ndarray) -> np.ndarray:
    """Pairwise ProbIoU of oriented boxes (N,5) cx,cy,w,h,theta (Ultralytics batch_probiou)."""
    eps = 1e-7
    x, y = b[:, 0:1], b[:, 1:2]
    a_ = b[:, 2:3] ** 2 / 12
    b_ = b[:, 3:4] ** 2 / 12
    c, s = np.cos(b[:, 4:5]), np.sin(b[:, 4:5])
    A = a_ * c**2 + b_ * s**2
    B = a_ * s**2 + b_ * c**2
    C = (a_ - b_) * c * s
    x1, y1, A1, B1, C1 = x, y, A, B, C
    x2, y2, A2, B2, C2 = x.T, y.T, A.T, B.T, C.T
    t1 = (((A1 + A2) * (y1 - y2) ** 2 + (B1 + B2) * (x1 - x2) ** 2) / ((A1 + A2) * (B1 + B2) - (C1 + C2) ** 2 + eps)) * 0.25
    t2 = (((C1 + C2) * (x2 - x1) * (y1 - y2)) / ((A1 + A2) * (B1 + B2) - (C1 + C2) ** 2 + eps)) * 0.5
    t3 = np.log(((A1 + A2) * (B1 + B2) - (C1 + C2) ** 2) / (4 * np.sqrt(np.clip(A1 * B1 - C1**2, 0, None) * np.clip(A2 * B2 - C2**2, 0, None)) + eps) + eps) * 0.5
    bd = np.clip(t1 + t2 + t3, eps, 100.0)
    hd = np.sqrt(1.0 - np.exp(-bd) + eps)
    return 1 - hd


def decode_obb(out: np.ndarray, nc: int, conf: float = 0.25, iou: float = 0.7, max_det: int = 300, lb: dict | None = None,
               img_w: int | None = None, img_h: int | None = None) -> list[dict]:
    """out: (4+nc+1, N). Returns detections in original pixels (regularized, theta in [0, pi))."""
    scores_all = out[4:4 + nc]
    cls = scores_all.argmax(0)
    scores = scores_all.max(0)
    keep = scores > conf
    if not keep.any():
        return []
    boxes = np.concatenate([out[0:4, keep].T, out[4 + nc:4 + nc + 1, keep].T], 1).astype(np.float64)
    scores, cls = scores[keep], cls[keep]
    order = np.argsort(-scores, kind="stable")[:30000]
    boxes, scores, cls = boxes[order], scores[order], cls[order]
    # Rotated Fast-NMS with the class offset on cx, cy only.
    off = boxes.copy()
    off[:, 0:2] += cls[:, None] * 7680.0
    m = np.triu(probiou_matrix(off), 1)
    keep_idx = np.nonzero(m.max(0) < iou)[0][:max_det]
    dets = []
    for i in keep_idx:
        cx, cy, w, h, t = boxes[i]
        if w < h:
            w, h, t = h, w, t + math.pi / 2
        t = t % math.pi
        if lb is not None:
            cx = (cx - lb["pad_x"]) / lb["gain"]
            cy = (cy - lb["pad_y"]) / lb["gain"]
            w, h = w / lb["gain"], h / lb["gain"]
        dets.append({"class_id": int(cls[i]), "score": float(scores[i]), "box": [float(cx), float(cy), float(w), float(h), float(t)]})
    return dets


# ---------------------------------------------------------------- detect boxes (axis-aligned) NMS

def nms_xyxy(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        if order.size == 1:
            break
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        a = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
        b = (boxes[rest, 2] - boxes[rest, 0]) * (boxes[rest, 3] - boxes[rest, 1])
        ov = inter / (a + b - inter + 1e-9)
        order = rest[ov <= iou]
    return keep


# ---------------------------------------------------------------- segment: output0 [1,4+nc+32,N], output1 [1,32,mh,mw]

def decode_segment(out0: np.ndarray, protos: np.ndarray, nc: int, lb: dict, img_w: int, img_h: int, size: int,
                   conf: float = 0.25, iou: float = 0.7, max_det: int = 300) -> list[dict]:
    """Ultralytics process_mask path: logits = coeffs @ protos, crop to the box at proto scale, bilinear upsample
    to the letterboxed input, binarize > 0, then un-pad and resize to the original frame, cropped to the box."""
    scores_all = out0[4:4 + nc]
    cls = scores_all.argmax(0)
    scores = scores_all.max(0)
    keep = scores > conf
    if not keep.any():
        return []
    xywh = out0[0:4, keep].T.astype(np.float64)
    coeffs = out0[4 + nc:, keep].T
    scores, cls = scores[keep], cls[keep]
    xyxy = np.stack([xywh[:, 0] - xywh[:, 2] / 2, xywh[:, 1] - xywh[:, 3] / 2, xywh[:, 0] + xywh[:, 2] / 2, xywh[:, 1] + xywh[:, 3] / 2], 1)
    order = np.argsort(-scores, kind="stable")[:30000]
    xyxy, scores, cls, coeffs = xyxy[order], scores[order], cls[order], coeffs[order]
    keep_idx = nms_xyxy(xyxy + cls[:, None] * 7680.0, scores, iou)[:max_det]
    c, mh, mw = protos.shape
    dets = []
    top, left = int(lb["pad_y"]), int(lb["pad_x"])
    for i in keep_idx:
        logits = (coeffs[i] @ protos.reshape(c, -1)).reshape(mh, mw)
        x1, y1, x2, y2 = xyxy[i]
        sx, sy = mw / size, mh / size
        r = np.arange(mw)[None, :]
        cc = np.arange(mh)[:, None]
        inside = (r >= x1 * sx) & (r < x2 * sx) & (cc >= y1 * sy) & (cc < y2 * sy)
        logits = logits * inside
        up = F.interpolate(torch.from_numpy(logits[None, None].astype(np.float32)), size=(size, size), mode="bilinear", align_corners=False)[0, 0]
        crop = up[top:top + lb["new_h"], left:left + lb["new_w"]]
        full = F.interpolate(crop[None, None], size=(img_h, img_w), mode="bilinear", align_corners=False)[0, 0].numpy()
        bx = [(x1 - left) / lb["gain"], (y1 - top) / lb["gain"], (x2 - left) / lb["gain"], (y2 - top) / lb["gain"]]
        bx = [min(max(bx[0], 0), img_w), min(max(bx[1], 0), img_h), min(max(bx[2], 0), img_w), min(max(bx[3], 0), img_h)]
        # Bilinear upsampling carries positive logits up to a prototype pixel past the box (several original pixels
        # on a large image); crop to the box in the original frame, as Ultralytics' retina_masks path does.
        # (crop_mask's rule: pixel index r kept when x1 <= r < x2.)
        xs = np.arange(img_w)[None, :]
        ys = np.arange(img_h)[:, None]
        mask = (full > 0) & (xs >= bx[0]) & (xs < bx[2]) & (ys >= bx[1]) & (ys < bx[3])
        dets.append({"class_id": int(cls[i]), "score": float(scores[i]), "box": [float(v) for v in bx], "mask": mask})
    return dets


# ---------------------------------------------------------------- SAM prompts

def sam_resize_params(w: int, h: int, target: int = 1024) -> tuple[int, int, float]:
    s = target / max(h, w)
    return int(w * s + 0.5), int(h * s + 0.5), s


def sam_prompt(points: list[tuple[float, float]], labels: list[int], box: tuple | None, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """point_coords [1,N,2] in the 1024 frame and point_labels [1,N], with a (0,0)/-1 padding point when no box."""
    nw, nh, _ = sam_resize_params(w, h)
    coords = [[x * nw / w, y * nh / h] for x, y in points]
    labs = list(labels)
    if box is not None:
        coords += [[box[0] * nw / w, box[1] * nh / h], [box[2] * nw / w, box[3] * nh / h]]
        labs += [2, 3]
    else:
        coords.append([0.0, 0.0])
        labs.append(-1)
    return np.array([coords], dtype=np.float32), np.array([labs], dtype=np.float32)


def sam_encoder_input(rgb: np.ndarray) -> np.ndarray:
    """ResizeLongestSide(1024) (bilinear), normalize on 0-255, then zero-pad bottom/right."""
    from PIL import Image
    h, w = rgb.shape[:2]
    nw, nh, _ = sam_resize_params(w, h)
    img = np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.BILINEAR), dtype=np.float32)
    mean = np.array([123.675, 116.28, 103.53], dtype=np.float32)
    std = np.array([58.395, 57.12, 57.375], dtype=np.float32)
    img = (img - mean) / std
    out = np.zeros((1024, 1024, 3), dtype=np.float32)
    out[:nh, :nw] = img
    return out.transpose(2, 0, 1)[None].copy()
