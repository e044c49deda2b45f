"""Runs (or groups of runs by device) side by side: their steady-state latencies and a summary table with each
median's ratio to a baseline. The Compare page draws what these return; nothing here touches Streamlit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import stats

MAX_SAMPLES = 200_000  # per run, for distributions (a uniform subsample beyond this)
SUMMARY = {"p50_ms": "p50 (ms)", "p90_ms": "p90 (ms)", "p99_ms": "p99 (ms)", "mean_ms": "mean (ms)",
           "throughput_ips": "inf/s", "load_ms": "load (ms)", "warmup_ms": "warm-up (ms)",
           "cpu_worker_mean_pct": "worker CPU (%)", "peak_ram_mb": "peak RAM (MB)", "n": "n"}


@dataclass
class Comparison:
    """``groups``: name -> steady latencies (ms); ``members``: name -> run ids; ``table``: one row of SUMMARY columns
    per group (indexed like ``groups``); ``baseline``: the group the ratios divide by; ``kind``: run | device."""

    groups: dict
    members: dict
    table: pd.DataFrame
    baseline: str
    kind: str


def steady_latency(store, run_ids: list[str], max_samples: int = MAX_SAMPLES, seed: int = 0) -> dict[str, np.ndarray]:
    """Each run's steady-state latencies in ms, a uniform subsample of ``max_samples`` where a run has more."""
    lat = store.latency(run_ids)
    lat = lat[lat["phase"].astype(str) == "steady"]
    out = {}
    rng = np.random.default_rng(seed)
    for rid, part in lat.groupby(lat["run_id"].astype(str), observed=True):
        v = part["latency_ns"].to_numpy() / 1e6
        out[rid] = rng.choice(v, max_samples, replace=False) if v.size > max_samples else v
    return out


def run_name(row: dict, model_label=None) -> str:
    """What tells two runs apart in a legend: model, precision, runtime, memory limit, threads, the run id's end."""
    model = (model_label or (lambda m: str(m).rsplit("/", 1)[-1]))(str(row.get("model")))
    cap = row.get("memory_limit_mb")
    limit = "no limit" if cap is None or pd.isna(cap) else f"limit {cap:,.0f} MB"
    return (f"{model} {row.get('precision')} · {row.get('runtime')} · {limit} · {int(row.get('threads') or 0)} threads"
            f" · …{str(row.get('run_id'))[-4:]}")


CONFIG = ["model", "precision", "runtime", "threads", "memory_limit_mb"]


def same_config(runs: pd.DataFrame, **config) -> pd.DataFrame:
    """The runs whose configuration is exactly ``config`` (CONFIG keys; memory_limit_mb None means no limit): devices
    are compared on identical settings, never pooled across runtimes, limits or threads."""
    keep = pd.Series(True, index=runs.index)
    for key, value in config.items():
        col = runs[key]
        keep &= col.isna() if value is None or (isinstance(value, float) and np.isnan(value)) else col == value
    return runs[keep]


def compare_runs(store, runs: pd.DataFrame, chosen: list[str], baseline: str, names: dict[str, str] | None = None,
                 model_label=None) -> Comparison:
    """Runs side by side; ``runs`` is ``store.list_runs`` output; ``names`` a name per run id (default:
    :func:`run_name`)."""
    by_id = runs.set_index("run_id")
    names = names or {rid: run_name({**by_id.loc[rid].to_dict(), "run_id": rid}, model_label) for rid in chosen}
    samples = steady_latency(store, chosen)
    table = runs.set_index("run_id").loc[chosen]
    table.index = [names[r] for r in chosen]
    return Comparison({names[r]: samples.get(r, np.asarray([])) for r in chosen}, {names[r]: [r] for r in chosen},
                      table, names[baseline], "run")


def compare_devices(store, runs: pd.DataFrame, baseline: str | None = None) -> Comparison:
    """The runs of each device (``hostname``) pooled: latencies concatenated, summary columns the median over the
    device's runs, ``n`` their sum. ``runs`` is already filtered to what should be compared."""
    samples = steady_latency(store, list(runs["run_id"]))
    groups, members = {}, {}
    for host, part in runs.groupby("hostname"):
        ids = list(part["run_id"])
        members[host] = ids
        groups[host] = np.concatenate([samples[r] for r in ids if r in samples] or [np.asarray([])])
    table = runs.groupby("hostname")[[c for c in SUMMARY if c in runs.columns and c != "n"]].median(numeric_only=True)
    table["n"] = runs.groupby("hostname")["n"].sum()
    table = table.loc[list(groups)]
    return Comparison(groups, members, table, baseline if baseline in groups else next(iter(groups)), "device")


def ratio_sentences(summary: pd.DataFrame, kind: str = "run") -> list[str]:
    """Each group against the baseline in words: faster or slower, by how much, with the interval, and "no clear
    difference" where the interval holds 1."""
    base = summary.loc[summary["ratio 95% CI"] == "baseline", kind]
    if base.empty:
        return []
    out = []
    for row in summary[summary["ratio 95% CI"] != "baseline"].to_dict("records"):
        r, ci = row["p50 ratio vs baseline"], row["ratio 95% CI"]
        if r is None or pd.isna(r):
            out.append(f"**{row[kind]}**: no steady-state samples to compare.")
            continue
        lo, hi = (float(v) for v in ci.split(" to ")) if " to " in ci else (np.nan, np.nan)
        if lo <= 1 <= hi:
            verdict = "no clear difference from the baseline"
        else:
            verdict = f"{1 / r:.2f}x as fast as the baseline" if r < 1 else f"{r:.2f}x as slow as the baseline"
        out.append(f"**{row[kind]}**: median latency {r:.2f}x the baseline's ({verdict}; 95% CI {ci}).")
    return out


def summary_table(c: Comparison, n_boot: int = 2000) -> pd.DataFrame:
    """One row per group: the p50 ratio to the baseline and its bootstrap 95% CI (as text; the baseline row says
    "baseline"), then SUMMARY columns. The ratio comes first: it is what the comparison is for."""
    rows = []
    base = c.groups.get(c.baseline, np.asarray([]))
    for name, values in c.groups.items():
        row = c.table.loc[name]
        out = {c.kind: name}
        if name == c.baseline:
            out["p50 ratio vs baseline"], out["ratio 95% CI"] = 1.0, "baseline"
        else:
            ratio = stats.ratio_of_medians(values, base, n_boot=n_boot) if len(values) and len(base) else None
            out["p50 ratio vs baseline"] = ratio.ratio if ratio else None
            out["ratio 95% CI"] = (f"{ratio.ci_low:.3f} to {ratio.ci_high:.3f}" if ratio and ratio.ci_low is not None
                                   else "-")
        if c.kind == "device":
            out["runs"] = len(c.members[name])
        for col, label in SUMMARY.items():
            out[label] = row.get(col)
        rows.append(out)
    return pd.DataFrame(rows)
