"""Writes models/manifest.json from the exported files: contracts, inputs/outputs read from the ONNX graphs,
metadata_props, sha256, sizes, and the metrics of eval.json."""
from __future__ import annotations

import json

import onnx

from common import MODELS_DIR, sha256, version_of, write_json

ELEM = {1: "float32", 7: "int64", 6: "int32", 9: "bool", 10: "float16"}

MODELS = [
    {"name": "primitives-obb", "kind": "detector", "task": "obb", "contract": "ultralytics-obb", "input_size": [320, 320],
     "labels": ["cone", "cube", "cylinder", "sphere", "torus"], "files": [("model", "primitives-obb.onnx")],
     "description": "Oriented boxes of the primitives cone, cube, cylinder, sphere and torus (scene prediction). YOLO OBB layout [1, 4+nc+1, N].",
     "preprocess": {"method": "letterbox", "size": 320, "pad_value": 114, "scale": "1/255", "channels": "RGB", "layout": "NCHW"}},
    {"name": "scene-gru", "kind": "classifier", "task": "classify", "contract": "sequence-classifier", "input_size": None,
     "labels": ["office", "livingroom", "warehouse", "greenhouse"], "files": [("model", "scene-gru.onnx")],
     "description": "Scene class from the detected primitives (scene prediction): rows of class one-hot (5) + 4 corners normalized by image width/height (8); softmaxed output.",
     "preprocess": {"method": "primitive-rows", "row": "one_hot(cone, cube, cylinder, sphere, torus) + x1/W, y1/H, ..., x4/W, y4/H"}},
    {"name": "fragments-seg", "kind": "segmenter", "task": "segment", "contract": "ultralytics-segment", "input_size": [320, 320],
     "labels": ["fragment", "calibration_ball"], "files": [("model", "fragments-seg.onnx")],
     "description": "Instance masks of rock fragments and the red calibration ball (fragment sizing). YOLO segment layout: boxes + 32 mask coefficients, prototypes at imgsz/4.",
     "preprocess": {"method": "letterbox", "size": 320, "pad_value": 114, "scale": "1/255", "channels": "RGB", "layout": "NCHW"}},
    {"name": "sam-tiny", "kind": "sam", "task": "sam", "contract": "segment-anything", "input_size": [1024, 1024], "labels": None,
     "files": [("encoder", "sam-tiny-encoder.onnx"), ("decoder", "sam-tiny-decoder.onnx")],
     "description": "Promptable segmentation in the Segment Anything ONNX format (segmentation): image encoder + prompt decoder with the official input/output names.",
     "preprocess": {"method": "sam-resize-longest-side", "size": 1024, "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375], "pad": "zeros bottom/right after normalizing"}},
    {"name": "xray", "kind": "image-to-image", "task": "xray", "contract": "image-to-image", "input_size": None,
     "labels": ["classic", "negative", "cyan-glow"], "files": [("model", "xray.onnx")],
     "description": "The booth's X-ray effect (booth): RGB 0..1 in, three styled RGB 0..1 images of the same size out ([3,3,H,W]).",
     "preprocess": {"method": "rgb-unit", "scale": "1/255", "channels": "RGB", "layout": "NCHW"}},
]


def io(values, initializers):
    out = []
    for v in values:
        if v.name in initializers:
            continue
        t = v.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
        out.append({"name": v.name, "dtype": ELEM.get(t.elem_type, str(t.elem_type)), "shape": shape})
    return out


def main():
    evals = json.loads((MODELS_DIR / "eval.json").read_text())
    models = []
    total = 0
    for spec in MODELS:
        files = []
        for role, rel in spec["files"]:
            p = MODELS_DIR / rel
            m = onnx.load(str(p))
            inits = {i.name for i in m.graph.initializer}
            size = p.stat().st_size
            total += size
            files.append({"role": role, "path": rel, "sha256": sha256(p), "size_bytes": size,
                          "inputs": io(m.graph.input, inits), "outputs": io(m.graph.output, set()),
                          "metadata": {e.key: e.value for e in m.metadata_props}})
        entry = {k: spec[k] for k in ("name", "kind", "task", "contract")}
        entry.update({"version": version_of(spec["name"]), "description": spec["description"], "input_size": spec["input_size"], "labels": spec["labels"],
                      "size_mb": round(sum(f["size_bytes"] for f in files) / 1e6, 3), "files": files, "preprocess": spec["preprocess"],
                      "metrics": evals.get(spec["name"], {})})
        models.append(entry)
    write_json(MODELS_DIR / "manifest.json", {"version": 1, "total_size_bytes": total, "models": models})
    print(f"[manifest] {len(models)} models, {total / 1e6:.2f} MB", flush=True)


if __name__ == "__main__":
    main()
