"""The paper's claims, each tested on a study's frame: one function per claim, listed in ``CLAIMS`` in the paper's
order, which ``evaluate_claims`` runs and the report renders as they come (a new claim is a function and an entry).

Every claim is called as ``claim(frame, gpu=..., floor_pct=..., curves=...)`` and returns one ``Finding``; it takes
the keywords it needs and ignores the rest. ``gpu``: whether the device has a GPU (None: GPU telemetry in the frame
says); ``floor_pct``: the device's noise floor (%), which judges single-run differences; ``curves``: the stored
memory curves of the study's variants (``frame.memory_curves``), which the memory claim cites.

The claims come from the paper (measured on a Raspberry Pi 4 and a Jetson Nano); each function's docstring says what
it tests.

How a verdict is reached. Variants differ by orders of magnitude in latency, so each test pools runs after
normalising within the group the claim holds fixed (a variant, or a model at one memory limit, ...): a run's value
divided by its group's reference (the most generous limit; fp32; the group's median). The pooled Spearman rho between
the factor and the normalised value, with its p value, decides: "supported" when the sign is the claimed one and
p < ALPHA; "not supported" otherwise; "too few data" with fewer than MIN_N runs or no group with two levels of the
factor; "not testable here" when the device cannot show it (the GPU claim on a CPU-only board, one model only).
Per-group numbers (rho per variant, p50 ratios) are given with every finding.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from ... import stats
from ...store.store import jsonable
from .frame import DIED, generous_mask, median_of, normalise_frame, ok_rows, rank_within, relative_to_group

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
NOT_TESTABLE = "not testable here"
TOO_FEW = "too few data"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, NOT_TESTABLE, TOO_FEW)
ALPHA = 0.05
MIN_N = 6  # pooled runs below which no verdict is given
FEW_N = 10  # below this a verdict carries a caution


@dataclass
class Finding:
    """What the data say about one claim: its verdict (one of ``VERDICTS``), the evidence in words, the pooled test's
    numbers, one row per group and a caution (or None)."""

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


def _fmt(x, nd: int = 3) -> str:
    """A number in the evidence: ``nd`` significant digits, thousands separated from 1,000; "n/a" when undefined."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{nd}g}" if abs(x) < 1000 else f"{x:,.0f}"


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


def claim_memory_latency(df: pd.DataFrame, *, floor_pct: float | None = None, curves: dict | None = None,
                         **_) -> Finding:
    """A smaller memory allocation, a higher latency: p50 against the limit within each variant, with the memory
    pressure and faults at the tightest limit that still ran, and the variants' memory curves where stored."""
    return cite_curves(_memory_latency(df, floor_pct), curves)


def _memory_latency(df: pd.DataFrame, floor_pct: float | None) -> Finding:
    claim = "A smaller memory allocation leads to a higher latency."
    df = normalise_frame(df)
    ok = ok_rows(df)
    groups, pooled, spread = [], [], []
    for var, g in ok.groupby("variant"):
        levels = g["mem_value"].nunique()
        c = stats.correlate(np.where(np.isinf(g["mem_value"]), 1e12, g["mem_value"]), g["p50_ms"])
        r = _ratio(g[g["mem_value"] == g["mem_value"].min()]["p50_ms"], g[g["mem_value"] == g["mem_value"].max()]["p50_ms"])
        died = df[(df["variant"] == var) & df["status"].isin(DIED)]
        tight = g[g["mem_value"] == g["mem_value"].min()]
        groups.append({"variant": var, "n": int(len(g)), "limits": int(levels), "spearman_rho": c.spearman_r,
                       "p": c.spearman_p, "p50_tightest_ok_over_most_generous": r.ratio,
                       "95% interval": _interval_text(r),
                       "tightest_ok_limit": g.loc[g["mem_value"].idxmin(), "mem"], "died_below": int(len(died)),
                       "some_stalled_pct_tightest": median_of(tight["mem_pressure_some_pct"]),
                       "full_stalled_pct_tightest": median_of(tight["mem_pressure_full_pct"]),
                       "major_faults_per_s_tightest": median_of(tight["major_faults_per_s"]),
                       "some_stalled_pct_most_generous": median_of(
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
    rank = rank_within(pool, ["variant"], "mem_value")
    norm = relative_to_group(pool, ["variant"], "p50_ms", generous_mask(pool))
    corr = stats.correlate(rank, norm)
    verdict, caution = _decide(corr, -1, len(pooled), "memory limit")
    caution = _add_caution(caution, _single_run_caution(pool, ["variant", "mem"]))
    verdict, caution = _spread_verdict(verdict, caution, spread, +1, floor_pct)
    ratios = [r["p50_tightest_ok_over_most_generous"] for r in groups if r["limits"] >= 2]
    rose = sum(1 for r in ratios if r and r > 1)
    evidence = (f"pooled Spearman rho between the memory limit (ranked within each variant) and p50 (relative to the "
                f"most generous limit) = {_fmt(corr.spearman_r)}, {stats.p_words(corr.spearman_p)}, n = {corr.n} runs "
                f"in {len(pooled)} variants; p50 at the tightest limit that still ran over p50 at the most generous (each "
                f"side the median of its runs' p50s): median over {len(ratios)} variants {_fmt(float(np.median(ratios)))}x, "
                f"higher in {rose} of {len(ratios)}. "
                f"{len(all_died)} cells died (OOM-killed, timed out or crashed) at limits below their footprint."
                + pressure_evidence(groups))
    return Finding("memory_latency", claim, verdict, evidence,
                   {"spearman_rho": corr.spearman_r, "p": corr.spearman_p, "n": corr.n, "variants": len(pooled),
                    "median_ratio": float(np.median(ratios)), "variants_higher": rose, "died": int(len(all_died))},
                   groups, caution)


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
    ok = ok_rows(df, col)
    groups, pooled = [], []
    for var, g in ok.groupby("variant"):
        c = stats.correlate(np.where(np.isinf(g["mem_value"]), 1e12, g["mem_value"]), g[col])
        groups.append({"variant": var, "n": int(len(g)), "limits": int(g["mem_value"].nunique()),
                       "spearman_rho": c.spearman_r, "p": c.spearman_p, "cpu_min_pct": float(g[col].min()),
                       "cpu_max_pct": float(g[col].max())})
        if g["mem_value"].nunique() >= 2:
            pooled.append(g)
    if not pooled and len(ok_rows(df)) and ok.empty:
        return Finding(claim_id, claim, NOT_TESTABLE, "no CPU utilization was recorded in any run (no CPU sensor "
                       "here), so the claim cannot be tested on this device.", {"n": 0}, groups)
    if not pooled:
        return Finding(claim_id, claim, TOO_FEW, "no variant has ok runs with CPU telemetry at two or more limits.",
                       {"n": int(len(ok))}, groups)
    pool = pd.concat(pooled)
    rank = rank_within(pool, ["variant"], "mem_value")
    norm = relative_to_group(pool, ["variant"], col, generous_mask(pool))
    corr = stats.correlate(rank, norm)
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
                f"{stats.p_words(corr.spearman_p)}, n = {corr.n} runs in {len(pooled)} variants; {spread}.")
    return Finding(claim_id, claim, verdict, evidence,
                   {"spearman_rho": corr.spearman_r, "p": corr.spearman_p, "n": corr.n, "variants": len(pooled)},
                   groups, caution)


def has_gpu(df: pd.DataFrame) -> bool:
    return bool(pd.to_numeric(df.get("gpu_util_mean_pct"), errors="coerce").notna().any()) \
        if "gpu_util_mean_pct" in df else False


def claim_cpu_memory_cpu(df: pd.DataFrame, *, gpu: bool | None = None, **_) -> Finding:
    """On a CPU-only board, system CPU utilization rises with the memory limit."""
    gpu = has_gpu(df) if gpu is None else gpu
    return _cpu_memory(df, "cpu_memory_cpu", "On a CPU-only board, CPU utilization rises with the memory allocation.",
                       +1, not gpu, "this device has a GPU (GPU telemetry was recorded): the CPU-only claim does not "
                                    "apply; see the GPU claim.")


def claim_cpu_memory_gpu(df: pd.DataFrame, *, gpu: bool | None = None, **_) -> Finding:
    """On a GPU board, system CPU utilization falls as the memory limit grows."""
    gpu = has_gpu(df) if gpu is None else gpu
    return _cpu_memory(df, "cpu_memory_gpu", "On a GPU board, CPU utilization falls as the memory allocation grows "
                                             "(the GPU does the work).",
                       -1, gpu, "no GPU telemetry on this device (CPU-only): the GPU claim needs a board with a GPU "
                                "such as the Jetson Nano.")


def claim_model_size(df: pd.DataFrame, *, floor_pct: float | None = None, **_) -> Finding:
    """A smaller model, a lower latency: p50 against the fp32 file size at the same precision, runtime and limit."""
    claim = "A smaller model gives a lower latency."
    df = normalise_frame(df)
    ok = ok_rows(df)
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
    rank = rank_within(pool, by, "model_size_mb")
    norm = relative_to_group(pool, by, "p50_ms")
    corr = stats.correlate(rank, norm)
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
                f"{_fmt(corr.spearman_r)}, {stats.p_words(corr.spearman_p)}, n = {corr.n}.")
    return Finding("model_size", claim, verdict, evidence,
                   {"spearman_rho": corr.spearman_r, "p": corr.spearman_p, "n": corr.n, "groups": len(groups),
                    "groups_higher": held, "median_ratio": float(np.median(ratios))}, groups, caution)


RATIO_METHOD = ("median of the run p50s at each model's most generous memory limit over the same median of its fp32 "
                "runs (n = runs on each side)")


def precision_ratios(df: pd.DataFrame) -> tuple[dict, dict]:
    """({model: {precision: p50 ratio to fp32}}, {model: {precision: n runs}}) of ok runs at the most generous limit,
    each side the median of its run p50s (``RATIO_METHOD``): the numbers the findings and the precision figure share."""
    ok = ok_rows(df if "variant" in df else normalise_frame(df))
    gen = ok[generous_mask(ok)] if len(ok) else ok
    ratios, counts = {}, {}
    for m, g in gen.groupby("model"):
        med = g.groupby("precision")["p50_ms"].agg(["median", "size"])
        if "fp32" in med.index:
            ratios[m] = {p: float(med.loc[p, "median"] / med.loc["fp32", "median"])
                         for p in ("fp16", "int8-dynamic", "int8-static") if p in med.index}
            counts[m] = {p: int(med.loc[p, "size"]) for p in med.index}
    return ratios, counts


def claim_precision_bits(df: pd.DataFrame, *, floor_pct: float | None = None, **_) -> Finding:
    """Fewer bits, a lower latency: p50 against bits per weight on the same model, runtime and limit."""
    claim = "Fewer bits give a lower latency; more bits on the same model a higher latency."
    df = normalise_frame(df)
    ok = ok_rows(df)
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
    norm = relative_to_group(pool, by, "p50_ms", has_fp32 if has_fp32.any() else None)
    corr = stats.correlate(pool["bits"], norm)
    verdict, caution = _decide(corr, +1, len(pooled), "precision")
    caution = _add_caution(caution, _single_run_caution(pool, [*by, "precision"]))
    verdict, caution = _spread_verdict(verdict, caution, spread, -1, floor_pct)
    per_model, counts = precision_ratios(pool)
    parts = [f"{m}: " + ", ".join(f"{p}/fp32 {_fmt(v)} (n = {counts[m][p]} vs {counts[m]['fp32']})"
                                  for p, v in r.items()) for m, r in per_model.items()]
    evidence = (f"pooled Spearman rho between bits (32/16/8) and p50 (relative to fp32 of the same model, runtime and "
                f"limit) = {_fmt(corr.spearman_r)}, {stats.p_words(corr.spearman_p)}, n = {corr.n}. p50 ratios per model, "
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


CLAIMS = (claim_memory_latency, claim_cpu_memory_cpu, claim_cpu_memory_gpu, claim_model_size, claim_precision_bits)


def evaluate_claims(df: pd.DataFrame, gpu: bool | None = None, floor_pct: float | None = None,
                    curves: dict | None = None) -> list[Finding]:
    """Every claim's finding, in the order of ``CLAIMS``. ``gpu`` None: inferred from GPU telemetry in the frame.
    ``floor_pct``: the device's noise floor, which judges the differences of single-run studies (with repetitions,
    the latency verdicts need a difference larger than the variation between runs). ``curves``: {variant label:
    stored memory curve}, cited by the memory claim."""
    gpu = has_gpu(df) if gpu is None else gpu
    return [claim(df, gpu=gpu, floor_pct=floor_pct, curves=curves) for claim in CLAIMS]


def uncertainty_words(df: pd.DataFrame, floor: dict | None) -> str:
    """What the report's intervals and verdicts can support, in words: repetitions or single runs, and the device's
    noise floor."""
    df = normalise_frame(df)
    ok = ok_rows(df)
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


def cite_curves(finding: Finding, curves: dict | None) -> Finding:
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

