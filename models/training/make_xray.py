"""xray: the booth's image-to-image "X-ray" effect (booth) as an analytic ONNX graph (no training).
Input `image` [1,3,H,W] RGB in 0..1 (any size); output `output` [3,3,H,W]: three styles of the same size, RGB 0..1:
0 classic (blue-white glow), 1 negative film (grey), 2 cyan glow. Dark background, bright edges and structure."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from common import MODELS_DIR, base_metadata, py_repr_names, set_metadata, update_eval

STYLES = ["classic", "negative", "cyan-glow"]


class XRay(nn.Module):
    def __init__(self):
        super().__init__()
        sx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        blur = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16
        self.register_buffer("k", torch.stack([sx, sx.T])[:, None])
        self.register_buffer("blur", blur[None, None])
        self.register_buffer("luma", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1))
        self.register_buffer("tints", torch.tensor([[0.72, 0.88, 1.0], [0.92, 0.92, 0.92], [0.35, 1.0, 0.95]]).view(3, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        gray = (image * self.luma).sum(1, keepdim=True)
        g = gray
        for _ in range(3):  # ~7x7 Gaussian: texture and noise fade, object outlines stay
            g = F.conv2d(F.pad(g, (1, 1, 1, 1), mode="replicate"), self.blur)
        grad = F.conv2d(F.pad(g, (1, 1, 1, 1), mode="replicate"), self.k)
        edge = torch.relu(torch.sqrt((grad * grad).sum(1, keepdim=True) + 1e-6) - 0.06) * 1.6
        glow = F.avg_pool2d(F.pad(edge, (3, 3, 3, 3), mode="replicate"), 7, stride=1)
        body = torch.clamp(1.0 - g, 0.0, 1.0)
        classic = torch.clamp(0.18 * body ** 2 + 2.2 * edge + 1.2 * glow, 0.0, 1.0)
        negative = torch.clamp(0.45 * body ** 1.5 + 1.5 * edge, 0.0, 1.0)
        cyan = torch.clamp(0.12 * body + 2.8 * edge + 2.0 * glow, 0.0, 1.0) ** 0.8
        return torch.cat([classic, negative, cyan], 0) * self.tints


def export() -> None:
    path = MODELS_DIR / "xray.onnx"
    model = XRay().eval()
    torch.onnx.export(model, torch.rand(1, 3, 64, 80), str(path), opset_version=17, input_names=["image"], output_names=["output"],
                      dynamic_axes={"image": {2: "height", 3: "width"}, "output": {2: "height", 3: "width"}})
    meta = base_metadata("Aperture xray: analytic X-ray effect, three styles of result options for the booth (seed 002)", "image-to-image")
    meta.update({"names": py_repr_names(STYLES), "input_range": "[0, 1]", "output_range": "[0, 1]"})
    set_metadata(path, meta)


def preview(src: Image.Image, dst: str) -> None:
    x = torch.from_numpy(np.asarray(src.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        y = XRay()(x)
    tiles = [src.convert("RGB")] + [Image.fromarray((y[i].permute(1, 2, 0).numpy() * 255).astype(np.uint8)) for i in range(3)]
    canvas = Image.new("RGB", (src.width * 4, src.height))
    for i, t in enumerate(tiles):
        canvas.paste(t, (i * src.width, 0))
    canvas.save(dst)


if __name__ == "__main__":
    export()
    update_eval("xray", {"kind": "analytic graph (no training)", "styles": STYLES})
    print("[xray] exported", flush=True)
