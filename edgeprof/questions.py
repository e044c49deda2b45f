"""The student's questions, answered from stored runs in a sentence that says how sure the answer is.

* ``memory_effect``: does less memory make inference slower here? Each capped run is set against its variant's
  footprint (the cap as a multiple of the memory the variant needed without a limit) and its latency against the
  same variant's latency without a limit, so variants of any size and speed pool into one answer.
* ``relation_sentence``: what a correlation says in words, a null result as "no evidence", always with n.
* ``readable_correlations``: a correlation table a person reads: the variables that did not vary named in one line
  instead of a row each, no empty cells, and pairs that are correlated by construction marked and put last.

Pure: frames of ``Store.list_runs`` in, frames and sentences out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import stats
from .config import NON_BINDING
from .stats import fmt_p, p_words

VARIANT = ["model", "precision", "runtime", "threads"]
ALPHA = 0.05


@dataclass
class MemoryEffect:
    """``points``: one row per run with ``variant``, ``factor`` (limit / footprint; NaN without a limit),
    ``relative_p50`` (p50 / the variant's p50 without a limit), ``status`` and ``label``; ``footprints``: per variant
    its footprint (MB) and uncapped p50 (ms); the pooled Spearman rho (factor vs relative p50 over the capped ok runs),
    its p and n; ``sentence``: the answer in words."""

    points: pd.DataFrame
    footprints: pd.DataFrame
    rho: float | None
    p: float | None
    n: int
    variants: int
    killed: int
    sentence: str


def _variant_label(row) -> str:
    model = str(row["model"]).rsplit("/", 1)[-1]
    threads = row.get("threads")
    # a run imported from a bundle that lacks the column has no thread count: "t?", never a crash of the page
    return f"{model} {row['precision']} {row['runtime']} t{'?' if pd.isna(threads) else int(threads)}"


def memory_effect(runs: pd.DataFrame) -> MemoryEffect:
    """Answer "does less memory make inference slower here?" from runs (``Store.list_runs`` rows, any statuses)."""
    cols = ["variant", "factor", "relative_p50", "p50_ms", "memory_limit_mb", "status", "run_id", "label"]
    if runs is None or runs.empty:
        return MemoryEffect(pd.DataFrame(columns=cols), pd.DataFrame(), None, None, 0, 0, 0, _too_few(0, 0))
    df = runs[runs["status"].isin(["ok", "oom_killed", "timed_out"])].copy()
    df["variant"] = [_variant_label(r) for r in df.to_dict("records")]
    free = df[(df["status"] == "ok") & df["peak_charged_mb"].notna()
              & (df["memory_limit_mb"].isna() | (df["memory_limit_mb"] >= NON_BINDING * df["peak_charged_mb"]))]
    uncapped = df[(df["status"] == "ok") & df["memory_limit_mb"].isna()]
    fp = pd.DataFrame({"footprint_mb": free.groupby("variant")["peak_charged_mb"].median(),
                       "uncapped_p50_ms": uncapped.groupby("variant")["p50_ms"].median()})
    df = df.join(fp, on="variant")
    capped = df["memory_limit_mb"].notna()
    df["factor"] = np.where(capped, df["memory_limit_mb"] / df["footprint_mb"], np.nan)
    df["relative_p50"] = df["p50_ms"] / df["uncapped_p50_ms"]
    df["label"] = [f"{r['variant']}: " + ("no limit" if not np.isfinite(r["factor"]) else
                                          f"limit {r['memory_limit_mb']:,.0f} MB = {r['factor']:.2f}x footprint")
                   + f", {r['status']}" for r in df.to_dict("records")]
    points = df[(capped & df["factor"].notna()) | (~capped & df["uncapped_p50_ms"].notna())][cols]
    tested = points[points["factor"].notna() & (points["status"] == "ok") & points["relative_p50"].notna()]
    killed = int((points["factor"].notna() & points["status"].isin(["oom_killed", "timed_out"])).sum())
    n, nvar = len(tested), tested["variant"].nunique()
    if n < 3 or tested["factor"].nunique() < 2:
        return MemoryEffect(points, fp, None, None, n, nvar, killed, _too_few(n, killed))
    c = stats.correlate(tested["factor"], tested["relative_p50"], unit="runs")
    rho, p = c.spearman_r, c.spearman_p
    return MemoryEffect(points, fp, rho, p, n, nvar, killed, _memory_sentence(tested, rho, p, n, nvar, killed))


def _too_few(n: int, killed: int) -> str:
    dead = f" ({killed} capped runs were killed or timed out, which says the limit was below what they need)" \
        if killed else ""
    return (f"Not enough to answer yet: {n} capped run(s) that finished next to a run of the same variant without "
            f"a limit{dead}. Run a variant with no limit and at 2x, 1.25x and 1x its footprint: the Study page's "
            "quick preset does exactly that.")


def _memory_sentence(tested: pd.DataFrame, rho: float, p: float, n: int, nvar: int, killed: int) -> str:
    tight = tested[tested["factor"] <= 1.1]
    at_fp = (f" At about 1x its footprint a variant's p50 was {tight['relative_p50'].median():.1f}x its p50 without a "
             "limit (median)." if len(tight) else "")
    dead = f" {killed} capped run(s) were OOM-killed or timed out (not in these numbers)." if killed else ""
    stat = f"Spearman rho = {rho:.2f}, {p_words(p)}, n = {n} runs of {nvar} variant(s)"
    if p >= ALPHA or rho is None:
        return (f"No evidence that less memory makes inference slower here: latency relative to the same variant "
                f"without a limit does not follow the limit ({stat}).{at_fp}{dead}")
    if rho < 0:
        return (f"Yes: here a tighter memory limit makes inference slower. Latency relative to the same variant "
                f"without a limit rises as the limit falls towards the footprint ({stat}).{at_fp}{dead}")
    return (f"Here latency falls as the limit tightens ({stat}), the opposite of what memory pressure does: look for "
            f"something else that changed between those runs (a cold start, another process).{at_fp}{dead}")


def _way(coef: float) -> str:
    return "rises" if coef > 0 else "falls" if coef < 0 else "is flat"


def relation_sentence(x: str, y: str, r: float | None, p: float | None, n: int, *, unit: str = "runs",
                      spearman: float | None = None, ci: tuple | None = None,
                      spearman_p: float | None = None) -> str:
    """``y`` against ``x`` in words: a relation only where p < 0.05, else "no evidence of a relation"; always n.

    A direction ("rises", "falls") only where Pearson r and Spearman rho agree: where they point opposite ways, or
    only one of them is significant (``spearman_p``), the sentence says so instead ("no consistent relation"): r is
    pulled by a few extreme points (a handful of windows with a stall), rho only by their rank order, so a
    disagreement means neither a straight-line nor a monotonic relation holds for most of the points.
    """
    if r is None or not np.isfinite(r) or p is None or not np.isfinite(p):
        return f"{y} vs {x}: not enough varying pairs to say anything (n = {n} {unit})."
    has_rho = spearman is not None and np.isfinite(spearman)
    has_sp = has_rho and spearman_p is not None and np.isfinite(spearman_p)
    rank = f", Spearman rho = {spearman:.2f}" if has_rho else ""
    band = f", 95% CI {ci[0]:.2f} to {ci[1]:.2f}" if ci and all(v is not None and np.isfinite(v) for v in ci) else ""
    stat = f"r = {r:.2f}{band}, {p_words(p)}, n = {n} {unit}{rank}"
    pearson_sig = p < ALPHA
    rank_sig = spearman_p < ALPHA if has_sp else pearson_sig  # without its p, rho only vetoes by its sign
    opposite = has_rho and r * spearman < 0
    if not pearson_sig and not rank_sig:
        return f"No evidence of a relation between **{y}** and **{x}** ({stat})."
    if opposite or pearson_sig != rank_sig:
        rho_p = f" ({p_words(spearman_p)})" if has_sp else ""
        why = (f"a few extreme {unit} drive r" if pearson_sig else
               f"the rank order holds but not a straight line, or a few extreme {unit} hold r back")
        return (f"No consistent relation between **{y}** and **{x}**: Pearson r = {r:.2f} {_way(r)} ({p_words(p)}"
                f"{band}) but Spearman rho = {spearman:.2f} {_way(spearman)}{rho_p}, n = {n} {unit}; {why}.")
    strength = "strongly" if abs(r) >= 0.7 else "moderately" if abs(r) >= 0.4 else "weakly"
    return f"**{y}** {strength} {_way(r)} with **{x}** ({stat}). Correlation is not cause."


# ------------------------------------------------------------------------------------------- correlation tables

# CPU figures derived from one another: other processes' CPU = device CPU busy x cores - the worker's, so these pairs
# are correlated by construction (exactly -1 for worker vs others when the device is saturated). Labels of
# ui.VARIABLES (across runs) and of ui.metric_label (inside a run).
CPU_SYSTEM = ("CPU system mean (%)", "device CPU busy (%)")
CPU_WORKER = ("CPU worker mean (%)", "worker CPU (% of one core)")
CPU_OTHERS = ("CPU other processes mean (% of a core)", "other processes' CPU (% of one core)")
SATURATED_PCT = 95.0


@dataclass
class CorrelationView:
    """``table``: one row per pair that could be computed, every cell text (numbers formatted, "–" where a value is
    undefined), pairs forced by construction last with a note; ``constant``: the variables that did not vary (no
    correlation with them exists); ``forced``: how many pairs were marked."""

    table: pd.DataFrame
    constant: list
    forced: int


def _forced(x: str, y: str, saturated: bool) -> str | None:
    pair = {x, y}
    if pair & set(CPU_OTHERS) and pair & set(CPU_WORKER + CPU_SYSTEM):
        why = "by construction: other processes' CPU is the device's busy CPU minus the worker's"
        return why + ("; the CPU was saturated, so one falls exactly as the other rises" if saturated else "")
    return None


def _did_not_vary(note) -> tuple[bool, bool]:
    """Which of x, y a stats.correlate note says did not vary."""
    if not isinstance(note, str) or "did not vary" not in note:
        return False, False
    head = note.split("did not vary")[0]
    return "x" in head.split(), "y" in head.split()


def readable_correlations(result: pd.DataFrame, *, system_cpu_pct: pd.Series | None = None) -> CorrelationView:
    """``stats.correlation_matrix`` output as people read it. ``system_cpu_pct``: the device's busy CPU of the
    runs or windows, to say when it was saturated (median >= SATURATED_PCT)."""
    cpu = pd.to_numeric(system_cpu_pct, errors="coerce").dropna() if system_cpu_pct is not None else pd.Series([])
    saturated = bool(len(cpu)) and float(cpu.median()) >= SATURATED_PCT
    constant: list[str] = []
    rows = []

    def num(v, fmt="{:.2f}"):
        return "–" if v is None or not np.isfinite(v) else fmt.format(v)

    for r in result.itertuples():
        cx, cy = _did_not_vary(r.note)
        for name, const in ((r.x, cx), (r.y, cy)):
            if const and name not in constant:
                constant.append(name)
        if cx or cy:
            continue
        forced = _forced(r.x, r.y, saturated)
        note = forced or (r.note if isinstance(r.note, str) else "")
        ci = "–" if not (np.isfinite(r.ci_low) and np.isfinite(r.ci_high)) else f"{r.ci_low:.2f} to {r.ci_high:.2f}"
        rows.append({"x": r.x, "y": r.y, "n": str(int(r.n)), "Pearson r": num(r.pearson_r), "p": fmt_p(r.pearson_p),
                     "95% CI": ci, "Spearman rho": num(r.spearman_r), "note": note, "_forced": forced is not None,
                     "_strength": -abs(r.pearson_r) if np.isfinite(r.pearson_r) else 0.0})
    table = pd.DataFrame(rows, columns=["x", "y", "n", "Pearson r", "p", "95% CI", "Spearman rho", "note", "_forced",
                                        "_strength"])
    forced = int(table["_forced"].sum()) if len(table) else 0
    table = table.sort_values(["_forced", "_strength"], kind="stable").drop(columns=["_forced", "_strength"])
    return CorrelationView(table.reset_index(drop=True), constant, forced)
