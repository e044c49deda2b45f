"""The report's output: the figures (matplotlib, Agg, PNG bytes), the self-contained HTML page, and the files
``report STUDY_ID --out DIR`` writes. ``build_report`` gathers everything the output shows from the store; the
findings come from ``claims.CLAIMS`` in their order, so a new claim needs nothing here."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ...config import PRECISIONS
from ...errors import UsageError
from ...store.store import jsonable
from .claims import ALPHA, Finding, evaluate_claims, uncertainty_words
from .frame import DIED, generous_mask, memory_curves, normalise_frame, ok_rows, overview, study_frame, study_meta
from .tables import P50, UTILIZATION, WHY, correlation_table, correlations_for_people, why_table


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
    ok = ok_rows(df)
    gen = ok[generous_mask(ok)] if len(ok) else ok
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
    ok = ok_rows(df)
    gen = ok[generous_mask(ok)] if len(ok) else ok
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for p, g in gen.groupby("precision"):
        med = g.groupby(["model", "runtime"]).agg(size=("model_size_mb", "first"), p50=("p50_ms", "median"))
        ax.plot(med["size"], med["p50"], "o", label=p, alpha=0.8)
        for (m, _), r in med.iterrows():
            ax.annotate(m, (r["size"], r["p50"]), fontsize=6, alpha=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("model size (fp32 ONNX file, MB)")
    ax.set_ylabel(P50)
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
        "latency_vs_memory.png": _by_memory_figure(df, "p50_ms", P50, logy=True),
        "cpu_vs_memory.png": _by_memory_figure(df, "cpu_system_mean_pct", UTILIZATION["cpu_system_mean_pct"],
                                               logy=False, ylim=(0, 105)),
        "latency_by_precision.png": _precision_figure(df),
        "warmup_by_variant.png": _warmup_figure(df),
    }
    if "mem_pressure_some_pct" in df and df["mem_pressure_some_pct"].notna().any():
        out["pressure_vs_memory.png"] = _by_memory_figure(df, "mem_pressure_some_pct", WHY["mem_pressure_some_pct"],
                                                          logy=False, ylim=(0, 105))
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


def build_report(store, study_id: str) -> dict:
    """Everything the report shows: meta (with the device's latest ``noise_floor`` and ``uncertainty`` in words),
    frame, findings, correlation table (no figures)."""
    meta = study_meta(store, study_id)
    df = study_frame(store, study_id)
    floor = store.latest_noise_floor(meta["device_id"]) if meta.get("device_id") else None
    meta["noise_floor"] = floor
    meta["uncertainty"] = uncertainty_words(df, floor)
    findings = evaluate_claims(df, floor_pct=(floor or {}).get("floor_pct"),
                               curves=memory_curves(store, df, meta.get("device_id")))
    return {"meta": meta, "frame": df, "findings": findings, "correlations": correlation_table(df),
            "why": why_table(df)}


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
