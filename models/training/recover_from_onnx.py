"""Rebuilds the PyTorch checkpoint of a shipped detector/segmenter from its ONNX file.

train_all.sh keeps checkpoints under .cache/ (not committed). When they are gone, the evaluation and the fixtures
can still be regenerated from the committed ONNX files without retraining: the exporter folded every
BatchNorm into the convolution before it, so each Conv2d gets the folded weight and its BatchNorm becomes the
identity plus the folded bias. The rebuilt model computes the same function as the exported one (checked once
against onnxruntime on a random input: largest output difference 1.5e-4, on outputs in pixels).

    /usr/bin/python3 recover_from_onnx.py primitives-obb fragments-seg sam-tiny scene-gru"""
from __future__ import annotations

import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import numpy_helper

from common import CACHE_DIR, MODELS_DIR
import train_obb
import train_sam
import train_seg


def conv_order(model: nn.Module, example: tuple[torch.Tensor, ...]) -> list[tuple[nn.Conv2d, nn.BatchNorm2d | None]]:
    """The model's convolutions in execution order, each with the BatchNorm that follows it (if any)."""
    follower: dict[int, nn.BatchNorm2d] = {}
    for mod in model.modules():
        if isinstance(mod, nn.Sequential):
            kids = list(mod)
            for a, b in zip(kids, kids[1:]):
                if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                    follower[id(a)] = b
    order: list[tuple[nn.Conv2d, nn.BatchNorm2d | None]] = []
    hooks = [m.register_forward_hook(lambda m, i, o: order.append((m, follower.get(id(m))))) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model.eval()(*example)
    for h in hooks:
        h.remove()
    return order


def onnx_convs(path) -> list[tuple[np.ndarray, np.ndarray | None]]:
    g = onnx.load(str(path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    out = []
    for node in g.node:
        if node.op_type == "Conv":
            w = inits[node.input[1]]
            b = inits[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            out.append((w, b))
    return out


def load_folded(model: nn.Module, path, example: tuple[torch.Tensor, ...]) -> nn.Module:
    order = conv_order(model, example)
    convs = onnx_convs(path)
    if len(order) != len(convs):
        raise SystemExit(f"{path.name}: {len(convs)} Conv nodes in the ONNX graph, {len(order)} Conv2d modules in the model")
    with torch.no_grad():
        for i, ((conv, bn), (w, b)) in enumerate(zip(order, convs)):
            if tuple(conv.weight.shape) != w.shape:
                raise SystemExit(f"{path.name}: conv #{i} has shape {tuple(conv.weight.shape)} in the model, {w.shape} in the file")
            conv.weight.copy_(torch.from_numpy(w))
            bias = torch.from_numpy(b) if b is not None else torch.zeros(w.shape[0])
            if bn is None:
                if conv.bias is None:
                    if b is not None and np.abs(b).max() > 0:
                        raise SystemExit(f"{path.name}: conv #{i} has a bias in the file and none in the model")
                else:
                    conv.bias.copy_(bias)
            else:
                bn.weight.fill_(1.0)
                bn.bias.copy_(bias)
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
        # Parameters the exporter kept under their own names (Linear layers, an unfolded Conv's weight/bias).
        inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
        for name, param in model.named_parameters():
            if name in inits and not isinstance(dict(model.named_modules()).get(name.rsplit(".", 1)[0]), nn.Conv2d):
                param.copy_(torch.from_numpy(inits[name]).reshape(param.shape))
    return model.eval()


def load_scene_gru(path) -> nn.Module:
    """scene-gru from its ONNX file: the exporter renamed the first Linear's weight (transposed, for MatMul) and the
    GRU's (ONNX gate order z, r, h; PyTorch's r, z, n; both directions stacked; biases W then R)."""
    import train_scene
    model = train_scene.SceneGRU()
    g = onnx.load(str(path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    gru = next(n for n in g.node if n.op_type == "GRU")
    w, r, b = (inits[gru.input[i]] for i in (1, 2, 3))
    hid = w.shape[1] // 3

    def reorder(a: np.ndarray) -> np.ndarray:  # z, r, h -> r, z, n along the first axis
        return np.concatenate([a[hid:2 * hid], a[0:hid], a[2 * hid:3 * hid]], 0)

    matmul = next(n for n in g.node if n.op_type == "MatMul")
    with torch.no_grad():
        model.inp[0].weight.copy_(torch.from_numpy(inits[matmul.input[1]].T.copy()))
        for name in ("inp.0.bias", "out.0.weight", "out.0.bias", "out.2.weight", "out.2.bias"):
            dict(model.named_parameters())[name].copy_(torch.from_numpy(inits[name].copy()))
        for d, suffix in enumerate(("", "_reverse")):
            getattr(model.gru, f"weight_ih_l0{suffix}").copy_(torch.from_numpy(reorder(w[d])))
            getattr(model.gru, f"weight_hh_l0{suffix}").copy_(torch.from_numpy(reorder(r[d])))
            getattr(model.gru, f"bias_ih_l0{suffix}").copy_(torch.from_numpy(reorder(b[d][:3 * hid])))
            getattr(model.gru, f"bias_hh_l0{suffix}").copy_(torch.from_numpy(reorder(b[d][3 * hid:])))
    return model.eval()


def main(names: list[str]) -> None:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name == "scene-gru":
            torch.save(load_scene_gru(MODELS_DIR / "scene-gru.onnx").state_dict(), CACHE_DIR / "scene-gru.pt")
            print(f"[recover] scene-gru: {CACHE_DIR / 'scene-gru.pt'} rebuilt from scene-gru.onnx", flush=True)
            continue
        if name == "sam-tiny":
            enc = load_folded(train_sam.Encoder(), MODELS_DIR / "sam-tiny-encoder.onnx", (torch.rand(1, 3, 1024, 1024),))
            example = (torch.randn(1, 256, 64, 64), torch.tensor([[[500.0, 400.0], [0.0, 0.0]]]), torch.tensor([[1.0, -1.0]]),
                       torch.zeros(1, 1, 256, 256), torch.zeros(1), torch.tensor([800.0, 1200.0]))
            dec = load_folded(train_sam.Decoder(), MODELS_DIR / "sam-tiny-decoder.onnx", example)
            torch.save({"enc": enc.state_dict(), "dec": dec.state_dict()}, CACHE_DIR / "sam-tiny.pt")
            print(f"[recover] sam-tiny: {CACHE_DIR / 'sam-tiny.pt'} rebuilt from the encoder and decoder files", flush=True)
            continue
        if name == "primitives-obb":
            model, size, ckpt = train_obb.TinyYolo(train_obb.NC), train_obb.IMGSZ, "primitives-obb.pt"
        elif name == "fragments-seg":
            model, size, ckpt = train_seg.TinyYolo(train_seg.NC, extra=train_seg.NM, angle=False, protos=train_seg.NM), train_seg.IMGSZ, "fragments-seg.pt"
        else:
            raise SystemExit(f"unknown model {name}: primitives-obb, fragments-seg, sam-tiny or scene-gru")
        path = MODELS_DIR / f"{name}.onnx"
        example = (torch.rand(1, 3, size, size),)
        model = load_folded(model, path, example)
        torch.save(model.state_dict(), CACHE_DIR / ckpt)
        print(f"[recover] {name}: {CACHE_DIR / ckpt} rebuilt from {path.name}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["primitives-obb", "fragments-seg"])
