"""Labels from the graph: QOperator and QDQ, 4-bit MatMulNBits, float64 and bfloat16 files are named as what they are,
and a label that --precision rejects is never suggested as one (fixtures built with the onnx helper API)."""

from __future__ import annotations

import pytest
from model_fixtures import single_op

from edgeprof.config import PRECISIONS
from edgeprof.errors import UsageError
from edgeprof.models import catalog
from edgeprof.models.inspect import DETECTED_PRECISIONS, inspect_file


@pytest.mark.parametrize(("kind", "label", "activation"), [
    ("qlinearconv", "int8-static", "uint8"),  # the int32 bias (last input) is not an activation zero point
    ("float64", "fp64", "float64"),
    ("bfloat16", "bf16", "bfloat16"),
    ("matmulnbits", "int4-weights", "float32"),
])
def test_files_are_labelled_as_what_they_are(tmp_path, kind, label, activation):
    spec = inspect_file(single_op(tmp_path / f"{kind}.onnx", kind))
    assert (spec.precision, spec.activation_dtype) == (label, activation), spec.notes
    assert label in DETECTED_PRECISIONS
    assert not any("remain float" in n for n in spec.notes), spec.notes


@pytest.mark.parametrize("kind", ["float64", "matmulnbits"])
def test_a_label_precision_rejects_is_never_suggested(tmp_path, kind):
    path = single_op(tmp_path / f"{kind}.onnx", kind)
    with pytest.raises(UsageError) as info:
        catalog.resolve_variant(str(path), "int8-static", None, build=False)
    msg = str(info.value)
    label = inspect_file(path).precision
    assert label not in PRECISIONS and f"--precision {label}" not in msg
    assert "leave --precision out to run the file as it is" in msg


FLEX = ("Select TensorFlow op(s), included in the given model, is(are) not supported by this interpreter. Make sure you "
        "apply/link the Flex delegate before inference. For the Android, it can be resolved by adding "
        "\"org.tensorflow:tensorflow-lite-select-tf-ops\" dependency. See instructions: "
        "https://www.tensorflow.org/lite/guide/ops_selectNode number 5 (FlexErf) failed to prepare.")
INT16 = ("tensorflow/lite/kernels/fully_connected.cc:360 input->type == kTfLiteInt16 was not true. Type INT16 is not "
         "currently supported. Node number 2 (FULLY_CONNECTED) failed to prepare.")


def test_tflite_refusals_name_the_missing_capability_and_only_advice_that_can_work(tmp_path):
    """Messages in TFLite's format (Flex text as LiteRT prints it; the int16 line in its kernels' check format)."""
    from pathlib import Path

    from edgeprof.runtimes.tflite import _explain

    msg, hint = _explain(Path("m.tflite"), "litert", "2.3.0", RuntimeError(FLEX))
    assert msg == ("m.tflite uses Select TensorFlow ops (FlexErf), which need TensorFlow's Flex delegate; no pip TFLite "
                   "interpreter has it, litert 2.3.0 included.")
    assert "tflite-runtime" not in hint and "SELECT_TF_OPS" in hint and "http" not in msg + hint
    msg, hint = _explain(Path("q16.tflite"), "litert", "2.3.0", RuntimeError(INT16))
    assert "int16x8 quantization scheme" in msg and "--shape" not in hint and "--fill" not in hint
    assert "tflite-runtime" not in hint
