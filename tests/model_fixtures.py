"""Tiny ONNX models built in the test, the way other people's tools write them (onnx helper API, skl2onnx)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def mlp(path: Path, inputs: int = 8, hidden: int = 16, outputs: int = 4, *, input_shape=None, seed: int = 0,
        name: str = "mlp", duplicate_opset: bool = False) -> Path:
    """MatMul -> Add -> Relu -> MatMul -> Add: logits [batch, outputs]; quantizes at every precision. ``name`` is the
    graph's name (``crashes-ort`` marks a file for tests/child_path/crash_ort_hook.py); ``duplicate_opset`` writes the
    default-domain opset import twice, as skl2onnx does."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.normal(size=(inputs, hidden)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(size=(hidden,)).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.normal(size=(hidden, outputs)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.normal(size=(outputs,)).astype(np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w2"], ["y0"]),
        helper.make_node("Add", ["y0", "b2"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape or ["batch", inputs])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", outputs])], inits)
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("ai.onnx", 17)] if duplicate_opset else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def huge_input(path: Path) -> Path:
    """A 1x1 Conv whose declared input is 1x3x25000x20000 float32 (6 GB per sample)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["y"])], "huge",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 25000, 20000])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 25000, 20000])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def skl(path: Path, kind: str) -> Path:
    """A scikit-learn model converted by skl2onnx (which writes the default-domain opset import twice):
    ``logreg`` (LogisticRegression: label + ZipMap probabilities), ``linreg`` (LinearRegression: one column),
    ``mlp_regressor`` (MLPRegressor: MatMul layers, so it quantizes)."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.neural_network import MLPRegressor

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    if kind == "logreg":
        est = LogisticRegression(max_iter=200).fit(x, (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 1))
    elif kind == "linreg":
        est = LinearRegression().fit(x, x @ np.arange(6, dtype=np.float32) + 3)
    elif kind == "mlp_regressor":
        est = MLPRegressor(hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(x, x[:, 0] * 2 - x[:, 3])
    else:
        raise ValueError(kind)
    onx = to_onnx(est, x[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    path.write_bytes(onx.SerializeToString())
    return path


def single_op(path: Path, kind: str) -> Path:
    """One-operator graphs of the kinds other tools write: ``qlinearconv`` (ORT QOperator, uint8, with the int32
    bias as last input), ``float64`` (a Gemm in float64), ``bfloat16`` (a MatMul on bfloat16 weights),
    ``matmulnbits`` (ORT's 4-bit MatMulNBits, com.microsoft)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def const(name, arr):
        return numpy_helper.from_array(np.asarray(arr), name)

    opsets = [helper.make_opsetid("", 17)]
    if kind == "qlinearconv":
        inits = [const("xs", np.float32(0.1)), const("xz", np.uint8(128)), const("w", np.ones((2, 3, 1, 1), np.uint8)),
                 const("ws", np.float32(0.05)), const("wz", np.uint8(0)), const("ys", np.float32(0.2)),
                 const("yz", np.uint8(128)), const("b", np.zeros(2, np.int32))]
        node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["y"])
        x = helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 3, 4, 4])
        y = helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 2, 4, 4])
    elif kind == "float64":
        inits = [const("w", np.ones((4, 3), np.float64)), const("b", np.zeros(3, np.float64))]
        node = helper.make_node("Gemm", ["x", "w", "b"], ["y"])
        x = helper.make_tensor_value_info("x", TensorProto.DOUBLE, [1, 4])
        y = helper.make_tensor_value_info("y", TensorProto.DOUBLE, [1, 3])
    elif kind == "bfloat16":
        w = helper.make_tensor("w", TensorProto.BFLOAT16, [4, 3], [16256] * 12)  # 1.0 in bfloat16 bits
        inits = [w]
        node = helper.make_node("MatMul", ["x", "w"], ["y"])
        x = helper.make_tensor_value_info("x", TensorProto.BFLOAT16, [1, 4])
        y = helper.make_tensor_value_info("y", TensorProto.BFLOAT16, [1, 3])
    elif kind == "matmulnbits":
        k, n, block = 32, 8, 32
        inits = [const("qw", np.zeros((n, k // block, block // 2), np.uint8)), const("sc", np.ones(n, np.float32))]
        node = helper.make_node("MatMulNBits", ["x", "qw", "sc"], ["y"], domain="com.microsoft", K=k, N=n, bits=4,
                                block_size=block)
        opsets.append(helper.make_opsetid("com.microsoft", 1))
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])
    else:
        raise ValueError(kind)
    model = helper.make_model(helper.make_graph([node], kind, [x], [y], inits), opset_imports=opsets)
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def tiny_cnn(path: Path, size: int = 8, classes: int = 4, seed: int = 0) -> Path:
    """Conv(3->8, 3x3) -> Relu -> GlobalAveragePool -> Flatten -> Gemm(8->classes) on [1, 3, size, size] images."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.normal(size=(8, 3, 3, 3)).astype(np.float32), "cw"),
             numpy_helper.from_array(rng.normal(size=(8,)).astype(np.float32), "cb"),
             numpy_helper.from_array(rng.normal(size=(classes, 8)).astype(np.float32), "gw"),
             numpy_helper.from_array(rng.normal(size=(classes,)).astype(np.float32), "gb")]
    nodes = [helper.make_node("Conv", ["image", "cw", "cb"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "gw", "gb"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "tiny_cnn",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def image_folder(folder: Path, classes: int = 2, per_class: int = 3, size: int = 12) -> Path:
    """PNG images in one folder per class (class ids in sorted folder-name order)."""
    from PIL import Image

    rng = np.random.default_rng(1)
    for c in range(classes):
        sub = folder / f"class_{c}"
        sub.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, size=(size, size + 4, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(sub / f"img{i}.png")
    return folder
