"""What edgeprof feeds a model: the user's --shape/--fill, guesses for the rest, and one sentence when they fail.

Each class of real-world failure has a fixture built here with the onnx helper API (tiny models, made in tmp_path)
or, for TFLite, by tests/data/models/make_fixtures.py with the TFLite converter: symbolic dimensions shared by
several inputs, a declared 0-size dimension, every numeric type plus strings and sequences, types numpy lacks,
integer inputs whose values matter (a sample rate), TFLite inputs that must be resized before allocation, and
runtime messages that must not be cut before their cause.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from helpers import ROOT, cli_env, requires_tflite_runtime
from onnx import TensorProto, helper

from edgeprof.errors import ModelError, UsageError
from edgeprof.runtimes import TensorSpec, onnx_spec, open_session
from edgeprof.runtimes.inputs import make_feeds, parse_fill, parse_shape, plan_feeds
from edgeprof.store import Store

FIX = ROOT / "tests" / "data" / "models"


def save(graph, path, *, opset: int = 17, ir: int = 9):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir
    onnx.save(model, path)
    return path


def vad_like(path):
    """Like silero-vad: ``input`` [batch, sequence] (needs a multiple of 512 samples), ``state`` [2, batch, 128] and
    ``sr`` int64 [] (the model builds a Range of sr and reshapes it by 16000: only 16000 works)."""
    c = helper.make_tensor
    nodes = [
        helper.make_node("Reshape", ["input", "frame"], ["frames"]),  # [-1, 512]: fails unless sequence % 512 == 0
        helper.make_node("ReduceSum", ["frames"], ["a"], keepdims=0),
        helper.make_node("ReduceSum", ["state"], ["b"], keepdims=0),
        helper.make_node("Range", ["zero", "sr", "one"], ["r"]),
        helper.make_node("Reshape", ["r", "per_second"], ["rs"]),  # [-1, 16000]: fails unless sr is a multiple
        helper.make_node("ReduceSum", ["rs"], ["c64"], keepdims=0),
        helper.make_node("Cast", ["c64"], ["c"], to=TensorProto.FLOAT),
        helper.make_node("Sum", ["a", "b", "c"], ["out"]),
    ]
    inits = [c("frame", TensorProto.INT64, [2], [-1, 512]), c("per_second", TensorProto.INT64, [2], [-1, 16000]),
             c("zero", TensorProto.INT64, [], [0]), c("one", TensorProto.INT64, [], [1])]
    graph = helper.make_graph(nodes, "vad", [
        helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", "sequence"]),
        helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "batch", 128]),
        helper.make_tensor_value_info("sr", TensorProto.INT64, []),
    ], [helper.make_tensor_value_info("out", TensorProto.FLOAT, [])], inits)
    return save(graph, path)


def identity(path, elem, shape, *, seq: bool = False, optional: bool = False):
    tt = helper.make_tensor_type_proto(elem, shape)
    if seq:
        tt = helper.make_sequence_type_proto(tt)
    if optional:
        tt = helper.make_optional_type_proto(tt)
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "id",
                              [helper.make_value_info("x", tt)], [helper.make_value_info("y", tt)])
    return save(graph, path, opset=18 if optional else 17)


def cli(*args, db):
    r = subprocess.run([sys.executable, "-m", "edgeprof", *args, "--db", str(db)], capture_output=True, text=True,
                       timeout=300, env=cli_env(), cwd=ROOT)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def run_json(model, *extra, db):
    r = cli("run", "--model", str(model), "--iterations", "5", "--warmup", "0", "--json", "--quiet", *extra, db=db)
    return r, (json.loads(r.stdout) if r.stdout.strip() else None)


# ------------------------------------------------------------------------------------------------ pure: the plan


def test_one_value_per_symbolic_dimension_across_inputs():
    specs = [TensorSpec("input", ("batch", "sequence"), "float32"), TensorSpec("state", (2, "batch", 128), "float32"),
             TensorSpec("sr", (), "int64")]
    plan = plan_feeds(specs)
    assert plan.shapes == [(1, 128), (2, 1, 128), ()]  # batch is 1 in both inputs (was 1 in one, 16 in the other)
    plan = plan_feeds(specs, {"input": (4, 512)})
    assert plan.shapes == [(4, 512), (2, 4, 128), ()]  # --shape binds 'batch' for the state too
    assert any("batch=4 as for the other inputs" in n for n in plan.notes)
    with pytest.raises(UsageError, match="gives the dimension 'batch' two values"):
        plan_feeds(specs, {"input": (4, 512), "state": (2, 3, 128)})


def test_a_declared_zero_is_a_real_size_and_stored_tflite_shapes_come_first():
    assert plan_feeds([TensorSpec("x", (2, 0, 4), "float32")]).shapes == [(2, 0, 4)]
    plan = plan_feeds([TensorSpec("wave", (None, None), "float32", stored_shape=(1, 1280))])
    assert plan.shapes == [(1, 1280)] and "the size stored in the file" in plan.notes[0]


def test_fixed_dimensions_are_checked_where_the_runtime_cannot_resize():
    spec = [TensorSpec("x", (1, 3, 224, 224), "float32")]
    with pytest.raises(UsageError, match="changes dimension 2, which the model fixes at 224"):
        plan_feeds(spec, {"x": (1, 3, 100, 100)})
    with pytest.raises(UsageError, match="has 2 dimensions; the model declares 4"):
        plan_feeds(spec, {"x": (1, 3)})
    assert plan_feeds(spec, {"x": (1, 3, 100, 100)}, resizable=True).shapes == [(1, 3, 100, 100)]  # TFLite
    with pytest.raises(UsageError, match="'y', which the model does not have as an input; its inputs are 'x'"):
        plan_feeds(spec, fills={"y": 1})


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "bool",
                                   "float16", "float32", "float64"])
def test_every_numeric_type_gets_data_of_its_own_type(dtype):
    (arr,) = make_feeds(plan_feeds([TensorSpec("x", (2, 3), dtype)]))
    assert arr.dtype == np.dtype(dtype) and arr.shape == (2, 3)
    (filled,) = make_feeds(plan_feeds([TensorSpec("x", (2, 3), dtype)], fills={"x": 1}))
    assert (filled == 1).all() and filled.dtype == np.dtype(dtype)


def test_strings_and_sequences_get_data_and_types_numpy_lacks_get_one_sentence():
    (words,) = make_feeds(plan_feeds([onnx_spec("s", [3], "tensor(string)")]))
    assert words.dtype == object and all(isinstance(w, str) for w in words)
    (seq,) = make_feeds(plan_feeds([onnx_spec("q", [], "seq(tensor(float))")]))
    assert isinstance(seq, list) and all(a.dtype == np.float32 for a in seq)
    for type_name in ("tensor(bfloat16)", "tensor(float8e4m3fn)", "tensor(int4)", "optional(tensor(float))",
                      "map(int64,tensor(float))"):
        with pytest.raises(ModelError) as err:
            plan_feeds([onnx_spec("weird", [2], type_name)])
        assert str(err.value).startswith(f"input 'weird' has type {type_name}, which edgeprof cannot make data for")


def test_fill_values_are_checked_against_the_input_type():
    spec = [TensorSpec("sr", (), "int64"), TensorSpec("flag", (), "bool"), TensorSpec("px", (4,), "uint8")]
    plan = plan_feeds(spec, fills={"sr": 16000, "flag": True, "px": 255})
    assert [a.tolist() for a in make_feeds(plan)] == [16000, True, [255] * 4]
    assert "input 'sr' filled with 16000 (--fill)" in plan.notes
    for fills, needle in (({"px": 256}, "give a value from 0 to 255"), ({"sr": 1.5}, "give a whole number"),
                          ({"sr": "abc"}, "give a number"), ({"flag": 2}, "give true, false, 1 or 0")):
        with pytest.raises(UsageError, match=needle):
            plan_feeds(spec, fills=fills)


def test_flag_syntax():
    assert parse_shape("input=1x512") == ("input", (1, 512))
    assert parse_shape("serving_default_input:0=1x1280") == ("serving_default_input:0", (1, 1280))
    assert parse_shape("sr=") == ("sr", ())
    assert parse_fill("sr=16000") == ("sr", 16000) and parse_fill("t=0.5") == ("t", 0.5)
    assert parse_fill("on=true") == ("on", True) and parse_fill("word=hello") == ("word", "hello")
    for bad in ("input", "=1x2", "input=1xa", "input=-1x2"):
        with pytest.raises(UsageError, match="--shape"):
            parse_shape(bad)


# ---------------------------------------------------------------------------------- real runtimes, real worker


@pytest.mark.slow
def test_guessed_inputs_that_fail_get_one_sentence_and_the_flags_make_the_model_run(tmp_path, db_path):
    model = vad_like(tmp_path / "vad_like.onnx")
    r, doc = run_json(model, db=db_path)
    assert r.returncode == 3 and doc["status"] == "failed"
    error = doc["error"]
    assert error.startswith("the first inference failed on inputs that edgeprof guessed: 'input' float32 [1, 128]")
    assert "'state' float32 [2, 1, 128]" in error and "'sr' int64 [] random ids 0..99" in error
    assert "--shape NAME=D1xD2... and --fill NAME=VALUE" in error and "the Inputs panel" in error
    assert "ONNXRuntimeError" not in error and "onnxruntime_src" not in error  # the raw text is in the details
    assert "(the runtime said: " in error and "Reshape" in error  # the cleaned cause says which node refused
    assert "Reshape" in doc["error_detail"]
    stderr = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(stderr) == 1 and f"show {doc['run_id']}" in stderr[0]
    shown = cli("show", doc["run_id"], db=db_path).stdout
    assert "details (the runtime's own message):" in shown and "Reshape" in shown

    r, doc = run_json(model, "--shape", "input=1x512", "--fill", "sr=16000", db=db_path)
    assert r.returncode == 0, r.stderr
    assert doc["config"]["input_shapes"] == {"input": [1, 512]} and doc["config"]["input_fills"] == {"sr": 16000}
    assert "input 'input' shape [1, 512] (--shape)" in doc["notes"] and "input 'sr' filled with 16000 (--fill)" in \
        doc["notes"]
    assert any(n.startswith("input 'state': batch=1 as for the other inputs") for n in doc["notes"])
    run = Store(db_path).get_run(doc["run_id"])
    assert run["config"]["input_shapes"] == {"input": [1, 512]}


@pytest.mark.slow
def test_zero_dims_unsigned_strings_and_sequences_run(tmp_path, db_path):
    models = [
        identity(tmp_path / "zero.onnx", TensorProto.FLOAT, [2, 0, 4]),
        identity(tmp_path / "u32.onnx", TensorProto.UINT32, [3]),
        identity(tmp_path / "u64.onnx", TensorProto.UINT64, ["n"]),
        identity(tmp_path / "u16.onnx", TensorProto.UINT16, [2, 2]),
        identity(tmp_path / "text.onnx", TensorProto.STRING, [4]),
        identity(tmp_path / "seq.onnx", TensorProto.FLOAT, None, seq=True),
    ]
    for model in models:
        r, doc = run_json(model, db=db_path)
        assert r.returncode == 0 and doc["status"] == "ok", (model.name, r.stderr)
    r, doc = run_json(identity(tmp_path / "bf16.onnx", TensorProto.BFLOAT16, [2]), db=db_path)
    assert r.returncode == 3 and doc["error"].startswith("input 'x' has type tensor(bfloat16), which edgeprof cannot")
    r, doc = run_json(identity(tmp_path / "opt.onnx", TensorProto.FLOAT, [2], optional=True), db=db_path)
    assert r.returncode == 3 and "input 'x' has type optional(tensor(float))" in doc["error"]


@pytest.mark.slow
def test_runtime_messages_keep_their_cause(tmp_path, db_path):
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    r, doc = run_json(save(graph, tmp_path / "ir99.onnx", ir=99), db=db_path)
    import onnxruntime

    assert r.returncode == 3
    assert doc["error"].startswith(f"ir99.onnx has ONNX IR version 99; this ONNX Runtime ({onnxruntime.__version__}) "
                                   "reads up to ")
    assert doc["error"].endswith("export it with an older onnx package, or upgrade onnxruntime.")
    normalize = helper.make_graph(
        [helper.make_node("StringNormalizer", ["x"], ["y"], case_change_action="LOWER", locale="zz_ZZ.UTF-8")], "g",
        [helper.make_tensor_value_info("x", TensorProto.STRING, [2])],
        [helper.make_tensor_value_info("y", TensorProto.STRING, [2])])
    r, doc = run_json(save(normalize, tmp_path / "locale.onnx"), db=db_path)
    assert r.returncode == 3 and doc["error"].startswith("the model needs the locale zz_ZZ.UTF-8, which this device")


def test_onnx_runtime_text_is_cleaned_not_cut():
    from edgeprof.runtimes.onnx import clean_message

    raw = ("[ONNXRuntimeError] : 1 : FAIL : Load model from m.onnx failed:/onnxruntime_src/onnxruntime/core/graph/"
           "model.cc:256 onnxruntime::Model::Model(onnx::ModelProto&&, const onnxruntime::PathString&, const "
           "onnxruntime::IOnnxRuntimeOpSchemaRegistryList*, const onnxruntime::logging::Logger&, const "
           "onnxruntime::ModelOptions&) Unsupported model IR version: 99, max supported IR version: 14\n")
    assert clean_message(raw) == "Unsupported model IR version: 99, max supported IR version: 14"
    raw = ("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Non-zero status code returned while running Dropout node. "
           "Name:'' Status Message: /onnxruntime_src/onnxruntime/core/providers/cpu/nn/dropout_op.h:42 float "
           "onnxruntime::{anonymous}::GetRatioOrDefault(const onnxruntime::Tensor*) [with T2 = float] 0.0f <= "
           "ratio_value && ratio_value < 1.0f was false. ratio must be in the range [0, 1).")
    assert clean_message(raw) == "the Dropout node says: ratio must be in the range [0, 1)."
    raw = ("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running Upsample node. "
           "Name:'up' Status Message: upsamplebase.h:544 ScalesValidation Scale value should be greater than or "
           "equal to 1.")
    assert clean_message(raw) == "the Upsample node 'up' says: Scale value should be greater than or equal to 1."


def test_tflite_advice_never_names_the_interpreter_in_use():
    from pathlib import Path

    from edgeprof.runtimes.tflite import _explain

    exc = RuntimeError("Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'")
    _, hint = _explain(Path("m.tflite"), "litert", "2.3.0", exc)
    assert "--tflite-interpreter litert" not in hint and "upgrade ai-edge-litert" in hint
    _, hint = _explain(Path("m.tflite"), "tflite-runtime", "2.14.0", exc)
    assert "--tflite-interpreter litert" in hint
    _, hint = _explain(Path("m.tflite"), "litert", "2.3.0", RuntimeError("something else"))
    assert "--tflite-interpreter tflite-runtime" in hint


@pytest.mark.slow
@pytest.mark.parametrize("interpreter", ["litert", pytest.param("tflite-runtime", marks=requires_tflite_runtime)])
def test_tflite_dynamic_inputs_are_resized_before_allocation(db_path, interpreter):
    """dynamic_frames.tflite takes [-1, -1] (traced at [1, 1]); it needs at least 400 samples."""
    model = FIX / "dynamic_frames.tflite"
    r, doc = run_json(model, "--tflite-interpreter", interpreter, db=db_path)
    assert r.returncode == 3
    assert doc["error"].startswith("preparing the model failed on inputs that edgeprof guessed: 'wave' float32 [1, 1]")
    assert "e.g. --shape wave=1xN with the sizes it takes" in doc["error"]
    r, doc = run_json(model, "--tflite-interpreter", interpreter, "--shape", "wave=1x1280", db=db_path)
    assert r.returncode == 0, r.stderr
    assert doc["backend"]["name"] == interpreter and doc["latency_ms"]["n"] == 5


@pytest.mark.slow
@pytest.mark.parametrize("args,needle", [
    (["--model", "models/digits-cnn/digits-cnn-fp32.tflite", "--runtime", "onnx"], "it cannot run with runtime 'onnx'"),
    (["--model", "models/digits-cnn/digits-cnn-int8-static.tflite", "--precision", "fp16"], "cannot be run as fp16"),
    (["--model", "digits-cnn", "--shape", "nope=1x2"], "'nope', which the model does not have as an input"),
    (["--model", "digits-cnn", "--fill", "input=abc"], "give a number"),
])
def test_usage_errors_exit_2_and_store_nothing(db_path, args, needle):
    r = cli("run", *args, "--iterations", "5", db=db_path)
    assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert Store(db_path).list_runs().empty


def test_the_session_sees_what_the_file_declares(tmp_path):
    """The Run page's Inputs panel reads the file (inspect); the worker reads the session: they must agree."""
    from edgeprof.models.inspect import inspect_file

    for model in (vad_like(tmp_path / "v.onnx"), identity(tmp_path / "s.onnx", TensorProto.FLOAT, None, seq=True),
                  identity(tmp_path / "z.onnx", TensorProto.FLOAT, [2, 0, 4]), FIX / "dynamic_frames.tflite"):
        assert inspect_file(model).inputs == open_session(model).inputs, model.name
