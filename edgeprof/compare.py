"""Runs (single runs, repeated runs, or the runs of each device) side by side: their steady-state latencies and a
summary table with each median's ratio to a baseline, the interval of that ratio with what it covers, and whether
the difference is distinguishable. The Compare page draws what these return; nothing here touches Streamlit.

Which interval a ratio gets (``ratio_for``):

- both sides have two or more runs (repeated runs, or several runs of a device): an interval *between runs* from the
  spread of the run medians (``stats.ratio_across_runs``): a rerun is expected inside it;
- both sides are single runs: an interval *within these runs only* (``stats.ratio_within_runs``, from each run's
  time-ordered samples), with "single run: no between-run uncertainty"; whether the difference is distinguishable is
  then judged against the device's noise floor (``noise_floor``), when one was measured.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import stats
from .telemetry import catalog

MAX_SAMPLES = 200_000  # per run, for distributions (every k-th sample beyond this, kept in time order)
SUMMARY = {"p50_ms": "p50 (ms)", "p90_ms": "p90 (ms)", "p99_ms": "p99 (ms)", "mean_ms": "mean (ms)",
           "throughput_ips": "inf/s", "load_ms": "load (ms)", "warmup_ms": "warm-up (ms)",
           "cpu_worker_mean_pct": "worker CPU (%)", "peak_ram_mb": "peak RAM (MB)", "n": "n"}
OVERLAY_METRICS = ("cpu.worker_pct", "cpu.total_pct", "mem.worker_rss_mb", "mem.charged_mb", "mem.used_mb")
OVERLAY_QUANTITIES = ("utilization", "power", "temperature")  # what an accelerator adds to the overlay's choices
SCOPE_COLUMN = "interval covers"
SCOPE_LABELS = {stats.SCOPE_RUNS: "between runs: a rerun is expected inside it",
                stats.SCOPE_WITHIN_RUN: f"within these runs only ({stats.SINGLE_RUN})"}


@dataclass
class Comparison:
    """``groups``: name -> steady latencies (ms; one run's in time order); ``members``: name -> run ids;
    ``table``: one row of SUMMARY columns per group (indexed like ``groups``); ``baseline``: the group the ratios
    divide by; ``kind``: run | device | group; ``run_p50``: name -> the median (ms) of each member run."""

    groups: dict
    members: dict
    table: pd.DataFrame
    baseline: str
    kind: str
    run_p50: dict = field(default_factory=dict)


def overlay_metrics(data, run_ids) -> dict[str, str]:
    """The metrics the Compare overlay offers for these runs, {metric: label with its unit} from the metric catalog:
    the worker's and the device's CPU and memory, then the utilization, power and temperature of every accelerator
    class (``catalog.ACCELERATORS``: a GPU, an NPU) that one of the runs measured. ``data``: what reads a run's
    telemetry (a Store, the fleet's samples)."""
    ids = list(run_ids)
    present = set(data.telemetry(ids)["metric"].astype(str).unique()) if ids else set()
    extra = [m for device in catalog.ACCELERATORS for q in OVERLAY_QUANTITIES
             for m in catalog.of_quantity(present, device, q)]
    return {m: catalog.label(m) for m in (*OVERLAY_METRICS, *extra)}


def steady_latency(store, run_ids: list[str], max_samples: int = MAX_SAMPLES) -> dict[str, np.ndarray]:
    """Each run's steady-state latencies in ms, in time order: every k-th (still in time order, which the within-run
    interval needs) where a run has more than ``max_samples``, chosen in the database (``store.steady_subsample``), so
    a run's length never decides what reaches memory."""
    return store.steady_subsample(run_ids, max_samples=max_samples)


def run_name(row: dict, model_label=None) -> str:
    """What tells two runs apart in a legend: model, precision, runtime, memory limit, threads, the run id's end."""
    model = (model_label or (lambda m: str(m).rsplit("/", 1)[-1]))(str(row.get("model")))
    cap = row.get("memory_limit_mb")
    limit = "no limit" if cap is None or pd.isna(cap) else f"limit {cap:,.0f} MB"
    threads = stats.plural(int(row.get('threads') or 0), 'thread')
    return (f"{model} {row.get('precision')} · {row.get('runtime')} · {limit} · {threads}"
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


def _p50s(runs: pd.DataFrame, ids: list[str]) -> list[float]:
    p = runs.set_index("run_id").loc[ids, "p50_ms"] if len(ids) else pd.Series(dtype=float)
    return [float(v) for v in pd.to_numeric(p, errors="coerce") if np.isfinite(v)]


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
                      table, names[baseline], "run", {names[r]: _p50s(runs, [r]) for r in chosen})


def _pooled(store, runs: pd.DataFrame, members: dict[str, list[str]], baseline: str | None, kind: str) -> Comparison:
    """Groups of runs: latencies concatenated (for the distributions), summary columns the median over the group's
    runs, ``n`` their sum; ratios between runs."""
    samples = steady_latency(store, [r for ids in members.values() for r in ids])
    groups = {name: np.concatenate([samples[r] for r in ids if r in samples] or [np.asarray([])])
              for name, ids in members.items()}
    rows = {}
    by_id = runs.set_index("run_id")
    for name, ids in members.items():
        part = by_id.loc[ids]
        row = part[[c for c in SUMMARY if c in part.columns and c != "n"]].median(numeric_only=True)
        row["n"] = part["n"].sum()
        rows[name] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    return Comparison(groups, members, table, baseline if baseline in groups else next(iter(groups)), kind,
                      {name: _p50s(runs, ids) for name, ids in members.items()})


def device_keys(runs: pd.DataFrame) -> pd.Series:
    """Each run's device: its ``device_id`` (hostname only where a run has none). Hostnames repeat (every Raspberry
    Pi is "raspberrypi" until renamed), device ids do not (``device.identity``)."""
    ids = runs["device_id"] if "device_id" in runs else pd.Series(None, index=runs.index, dtype=object)
    hosts = runs["hostname"] if "hostname" in runs else pd.Series(None, index=runs.index, dtype=object)

    def key(i, h) -> str:  # plain str, also for a missing value (pandas 3 keeps NaN through astype(str))
        for v in (i, h):
            if isinstance(v, str) and v:
                return v
        return "unknown device"

    return pd.Series([key(i, h) for i, h in zip(ids, hosts, strict=True)], index=runs.index, dtype=object)


def device_labels(runs: pd.DataFrame) -> dict[str, str]:
    """device key (:func:`device_keys`) -> what people call the device: its name (``devices --name``; a device is
    named after its hostname until renamed), else its hostname. Two devices that share a label get the first six
    digits of their id added, so no two devices ever read alike."""
    if runs.empty:
        return {}
    keys = device_keys(runs)
    names = runs["device_name"] if "device_name" in runs else pd.Series(None, index=runs.index, dtype=object)
    hosts = runs["hostname"] if "hostname" in runs else pd.Series(None, index=runs.index, dtype=object)
    label = {}
    for key, name, host in zip(keys, names, hosts, strict=True):
        text = name if isinstance(name, str) and name else (host if isinstance(host, str) and host else key)
        label.setdefault(key, text)
    counts = Counter(label.values())
    return {k: f"{v} ({k[:6]})" if counts[v] > 1 and k != v else v for k, v in label.items()}


def compare_devices(store, runs: pd.DataFrame, baseline: str | None = None) -> Comparison:
    """The runs of each device (by device id, named by :func:`device_labels`) pooled; ``runs`` is already filtered to
    what should be compared; ``baseline`` is a device key or its label."""
    labels = device_labels(runs)
    keys = device_keys(runs)
    members = {labels[k]: list(runs.loc[keys == k, "run_id"]) for k in sorted(labels, key=labels.get)}
    return _pooled(store, runs, members, labels.get(baseline, baseline), "device")


def compare_groups(store, runs: pd.DataFrame, group_ids: list[str], baseline: str | None = None,
                   names: dict[str, str] | None = None) -> Comparison:
    """Repeated runs (``run --repeat``: one group id each) side by side, each group's runs pooled, ratios between
    runs. ``runs`` is ``store.list_runs`` output (its ``group_id`` column links the runs); only ok runs count."""
    names = names or {g: g for g in group_ids}
    ok = runs[(runs["status"] == "ok") & runs["group_id"].isin(group_ids)]
    members = {names[g]: list(ok.loc[ok["group_id"] == g, "run_id"]) for g in group_ids}
    return _pooled(store, runs, members, names.get(baseline) if baseline else None, "group")


def group_choices(runs: pd.DataFrame) -> dict[str, str]:
    """group id -> a label (what :func:`run_name` says, the number of ok runs), for repeated-runs groups with 2+ ok
    runs."""
    if "group_id" not in runs:
        return {}
    ok = runs[(runs["status"] == "ok") & runs["group_id"].notna()]
    out = {}
    for gid, part in ok.groupby("group_id", sort=False):
        if len(part) < 2:
            continue
        name = run_name({**part.iloc[0].to_dict(), "run_id": str(gid)})
        out[str(gid)] = f"{name.rsplit(' · ', 1)[0]} · {len(part)} runs (group …{str(gid)[-4:]})"
    return out


def ratio_for(c: Comparison, name: str) -> stats.Ratio:
    """The p50 ratio of group ``name`` to the baseline, with the interval its runs support (see the module)."""
    a, b = c.run_p50.get(name, []), c.run_p50.get(c.baseline, [])
    if len(a) >= 2 and len(b) >= 2:
        return stats.ratio_across_runs(a, b)
    if len(c.members.get(name, [])) == 1 and len(c.members.get(c.baseline, [])) == 1:
        return stats.ratio_within_runs(c.groups.get(name, []), c.groups.get(c.baseline, []))
    return stats.ratio_across_runs(a, b)  # one run on one side only: a ratio, no interval


def _difference(r: stats.Ratio, floor_pct: float | None) -> str:
    if r.ratio is None:
        return "-"
    if r.scope == stats.SCOPE_RUNS:
        return "distinguishable" if r.excludes_one else "not distinguishable"
    if floor_pct is None:
        return "unknown: single runs (no noise floor measured)"
    return (f"not distinguishable: under the noise floor ({floor_pct:.0f}%)" if stats.below_floor(r.ratio, floor_pct)
            else f"larger than the noise floor ({floor_pct:.0f}%)")


def summary_table(c: Comparison, floor_pct: float | None = None) -> pd.DataFrame:
    """One row per group: the p50 ratio to the baseline first (it is what the comparison is for; the baseline row says
    "baseline"), its 95% interval (as text), what the interval covers (between runs, or within these runs only),
    whether the difference is distinguishable (``floor_pct``: the device's noise floor, for single runs), then the
    SUMMARY columns."""
    rows = []
    for name in c.groups:
        row = c.table.loc[name]
        out = {c.kind: name}
        if c.kind != "run":
            out["runs"] = len(c.members[name])
        r = ratio_for(c, name)
        scope = SCOPE_LABELS.get(r.scope, stats.SINGLE_RUN if r.ratio is not None else "-")
        if name == c.baseline:
            out["p50 ratio vs baseline"], out["ratio 95% interval"] = 1.0, "baseline"
            out[SCOPE_COLUMN], out["difference"] = scope, "baseline"
        else:
            out["p50 ratio vs baseline"] = r.ratio
            out["ratio 95% interval"] = f"{r.low:.3f} to {r.high:.3f}" if r.low is not None else "-"
            out[SCOPE_COLUMN], out["difference"] = scope, _difference(r, floor_pct)
        for col, label in SUMMARY.items():
            out[label] = row.get(col)
        rows.append(out)
    return pd.DataFrame(rows)


def verdicts(c: Comparison, floor_pct: float | None = None) -> list[str]:
    """One sentence per group against the baseline (``stats.ratio_words``): how much more or less time it takes,
    the interval with its scope, and whether that is distinguishable."""
    reference = c.baseline if c.kind == "device" else "the baseline"  # run names are too long to say twice
    return [stats.ratio_words(ratio_for(c, name), floor_pct, subject=name, reference=reference)
            for name in c.groups if name != c.baseline]


def noise_floor(store, device_id: str | None = None) -> dict | None:
    """The latest noise floor measured on this device (``Store.latest_noise_floor``), None if none yet."""
    if device_id is None:
        from .device import identity

        device_id = identity().device_id  # what every run started here carries
    return store.latest_noise_floor(device_id)


def noise_floor_words(floor: dict | None) -> str:
    """"Differences under 12% are not distinguishable on this device right now (...)", or how to measure it."""
    if not floor or floor.get("floor_pct") is None:
        return ("This device's noise floor has not been measured yet, so a difference between two single runs "
                "cannot be judged: measure it on the Compare page or with `edgeprof devices --noise-floor` (about 20 s).")
    when = floor.get("measured_at")
    when = when.strftime("%Y-%m-%d %H:%M UTC") if hasattr(when, "strftime") else str(when)
    lat = floor.get("latency_ms") or {}
    return (f"{stats.floor_words(floor['floor_pct']).capitalize()} (noise floor measured {when} from "
            f"{lat.get('n_runs')} runs of {floor.get('model')}: two runs of the same thing landed this far apart).")
