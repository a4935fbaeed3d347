"""Makes the tiny ONNX fixtures of libs/inference's unit tests (run: /usr/bin/python3 make_fixtures.py).

yolo-meta.onnx  an Identity graph with a 4 KB initializer (so a long field 7 precedes field 14) and the
                metadata_props Ultralytics' exporter writes, as str(v) Python reprs, with quotes and
                apostrophes in class names.
sam-decoder-stub.onnx
                the official SAM decoder's interface (input/output names, dtypes, dynamic N) with trivial
                maths: masks [1,4,H,W] sized from orig_im_size, each value = sum of point_labels (so the
                padding point's −1 shows), iou_predictions = first point's (x, y) ‖ has_mask_input ‖ N,
                low_res_masks = mask_input repeated. It checks that our feeds are what ORT accepts.
sam-resize-golden.json
                SAM's ResizeLongestSide(1024) done by PIL BILINEAR (what segment-anything's apply_image does)
                on two generated images (up- and downscale), sampled on a 16×16 grid, to compare sharp's
                'linear' resize against.
matmul.onnx     sum = A + B and prod = ((A @ B) @ B) @ B with symbolic [n, n] inputs: small n checks values,
                large n makes a run long enough to test that the main event loop keeps ticking.
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))


def yolo_meta():
    w = helper.make_tensor("w", TensorProto.FLOAT, [1024], np.arange(1024, dtype=np.float32))
    graph = helper.make_graph(
        [helper.make_node("Add", ["images", "w"], ["output0"])],
        "meta",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1024])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1024])],
        initializer=[w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="fixture")
    model.ir_version = 8
    names = {0: "kid's toy", 1: "a", 2: 'say "hi"', 3: "both ' and \"", 4: "ünïcode ✓", 5: "x, y: {z}"}
    meta = {
        "description": "Ultralytics YOLO11n-obb model trained on fixture.yaml",
        "author": "Ultralytics",
        "stride": 32,
        "task": "obb",
        "batch": 1,
        "imgsz": [640, 640],
        "names": names,
        "args": {"batch": 1, "half": False, "nms": False},
    }
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, str(v)
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(HERE, "yolo-meta.onnx"))


def matmul():
    nodes = [
        helper.make_node("Add", ["A", "B"], ["sum"]),
        helper.make_node("MatMul", ["A", "B"], ["p1"]),
        helper.make_node("MatMul", ["p1", "B"], ["p2"]),
        helper.make_node("MatMul", ["p2", "B"], ["prod"]),
    ]
    graph = helper.make_graph(
        nodes,
        "matmul",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n", "n"]) for n in ("A", "B")],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n", "n"]) for n in ("sum", "prod")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="fixture")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(HERE, "matmul.onnx"))


def sam_decoder_stub():
    f = TensorProto.FLOAT
    i64 = lambda name, vals: helper.make_tensor(name, TensorProto.INT64, [len(vals)], vals)
    nodes = [
        # masks: shape [1, 4, H, W] from orig_im_size, filled with sum(point_labels)
        helper.make_node("Cast", ["orig_im_size"], ["hw"], to=TensorProto.INT64),
        helper.make_node("Constant", [], ["c14"], value=i64("c14", [1, 4])),
        helper.make_node("Concat", ["c14", "hw"], ["mshape"], axis=0),
        helper.make_node("ConstantOfShape", ["mshape"], ["zeros"], value=helper.make_tensor("z", f, [1], [0.0])),
        helper.make_node("ReduceSum", ["point_labels"], ["lsum"], keepdims=0),
        helper.make_node("Add", ["zeros", "lsum"], ["masks"]),
        # iou_predictions [1, 4] = x0, y0, has_mask_input, N
        helper.make_node("Constant", [], ["k0"], value=i64("k0", [0])),
        helper.make_node("Constant", [], ["k1"], value=i64("k1", [1])),
        helper.make_node("Gather", ["point_coords", "k0"], ["p0"], axis=1),  # [1, 1, 2]
        helper.make_node("Reshape", ["p0", "c12"], ["xy"]),
        helper.make_node("Constant", [], ["c12"], value=i64("c12", [1, 2])),
        helper.make_node("Shape", ["point_labels"], ["lshape"]),
        helper.make_node("Gather", ["lshape", "k1"], ["n64"], axis=0),
        helper.make_node("Cast", ["n64"], ["nf"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["nf", "c11"], ["n2"]),
        helper.make_node("Constant", [], ["c11"], value=i64("c11", [1, 1])),
        helper.make_node("Reshape", ["has_mask_input", "c11"], ["hm"]),
        helper.make_node("Concat", ["xy", "hm", "n2"], ["iou_predictions"], axis=1),
        # low_res_masks [1, 4, 256, 256]
        helper.make_node("Constant", [], ["rep"], value=i64("rep", [1, 4, 1, 1])),
        helper.make_node("Tile", ["mask_input", "rep"], ["low_res_masks"]),
    ]
    # topological order: constants first
    nodes.sort(key=lambda n: 0 if n.op_type == "Constant" else 1)
    graph = helper.make_graph(
        nodes,
        "sam_decoder_stub",
        [
            helper.make_tensor_value_info("image_embeddings", f, [1, 256, 64, 64]),
            helper.make_tensor_value_info("point_coords", f, [1, "num_points", 2]),
            helper.make_tensor_value_info("point_labels", f, [1, "num_points"]),
            helper.make_tensor_value_info("mask_input", f, [1, 1, 256, 256]),
            helper.make_tensor_value_info("has_mask_input", f, [1]),
            helper.make_tensor_value_info("orig_im_size", f, [2]),
        ],
        [
            helper.make_tensor_value_info("masks", f, [1, 4, "h", "w"]),
            helper.make_tensor_value_info("iou_predictions", f, [1, 4]),
            helper.make_tensor_value_info("low_res_masks", f, [1, 4, 256, 256]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="fixture")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, os.path.join(HERE, "sam-decoder-stub.onnx"))


def pattern(w, h):
    """The same formula as samPattern() in preprocess.spec.ts: gradients plus a 40 px checkerboard."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (x * 255) // (w - 1)
    img[..., 1] = (y * 255) // (h - 1)
    img[..., 2] = np.where(((x // 40) + (y // 40)) % 2 == 1, 230, 20)
    return img


def sam_resize_golden():
    import json

    from PIL import Image

    cases = []
    for w, h in ((600, 400), (1600, 1200)):
        s = 1024 / max(w, h)
        nw, nh = int(w * s + 0.5), int(h * s + 0.5)
        out = np.array(Image.fromarray(pattern(w, h)).resize((nw, nh), Image.BILINEAR))
        xs = [int((i + 0.5) * nw / 16) for i in range(16)]
        ys = [int((j + 0.5) * nh / 16) for j in range(16)]
        samples = [[x, y, *map(int, out[y, x])] for y in ys for x in xs]
        cases.append({"width": w, "height": h, "newW": nw, "newH": nh, "samples": samples})
    with open(os.path.join(HERE, "sam-resize-golden.json"), "w") as f:
        json.dump({"pil": Image.__version__ if hasattr(Image, "__version__") else "", "cases": cases}, f, separators=(",", ":"))


if __name__ == "__main__":
    yolo_meta()
    matmul()
    sam_decoder_stub()
    sam_resize_golden()
