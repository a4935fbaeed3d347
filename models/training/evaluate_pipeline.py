"""Scene accuracy of the whole seed-001 pipeline: the detector's primitives fed to the scene classifier, on in-family
scenes (synth_primitives) and on out-of-family ones (synth_primitives_ood)."""
from __future__ import annotations

import random

import numpy as np
import torch

from common import CACHE_DIR, fast_mode, obb_corners, update_eval
from synth_primitives import SCENES, render_scene, sample_scene, scene_features
from synth_primitives_ood import render_scene_ood
import train_obb
import train_scene

OOD_SEED = 777003


def accuracy(obb, scene, n: int, seed: int, render=render_scene) -> float:
    """Share of n scenes (drawn by render) whose detected primitives the scene classifier assigns their scene."""
    rng = random.Random(seed)
    correct = 0
    for _ in range(n):
        w, h = rng.choice([(640, 480), (480, 640), (800, 450)])
        desc = sample_scene(rng)
        img, _ = render(desc, w, h, rng)
        dets = train_obb.predict(obb, img)
        feats = scene_features([(d["class_id"], obb_corners(*d["box"])) for d in dets], w, h)
        if len(feats) == 0:
            continue
        with torch.no_grad():
            p = scene(torch.from_numpy(feats)[None])[0].numpy()
        correct += int(int(np.argmax(p)) == SCENES.index(desc["scene"]))
    return correct / n


def main(n: int = 200, seed: int = 4242) -> None:
    obb = train_obb.TinyYolo(train_obb.NC)
    obb.load_state_dict(torch.load(CACHE_DIR / "primitives-obb.pt"))
    obb.eval()
    scene = train_scene.SceneGRU()
    scene.load_state_dict(torch.load(CACHE_DIR / "scene-gru.pt"))
    scene.eval()
    acc = accuracy(obb, scene, n, seed)
    ood_acc = accuracy(obb, scene, n, OOD_SEED, render=render_scene_ood)
    import json
    from common import MODELS_DIR
    data = json.loads((MODELS_DIR / "eval.json").read_text())
    metrics = data.get("scene-gru", {})
    metrics.update({"accuracy_detector_primitives": round(acc, 4), "pipeline_eval_scenes": n, "pipeline_eval_seed": seed,
                    "ood_accuracy_detector_primitives": round(ood_acc, 4), "ood_pipeline_eval_scenes": n, "ood_pipeline_eval_seed": OOD_SEED,
                    "ood_generator": "synth_primitives_ood.py (other drawing code and looks; not used in training)"})
    update_eval("scene-gru", metrics)
    print("[pipeline]", metrics, flush=True)


if __name__ == "__main__":
    main(n=30 if fast_mode() else 200)
