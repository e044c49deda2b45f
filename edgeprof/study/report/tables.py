"""The report's two tables of numbers: utilization against latency (the paper's measurement, not a claim with a
direction) and why cells are slow (memory pressure, faults, energy, operators). Their columns are run columns, so
their labels are the ones ``store.columns`` declares, which the Correlations page shows for the same numbers."""

from __future__ import annotations

import math

import pandas as pd

from ... import stats
from ...store.columns import BY_NAME
from .frame import median_of, normalise_frame, ok_rows, relative_to_group

# RAM peak is charged memory where a cgroup accounted it, else RSS (``Store.list_runs``)
UTILIZATION = {c: BY_NAME[c].label for c in ("cpu_system_mean_pct", "cpu_worker_mean_pct", "peak_ram_mb",
                                             "gpu_util_mean_pct")}
WHY = {c: BY_NAME[c].label for c in ("mem_pressure_some_pct", "mem_pressure_full_pct", "major_faults_per_s",
                                     "energy_mj_per_inference")}
P50 = BY_NAME["p50_ms"].label


def correlation_table(df: pd.DataFrame) -> pd.DataFrame:
    """Pearson r, p, 95% CI, n and Spearman rho, p of each utilization metric against p50 over ok runs: once over
    all runs (what the paper reports; dominated by the differences between models) and once within variants (each
    value divided by its variant's median), which removes that confound."""
    df = normalise_frame(df)
    ok = ok_rows(df)
    rows = []
    for col, label in UTILIZATION.items():
        sub = ok[ok[col].notna()]
        if col == "gpu_util_mean_pct" and sub.empty:
            continue
        for scope in ("all runs", "within variant"):
            if scope == "all runs":
                x, y = sub[col], sub["p50_ms"]
            else:
                x = relative_to_group(sub, ["variant"], col) if len(sub) else sub[col]
                y = relative_to_group(sub, ["variant"], "p50_ms") if len(sub) else sub["p50_ms"]
            c = stats.correlate(x, y)
            rows.append({"metric": label, "scope": scope, "n": c.n, "pearson_r": c.pearson_r, "pearson_p": c.pearson_p,
                         "ci_low": c.pearson_ci_low, "ci_high": c.pearson_ci_high, "spearman_r": c.spearman_r,
                         "spearman_p": c.spearman_p, "note": c.note})
    return pd.DataFrame(rows, columns=["metric", "scope", "n", "pearson_r", "pearson_p", "ci_low", "ci_high",
                                       "spearman_r", "spearman_p", "note"])


def correlations_for_people(corr: pd.DataFrame) -> pd.DataFrame:
    """The correlation table as a student reads it: words for column names, "–" for what could not be computed, p
    as ``stats.fmt_p`` writes it, the CI as one cell."""

    def num(v, fmt="{:.2f}"):
        return stats.UNDEFINED if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt.format(v)

    return pd.DataFrame({
        "metric": corr["metric"], "runs compared": corr["scope"], "n": corr["n"],
        "Pearson r": [num(v) for v in corr["pearson_r"]],
        "95% CI": [f"{num(a)} to {num(b)}" if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)
                   else stats.UNDEFINED for a, b in zip(corr["ci_low"], corr["ci_high"], strict=True)],
        "p": [stats.fmt_p(v) for v in corr["pearson_p"]],
        "Spearman rho": [num(v) for v in corr["spearman_r"]],
        "note": [n if isinstance(n, str) and n else "" for n in corr["note"]],
    })


def why_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per variant and memory limit (medians over repetitions): p50 beside the memory pressure, major faults, energy
    per inference and the slowest operator types: the figures that say why a cell is slow."""
    df = normalise_frame(df)
    ran = df[df["p50_ms"].notna() | df["mem_pressure_some_pct"].notna()]
    if ran.empty:
        return pd.DataFrame(columns=["variant", "limit", "status", P50, *WHY.values(), "slowest operators"])
    rows = []
    for (var, mem), g in ran.groupby(["variant", "mem"], sort=False):
        row = {"variant": var, "limit": mem, "status": ", ".join(sorted(set(map(str, g["status"])))),
               P50: median_of(g["p50_ms"])}
        row.update({label: median_of(g[col]) for col, label in WHY.items()})
        row["slowest operators"] = next(iter(g["top_ops"].dropna()), None)
        rows.append(row)
    out = pd.DataFrame(rows)
    order = ran.drop_duplicates(["variant", "mem"]).set_index(["variant", "mem"])["mem_value"]
    out["_v"] = [order.get((v, m)) for v, m in zip(out["variant"], out["limit"], strict=True)]
    return out.sort_values(["variant", "_v"], ascending=[True, False]).drop(columns="_v").reset_index(drop=True)

