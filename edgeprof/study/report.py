"""A study's report: which of the paper's claims this device's data support, with the numbers that decide it.

Three layers, kept apart so the middle one can be tested on made-up tables:

1. ``study_frame(store, study_id)`` reads the study's cells and their runs into one DataFrame (one row per grid
   cell; the only I/O in the analysis).
2. Pure functions over that frame: ``evaluate_claims`` (one ``Finding`` per claim) and ``correlation_table``.
3. Rendering: ``render_figures`` (matplotlib, Agg, PNG bytes), ``render_html`` and ``write_report``.

The claims (from the paper, for a Raspberry Pi 4 and a Jetson Nano):
  memory_latency  a smaller memory allocation gives a higher latency
  cpu_memory_cpu  on a CPU-only board, CPU utilization rises with the memory allocation
  cpu_memory_gpu  on a GPU board, CPU utilization falls with the memory allocation (the GPU does the work)
  model_size      a smaller model gives a lower latency
  precision_bits  fewer bits give a lower latency; more bits on the same model a higher latency
and the paper's measurement of how hardware utilization correlates with latency (Pearson), which the correlation
table reports (a measurement, not a claim with a direction).

How a verdict is reached. Variants differ by orders of magnitude in latency, so each test pools runs after
normalising within the group the claim holds fixed (a variant, or a model at one memory limit, ...): a run's value
divided by its group's reference (the most generous limit; fp32; the group's median). The pooled Spearman rho between
the factor and the normalised value, with its p value, decides: "supported" when the sign is the claimed one and
p < ALPHA; "not supported" otherwise; "too few data" with fewer than MIN_N runs or no group with two levels of the
factor; "not testable here" when the device cannot show it (the GPU claim on a CPU-only board, one model only).
Per-group numbers (rho per variant, p50 ratios) are given with every finding.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .. import stats
from ..config import PRECISIONS, bits_of
from ..errors import UsageError
from ..questions import fmt_p
from ..store.store import jsonable
from .config import parse_memory_limit

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
NOT_TESTABLE = "not testable here"
TOO_FEW = "too few data"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, NOT_TESTABLE, TOO_FEW)
ALPHA = 0.05
MIN_N = 6  # pooled runs below which no verdict is given
FEW_N = 10  # below this a verdict carries a caution

_jsonable, _fmt_p = jsonable, fmt_p  # the names of before the dedupe, for callers elsewhere

DIED = ("oom_killed", "timed_out", "crashed")
UTILIZATION = {  # column -> label; RAM peak is charged memory where a cgroup accounted it, else RSS
    "cpu_system_mean_pct": "CPU system (%)",
    "cpu_worker_mean_pct": "CPU worker (%)",
    "peak_ram_mb": "RAM peak (MB)",
    "gpu_util_mean_pct": "GPU util (%)",
}
FRAME_COLUMNS = ["cell_key", "cell_status", "run_id", "status", "rep", "model", "precision", "runtime", "threads",
                 "mem", "mem_kind", "mem_factor", "memory_limit_mb", "mem_value", "footprint_mb", "bits", "variant",
                 "model_size_mb", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "cov", "n", "cpu_system_mean_pct",
                 "cpu_worker_mean_pct", "peak_ram_mb", "gpu_util_mean_pct", "warmup_ms", "load_ms",
                 "first_inference_ms", "temp_max_c", "throttled", "major_faults", "mem_pressure_some_pct",
                 "mem_pressure_full_pct", "pressure_scope", "major_faults_per_s", "energy_mj_per_inference",
                 "energy_source", "top_ops"]
WHY = {  # column -> label, for the "why" table and its figure
    "mem_pressure_some_pct": "some stalled on memory (%)",
    "mem_pressure_full_pct": "all stalled on memory (%)",
    "major_faults_per_s": "major faults/s",
    "energy_mj_per_inference": "energy (mJ/inference)",
}


# =============================================================================================== 1. the frame

def _variant_label(model, precision, runtime, threads) -> str:
    return f"{model} {precision} {runtime} t{threads}"


def _mem_kind(label: str) -> tuple[str, float | None]:
    """(kind, value) of a cell's memory-limit label, by the one parser of those labels."""
    lim = parse_memory_limit(label)
    return lim.kind, lim.value


def _model_sizes(models) -> dict:
    """The fp32 ONNX file size (MB) of each bundled model: the model's size independent of its precision."""
    from ..models.catalog import get_model

    out = {}
    for m in models:
        try:
            v = get_model(m).variant("fp32", "onnx")
            out[m] = v.size_bytes / 1e6 if v.size_bytes else None
        except Exception:
            out[m] = None
    return out


def study_frame(store, study_id: str) -> pd.DataFrame:
    """One row per grid cell of the study with its run's numbers (NaN where the cell has no run)."""
    from .plan import parse_cell_key

    cells = store.cells(study_id)
    if cells.empty:
        studies = store.list_studies()
        if studies.empty or study_id not in set(studies["study_id"]):
            raise UsageError(f"there is no study {study_id} in {store.path}.",
                             "List studies with `python -m edgeprof studies`.")
        return pd.DataFrame(columns=FRAME_COLUMNS)
    runs = store.list_runs(study_id=study_id)
    rows = []
    for c in cells.itertuples():
        parsed = parse_cell_key(c.cell_key)
        if parsed is None:  # a calibration cell: not part of the grid
            continue
        rows.append({"cell_key": c.cell_key, "cell_status": c.status, "run_id": c.run_id, **parsed})
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=FRAME_COLUMNS)
    keep = ["run_id", "status", "memory_limit_mb", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "cov", "n",
            "cpu_system_mean_pct", "cpu_worker_mean_pct", "peak_ram_mb", "gpu_util_mean_pct",
            "warmup_ms", "load_ms", "first_inference_ms", "temp_max_c", "mem_pressure_some_pct",
            "mem_pressure_full_pct", "major_faults_per_s", "energy_mj_per_inference", "tags", "summary"]
    runs = runs[[c for c in keep if c in runs.columns]] if not runs.empty else pd.DataFrame(columns=keep)
    df = df.merge(runs, on="run_id", how="left")
    df["status"] = df["status"].where(df["status"].notna(), df["cell_status"])
    tags = df["tags"].map(lambda t: json.loads(t) if isinstance(t, str) else (t if isinstance(t, dict) else {}))
    summ = df["summary"].map(lambda t: json.loads(t) if isinstance(t, str) else (t if isinstance(t, dict) else {}))
    df["footprint_mb"] = tags.map(lambda t: t.get("footprint_mb"))
    df["throttled"] = summ.map(lambda s: s.get("throttled"))
    df["major_faults"] = summ.map(lambda s: (s.get("memory") or {}).get("major_faults"))
    df["pressure_scope"] = summ.map(lambda s: ((s.get("memory") or {}).get("pressure") or {}).get("scope"))
    df["energy_source"] = summ.map(_energy_source)
    df["top_ops"] = summ.map(_top_ops)
    kinds = df["mem"].map(_mem_kind)
    df["mem_kind"] = kinds.map(lambda k: k[0])
    df["mem_factor"] = kinds.map(lambda k: k[1] if k[0] == "factor" else None)
    # a "none" cell ran under a non-binding accounting cap: its limit is "none" for the analysis
    df.loc[df["mem_kind"] == "none", "memory_limit_mb"] = np.nan
    sizes = _model_sizes(sorted(df["model"].unique()))
    df["model_size_mb"] = df["model"].map(sizes)
    df = df.drop(columns=[c for c in ("tags", "summary") if c in df.columns])
    return normalise_frame(df)


def _energy_source(s: dict) -> str | None:
    e = s.get("energy")
    if not isinstance(e, dict):
        return None
    return e.get("source") if "unavailable" not in e else f"unavailable: {e['unavailable']}"


def _top_ops(s: dict, n: int = 3) -> str | None:
    """``"ConvInteger 61%, Mul 7%, DynamicQuantizeLinear 6%"`` from a summary's operator profile; None without."""
    prof = s.get("op_profile")
    if not isinstance(prof, dict) or not prof.get("by_type"):
        return None
    return ", ".join(f"{t['op_type']} {100 * t['share']:.0f}%" for t in prof["by_type"][:n])


def normalise_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Add the derived columns the analysis needs (idempotent): variant, bits, mem_kind, mem_value (the limit in MB,
    +inf for none, for ordering). Synthetic test frames need only model, precision, runtime, threads, mem, status,
    memory_limit_mb and the measured columns."""
    df = df.copy()
    for col in FRAME_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan
    df["threads"] = df["threads"].fillna(1).astype(int)
    df["rep"] = df["rep"].fillna(0).astype(int)
    df["variant"] = [_variant_label(*r) for r in zip(df["model"], df["precision"], df["runtime"], df["threads"],
                                                     strict=True)]
    df["bits"] = df["precision"].map(bits_of)
    kinds = df["mem"].astype(str).map(_mem_kind)
    df["mem_kind"] = kinds.map(lambda k: k[0])
    lim = pd.to_numeric(df["memory_limit_mb"], errors="coerce")
    df["mem_value"] = np.where(df["mem_kind"] == "none", np.inf, lim)
    for col in ("p50_ms", "cpu_system_mean_pct", "cpu_worker_mean_pct", "peak_ram_mb", "gpu_util_mean_pct",
                "warmup_ms", "model_size_mb", *WHY):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return df[FRAME_COLUMNS]


# =============================================================================================== 2. analysis

@dataclass
class Finding:
    claim_id: str
    claim: str
    verdict: str
    evidence: str  # one or two sentences with the deciding numbers
    numbers: dict = field(default_factory=dict)  # the pooled test: rho, p, n, ...
    groups: list = field(default_factory=list)  # per-group rows (dicts)
    caution: str | None = None

    def __post_init__(self):
        """A claim the data cannot test leads with why (a factor that did not vary, a saturated CPU); an undefined
        rho is then written as such, not as "n/a"."""
        if self.verdict == NOT_TESTABLE and self.caution:
            evidence = self.evidence.replace("= n/a, p = n/a", "undefined")
            self.evidence = f"Not testable here: {self.caution.rstrip('.')}. {evidence}"
            self.caution = None

    def to_dict(self) -> dict:
        return jsonable(asdict(self))


def _ok(df: pd.DataFrame, column: str = "p50_ms") -> pd.DataFrame:
    return df[(df["status"] == "ok") & df[column].notna() & np.isfinite(df[column])]


def _fmt(x, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{nd}g}" if abs(x) < 1000 else f"{x:,.0f}"


def _fmt_p(p) -> str:
    if p is None or not math.isfinite(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _p_text(p) -> str:
    """``p = 0.012`` or ``p < 0.001`` (never "p = <0.001")."""
    text = _fmt_p(p)
    return f"p {text[0]} {text[1:]}" if text.startswith("<") else f"p = {text}"


def _spearman(x, y) -> stats.Correlation:
    return stats.correlate(x, y)


def _decide(corr: stats.Correlation, sign: int, groups_with_levels: int, what: str,
            measure: str = "latency") -> tuple[str, str | None]:
    """The verdict from a pooled Spearman rho (``sign`` is the claimed direction) and a caution; where rho is
    undefined (a factor or a measure that did not vary) the data cannot test the claim: "not testable here", and the
    second value is the reason in words (``what``: the factor, ``measure``: what it should move)."""
    if corr.n < MIN_N or groups_with_levels == 0:
        return TOO_FEW, f"only {corr.n} runs ({groups_with_levels} groups with two or more levels of {what}); " \
                        f"need at least {MIN_N}"
    if corr.spearman_r is None:
        return NOT_TESTABLE, untestable_reason(corr.note, what, measure)
    caution = None
    if corr.n < FEW_N:
        caution = f"only {corr.n} runs: a single run can flip rho; repeat the study with more repetitions"
    if corr.spearman_r * sign > 0 and corr.spearman_p is not None and corr.spearman_p < ALPHA:
        return SUPPORTED, caution
    return NOT_SUPPORTED, caution


def untestable_reason(note: str | None, what: str, measure: str) -> str:
    """``stats.correlate``'s note ("x did not vary: correlation is undefined") in the claim's own words."""
    text = note or "the correlation is undefined"
    if "did not vary" in text:
        names = {"x": what, "y": measure}
        varied = [names[v] for v in ("x", "y") if f"{v} " in text.split("did not vary")[0] + " "]
        who = " and ".join(varied) or measure
        return f"{who} did not vary across the runs, so there is no trend to test"
    return text


def _add_caution(caution: str | None, text: str | None) -> str | None:
    if not text:
        return caution
    return f"{caution}; {text}" if caution else text


def _single_run_caution(pool: pd.DataFrame, cell: list[str]) -> str | None:
    """A caution when every compared point is one run (one repetition): run-to-run noise is not averaged out."""
    if len(pool) and int(pool.groupby(cell).size().max()) == 1:
        return (f"each point is a single run ({stats.SINGLE_RUN}), so run-to-run noise is not averaged out; use 3 "
                "or more repetitions")
    return None


def _ratio(num: pd.Series, den: pd.Series) -> stats.Ratio:
    """median(num) / median(den) of two cells' run p50s, with an interval between runs when both cells have 2+ runs
    (the study's repetitions, each its own process)."""
    return stats.ratio_across_runs(num, den)


def _interval_text(r: stats.Ratio) -> str:
    if r.scope == stats.SCOPE_RUNS:
        return f"{r.low:.3g} to {r.high:.3g} (between {r.n_a} and {r.n_b} runs)"
    return stats.SINGLE_RUN if r.ratio is not None else "n/a"


def _between_runs(ratios: list[stats.Ratio], sign: int, floor_pct: float | None) -> tuple[bool | None, str | None]:
    """Do the per-group differences stand out from the variation between runs? ``sign`` is the claimed direction of
    ratio - 1. Returns (some group's between-run interval excludes 1 in that direction, or None without repetitions;
    a caution in words)."""
    between = [r for r in ratios if r.scope == stats.SCOPE_RUNS]
    if between:
        agree = [r for r in between if r.excludes_one and (r.ratio - 1.0) * sign > 0]
        if len(agree) == len(between):
            return True, None
        return bool(agree), (f"between runs (95% intervals from the repetitions) the difference stands out in the "
                             f"claimed direction in {len(agree)} of {len(between)} groups only")
    single = [r for r in ratios if r.ratio is not None]
    if floor_pct is not None and single:
        under = sum(stats.below_floor(r.ratio, floor_pct) for r in single)
        if under:
            return None, (f"{stats.SINGLE_RUN}: in {under} of {len(single)} groups the difference is under this "
                          f"device's noise floor ({floor_pct:.0f}%), and {stats.floor_words(floor_pct)}")
    return None, None


def _spread_verdict(verdict: str, caution: str | None, ratios: list[stats.Ratio], sign: int,
                    floor_pct: float | None) -> tuple[str, str | None]:
    """A verdict that holds up against the variation between runs: "supported" needs, where the study has
    repetitions, at least one group whose between-run interval excludes no difference in the claimed direction."""
    if verdict == NOT_TESTABLE:
        return verdict, caution
    stands_out, text = _between_runs(ratios, sign, floor_pct)
    if verdict == SUPPORTED and stands_out is False:
        verdict = NOT_SUPPORTED
        text = f"{text}: no group's difference is larger than the variation between runs"
    return verdict, _add_caution(caution, text)


def _rank_within(df: pd.DataFrame, by: list[str], column: str) -> pd.Series:
    """Dense rank of ``column`` within each group (0 = smallest), so levels compare across groups."""
    return df.groupby(by)[column].rank(method="dense") - 1


def _normalise(df: pd.DataFrame, by: list[str], column: str, ref_mask: pd.Series | None = None) -> pd.Series:
    """``column`` divided by its group's reference: the median over ``ref_mask`` rows of the group (all if None)."""
    ref_rows = df if ref_mask is None else df[ref_mask]
    ref = ref_rows.groupby(by)[column].median().rename("_ref")
    joined = df.join(ref, on=by)
    return joined[column] / joined["_ref"]


def _generous_mask(df: pd.DataFrame) -> pd.Series:
    """Rows at the most generous limit of their variant among rows with a result."""
    top = df.groupby("variant")["mem_value"].transform("max")
    return df["mem_value"] == top


def claim_memory_latency(df: pd.DataFrame, floor_pct: float | None = None) -> Finding:
    claim = "A smaller memory allocation leads to a higher latency."
    df = normalise_frame(df)
    ok = _ok(df)
    groups, pooled, spread = [], [], []
    for var, g in ok.groupby("variant"):
        levels = g["mem_value"].nunique()
        c = _spearman(np.where(np.isinf(g["mem_value"]), 1e12, g["mem_value"]), g["p50_ms"])
        r = _ratio(g[g["mem_value"] == g["mem_value"].min()]["p50_ms"], g[g["mem_value"] == g["mem_value"].max()]["p50_ms"])
        died = df[(df["variant"] == var) & df["status"].isin(DIED)]
        tight = g[g["mem_value"] == g["mem_value"].min()]
        groups.append({"variant": var, "n": int(len(g)), "limits": int(levels), "spearman_rho": c.spearman_r,
                       "p": c.spearman_p, "p50_tightest_ok_over_most_generous": r.ratio,
                       "95% interval": _interval_text(r),
                       "tightest_ok_limit": g.loc[g["mem_value"].idxmin(), "mem"], "died_below": int(len(died)),
                       "some_stalled_pct_tightest": _median(tight["mem_pressure_some_pct"]),
                       "full_stalled_pct_tightest": _median(tight["mem_pressure_full_pct"]),
                       "major_faults_per_s_tightest": _median(tight["major_faults_per_s"]),
                       "some_stalled_pct_most_generous": _median(
                           g[g["mem_value"] == g["mem_value"].max()]["mem_pressure_some_pct"]),
                       "pressure_scope": next(iter(tight["pressure_scope"].dropna()), None)})
        if levels >= 2:
            pooled.append(g)
            spread.append(r)
    all_died = df[df["status"].isin(DIED)]
    if not pooled:
        return Finding("memory_latency", claim, TOO_FEW, "no variant has ok runs at two or more memory limits.",
                       {"n": int(len(ok)), "died": int(len(all_died))}, groups,
                       "run a study with several memory limits per variant")
    pool = pd.concat(pooled)
    rank = _rank_within(pool, ["variant"], "mem_value")
    norm = _normalise(pool, ["variant"], "p50_ms", _generous_mask(pool))
    corr = _spearman(rank, norm)
    verdict, caution = _decide(corr, -1, len(pooled), "memory limit")
    caution = _add_caution(caution, _single_run_caution(pool, ["variant", "mem"]))
    verdict, caution = _spread_verdict(verdict, caution, spread, +1, floor_pct)
    ratios = [r["p50_tightest_ok_over_most_generous"] for r in groups if r["limits"] >= 2]
    rose = sum(1 for r in ratios if r and r > 1)
    evidence = (f"pooled Spearman rho between the memory limit (ranked within each variant) and p50 (relative to the "
                f"most generous limit) = {_fmt(corr.spearman_r)}, {_p_text(corr.spearman_p)}, n = {corr.n} runs "
                f"in {len(pooled)} variants; p50 at the tightest limit that still ran over p50 at the most generous (each "
                f"side the median of its runs' p50s): median over {len(ratios)} variants {_fmt(float(np.median(ratios)))}x, "
                f"higher in {rose} of {len(ratios)}. "
                f"{len(all_died)} cells died (OOM-killed, timed out or crashed) at limits below their footprint."
                + pressure_evidence(groups))
    return Finding("memory_latency", claim, verdict, evidence,
                   {"spearman_rho": corr.spearman_r, "p": corr.spearman_p, "n": corr.n, "variants": len(pooled),
                    "median_ratio": float(np.median(ratios)), "variants_higher": rose, "died": int(len(all_died))},
                   groups, caution)


def _median(values) -> float | None:
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    return float(v.median()) if len(v) else None


def pressure_evidence(groups: list[dict]) -> str:
    """The mechanism behind the memory claim, from the variant whose p50 rose most at its tightest limit: e.g.
    " At 1x footprint (efficientnet-lite0 int8-dynamic onnx t2), p50 rose 9.8x while 61% of the time some task
    stalled on memory (48% all tasks) and major faults ran at 2,400/s, against 0% at the most generous limit." """
    rows = [g for g in groups if g.get("limits", 0) >= 2 and g.get("some_stalled_pct_tightest") is not None
            and g.get("p50_tightest_ok_over_most_generous")]
    if not rows:
        if any(g.get("limits", 0) >= 2 for g in groups):
            return (" No memory-pressure figures were recorded for these runs (runs made before edgeprof read the "
                    "kernel's pressure-stall information, or a kernel without it).")
        return ""
    g = max(rows, key=lambda r: r["p50_tightest_ok_over_most_generous"])
    scope = " (system-wide PSI: every process on the device counts)" if g.get("pressure_scope") == "system" else ""
    full = g.get("full_stalled_pct_tightest")
    faults = g.get("major_faults_per_s_tightest")
    base = g.get("some_stalled_pct_most_generous")
    return (f" At {g['tightest_ok_limit']} ({g['variant']}), p50 rose {_fmt(g['p50_tightest_ok_over_most_generous'])}x "
            f"while {g['some_stalled_pct_tightest']:.0f}% of the time some task stalled on memory"
            + (f" ({full:.0f}% all tasks)" if full is not None else "") + scope
            + (f"; major faults {faults:,.0f}/s" if faults is not None else "")
            + (f", against {base:.0f}% stalled at the most generous limit" if base is not None else "") + ".")


def _cpu_memory(df: pd.DataFrame, claim_id: str, claim: str, sign: int, testable: bool, why: str) -> Finding:
    df = normalise_frame(df)
    if not testable:
        return Finding(claim_id, claim, NOT_TESTABLE, why)
    col = "cpu_system_mean_pct"
    ok = _ok(df, col)
    groups, pooled = [], []
    for var, g in ok.groupby("variant"):
        c = _spearman(np.where(np.isinf(g["mem_value"]), 1e12, g["mem_value"]), g[col])
        groups.append({"variant": var, "n": int(len(g)), "limits": int(g["mem_value"].nunique()),
                       "spearman_rho": c.spearman_r, "p": c.spearman_p, "cpu_min_pct": float(g[col].min()),
                       "cpu_max_pct": float(g[col].max())})
        if g["mem_value"].nunique() >= 2:
            pooled.append(g)
    if not pooled and len(_ok(df)) and ok.empty:
        return Finding(claim_id, claim, NOT_TESTABLE, "no CPU utilization was recorded in any run (no CPU sensor "
                       "here), so the claim cannot be tested on this device.", {"n": 0}, groups)
    if not pooled:
        return Finding(claim_id, claim, TOO_FEW, "no variant has ok runs with CPU telemetry at two or more limits.",
                       {"n": int(len(ok))}, groups)
    pool = pd.concat(pooled)
    rank = _rank_within(pool, ["variant"], "mem_value")
    norm = _normalise(pool, ["variant"], col, _generous_mask(pool))
    corr = _spearman(rank, norm)
    verdict, caution = _decide(corr, sign, len(pooled), "memory limit", "system CPU utilization")
    saturated = float(pool[col].min()) >= 95.0
    if saturated and verdict != TOO_FEW:
        verdict, caution = NOT_TESTABLE, (
            "the CPU was saturated (95-100%) in every run, so utilization could not rise or fall with the memory "
            "limit: other load on the device, or as many threads as cores. Run with fewer threads than cores on an "
            "otherwise idle device to test it")
    caution = _add_caution(caution, _single_run_caution(pool, ["variant", "mem"]))
    spread = f"system CPU ranged {_fmt(float(pool[col].min()))}-{_fmt(float(pool[col].max()))}%"
    evidence = (f"pooled Spearman rho between the memory limit (ranked within each variant) and system CPU "
                f"utilization (relative to the most generous limit) = {_fmt(corr.spearman_r)}, "
                f"{_p_text(corr.spearman_p)}, n = {corr.n} runs in {len(pooled)} variants; {spread}.")
    return Finding(claim_id, claim, verdict, evidence,
                   {"spearman_rho": corr.spearman_r, "p": corr.spearman_p, "n": corr.n, "variants": len(pooled)},
                   groups, caution)


def has_gpu(df: pd.DataFrame) -> bool:
    return bool(pd.to_numeric(df.get("gpu_util_mean_pct"), errors="coerce").notna().any()) \
        if "gpu_util_mean_pct" in df else False


def claim_cpu_memory_cpu(df: pd.DataFrame, gpu: bool | None = None) -> Finding:
    gpu = has_gpu(df) if gpu is None else gpu
    return _cpu_memory(df, "cpu_memory_cpu", "On a CPU-only board, CPU utilization rises with the memory allocation.",
                       +1, not gpu, "this device has a GPU (GPU telemetry was recorded): the CPU-only claim does not "
                                    "apply; see the GPU claim.")


def claim_cpu_memory_gpu(df: pd.DataFrame, gpu: bool | None = None) -> Finding:
    gpu = has_gpu(df) if gpu is None else gpu
    return _cpu_memory(df, "cpu_memory_gpu", "On a GPU board, CPU utilization falls as the memory allocation grows "
                                             "(the GPU does the work).",
                       -1, gpu, "no GPU telemetry on this device (CPU-only): the GPU claim needs a board with a GPU "
                                "such as the Jetson Nano.")


def claim_model_size(df: pd.DataFrame, floor_pct: float | None = None) -> Finding:
    claim = "A smaller model gives a lower latency."
    df = normalise_frame(df)
    ok = _ok(df)
    ok = ok[ok["model_size_mb"].notna()]
    models = df["model"].dropna().unique()
    if len(models) < 2:
        return Finding("model_size", claim, NOT_TESTABLE, f"the study has {len(models)} model(s); comparing sizes "
                                                          "needs two or more.")
    by = ["precision", "runtime", "threads", "mem"]
    groups, pooled, spread = [], [], []
    for key, g in ok.groupby(by):
        med = g.groupby("model").agg(p50=("p50_ms", "median"), size=("model_size_mb", "first")).sort_values("size")
        if len(med) < 2:
            continue
        pooled.append(g)
        monotone = bool(np.all(np.diff(med["p50"].to_numpy()) > 0))
        r = _ratio(g[g["model"] == med.index[-1]]["p50_ms"], g[g["model"] == med.index[0]]["p50_ms"])
        spread.append(r)
        groups.append({"group": " ".join(map(str, key)), "smallest": med.index[0], "largest": med.index[-1],
                       "size_ratio": float(med["size"].iloc[-1] / med["size"].iloc[0]),
                       "p50_ratio_largest_over_smallest": float(med["p50"].iloc[-1] / med["p50"].iloc[0]),
                       "95% interval": _interval_text(r), "latency_rises_with_size": monotone})
    if not pooled:
        return Finding("model_size", claim, TOO_FEW, "no precision/runtime/limit has ok runs of two or more models.",
                       {"n": int(len(ok))})
    pool = pd.concat(pooled)
    rank = _rank_within(pool, by, "model_size_mb")
    norm = _normalise(pool, by, "p50_ms")
    corr = _spearman(rank, norm)
    verdict, caution = _decide(corr, +1, len(pooled), "model size")
    caution = _add_caution(caution, _single_run_caution(pool, [*by, "model"]))
    verdict, caution = _spread_verdict(verdict, caution, spread, +1, floor_pct)
    held = sum(r["latency_rises_with_size"] for r in groups)
    if verdict == SUPPORTED and held < len(groups):
        caution = _add_caution(caution, f"latency rose with size in {held} of {len(groups)} groups only")
    ratios = [r["p50_ratio_largest_over_smallest"] for r in groups]
    evidence = (f"p50 of the largest over the smallest model at the same precision, runtime and limit (each model's "
                f"median run p50): median over {len(ratios)} groups {_fmt(float(np.median(ratios)))}x "
                f"(range {_fmt(min(ratios))}-{_fmt(max(ratios))}), higher in {held} "
                f"of {len(groups)} groups; pooled Spearman rho between size rank and p50 (relative to the group) = "
                f"{_fmt(corr.spearman_r)}, {_p_text(corr.spearman_p)}, n = {corr.n}.")
    return Finding("model_size", claim, verdict, evidence,
                   {"spearman_rho": corr.spearman_r, "p": corr.spearman_p, "n": corr.n, "groups": len(groups),
                    "groups_higher": held, "median_ratio": float(np.median(ratios))}, groups, caution)


RATIO_METHOD = ("median of the run p50s at each model's most generous memory limit over the same median of its fp32 "
                "runs (n = runs on each side)")


def precision_ratios(df: pd.DataFrame) -> tuple[dict, dict]:
    """({model: {precision: p50 ratio to fp32}}, {model: {precision: n runs}}) of ok runs at the most generous limit,
    each side the median of its run p50s (``RATIO_METHOD``): the numbers the findings and the precision figure share."""
    ok = _ok(df if "variant" in df else normalise_frame(df))
    gen = ok[_generous_mask(ok)] if len(ok) else ok
    ratios, counts = {}, {}
    for m, g in gen.groupby("model"):
        med = g.groupby("precision")["p50_ms"].agg(["median", "size"])
        if "fp32" in med.index:
            ratios[m] = {p: float(med.loc[p, "median"] / med.loc["fp32", "median"])
                         for p in ("fp16", "int8-dynamic", "int8-static") if p in med.index}
            counts[m] = {p: int(med.loc[p, "size"]) for p in med.index}
    return ratios, counts


def claim_precision_bits(df: pd.DataFrame, floor_pct: float | None = None) -> Finding:
    claim = "Fewer bits give a lower latency; more bits on the same model a higher latency."
    df = normalise_frame(df)
    ok = _ok(df)
    if df["bits"].nunique() < 2:
        return Finding("precision_bits", claim, NOT_TESTABLE, "the study has one precision; comparing bits needs two.")
    by = ["model", "runtime", "threads", "mem"]
    groups, pooled, spread = [], [], []
    for key, g in ok.groupby(by):
        if g["bits"].nunique() < 2:
            continue
        pooled.append(g)
        med = g.groupby("precision")["p50_ms"].median()
        row = {"group": " ".join(map(str, key))}
        if "fp32" in med:
            for p in ("fp16", "int8-dynamic", "int8-static"):
                if p in med:
                    r = _ratio(g[g["precision"] == p]["p50_ms"], g[g["precision"] == "fp32"]["p50_ms"])
                    spread.append(r)
                    row[f"{p}/fp32"] = float(med[p] / med["fp32"])
                    row[f"{p}/fp32 95% interval"] = _interval_text(r)
        groups.append(row)
    if not pooled:
        return Finding("precision_bits", claim, TOO_FEW, "no model/runtime/limit has ok runs at two or more precisions.",
                       {"n": int(len(ok))})
    pool = pd.concat(pooled)
    has_fp32 = pool["precision"] == "fp32"
    norm = _normalise(pool, by, "p50_ms", has_fp32 if has_fp32.any() else None)
    corr = _spearman(pool["bits"], norm)
    verdict, caution = _decide(corr, +1, len(pooled), "precision")
    caution = _add_caution(caution, _single_run_caution(pool, [*by, "precision"]))
    verdict, caution = _spread_verdict(verdict, caution, spread, -1, floor_pct)
    per_model, counts = precision_ratios(pool)
    parts = [f"{m}: " + ", ".join(f"{p}/fp32 {_fmt(v)} (n = {counts[m][p]} vs {counts[m]['fp32']})"
                                  for p, v in r.items()) for m, r in per_model.items()]
    evidence = (f"pooled Spearman rho between bits (32/16/8) and p50 (relative to fp32 of the same model, runtime and "
                f"limit) = {_fmt(corr.spearman_r)}, {_p_text(corr.spearman_p)}, n = {corr.n}. p50 ratios per model, "
                f"{RATIO_METHOD}: " + ("; ".join(parts) if parts else "no fp32 reference") + ".")
    faster = [f"{m} {p}" for m, r in per_model.items() for p, v in r.items() if v < 0.95]
    slower = [f"{m} {p}" for m, r in per_model.items() for p, v in r.items() if v > 1.05]
    if verdict == NOT_SUPPORTED and faster and slower:
        caution = _add_caution(caution, (
            f"mixed: faster than fp32: {', '.join(faster)}; slower: {', '.join(slower)}. Whether fewer bits are "
            "faster depends on the runtime's kernels (fp16 without native fp16 arithmetic, or int8 with dynamic "
            "activation quantization, is often slower on a CPU)"))
    return Finding("precision_bits", claim, verdict, evidence,
                   {"spearman_rho": corr.spearman_r, "p": corr.spearman_p, "n": corr.n, "per_model": per_model},
                   groups, caution)


def evaluate_claims(df: pd.DataFrame, gpu: bool | None = None, floor_pct: float | None = None) -> list[Finding]:
    """Every claim's finding, in the paper's order. ``gpu`` None: inferred from GPU telemetry in the frame.
    ``floor_pct``: the device's noise floor, which judges the differences of single-run studies (with repetitions,
    the latency verdicts need a difference larger than the variation between runs)."""
    gpu = has_gpu(df) if gpu is None else gpu
    return [claim_memory_latency(df, floor_pct), claim_cpu_memory_cpu(df, gpu), claim_cpu_memory_gpu(df, gpu),
            claim_model_size(df, floor_pct), claim_precision_bits(df, floor_pct)]


def uncertainty_words(df: pd.DataFrame, floor: dict | None) -> str:
    """What the report's intervals and verdicts can support, in words: repetitions or single runs, and the device's
    noise floor."""
    df = normalise_frame(df)
    ok = _ok(df)
    reps = int(ok.groupby(["variant", "mem"]).size().max()) if len(ok) else 0
    if reps >= 2:
        text = (f"Each cell ran up to {reps} times, each run its own process: the 95% intervals of the ratios are "
                "between runs, and a latency verdict is 'supported' only where a difference is larger than the "
                "variation between runs.")
    else:
        text = (f"Each cell ran once ({stats.SINGLE_RUN}): a ratio between two single runs can move by the "
                "device's noise floor on a rerun; run the study with 3 or more repetitions.")
    if floor and floor.get("floor_pct") is not None:
        when = floor.get("measured_at")
        when = when.strftime("%Y-%m-%d %H:%M UTC") if hasattr(when, "strftime") else str(when)
        text += f" {stats.floor_words(floor['floor_pct']).capitalize()} (noise floor measured {when})."
    else:
        text += " No noise floor was measured on this device (`edgeprof devices --noise-floor`)."
    return text


def correlation_table(df: pd.DataFrame) -> pd.DataFrame:
    """Pearson r, p, 95% CI, n and Spearman rho, p of each utilization metric against p50 over ok runs: once over
    all runs (what the paper reports; dominated by the differences between models) and once within variants (each
    value divided by its variant's median), which removes that confound."""
    df = normalise_frame(df)
    ok = _ok(df)
    rows = []
    for col, label in UTILIZATION.items():
        sub = ok[ok[col].notna()]
        if col == "gpu_util_mean_pct" and sub.empty:
            continue
        for scope in ("all runs", "within variant"):
            if scope == "all runs":
                x, y = sub[col], sub["p50_ms"]
            else:
                x = _normalise(sub, ["variant"], col) if len(sub) else sub[col]
                y = _normalise(sub, ["variant"], "p50_ms") if len(sub) else sub["p50_ms"]
            c = stats.correlate(x, y)
            rows.append({"metric": label, "scope": scope, "n": c.n, "pearson_r": c.pearson_r, "pearson_p": c.pearson_p,
                         "ci_low": c.pearson_ci_low, "ci_high": c.pearson_ci_high, "spearman_r": c.spearman_r,
                         "spearman_p": c.spearman_p, "note": c.note})
    return pd.DataFrame(rows, columns=["metric", "scope", "n", "pearson_r", "pearson_p", "ci_low", "ci_high",
                                       "spearman_r", "spearman_p", "note"])


def correlations_for_people(corr: pd.DataFrame) -> pd.DataFrame:
    """The correlation table as a student reads it: words for column names, "–" for what could not be computed, p
    as 0.03 or < 0.001, the CI as one cell."""

    def num(v, fmt="{:.2f}"):
        return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt.format(v)

    return pd.DataFrame({
        "metric": corr["metric"], "runs compared": corr["scope"], "n": corr["n"],
        "Pearson r": [num(v) for v in corr["pearson_r"]],
        "95% CI": [f"{num(a)} to {num(b)}" if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)
                   else "–" for a, b in zip(corr["ci_low"], corr["ci_high"], strict=True)],
        "p": [fmt_p(v) for v in corr["pearson_p"]],
        "Spearman rho": [num(v) for v in corr["spearman_r"]],
        "note": [n if isinstance(n, str) and n else "" for n in corr["note"]],
    })


def overview(df: pd.DataFrame) -> dict:
    df = normalise_frame(df)
    counts = df["status"].fillna("not run").value_counts().to_dict()
    return {"cells": int(len(df)), "by_status": {str(k): int(v) for k, v in counts.items()},
            "variants": int(df["variant"].nunique()), "models": sorted(map(str, df["model"].dropna().unique())),
            "throttled_runs": int(df["throttled"].fillna(False).astype(bool).sum()),
            "temp_max_c": float(df["temp_max_c"].max()) if df["temp_max_c"].notna().any() else None}


# =============================================================================================== 3. rendering

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def _x_positions(g: pd.DataFrame, none_at: float) -> np.ndarray:
    return np.where(np.isinf(g["mem_value"]), none_at, g["mem_value"])


def _by_memory_figure(df: pd.DataFrame, column: str, ylabel: str, logy: bool,
                      ylim: tuple[float, float] | None = None) -> bytes:
    plt = _plt()
    models = sorted(df["model"].dropna().unique())
    fig, axes = plt.subplots(1, max(1, len(models)), figsize=(5.2 * max(1, len(models)), 3.8), squeeze=False)
    finite = df["mem_value"][np.isfinite(df["mem_value"])]
    for ax, model in zip(axes[0], models, strict=False):
        sub = df[df["model"] == model]
        fin = sub["mem_value"][np.isfinite(sub["mem_value"])]
        none_at = (fin.max() if len(fin) else (finite.max() if len(finite) else 100.0)) * 1.6
        for var, g in sub.groupby("variant"):
            label = var.replace(f"{model} ", "")
            ok = g[(g["status"] == "ok") & g[column].notna()]
            if len(ok):
                med = ok.assign(x=_x_positions(ok, none_at)).groupby("x")[column].median().sort_index()
                line = ax.plot(med.index, med.values, marker="o", label=label)[0]
                ax.scatter(_x_positions(ok, none_at), ok[column], s=10, alpha=0.4, color=line.get_color())
                color = line.get_color()
            else:
                color = "grey"
            dead = g[g["status"].isin(DIED + ("failed", "error"))]
            if len(dead):
                top = ok[column].max() if len(ok) else 1.0
                ax.scatter(_x_positions(dead, none_at), [top] * len(dead), marker="x", s=50, color=color)
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        if ylim is not None:
            ax.set_ylim(*ylim)
        ticks: list[float] = []
        for t in sorted(set(fin.round(1))):
            if not ticks or t > ticks[-1] * 1.08:  # labels closer than 8% would overlap
                ticks.append(t)
        ticks.append(none_at)
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:g}" for t in ticks[:-1]] + ["none"], rotation=45, fontsize=7)
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.set_title(model, fontsize=10)
        ax.set_xlabel("memory limit (MB); x = run died")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def _precision_figure(df: pd.DataFrame) -> bytes:
    """"Is INT8 faster than FP32?" at a glance: each precision's p50 as a multiple of the same model's FP32 p50 (same
    runtime and threads, most generous limit), bars on a linear axis from 0 with the ratio written on each bar and
    a line at 1 ("as fast as FP32"). Bars of raw milliseconds on a log axis made 9.9 vs 7.0 ms look 10x."""
    plt = _plt()
    ok = _ok(df)
    gen = ok[_generous_mask(ok)] if len(ok) else ok
    fig, ax = plt.subplots(figsize=(7, 3.8))
    precs = [p for p in PRECISIONS if p in set(gen["precision"])]
    groups = sorted(gen.groupby(["model", "runtime", "threads"]).groups) if len(gen) else []
    width = 0.8 / max(1, len(precs))
    for i, p in enumerate(precs):
        vals, ns = [], []
        for m, r, t in groups:
            g = gen[(gen["model"] == m) & (gen["runtime"] == r) & (gen["threads"] == t)]
            ref = g.loc[g["precision"] == "fp32", "p50_ms"].median()
            vals.append(g.loc[g["precision"] == p, "p50_ms"].median() / ref if ref and np.isfinite(ref) else np.nan)
            ns.append(int((g["precision"] == p).sum()))
        bars = ax.bar(np.arange(len(groups)) + i * width, vals, width, label=p)
        ax.bar_label(bars, labels=["" if not np.isfinite(v) else f"{v:.2f}x\nn={k}" for v, k in zip(vals, ns, strict=True)],
                     fontsize=7)
    ax.axhline(1, color="#666", lw=1, ls="--")
    ax.set_xticks(np.arange(len(groups)) + width * (len(precs) - 1) / 2)
    ax.set_xticklabels([f"{m}\n{r} t{t}" for m, r, t in groups], fontsize=8)
    ax.set_ylim(0, None)
    ax.set_ylabel("median run p50 / median FP32 run p50")
    ax.set_title("Latency by precision at the most generous memory limit, relative to FP32 (below 1: faster; "
                 "n runs)", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _png(fig)


def _size_figure(df: pd.DataFrame) -> bytes:
    plt = _plt()
    ok = _ok(df)
    gen = ok[_generous_mask(ok)] if len(ok) else ok
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for p, g in gen.groupby("precision"):
        med = g.groupby(["model", "runtime"]).agg(size=("model_size_mb", "first"), p50=("p50_ms", "median"))
        ax.plot(med["size"], med["p50"], "o", label=p, alpha=0.8)
        for (m, _), r in med.iterrows():
            ax.annotate(m, (r["size"], r["p50"]), fontsize=6, alpha=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("model size (fp32 ONNX file, MB)")
    ax.set_ylabel("p50 latency (ms)")
    ax.set_title("Latency by model size", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def _warmup_figure(df: pd.DataFrame) -> bytes:
    plt = _plt()
    ok = df[(df["status"] == "ok")]
    med = ok.groupby("variant")[["warmup_ms", "first_inference_ms", "load_ms"]].median().sort_index()
    fig, ax = plt.subplots(figsize=(7, 0.32 * max(4, len(med)) + 1))
    y = np.arange(len(med))
    ax.barh(y - 0.25, med["load_ms"], 0.25, label="load")
    ax.barh(y, med["first_inference_ms"], 0.25, label="first inference")
    ax.barh(y + 0.25, med["warmup_ms"], 0.25, label="warm-up")
    ax.set_yticks(y)
    ax.set_yticklabels(med.index, fontsize=7)
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("ms (median over the variant's ok runs)")
    ax.set_title("Load, first inference and warm-up time by variant", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return _png(fig)


FIGURES = {
    "latency_vs_memory.png": "Latency (p50) against memory limit, per variant",
    "cpu_vs_memory.png": "System CPU utilization against memory limit, per variant",
    "pressure_vs_memory.png": "Time stalled on memory (PSI some) against memory limit, per variant",
    "latency_by_precision.png": "Latency by precision",
    "latency_by_size.png": "Latency by model size",
    "warmup_by_variant.png": "Warm-up time by variant",
}


WHY_NOT_DRAWN = {"latency_by_size.png": "this study has one model, so there is no size to compare",
                 "pressure_vs_memory.png": "no cell recorded memory pressure (runs made before edgeprof read the "
                                           "kernel's pressure-stall information, or a kernel without it)"}


def render_figures(df: pd.DataFrame) -> dict[str, bytes]:
    """PNG bytes of each figure, by file name (see FIGURES)."""
    df = normalise_frame(df)
    out = {
        "latency_vs_memory.png": _by_memory_figure(df, "p50_ms", "p50 latency (ms)", logy=True),
        "cpu_vs_memory.png": _by_memory_figure(df, "cpu_system_mean_pct", "system CPU (%)", logy=False, ylim=(0, 105)),
        "latency_by_precision.png": _precision_figure(df),
        "warmup_by_variant.png": _warmup_figure(df),
    }
    if "mem_pressure_some_pct" in df and df["mem_pressure_some_pct"].notna().any():
        out["pressure_vs_memory.png"] = _by_memory_figure(df, "mem_pressure_some_pct",
                                                          "some task stalled on memory (%)", logy=False, ylim=(0, 105))
    if df["model"].nunique() >= 2:  # one model has no size to compare
        out["latency_by_size.png"] = _size_figure(df)
    return out


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.v{font-weight:bold;padding:2px 6px;border-radius:3px}
.supported{background:#d4edda}.not-supported{background:#f8d7da}.not-testable-here{background:#e2e3e5}
.too-few-data{background:#fff3cd}.caution{color:#8a6d3b}img{max-width:100%;border:1px solid #eee;margin:.5em 0}
details{margin:.3em 0 1em}"""


def _table(df: pd.DataFrame) -> str:
    if df is None or df.empty:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for v in row:
            if isinstance(v, float):
                text = "" if not math.isfinite(v) else (f"{v:.3g}" if abs(v) < 1e4 else f"{v:,.0f}")
            else:
                text = "" if v is None else str(v)
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def render_html(meta: dict, df: pd.DataFrame, findings: list[Finding], corr: pd.DataFrame,
                figures: dict[str, bytes], *, links: bool = False) -> str:
    """One self-contained HTML page: the figures are embedded as base64 PNGs. ``links`` adds a link to each PNG
    file (``write_report`` writes them next to index.html; a page downloaded on its own has none to link to)."""
    ov = overview(df)
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>edgeprof study {esc(meta['study_id'])}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>Study {esc(meta['study_id'])}</h1>",
             f"<p>{esc(meta.get('description') or '')}</p>",
             f"<p>Device: {esc(str(meta.get('device') or 'unknown'))}. Cells: {ov['cells']} "
             f"({', '.join(f'{k} {v}' for k, v in ov['by_status'].items())}); {ov['variants']} variants; "
             f"study status {esc(str(meta.get('status')))}. Generated by edgeprof {esc(meta.get('version', ''))}.</p>",
             "<h2 id='findings'>Findings</h2>",
             "<p>Each claim of the paper, tested on this device's runs. A verdict is reached on the pooled Spearman "
             f"rho (p &lt; {ALPHA}) after normalising within the group the claim holds fixed; see docs/studies.md.</p>",
             f"<p class='caution'>{esc(meta.get('uncertainty') or uncertainty_words(df, None))}</p>"]
    for f in findings:
        cls = f.verdict.replace(" ", "-")
        parts.append(f"<h3>{esc(f.claim)}</h3><p><span class='v {cls}'>{esc(f.verdict)}</span> {esc(f.evidence)}</p>")
        if f.caution:
            parts.append(f"<p class='caution'>Caution: {esc(f.caution)}</p>")
        if f.groups:
            parts.append(f"<details><summary>per group ({len(f.groups)})</summary>{_table(pd.DataFrame(f.groups))}"
                         "</details>")
    if ov["throttled_runs"]:
        parts.append(f"<p class='caution'>Caution: {ov['throttled_runs']} runs were throttled; their latency "
                     "reflects the thermal state.</p>")
    parts.append("<h2 id='correlations'>Utilization against latency</h2><p>Pearson r with its 95% CI (Fisher z), "
                 "p and n, and Spearman rho, over ok runs. 'all runs' mixes variants (what the paper reports, "
                 "dominated by model differences); 'within variant' divides each value by its variant's median.</p>")
    parts.append(_table(correlations_for_people(corr)))
    parts.extend(why_html(df))
    parts.append("<h2 id='figures'>Figures</h2>")
    for name, title in FIGURES.items():
        if name in figures:
            data = base64.b64encode(figures[name]).decode()
            parts.append(f"<h3>{esc(title)}</h3><img alt='{esc(title)}' src='data:image/png;base64,{data}'>"
                         + (f"<p><a href='{name}'>{name}</a></p>" if links else ""))
        else:
            parts.append(f"<p>{esc(title)}: not drawn, {esc(WHY_NOT_DRAWN.get(name, 'nothing to draw'))}.</p>")
    cols = ["cell_key", "status", "memory_limit_mb", "p50_ms", "p90_ms", "cpu_system_mean_pct", "cpu_worker_mean_pct",
            "peak_ram_mb", "warmup_ms", "run_id"]
    parts.append("<h2 id='cells'>Cells</h2><details><summary>all cells</summary>"
                 + _table(normalise_frame(df)[cols]) + "</details></body></html>")
    return "\n".join(parts)


def why_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per variant and memory limit (medians over repetitions): p50 beside the memory pressure, major faults, energy
    per inference and the slowest operator types: the figures that say why a cell is slow."""
    df = normalise_frame(df)
    ran = df[df["p50_ms"].notna() | df["mem_pressure_some_pct"].notna()]
    if ran.empty:
        return pd.DataFrame(columns=["variant", "limit", "status", "p50 (ms)", *WHY.values(), "slowest operators"])
    rows = []
    for (var, mem), g in ran.groupby(["variant", "mem"], sort=False):
        row = {"variant": var, "limit": mem, "status": ", ".join(sorted(set(map(str, g["status"])))),
               "p50 (ms)": _median(g["p50_ms"])}
        row.update({label: _median(g[col]) for col, label in WHY.items()})
        row["slowest operators"] = next(iter(g["top_ops"].dropna()), None)
        rows.append(row)
    out = pd.DataFrame(rows)
    order = ran.drop_duplicates(["variant", "mem"]).set_index(["variant", "mem"])["mem_value"]
    out["_v"] = [order.get((v, m)) for v, m in zip(out["variant"], out["limit"], strict=True)]
    return out.sort_values(["variant", "_v"], ascending=[True, False]).drop(columns="_v").reset_index(drop=True)


def why_html(df: pd.DataFrame) -> list[str]:
    """The report's section on why cells are slow: memory pressure, faults, energy and operators per cell."""
    df = normalise_frame(df)
    parts = ["<h2 id='why'>Why: memory pressure, energy, operators</h2>",
             "<p>Per variant and limit (medians over repetitions): the share of the measured time in which some "
             "(or all) tasks stalled on memory (the kernel's pressure-stall information), major page faults per "
             "second, energy per inference and the slowest operator types (cells run with profile_ops = true).</p>"]
    scopes = set(df["pressure_scope"].dropna())
    if "system" in scopes:
        parts.append("<p class='caution'>Some pressure figures are system-wide (no per-cgroup PSI on this device): "
                     "every process on the device counts in them.</p>")
    energy = df["energy_source"].dropna()
    if len(energy) and energy.str.startswith("unavailable").all():
        parts.append(f"<p>Energy per inference: {html.escape(energy.iloc[0])}.</p>")
    parts.append(_table(why_table(df)))
    return parts


def study_meta(store, study_id: str) -> dict:
    from .. import __version__

    studies = store.list_studies()
    row = studies[studies["study_id"] == study_id]
    if row.empty:
        raise UsageError(f"there is no study {study_id} in {store.path}.", "List studies with `python -m edgeprof studies`.")
    r = row.iloc[0]
    cfg = json.loads(r["config"]) if isinstance(r["config"], str) else (r["config"] or {})
    runs = store.list_runs(study_id=study_id, limit=1)
    device = device_id = None
    if not runs.empty:
        device_id = runs.iloc[0]["device_id"]
        run = store.get_run(str(runs.iloc[0]["run_id"]))
        d = (run or {}).get("device") or {}
        name, host = d.get("device_name"), d.get("hostname")  # the device's name; its hostname only as a fallback
        who = f"{name} (host {host})" if name and host and name != host else (name or host)
        device = ", ".join(str(x) for x in (who, d.get("model"), d.get("cpu"),
                                            f"{d.get('cores')} cores" if d.get("cores") else None) if x)
    return {"study_id": study_id, "name": r["name"], "status": r["status"], "description": cfg.get("description"),
            "config": cfg, "device": device, "device_id": device_id, "version": __version__}


def build_report(store, study_id: str) -> dict:
    """Everything the report shows: meta (with the device's latest ``noise_floor`` and ``uncertainty`` in words),
    frame, findings, correlation table (no figures)."""
    meta = study_meta(store, study_id)
    df = study_frame(store, study_id)
    floor = store.latest_noise_floor(meta["device_id"]) if meta.get("device_id") else None
    meta["noise_floor"] = floor
    meta["uncertainty"] = uncertainty_words(df, floor)
    findings = evaluate_claims(df, floor_pct=(floor or {}).get("floor_pct"))
    curves = memory_curves(store, df, meta.get("device_id"))
    findings = [cite_curves(f, curves) if f.claim_id == "memory_latency" else f for f in findings]
    return {"meta": meta, "frame": df, "findings": findings, "correlations": correlation_table(df),
            "why": why_table(df)}


def memory_curves(store, df: pd.DataFrame, device_id: str | None) -> dict:
    """{variant label: the newest stored memory curve (``run.memory``) of that variant on the study's device}."""
    from ..run.memory import latest_curve

    out = {}
    if df.empty or device_id is None:
        return out
    for model, precision, runtime, threads in df[["model", "precision", "runtime", "threads"]].drop_duplicates() \
            .itertuples(index=False):
        try:
            curve = latest_curve(store, model, precision, runtime, device_id=device_id, threads=int(threads))
        except Exception:  # a store that cannot be read here leaves the claim as it was
            curve = None
        if curve is not None:
            out[_variant_label(model, precision, runtime, threads)] = curve
    return out


def cite_curves(finding: Finding, curves: dict) -> Finding:
    """The memory claim with the curve of each variant that has one: its cliff, its slope and the mechanism (what
    could be evicted here), so a verdict on "less memory, more latency" says what this device can show at all."""
    if not curves:
        return finding
    parts = []
    for label, c in curves.items():
        words = c.get("sentences") or {}
        evict = " with evictable weights" if (c.get("mechanism") or {}).get("evictable") else ""
        parts.append(f" The memory curve of {label}{evict} (`edgeprof memory`, measured "
                     f"{str(c.get('measured_at') or '')[:16]}): " + " ".join(
                         words[k] for k in ("cliff", "slope", "mechanism") if words.get(k)))
    numbers = {**finding.numbers, "memory_curves": {k: c.get("group_id") for k, c in curves.items()}}
    return replace(finding, evidence=finding.evidence + "".join(parts), numbers=numbers)


def write_report(store, study_id: str, out_dir: str | Path) -> Path:
    """Write index.html (self-contained), the PNG figures, runs.csv and findings.json into ``out_dir``."""
    rep = build_report(store, study_id)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {out}: {exc.strerror or exc}.", "Pass --out with a writable directory.") from None
    figures = render_figures(rep["frame"])
    for name, data in figures.items():
        (out / name).write_bytes(data)
    rep["frame"].to_csv(out / "runs.csv", index=False)
    doc = {"study_id": study_id, "overview": overview(rep["frame"]),
           "findings": [f.to_dict() for f in rep["findings"]],
           "correlations": jsonable(rep["correlations"].to_dict(orient="records")),
           "why": jsonable(rep["why"].to_dict(orient="records"))}
    (out / "findings.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    index = out / "index.html"
    index.write_text(render_html(rep["meta"], rep["frame"], rep["findings"], rep["correlations"], figures, links=True))
    return index
