"""Capture ONNX Runtime profiler traces of the bundled digits-cnn (fp32 and int8-dynamic) for the profile parser's
tests. Run from the repository root with the project's venv:

    .venv/bin/python tests/data/profiles/make_traces.py

Each trace is what ``SessionOptions.enable_profiling`` writes (one JSON event a line inside ``[`` ``]``) for 2
warm-up and 4 profiled inferences, with each event's ``args`` cut down to ``op_name``, ``provider`` and
``node_index`` (the full args carry shapes and thread statistics, ~1.5 kB an event, which the parser does not read).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))
KEEP = ("op_name", "provider", "node_index")


def capture(model: Path, out: Path, runs: int = 6) -> None:
    with tempfile.TemporaryDirectory() as folder:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(folder) / "ort")
        sess = ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).random((1, 1, 8, 8), dtype=np.float32)
        for _ in range(runs):
            sess.run(None, {sess.get_inputs()[0].name: x})
        lines = Path(sess.end_profiling()).read_text().splitlines()
    kept = []
    for line in lines:
        text = line.strip().rstrip(",")
        if text in ("[", "]"):
            continue
        event = json.loads(text)
        event["args"] = {k: v for k, v in (event.get("args") or {}).items() if k in KEEP}
        kept.append(json.dumps(event, separators=(",", ":")))
    out.write_text("[\n" + ",\n".join(kept) + "\n]\n")


def main() -> None:
    from edgeprof.models.catalog import resolve_variant

    for precision in ("fp32", "int8-dynamic"):
        variant = resolve_variant("digits-cnn", precision, "onnx")
        capture(variant.path, HERE / f"ort-digits-cnn-{precision}.json")


if __name__ == "__main__":
    main()
