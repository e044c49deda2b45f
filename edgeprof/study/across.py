"""One study file run on several devices, read from the fleet, as one report that sets the devices side by side.

A study is matched across devices by its id (``study --study-id``) or its name: each device's study with that id or
name in the fleet (``store.fleet``, finished studies only) becomes one column. What it shows:

- the claim verdicts per device (``report.evaluate_claims`` on each device's frame, built by the same
  ``report.study_frame`` from the fleet's tables), so the CPU-vs-memory claim can come out opposite on a CPU-only
  board and a GPU board;
- per variant (model, precision, runtime, threads), each device's latency against a baseline device: the ratio of
  the medians of its runs' p50 and its 95% interval between runs (``stats.ratio_across_runs``, Welch's t on the logs;
  needs 2 runs a side, else "single run"). Runs without a memory cap are compared where a variant has them (a cap
  changes latency), else all its ok runs.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from .. import stats
from ..errors import UsageError
from ..store.store import jsonable as _jsonable
from .report import evaluate_claims, study_frame


class _DeviceView:
    """What ``report.study_frame`` reads, from one device's part of the fleet."""

    def __init__(self, fleet, device_id: str):
        self.fleet, self.device_id = fleet, device_id
        self.path = f"{fleet.target.url} (device {device_id})"

    def cells(self, study_id: str) -> pd.DataFrame:
        return self.fleet.sql("SELECT c.* FROM fleet_study_cells c JOIN fleet_runs r USING (run_id) "
                              "WHERE c.study_id = ? AND r.device_id = ? ORDER BY c.cell_key", [study_id, self.device_id])

    def list_runs(self, study_id: str | None = None, **_) -> pd.DataFrame:
        df = self.fleet.runs(device=self.device_id)
        return df[df["study_id"] == study_id] if study_id is not None else df

    def list_studies(self) -> pd.DataFrame:
        return self.fleet.sql("SELECT * FROM fleet_studies")


def device_studies(fleet, study: str) -> pd.DataFrame:
    """(device_id, device_name, study_id, name) of every device's study whose id or name is ``study``."""
    df = fleet.sql("""SELECT DISTINCT r.device_id, first(r.device_name ORDER BY r.created_at DESC) AS device_name,
                             s.study_id, s.name
                      FROM fleet_runs r JOIN fleet_studies s USING (study_id)
                      WHERE s.study_id = ? OR s.name = ? GROUP BY ALL ORDER BY device_name, r.device_id""",
                   [study, study])
    if df.empty:
        raise UsageError(f"no device at {fleet.target.url} has a finished study with the id or name {study!r}.",
                         "Push the study's runs from each device (a study is pushed once it finished), and check "
                         "the name with `edgeprof studies` there.")
    return df


def compare_devices(fleet, study: str, baseline: str | None = None) -> dict:
    """The cross-device report as data: {"study", "devices": [{device_id, device_name, study_id}], "baseline",
    "claims": [{claim_id, claim, <device_name>: verdict ...}], "ratios": [{variant, device_name, ratio, low, high,
    scope, n_runs, n_baseline}], "findings": {device_name: [Finding dicts]}}."""
    studies = device_studies(fleet, study)
    names = list(studies["device_name"])
    if len(set(names)) != len(names):  # two devices with one name: tell them apart by id
        names = [f"{n} ({d[:6]})" for n, d in zip(studies["device_name"], studies["device_id"], strict=True)]
    if baseline is not None and baseline not in names:
        raise UsageError(f"the baseline device {baseline!r} is not among {', '.join(names)}.",
                         "Pass --baseline with one of those device names.")
    base = baseline or names[0]
    frames, findings = {}, {}
    for name, row in zip(names, studies.itertuples(), strict=True):
        df = study_frame(_DeviceView(fleet, row.device_id), row.study_id)
        frames[name] = df
        findings[name] = evaluate_claims(df)
    claims = []
    for i, f in enumerate(findings[names[0]]):
        claims.append({"claim_id": f.claim_id, "claim": f.claim,
                       **{n: findings[n][i].verdict for n in names if i < len(findings[n])}})
    ratios = []
    base_runs = _variant_p50s(frames[base])
    for name in names:
        if name == base:
            continue
        for variant, p50s in _variant_p50s(frames[name]).items():
            if variant not in base_runs:
                continue
            r = stats.ratio_across_runs(p50s, base_runs[variant])
            ratios.append({"variant": variant, "device_name": name, "baseline": base, "ratio": r.ratio, "low": r.low,
                           "high": r.high, "scope": r.scope or stats.SINGLE_RUN, "n_runs": r.n_a,
                           "n_baseline": r.n_b})
    return _jsonable({"study": study, "baseline": base,
                      "devices": [{"device_id": d, "device_name": n, "study_id": s}
                                  for d, n, s in zip(studies["device_id"], names, studies["study_id"], strict=True)],
                      "claims": claims, "ratios": ratios,
                      "findings": {n: [f.to_dict() for f in fs] for n, fs in findings.items()}})


def _variant_p50s(df: pd.DataFrame) -> dict[str, list[float]]:
    ok = df[(df["status"] == "ok") & df["p50_ms"].notna()]
    out = {}
    for variant, g in ok.groupby("variant"):
        uncapped = g[g["mem_kind"] == "none"]
        out[str(variant)] = list((uncapped if len(uncapped) else g)["p50_ms"].astype(float))
    return out


def render_html(doc: dict) -> str:
    """The report as one HTML page: verdicts per device, then the latency ratios per variant."""
    esc = html.escape
    names = [d["device_name"] for d in doc["devices"]]
    head = "".join(f"<th>{esc(n)}</th>" for n in names)
    rows = "".join("<tr><td>" + esc(c["claim"]) + "</td>" + "".join(f"<td>{esc(str(c.get(n, '-')))}</td>" for n in names)
                   + "</tr>" for c in doc["claims"])
    ratio_rows = "".join(
        f"<tr><td>{esc(r['variant'])}</td><td>{esc(r['device_name'])}</td><td>{_num(r['ratio'])}</td>"
        f"<td>{_interval(r)}</td><td>{r['n_runs']} / {r['n_baseline']}</td></tr>" for r in doc["ratios"])
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>edgeprof study {esc(doc['study'])} across "
            f"devices</title></head><body><h1>Study {esc(doc['study'])} on {len(names)} devices</h1>"
            f"<h2>Claims, per device</h2><table><tr><th>claim</th>{head}</tr>{rows}</table>"
            f"<h2>Latency against {esc(doc['baseline'])}, per variant</h2><p>Ratio of the median run p50 (above 1: "
            f"slower than {esc(doc['baseline'])}), with its 95% interval between runs.</p><table><tr><th>variant</th>"
            f"<th>device</th><th>ratio</th><th>95% interval</th><th>runs / baseline runs</th></tr>{ratio_rows}</table>"
            "</body></html>")


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def _interval(r: dict) -> str:
    return f"{r['low']:.3g} to {r['high']:.3g}" if r.get("low") is not None else html.escape(str(r["scope"]))


def write_report(fleet, study: str, out_dir: str | Path, baseline: str | None = None) -> Path:
    """Write index.html and devices.json (the data of :func:`compare_devices`) into ``out_dir``."""
    doc = compare_devices(fleet, study, baseline)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {out}: {exc.strerror or exc}.", "Pass --out with a writable directory.") from None
    (out / "devices.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    index = out / "index.html"
    index.write_text(render_html(doc))
    return index
