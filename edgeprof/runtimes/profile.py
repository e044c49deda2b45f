"""Per-operator profiles: what a runtime's own profiler says each operator of a model cost, per inference.

A run that asks for one (``--profile-ops``) profiles a separate phase of inferences AFTER its steady state, so the
profiler never touches the measured latencies. ONNX Runtime turns its profiler on only when a session is created
(``SessionOptions.enable_profiling``), so the worker closes the measured session and opens a second one of the same
file with the same options plus profiling; it runs ``warmup_runs`` inferences that are left out, then profiled ones
until ``min_runs`` and ``max_s`` are both reached or ``max_runs`` is (``ProfileBudget``), and reads the trace the
profiler writes (a Chrome-trace JSON: one event per line; ``Node`` events ``<node>_kernel_time`` carry the operator
type and the execution provider in ``args``; ``Session`` events ``model_run`` span each inference).

Why the operator times do not add up to the measured latency exactly: they leave out what happens between kernels
(the executor's own bookkeeping, layout reorders counted as operators of their own, copying inputs in and outputs
out, the Python call), and the profiler itself adds a little to every node. ``run_ms`` (the median inference as the
profiler timed it) and the summary's ``coverage`` (sum of operator times / the steady p50) say how close it got.
"""

from __future__ import annotations

import json
import statistics
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

TOP_NODES = 15


@dataclass(frozen=True)
class ProfileBudget:
    """How many inferences a profile phase runs: ``warmup_runs`` left out, then at least ``min_runs`` and until
    ``max_s`` seconds have passed, at most ``max_runs`` (the profiler keeps every event in memory until the end)."""

    warmup_runs: int = 5
    min_runs: int = 10
    max_runs: int = 100
    max_s: float = 2.0


def read_trace_events(path: str) -> Iterable[dict]:
    """The events of an ONNX Runtime profile file, one at a time: it writes one JSON object a line inside a ``[``
    ``]`` pair, so the file is never held whole (a trace of 100 inferences of a 100-node model is ~15 MB of text,
    all of it charged to the worker's memory cap). A file in another layout is read whole."""
    with open(path, encoding="utf-8") as fh:
        first = fh.readline().strip()
        if first != "[":
            fh.seek(0)
            yield from json.load(fh)
            return
        for line in fh:
            line = line.strip().rstrip(",")
            if not line or line == "]":
                continue
            event = json.loads(line)
            args = event.get("args") or {}
            yield {k: event.get(k) for k in ("cat", "name", "ts", "dur")} | {
                "args": {k: args[k] for k in ("op_name", "provider") if k in args}}


def ort_profile(events: Iterable[dict], skip_runs: int = 0, source: str = "onnxruntime profiler",
                top_nodes: int | None = TOP_NODES) -> dict:
    """Aggregate an ONNX Runtime trace: the ``model_run`` spans after the first ``skip_runs`` are the profiled
    inferences; each ``<node>_kernel_time`` event inside one counts for its operator type and node.

    An operator type's ``ms_per_inference`` is the MEDIAN over the profiled inferences of its time in each one (as
    the steady p50 is a median): one inference that the scheduler interrupted (seen: a 10-us Flatten taking 20 ms
    on a busy machine) would move a mean by 0.2 ms over 100 inferences.

    Returns ``{"source", "inferences", "warmup_inferences", "run_ms" (the median inference as the profiler timed it),
    "op_total_ms" (the sum over types), "by_type": [{"op_type", "ms_per_inference", "share", "calls_per_inference",
    "provider"}], "by_node": [{"node", "op_type", "provider", "ms_per_inference", "share"}] (``top_nodes`` slowest; None: all),
    "providers": {provider: share}}`` with times in ms per inference and shares of the operator total; or
    ``{"unavailable": why}`` when the trace holds no profiled inference.
    """
    runs, nodes = [], []
    for e in events:
        cat, name = e.get("cat"), str(e.get("name") or "")
        if cat == "Session" and name == "model_run":
            runs.append((float(e["ts"]), float(e["dur"])))
        elif cat == "Node" and name.endswith("_kernel_time"):
            nodes.append(e)
    runs.sort()
    kept = runs[skip_runs:]
    if not kept:
        return {"unavailable": f"the profiler recorded {len(runs)} inferences, none after the {skip_runs} left out "
                               "as its warm-up"}
    n = len(kept)
    starts = [r[0] for r in kept]
    types: dict[str, dict] = {}  # op type -> {"us": per-run array, "calls": count, "providers": {p: us}}
    per_node: dict[str, dict] = {}
    for e in nodes:
        ts = float(e["ts"])
        i = bisect_right(starts, ts) - 1
        if i < 0 or ts > kept[i][0] + kept[i][1]:
            continue  # a warm-up inference's node
        args = e.get("args") or {}
        op, provider = str(args.get("op_name") or "?"), str(args.get("provider") or "?")
        dur = float(e.get("dur") or 0.0)
        t = types.setdefault(op, {"us": [0.0] * n, "calls": 0, "providers": {}})
        t["us"][i] += dur
        t["calls"] += 1
        t["providers"][provider] = t["providers"].get(provider, 0.0) + dur
        nd = per_node.setdefault(str(e["name"])[: -len("_kernel_time")], {"us": [0.0] * n, "op": op, "p": provider})
        nd["us"][i] += dur
    if not types:
        return {"unavailable": "the profiler timed no operator (its trace has no kernel events)"}
    med = {op: statistics.median(t["us"]) / 1000.0 for op, t in types.items()}
    total = sum(med.values()) or 1.0
    by_type = sorted(({"op_type": op, "ms_per_inference": med[op], "share": med[op] / total,
                       "calls_per_inference": round(t["calls"] / n),
                       "provider": max(t["providers"], key=t["providers"].get)} for op, t in types.items()),
                     key=lambda r: -r["ms_per_inference"])
    node_ms = {name: statistics.median(nd["us"]) / 1000.0 for name, nd in per_node.items()}
    top = sorted(node_ms, key=lambda k: -node_ms[k])[:top_nodes]
    provider_ms: dict[str, float] = {}
    for op, t in types.items():
        for p, us in t["providers"].items():
            provider_ms[p] = provider_ms.get(p, 0.0) + med[op] * us / sum(t["providers"].values())
    return {
        "source": source,
        "inferences": n,
        "warmup_inferences": min(skip_runs, len(runs)),
        "run_ms": statistics.median(d for _, d in kept) / 1000.0,
        "op_total_ms": sum(med.values()),
        "by_type": by_type,
        "by_node": [{"node": k, "op_type": per_node[k]["op"], "provider": per_node[k]["p"],
                     "ms_per_inference": node_ms[k], "share": node_ms[k] / total} for k in top],
        "providers": {p: ms / total for p, ms in sorted(provider_ms.items(), key=lambda kv: -kv[1])},
    }
