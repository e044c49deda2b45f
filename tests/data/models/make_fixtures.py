"""Build the small odd models the bad-input tests feed edgeprof. Run with the build venv (needs tensorflow-cpu):

    .build-venv/bin/python tests/data/models/make_fixtures.py

- token_ids.onnx        integer token ids in (dynamic sequence length), not an image
- audio_frames.onnx     a [1, 16000] float waveform in
- external_data.onnx    weights in a sibling .data file that is deliberately NOT shipped
- custom_op.tflite      a MatrixDeterminant custom op (converted with allow_custom_ops)
- fc_v12.tflite         a dynamic-range model with FULLY_CONNECTED version 12, which tflite-runtime 2.14 rejects
- dynamic_frames.tflite input 'wave' with shape signature [-1, -1] (stored [1, 1]): 400-sample frames with a hop of
                        160 (a Conv1D), so it needs at least 400 samples, like an audio front end (a mel spectrogram)

The TFLite fixtures need TensorFlow: `python3 -m venv .build-venv && .build-venv/bin/pip install tensorflow-cpu==2.21.0
onnx==1.23.2` (models/build/requirements.txt pins the same).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent


def token_ids() -> None:
    emb = numpy_helper.from_array(np.random.default_rng(0).standard_normal((1000, 16)).astype(np.float32), "emb")
    w = numpy_helper.from_array(np.random.default_rng(1).standard_normal((16, 4)).astype(np.float32), "w")
    nodes = [
        helper.make_node("Gather", ["emb", "ids"], ["e"]),
        helper.make_node("ReduceMean", ["e"], ["m"], axes=[1], keepdims=0),
        helper.make_node("MatMul", ["m", "w"], ["logits"]),
    ]
    g = helper.make_graph(nodes, "tokens", [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, "seq"])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])], [emb, w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    onnx.save(m, HERE / "token_ids.onnx")


def audio_frames() -> None:
    w = numpy_helper.from_array(np.random.default_rng(2).standard_normal((16000, 8)).astype(np.float32) * 0.01, "w")
    g = helper.make_graph([helper.make_node("MatMul", ["wave", "w"], ["scores"])], "audio",
                          [helper.make_tensor_value_info("wave", TensorProto.FLOAT, [1, 16000])],
                          [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 8])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.save(m, HERE / "audio_frames.onnx")


def external_data() -> None:
    w = numpy_helper.from_array(np.ones((256, 256), np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "ext",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 256])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.save(m, HERE / "external_data.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
              location="external_data.onnx.data", size_threshold=0)
    os.remove(HERE / "external_data.onnx.data")


def tflite_fixtures() -> None:
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 3, 3], tf.float32)])
    def det(x):
        return tf.linalg.det(x)

    conv = tf.lite.TFLiteConverter.from_concrete_functions([det.get_concrete_function()], det)
    conv.allow_custom_ops = True
    (HERE / "custom_op.tflite").write_bytes(conv.convert())

    inp = tf.keras.Input((64,), batch_size=1)
    out = tf.keras.layers.Dense(32)(tf.keras.layers.Dense(64, activation="relu")(inp))
    model = tf.keras.Model(inp, out)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic range, per-channel dense: FULLY_CONNECTED v12
    (HERE / "fc_v12.tflite").write_bytes(conv.convert())


def dynamic_frames() -> None:
    import tensorflow as tf

    kernel = tf.constant(np.random.default_rng(3).standard_normal((400, 1, 4)).astype(np.float32) * 0.05)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="wave")])
    def frames(wave):
        x = tf.nn.conv1d(tf.expand_dims(wave, -1), kernel, stride=160, padding="VALID")
        return tf.reduce_mean(tf.nn.relu(x), axis=1)

    conv = tf.lite.TFLiteConverter.from_concrete_functions([frames.get_concrete_function()], frames)
    (HERE / "dynamic_frames.tflite").write_bytes(conv.convert())


if __name__ == "__main__":
    token_ids()
    audio_frames()
    external_data()
    tflite_fixtures()
    dynamic_frames()
    for p in sorted(HERE.glob("*.*")):
        print(p.name, p.stat().st_size)
