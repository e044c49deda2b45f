"""Patch onnxruntime.InferenceSession so that opening a model file that carries the marker ``crashes-ort`` (the
fixture's graph name, which converters keep in the variants they build) dies of SIGSEGV, as ONNX Runtime itself does
on some converter outputs. Test-only."""

import ctypes
import os

MARKER = b"crashes-ort"


def _crash_if_marked(path) -> None:
    if not isinstance(path, (str, os.PathLike)):
        return
    try:
        with open(path, "rb") as f:
            marked = MARKER in f.read()
    except OSError:
        return
    if marked:
        ctypes.string_at(0)  # SIGSEGV: the process dies as it would inside ONNX Runtime's C++


def install() -> None:
    import onnxruntime

    original = onnxruntime.InferenceSession.__init__
    if getattr(original, "_crash_hook", False):
        return

    def init(self, path_or_bytes, *args, **kwargs):
        _crash_if_marked(path_or_bytes)
        original(self, path_or_bytes, *args, **kwargs)

    init._crash_hook = True
    onnxruntime.InferenceSession.__init__ = init
