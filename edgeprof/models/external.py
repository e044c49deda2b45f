"""ONNX weights in a file of their own, so ONNX Runtime memory-maps them (``--evictable`` for ONNX).

An .onnx file that keeps its weights inside (every bundled one does) is parsed by ONNX Runtime into its own,
anonymous buffers. Weights saved as external data are memory-mapped instead (measured with onnxruntime 1.32.0 here:
efficientnet-lite0 fp32, 17 MB of weights file-backed at the first inference, against 0 MB from the single file),
provided the session neither pre-packs them nor rewrites them into new initializers (``runtimes.onnx``'s evictable
options). The copy is made once per model content and kept in the cache.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .. import paths

MIN_EXTERNAL_BYTES = 1024  # initializers this large go to the data file; smaller ones stay in the graph


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def drop_page_cache(path: str | Path | None) -> None:
    """Write a file out and drop it from the page cache: cgroup v1 charges a cached page to the cgroup that first
    touched it, so pages left cached by this process (a variant quantized or copied a moment ago) would never count
    against the worker's cap. DONTNEED alone leaves dirty pages in the cache, hence the fsync first."""
    import contextlib
    import os

    if not path or not hasattr(os, "posix_fadvise"):
        return
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def external_data_copy(path: Path) -> tuple[Path, str]:
    """(the model to run, a note saying what was done): ``path`` itself when it already keeps its weights in
    external data, else a cached copy whose initializers of MIN_EXTERNAL_BYTES or more are in ``<name>.data`` beside
    it. Raises ModelError when the file cannot be read as ONNX."""
    import onnx

    from ..errors import ModelError

    path = Path(path)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelError(f"{path.name} could not be read as ONNX to move its weights into a separate file.",
                         "Run it without --evictable.", detail=str(exc)) from None
    if any(init.data_location == onnx.TensorProto.EXTERNAL for init in proto.graph.initializer):
        return path, f"evictable: {path.name} already keeps its weights in external data, which ONNX Runtime maps"
    folder = paths.cache_dir() / f"evictable-{path.stem}-{_digest(path)}"
    out = folder / path.name
    if not out.exists():
        folder.mkdir(parents=True, exist_ok=True)
        proto = onnx.load(str(path))
        tmp = folder / f".{path.name}.tmp"
        onnx.save_model(proto, str(tmp), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=f"{path.stem}.data", size_threshold=MIN_EXTERNAL_BYTES)
        tmp.replace(out)
        drop_page_cache(folder / f"{path.stem}.data")
    size = (folder / f"{path.stem}.data").stat().st_size / 2**20
    return out, (f"evictable: the weights ({size:.1f} MB) were saved as external data beside a copy of the model "
                 f"({out.parent.name}), which ONNX Runtime memory-maps; the session neither pre-packs weights nor "
                 "runs the optimizations that rewrite them (basic graph optimizations only)")
