"""scene-gru: classifies a scene (office, livingroom, warehouse, greenhouse) from its detected primitives, as the prediction task
did. Input `primitives` [1, T, 13] (T = number of primitives, dynamic): one-hot class (5) + the 4 corners normalized
to [0,1] by the image width and height (8). Output `probs` [1, 4], softmaxed. A bidirectional GRU, mean-pooled over the
sequence, so the order of the detections does not matter much."""
from __future__ import annotations

import math
import random
import sys

import numpy as np
import torch
import torch.nn as nn

from common import CACHE_DIR, MODELS_DIR, base_metadata, fast_mode, obb_corners, py_repr_names, seed_all, set_metadata, setup_threads, update_eval
from synth_primitives import CLASSES, SCENES, primitive_box, sample_scene, scene_features

FEATURES = len(CLASSES) + 8


class SceneGRU(nn.Module):
    def __init__(self, hidden: int = 48):
        super().__init__()
        self.inp = nn.Sequential(nn.Linear(FEATURES, hidden), nn.ReLU())
        self.gru = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, len(SCENES)))

    def logits(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            h, _ = self.gru(self.inp(x))
            pooled = h.mean(1)
        else:
            # Padded batches go through the GRU packed, so the backward direction never sees the padding rows.
            lengths = mask.sum(1).to(torch.int64)
            packed = nn.utils.rnn.pack_padded_sequence(self.inp(x), lengths, batch_first=True, enforce_sorted=False)
            h, _ = nn.utils.rnn.pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=x.shape[1])
            pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return self.out(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), -1)


def scene_rows(rng: random.Random, desc: dict, noise: bool) -> np.ndarray:
    """Features of a scene's primitives, as the detector would report them (with noise: jitter, misses, confusions)."""
    w, h = rng.choice([(640, 480), (480, 640), (800, 450)])
    prims = []
    short = min(w, h)
    for p in desc["primitives"]:
        if noise and rng.random() < 0.05:
            continue
        cls = CLASSES.index(p["cls"])
        if noise and rng.random() < 0.03:
            cls = rng.randrange(len(CLASSES))
        size = p["size"] * short * (rng.uniform(0.9, 1.1) if noise else 1)
        cx, cy = p["x"] * w + (rng.gauss(0, 2) if noise else 0), p["y"] * h + (rng.gauss(0, 2) if noise else 0)
        corners = obb_corners(*primitive_box(p["cls"], cx, cy, size, p["angle"]))
        if noise:
            # Which corner comes first depends on the detector's angle regularization (a near-square box may come
            # out with w and h swapped, i.e. its corners shifted by one): the classifier must not care.
            k = rng.randrange(4)
            corners = corners[k:] + corners[:k]
        prims.append((cls, corners))
    rng.shuffle(prims)
    return scene_features(prims, w, h)


def batch(rng: random.Random, n: int, noise: bool):
    rows, ys = [], []
    for _ in range(n):
        d = sample_scene(rng)
        r = scene_rows(rng, d, noise)
        if len(r) == 0:
            continue
        rows.append(r)
        ys.append(SCENES.index(d["scene"]))
    T = max(len(r) for r in rows)
    x = np.zeros((len(rows), T, FEATURES), dtype=np.float32)
    m = np.zeros((len(rows), T), dtype=np.float32)
    for i, r in enumerate(rows):
        x[i, :len(r)] = r
        m[i, :len(r)] = 1
    return torch.from_numpy(x), torch.from_numpy(m), torch.tensor(ys)


def train() -> SceneGRU:
    seed_all(0)
    setup_threads()
    rng = random.Random(2)
    model = SceneGRU()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = 100 if fast_mode() else 3000
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for step in range(steps):
        x, m, y = batch(rng, 64, noise=True)
        loss = nn.functional.cross_entropy(model.logits(x, m), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0:
            print(f"[scene] step {step} loss {loss.item():.3f}", flush=True)
    model.eval()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), CACHE_DIR / "scene-gru.pt")
    return model


def export(model: SceneGRU) -> None:
    path = MODELS_DIR / "scene-gru.onnx"
    torch.onnx.export(model, torch.zeros(1, 3, FEATURES), str(path), opset_version=17, input_names=["primitives"], output_names=["probs"],
                      dynamic_axes={"primitives": {1: "num_primitives"}})
    meta = base_metadata("Aperture scene-gru: scene class from detected primitives (class one-hot + normalized corners)", "classify")
    meta.update({"names": py_repr_names(SCENES), "input_classes": py_repr_names(CLASSES), "features": "one_hot(5) + corners x1,y1..x4,y4 / (W,H)"})
    set_metadata(path, meta)


def evaluate(model: SceneGRU, n: int = 2000, seed: int = 12345) -> dict:
    rng = random.Random(seed)
    correct = 0
    with torch.no_grad():
        for _ in range(n):
            d = sample_scene(rng)
            r = scene_rows(rng, d, noise=False)
            p = model(torch.from_numpy(r)[None])[0]
            correct += int(int(p.argmax()) == SCENES.index(d["scene"]))
    return {"eval_scenes": n, "eval_seed": seed, "accuracy_ground_truth_primitives": round(correct / n, 4)}


if __name__ == "__main__":
    m = train() if "--eval-only" not in sys.argv else None
    if m is None:
        m = SceneGRU()
        m.load_state_dict(torch.load(CACHE_DIR / "scene-gru.pt"))
        m.eval()
    export(m)
    metrics = evaluate(m, n=300 if fast_mode() else 2000)
    print("[scene]", metrics, flush=True)
    update_eval("scene-gru", metrics)
