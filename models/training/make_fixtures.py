"""Writes models/fixtures/: small images of every kind with ground truth, and golden outputs computed by the Python
reference post-processing (postprocess.py) on the trained models' outputs, for the TypeScript tests to match."""
from __future__ import annotations

import math
import random
import shutil
import sys

import numpy as np
import torch
from PIL import Image

from common import FIXTURES_DIR, letterbox, obb_corners, rle_encode, to_chw, write_json
from postprocess import decode_obb
from synth_fragments import CLASSES as FRAG_CLASSES, equivalent_diameter, render_fragments
from synth_primitives import CLASSES, SCENES, render_scene, sample_scene, scene_features
import amg_eval
import train_obb
import train_sam
import train_scene
import train_seg

SEED = 777


def _r(v, n=3):
    return round(float(v), n)


def primitives(obb_model, scene_model):
    rng = random.Random(SEED)
    out, golden = [], []
    sizes = [(800, 600), (600, 800), (1280, 720)]
    i = 0
    for scene in SCENES:
        for w, h in sizes:
            desc = sample_scene(rng, scene)
            img, gts = render_scene(desc, w, h, rng)
            name = f"primitives/{scene}-{i:02d}-{w}x{h}.jpg"
            path = FIXTURES_DIR / name
            path.parent.mkdir(parents=True, exist_ok=True)
            img.save(path, quality=92)
            out.append({"file": name, "width": w, "height": h, "scene": scene, "primitives": [
                {"class": g["cls"], "box": [_r(v, 2) for v in g["box"][:4]] + [_r(g["box"][4], 4)], "corners": [[_r(x, 2), _r(y, 2)] for x, y in g["corners"]]} for g in gts]})
            if i % 3 == 0:  # golden outputs for a few
                saved = Image.open(path).convert("RGB")
                dets = train_obb.predict(obb_model, saved)
                feats = scene_features([(d["class_id"], obb_corners(*d["box"])) for d in dets], w, h)
                with torch.no_grad():
                    probs = scene_model(torch.from_numpy(feats)[None])[0].numpy().tolist() if len(feats) else [0.25] * 4
                golden.append({"file": name, "conf": 0.25, "iou": 0.7, "detections": [
                    {"class": CLASSES[d["class_id"]], "class_id": d["class_id"], "score": _r(d["score"], 4), "box": [_r(v, 2) for v in d["box"][:4]] + [_r(d["box"][4], 4)],
                     "corners": [[_r(x, 2), _r(y, 2)] for x, y in obb_corners(*d["box"])]} for d in dets],
                    "scene_probs": {s: _r(p, 4) for s, p in zip(SCENES, probs)}, "scene": SCENES[int(np.argmax(probs))]})
            i += 1
    write_json(FIXTURES_DIR / "primitives/ground-truth.json", {"classes": CLASSES, "scenes": SCENES, "images": out})
    write_json(FIXTURES_DIR / "golden/primitives.json", {"model": "primitives-obb + scene-gru", "images": golden})
    # One 1920x1080 JPEG for benchmarks.
    desc = sample_scene(rng, "warehouse")
    img, _ = render_scene(desc, 1920, 1080, rng)
    img.save(FIXTURES_DIR / "bench-1920x1080.jpg", quality=90)


def fragments(seg_model):
    rng = random.Random(SEED + 1)
    out, golden = [], []
    real_radius, unit = 20.0, "mm"
    for i, (w, h) in enumerate([(640, 480), (480, 640), (800, 600), (640, 480), (1024, 768), (600, 800)]):
        s = render_fragments(rng, w, h)
        name = f"fragments/fragments-{i:02d}-{w}x{h}.png"
        path = FIXTURES_DIR / name
        path.parent.mkdir(parents=True, exist_ok=True)
        s["image"].save(path)
        frags = [m for m, c in zip(s["masks"], s["classes"]) if c == 0]
        d_px = sorted(equivalent_diameter(int(m.sum())) for m in frags)
        scale = real_radius / s["ball"]["r"]
        d_real = [d * scale for d in d_px]
        out.append({
            "file": name, "width": w, "height": h,
            "ball": {"cx": _r(s["ball"]["cx"], 2), "cy": _r(s["ball"]["cy"], 2), "radius_px": _r(s["ball"]["r"], 3)},
            "real_radius": real_radius, "unit": unit,
            "fragments": [{"mask": rle_encode(m), "area_px": int(m.sum()), "diameter_px": _r(equivalent_diameter(int(m.sum())), 3)} for m in frags],
            "ball_mask": rle_encode(s["masks"][-1]),
            "true_diameters_real": [_r(d, 3) for d in d_real],
            "true_D10": _r(np.percentile(d_real, 10), 3), "true_D50": _r(np.percentile(d_real, 50), 3), "true_D90": _r(np.percentile(d_real, 90), 3),
        })
        if i < 3:
            dets = train_seg.predict(seg_model, Image.open(path).convert("RGB"))
            golden.append({"file": name, "conf": 0.25, "iou": 0.7, "detections": [
                {"class": FRAG_CLASSES[d["class_id"]], "class_id": d["class_id"], "score": _r(d["score"], 4), "box_xyxy": [_r(v, 2) for v in d["box"]],
                 "mask": rle_encode(d["mask"]), "area_px": int(d["mask"].sum())} for d in dets]})
    write_json(FIXTURES_DIR / "fragments/ground-truth.json", {"classes": FRAG_CLASSES, "percentile_method": "numpy linear", "images": out})
    write_json(FIXTURES_DIR / "golden/fragments.json", {"model": "fragments-seg", "images": golden})


def sam(enc, dec):
    rng = random.Random(SEED + 2)
    out, golden = [], []
    for i, (w, h) in enumerate([(640, 480), (480, 640), (800, 450), (500, 500), (1024, 600), (600, 900)]):
        img, masks = train_sam.render_shapes(rng, w, h)
        name = f"sam/shapes-{i:02d}-{w}x{h}.png"
        path = FIXTURES_DIR / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(path)
        shapes = []
        for m in masks:
            px, py = train_sam.interior_point(rng, m)
            shapes.append({"mask": rle_encode(m), "point": [_r(px, 1), _r(py, 1)], "box": [_r(v, 1) for v in train_sam.bbox(m)]})
        out.append({"file": name, "width": w, "height": h, "shapes": shapes})
        if i < 3:
            saved = np.asarray(Image.open(path).convert("RGB"))
            sh = shapes[0]
            ms, iou = train_sam.segment(enc, dec, saved, [tuple(sh["point"])], [1])
            pm = train_sam.pick(ms, iou, True)
            bs, biou = train_sam.segment(enc, dec, saved, [], [], tuple(sh["box"]))
            bm = train_sam.pick(bs, biou, False)
            golden.append({"file": name, "shape": 0, "point": {"point": sh["point"], "iou_predictions": [_r(v, 4) for v in iou], "chosen": 1 + int(np.argmax(iou[1:])), "mask": rle_encode(pm)},
                           "box": {"box": sh["box"], "iou_predictions": [_r(v, 4) for v in biou], "chosen": 0, "mask": rle_encode(bm)}})
    write_json(FIXTURES_DIR / "sam/ground-truth.json", {"images": out})
    # The first images of the automatic masks' held-out set (amg_eval.py), for the TypeScript test of its thresholds.
    held = []
    for i, (img, masks) in enumerate(amg_eval.held_out(6)):
        h, w = img.shape[:2]
        name = f"sam-heldout/shapes-{i:02d}-{w}x{h}.png"
        (FIXTURES_DIR / "sam-heldout").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(FIXTURES_DIR / name)
        held.append({"file": name, "width": w, "height": h, "shapes": [{"mask": rle_encode(m)} for m in masks]})
    write_json(FIXTURES_DIR / "sam-heldout/ground-truth.json", {"seed": amg_eval.HELD_OUT_SEED, "images": held})
    write_json(FIXTURES_DIR / "golden/sam.json", {"model": "sam-tiny", "selection_rule": "single point: best of 1-3 by iou_predictions; box: 0", "images": golden})


def xray():
    rng = random.Random(SEED + 3)
    (FIXTURES_DIR / "xray").mkdir(parents=True, exist_ok=True)
    for i, (w, h) in enumerate([(640, 480), (480, 640)]):
        img, _ = render_scene(sample_scene(rng, "livingroom"), w, h, rng)
        img.save(FIXTURES_DIR / f"xray/input-{i:02d}-{w}x{h}.jpg", quality=90)


def main():
    if sys.argv[1:] == ["sam"]:  # only sam-tiny's golden outputs (its images and ground truth come out the same)
        sam(*train_sam.load())
        print("[fixtures] sam written", flush=True)
        return
    if sys.argv[1:] == ["primitives"]:  # only the detector's and scene classifier's fixtures and golden outputs
        obb = train_obb.TinyYolo(train_obb.NC)
        obb.load_state_dict(torch.load(train_obb.CACHE_DIR / "primitives-obb.pt"))
        scene = train_scene.SceneGRU()
        scene.load_state_dict(torch.load(train_scene.CACHE_DIR / "scene-gru.pt"))
        primitives(obb.eval(), scene.eval())
        print("[fixtures] primitives written", flush=True)
        return
    if sys.argv[1:] == ["fragments"]:  # only the fragment images, ground truth and golden outputs
        fragments(train_seg.load())
        print("[fixtures] fragments written", flush=True)
        return
    if FIXTURES_DIR.exists():
        shutil.rmtree(FIXTURES_DIR)
    FIXTURES_DIR.mkdir(parents=True)
    obb = train_obb.TinyYolo(train_obb.NC)
    obb.load_state_dict(torch.load(train_obb.CACHE_DIR / "primitives-obb.pt"))
    obb.eval()
    scene = train_scene.SceneGRU()
    scene.load_state_dict(torch.load(train_scene.CACHE_DIR / "scene-gru.pt"))
    scene.eval()
    primitives(obb, scene)
    fragments(train_seg.load())
    sam(*train_sam.load())
    xray()
    (FIXTURES_DIR / "README.md").write_text(README)
    print("[fixtures] written", flush=True)


README = """# Model fixtures

Made by `models/training/make_fixtures.py` (seeded; regenerate with `models/training/train_all.sh`, or alone with
`cd models/training && /usr/bin/python3 make_fixtures.py` once the models are trained). Coordinates are in original
image pixels; masks are COCO uncompressed RLE (`{size: [h, w], counts}`, column-major, first count = zeros).

| path | what |
| --- | --- |
| `primitives/*.jpg`, `primitives/ground-truth.json` | 12 scenes (3 per scene type, 800x600, 600x800, 1280x720): scene label; per primitive its class, oriented box `[cx, cy, w, h, theta]` (w >= h, theta in [0, pi)) and 4 corners |
| `bench-1920x1080.jpg` | a warehouse scene at 1920x1080 for `npm run bench` |
| `fragments/*.png`, `fragments/ground-truth.json` | 6 fragment images: per fragment its mask, area and equivalent diameter D = sqrt(4A/pi) in px; the ball's centre and true radius in px and its mask; `real_radius` 20 mm, the true diameters in mm and true D10/D50/D90 (numpy linear percentiles) |
| `sam/*.png`, `sam/ground-truth.json` | 6 images of flat and textured shapes: per shape its visible mask, an interior click point and its box |
| `sam/sam-tiny-decoder-single.onnx` | sam-tiny's decoder exported as the official single-prompt graph (batch 1), for the tests of that path |
| `sam-heldout/*.png`, `sam-heldout/ground-truth.json` | the first 6 images of sam-tiny's held-out automatic-mask set (seed 4321): per shape its visible mask |
| `xray/*.jpg` | inputs for the X-ray effect |
| `golden/primitives.json` | for 4 scenes: detections after the reference OBB post-processing (conf 0.25, iou 0.7; ProbIoU Fast-NMS, regularized, original pixels) and the scene probabilities from the classifier fed with those detections |
| `golden/fragments.json` | for 3 images: the reference segment post-processing (conf 0.25, iou 0.7): class, score, box, mask, area |
| `golden/sam.json` | for 3 images: the decoder's masks for shape 0 clicked at its point (best of masks 1-3 by predicted IoU) and boxed (mask 0) |

Golden values come from the PyTorch modules whose weights were exported (`models/training/*.py`); the ONNX files give
the same outputs within float tolerance. Compare with tolerances (box corners within about 1-2 px, mask IoU >= 0.95):
sharp and PIL resize slightly differently.
"""

if __name__ == "__main__":
    main()
