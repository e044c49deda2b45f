"""The quantization doctor's arithmetic: errors per tensor, operators ranked by error and by time, the sentences,
the smallest mix that meets a target, and the Pareto front of variants. Pure (numpy only): the isolated child
imports it to rank operators, tests pin it down on made-up numbers.

Errors follow ONNX Runtime's ``onnxruntime.quantization.qdq_loss_debug``: SQNR in dB is
``20 log10(||x|| / ||x - y||)`` over every element of every input (its ``compute_signal_to_quantization_noice_ratio``);
the relative error is ``||x - y|| / ||x||`` (the same figure on a linear scale). ``ErrorSums`` accumulates the two
norms input by input, because ``collect_activations`` keeps every intermediate tensor of every input in memory
(efficientnet-lite0: ~30 MB per image and model), all of it charged to the child's memory cap.

An operator's error has these figures:
- ``sqnr_db``: its output in the int8 model against the FP32 model's, over the whole model so far (cumulative: it
  falls layer after layer, so it cannot say which operator lost the accuracy); ``input_sqnr_db`` the same for its
  worst input;
- ``local_sqnr_db``: the noise it adds, ``added_db(input, output)``: the output's relative noise power less the
  input's. Operators are ranked by it; the mixes (``choose_mix``) measure whether keeping them in FP32 helps;
- ``weight_sqnr_db``: its weights dequantized against the FP32 weights (``create_weight_matching``); a high figure
  can hide a loss (one outlier weight carries the norm while the small weights that matter round to zero), which
  is why it does not rank;
- ``activation_sqnr_db``: its output before and after its own QuantizeLinear/DequantizeLinear pair.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

MAX_NAMED = 3
TIME_SHARE = 0.8  # the operator types named in the time sentence cover this share of the int8 model's time
DEFAULT_MIX_SIZES = (1, 2, 4, 8)
MAX_DB = 200.0  # what an exact match reads as
LITTLE_DB = 35.0  # noise 35 dB below the signal (1.8% of its amplitude): int8's rounding at its best is ~40-48 dB


class ErrorSums:
    """Streaming SQNR and relative error of ``other`` against ``ref`` over many inputs (float64 sums)."""

    def __init__(self) -> None:
        self.signal = 0.0
        self.noise = 0.0
        self.count = 0

    def add(self, ref: np.ndarray, other: np.ndarray) -> None:
        ref = np.asarray(ref, np.float64).reshape(-1)
        other = np.asarray(other, np.float64).reshape(-1)
        if ref.shape != other.shape:
            raise ValueError(f"tensor sizes differ: {ref.size} vs {other.size}")
        self.signal += float(np.dot(ref, ref))
        diff = ref - other
        self.noise += float(np.dot(diff, diff))
        self.count += 1

    @property
    def sqnr_db(self) -> float | None:
        return sqnr_db(self.signal, self.noise) if self.count else None

    @property
    def relative_error(self) -> float | None:
        if not self.count:
            return None
        return math.sqrt(self.noise) / max(math.sqrt(self.signal), np.finfo(float).eps)


def sqnr_db(signal_power: float, noise_power: float) -> float:
    """``20 log10(||x|| / ||x - y||)`` from the squared norms, with ``qdq_loss_debug``'s floor (machine epsilon) on
    both norms; an exact match (an all-zero bias kept exactly, too) is ``MAX_DB``, not infinity."""
    if noise_power == 0.0:
        return MAX_DB
    eps = np.finfo(float).eps
    return 20.0 * math.log10(max(math.sqrt(signal_power), eps) / max(math.sqrt(noise_power), eps))


EXACT = "exact"  # an SQNR of MAX_DB in words: no noise at all, the tensor is identical to fp32's
ADDS_NONE = "adds none"  # an added SQNR of MAX_DB in words: the operator's output is no noisier than its input


def db_text(value: float | None, *, added: bool = False, digits: int = 1) -> str:
    """An SQNR as a person reads it (the tables of the CLI and the Models page): ``43.4``; ``MAX_DB`` (the sentinel
    of no noise, which JSON keeps as a number) as ``exact`` (identical to fp32's), or ``adds none`` for the noise an
    operator adds (``added``: its output may still carry the noise that reached it); ``-`` for None."""
    if value is None or not math.isfinite(value):
        return "-"
    if value >= MAX_DB:
        return ADDS_NONE if added else EXACT
    return f"{value:.{digits}f}"


DB_LEGEND = (f"{EXACT}: no noise, identical to fp32's (SQNR infinite); {ADDS_NONE}: the operator's output is no "
             "noisier than what reached it")


def below_range_clipped(pre: np.ndarray, post: np.ndarray) -> np.ndarray:
    """``pre`` (a tensor before its QuantizeLinear) raised to the lowest value ``post`` (after DequantizeLinear)
    holds, where it went below. ORT's quantizer removes a Relu (or Clip) after a Conv and lets the lower end of the
    uint8 range do its work, so ``pre`` there is the Conv's output before the Relu: counting its negative values as
    error would call every Conv+Relu a 1-dB disaster. Clipping at the top (a range too narrow) still counts."""
    pre = np.asarray(pre)
    lo = float(np.min(post)) if np.size(post) else 0.0
    return np.maximum(pre, lo) if np.size(pre) and float(np.min(pre)) < lo else pre


def added_db(input_db: float | None, output_db: float) -> float:
    """SQNR of the noise an operator adds: its output's relative noise power less its input's (None: the model's
    input, exact). An operator that shrinks the relative noise (a max-pool, a Relu) adds none: ``MAX_DB``."""
    noise = 10.0 ** (-output_db / 10.0) - (0.0 if input_db is None else 10.0 ** (-input_db / 10.0))
    return MAX_DB if noise <= 10.0 ** (-MAX_DB / 10.0) else min(MAX_DB, -10.0 * math.log10(noise))


def combine_db(*values: float | None) -> float | None:
    """SQNRs of independent noises on one signal, combined: their relative noise powers add."""
    have = [v for v in values if v is not None]
    if not have:
        return None
    return -10.0 * math.log10(sum(10.0 ** (-v / 10.0) for v in have))


def operator_rows(operators: Sequence[dict], tensors: dict[str, dict], weights: dict[str, float],
                  ms_fp32: dict[str, float], ms_int8: dict[str, float], kernels: dict[str, str]) -> list[dict]:
    """One row per quantized operator of the int8 graph.

    ``operators``: ``{"node", "op_type", "inputs"/"outputs": [tensor names], "weights": [initializer names]}``;
    ``tensors``: tensor name -> ``{"sqnr_db", "relative_error", "activation_sqnr_db"}``; ``weights``: initializer
    name -> SQNR dB; ``ms_fp32``/``ms_int8``: node (or output tensor) name -> ms per inference from each profile;
    ``kernels``: node name -> the kernel the int8 model ran it as (e.g. ``QLinearConv``).
    Rows: node, op_type, runs_as, sqnr_db, relative_error, weight_sqnr_db, activation_sqnr_db, local_sqnr_db,
    ms_fp32, ms_int8. An operator with no measured output (nothing quantized after it) has None errors.
    """
    rows = []
    for op in operators:
        outs = [tensors[t] for t in op["outputs"] if t in tensors]
        worst = min(outs, key=lambda t: t["sqnr_db"]) if outs else None
        ins = [tensors[t]["sqnr_db"] for t in op.get("inputs", []) if t in tensors]
        w = [weights[n] for n in op.get("weights", []) if n in weights]
        w_db = min(w) if w else None
        a_db = worst.get("activation_sqnr_db") if worst else None
        # an output nothing quantizes (the model's last operator): its weights are what it loses
        local = added_db(min(ins) if ins else None, worst["sqnr_db"]) if worst is not None else w_db
        rows.append({
            "node": op["node"],
            "op_type": op["op_type"],
            "runs_as": kernels.get(op["node"]),
            "sqnr_db": worst["sqnr_db"] if worst else None,
            "relative_error": worst["relative_error"] if worst else None,
            "weight_sqnr_db": w_db,
            "activation_sqnr_db": a_db,
            "input_sqnr_db": min(ins) if ins else None,
            "local_sqnr_db": local,
            "ms_fp32": _time_of(op, ms_fp32),
            "ms_int8": _time_of(op, ms_int8),
        })
    return rows


def _time_of(op: dict, ms: dict[str, float]) -> float | None:
    """An operator's time by its node name, else by an output tensor's (runtimes rename the nodes they rewrite)."""
    for key in (op["node"], *op.get("outputs", [])):
        if key in ms:
            return ms[key]
    return None


def rank_by_error(rows: Iterable[dict]) -> list[dict]:
    """Worst first: lowest ``local_sqnr_db``; operators without one last."""
    return sorted(rows, key=lambda r: (r["local_sqnr_db"] is None, r["local_sqnr_db"] or 0.0, r["node"]))


def rank_by_time(rows: Iterable[dict]) -> list[dict]:
    """Slowest first in the int8 model; operators the profile did not time last."""
    return sorted(rows, key=lambda r: (r["ms_int8"] is None, -(r["ms_int8"] or 0.0), r["node"]))


def _names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def worst_operators(rows: Sequence[dict], k: int) -> list[str]:
    """The ``k`` operators with the largest local error (those a mix keeps in FP32)."""
    return [r["node"] for r in rank_by_error(rows) if r["local_sqnr_db"] is not None][:k]


def error_sentence(precision: str, rows: Sequence[dict]) -> str:
    ranked = [r for r in rank_by_error(rows) if r["local_sqnr_db"] is not None]
    if not ranked:
        return f"{precision} quantized no operator whose error could be measured."
    first = ranked[0]
    if first["local_sqnr_db"] >= MAX_DB:
        return f"{precision} adds no noise at any operator: its outputs are exact (identical to fp32's)."
    if first["local_sqnr_db"] >= LITTLE_DB:
        return (f"{precision} loses little accuracy anywhere: every operator adds its noise at {LITTLE_DB:.0f} dB SQNR "
                f"or better; the most is in {first['node']} ({first['local_sqnr_db']:.0f} dB).")
    named = [f"{first['node']} (SQNR {first['local_sqnr_db']:.0f} dB)"]
    # the next ones only if they are close to the worst: within 6 dB, i.e. at least a quarter of its noise power
    named += [r["node"] for r in ranked[1:MAX_NAMED] if r["local_sqnr_db"] <= first["local_sqnr_db"] + 6.0]
    return f"{precision} loses most accuracy in {_names(named)}."


def time_sentence(precision: str, by_type_int8: Sequence[dict], by_type_fp32: Sequence[dict] | None = None) -> str:
    """Where the int8 model's time goes by kernel type (``runtimes.profile`` ``by_type`` rows), against FP32."""
    if not by_type_int8:
        return f"No operator profile of {precision}: its time cannot be split by operator."
    total = sum(r["ms_per_inference"] for r in by_type_int8) or 1.0
    named, acc = [], 0.0
    for r in sorted(by_type_int8, key=lambda r: -r["ms_per_inference"]):
        if len(named) == MAX_NAMED or (named and acc >= TIME_SHARE * total):
            break
        named.append(r["op_type"])
        acc += r["ms_per_inference"]
    text = f"{acc / total:.0%} of its operator time is in {_names(named)}"
    if by_type_fp32:
        fp32_total = sum(r["ms_per_inference"] for r in by_type_fp32)
        if fp32_total > 0:
            text += f" (the profiler's sum: {total:.3g} ms per inference against {fp32_total:.3g} ms in fp32)"
    return text + "."


def choose_mix(points: Sequence[dict], *, target_agreement: float | None = None,
               max_accuracy_drop: float | None = None, reference_accuracy: float | None = None) -> dict | None:
    """The mix with the fewest operators kept in FP32 that meets the target; None when none does.

    ``points``: ``{"keep_fp32": [...], "top1_agreement", "accuracy", ...}``. ``max_accuracy_drop`` is a fraction
    (0.01 = one percentage point) below ``reference_accuracy`` (the FP32 model's), which labelled data needs."""
    def meets(p: dict) -> bool:
        if p.get("error"):
            return False
        if target_agreement is not None and (p.get("top1_agreement") is None
                                             or p["top1_agreement"] < target_agreement):
            return False
        if max_accuracy_drop is not None:
            if p.get("accuracy") is None or reference_accuracy is None:
                return False
            if reference_accuracy - p["accuracy"] > max_accuracy_drop + 1e-12:
                return False
        return True

    ok = [p for p in points if meets(p)]
    return min(ok, key=lambda p: len(p.get("keep_fp32") or [])) if ok else None


def mix_sizes(n_operators: int, sizes: Sequence[int] = DEFAULT_MIX_SIZES) -> list[int]:
    """The k values to try: ``sizes`` below the number of quantized operators (keeping all is the FP32 model)."""
    return [k for k in sizes if 0 < k < n_operators]


def pareto_front(points: Sequence[dict], x: str = "p50_ms", y: str = "fidelity") -> list[dict]:
    """The points no other point beats on both axes: lower ``x`` (latency) and higher ``y`` (fidelity); ordered by
    ``x``. Points missing either value are left out."""
    have = [p for p in points if p.get(x) is not None and p.get(y) is not None]
    front = []
    for p in have:
        dominated = any(q is not p and q[x] <= p[x] and q[y] >= p[y] and (q[x] < p[x] or q[y] > p[y]) for q in have)
        if not dominated:
            front.append(p)
    return sorted(front, key=lambda p: (p[x], -p[y]))
