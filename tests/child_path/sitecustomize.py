"""Test-only: makes ONNX Runtime segfault (a real SIGSEGV, via ctypes) when it opens a model file marked
``crashes-ort`` (see crash_ort_hook), standing in for the converter outputs that crash ONNX Runtime 1.32 on load
(the fp16 variant of a legacy-exported LSTM). Active only where ``EDGEPROF_TEST_CRASH_ORT=1`` and this folder is on
PYTHONPATH."""

import os

if os.environ.get("EDGEPROF_TEST_CRASH_ORT") == "1":
    import crash_ort_hook

    crash_ort_hook.install()
