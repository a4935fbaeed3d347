"""Small bring-your-own-model variants for the model repository's tests (test/fixtures/models/).

Built from the shipped networks' code (train_obb.TinyYolo: its conv/Block layers and forward), narrowed so the files
stay small, with random weights (the tests check installation and that a job runs end to end, not accuracy):
- yolo-detect-416.onnx: the plain Ultralytics detect layout, 3 classes at 416: output0 [1, 4+3, 3549];
- yolo-classify-224.onnx: a classify head on the same backbone, 4 classes at 224: output0 [1, 4] (softmaxed);
- yolo-seg-640.onnx: the Ultralytics segment layout, 2 classes + 32 prototypes at 640: output0 [1, 38, 8400],
  output1 [1, 32, 160, 160];
- bad-detect-rows.onnx: a detect graph whose output has 9 rows while its metadata names 3 classes (refused);
- sam-official/model.json is not needed: the tests install the shipped sam-tiny pair as an official SAM export.
Each has Ultralytics-style metadata_props (task, names as a Python dict, imgsz, stride, batch, channels).

Run: cd models/training && /usr/bin/python3 export_variants.py [out_dir]
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn as nn

from common import base_metadata, py_repr_names, seed_all, set_metadata
from train_obb import STRIDES, Block, TinyYolo, conv

OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "test" / "fixtures" / "models"


class NarrowYolo(TinyYolo):
    """TinyYolo's layers and forward() with narrower channels (c per stage, n in the neck)."""

    def __init__(self, nc: int, extra: int = 0, protos: int = 0, c=(8, 12, 16, 24, 32), n: int = 16):
        nn.Module.__init__(self)
        self.nc, self.extra, self.angle, self.np = nc, extra, False, protos
        self.s1 = conv(3, c[0], 3, 2)
        self.s2 = nn.Sequential(conv(c[0], c[1], 3, 2), Block(c[1]))
        self.s3 = nn.Sequential(conv(c[1], c[2], 3, 2), Block(c[2]))
        self.s4 = nn.Sequential(conv(c[2], c[3], 3, 2), Block(c[3]))
        self.s5 = nn.Sequential(conv(c[3], c[4], 3, 2), Block(c[4]))
        self.l5, self.l4, self.l3 = conv(c[4], n, 1), conv(c[3], n, 1), conv(c[2], n, 1)
        self.n4, self.n3 = conv(n, n, 3), conv(n, n, 3)
        self.no = 4 + nc + extra
        self.heads = nn.ModuleList(nn.Sequential(conv(n, n, 3), nn.Conv2d(n, self.no, 1)) for _ in STRIDES)
        for h in self.heads:
            nn.init.constant_(h[1].bias[4:4 + nc], -4.0)
        if protos:
            self.l2 = conv(c[1], n, 1)
            self.proto = nn.Sequential(conv(n, n, 3), conv(n, n, 3), nn.Conv2d(n, protos, 1))


class NarrowClassifier(nn.Module):
    """The same backbone stages (s1..s5), global average pooling and a linear head; softmax like Ultralytics' export."""

    def __init__(self, nc: int, c=(8, 12, 16, 24, 32)):
        super().__init__()
        y = NarrowYolo(1, c=c)
        self.s1, self.s2, self.s3, self.s4, self.s5 = y.s1, y.s2, y.s3, y.s4, y.s5
        self.fc = nn.Linear(c[4], nc)

    def forward(self, x):
        f = self.s5(self.s4(self.s3(self.s2(self.s1(x)))))
        return torch.softmax(self.fc(f.mean((2, 3))), 1)


def export(model: nn.Module, name: str, size: int, task: str, names: list[str], outputs: list[str]) -> None:
    path = OUT / name
    model.eval()
    torch.onnx.export(model, torch.zeros(1, 3, size, size), str(path), opset_version=17, input_names=["images"],
                      output_names=outputs, do_constant_folding=True)
    meta = base_metadata(f"Aperture test variant {name}: random weights, {task} layout", task)
    meta.update({"stride": 32, "batch": 1, "imgsz": f"[{size}, {size}]", "names": py_repr_names(names), "channels": 3})
    set_metadata(path, meta)
    print(f"{path.name}: {path.stat().st_size} bytes")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    seed_all(7)
    export(NarrowYolo(3), "yolo-detect-416.onnx", 416, "detect", ["person", "car", "dog"], ["output0"])
    export(NarrowClassifier(4), "yolo-classify-224.onnx", 224, "classify", ["cat", "dog", "bird", "fish"], ["output0"])
    export(NarrowYolo(2, extra=32, protos=32), "yolo-seg-640.onnx", 640, "segment", ["stone", "ball"], ["output0", "output1"])
    # 5 classes in the graph (9 rows), 3 in the metadata: the contract check must name output0.
    export(NarrowYolo(5, c=(4, 4, 4, 4, 4), n=4), "bad-detect-rows.onnx", 416, "detect", ["a", "b", "c"], ["output0"])


if __name__ == "__main__":
    with torch.no_grad():
        main()
