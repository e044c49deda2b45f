"""Two runs' per-operator profiles side by side: where the time went, by operator type, and one sentence that says
why one run is slower. ``edgeprof ops RUN_A RUN_B`` and the Compare page show what these return; the profiles come
from ``--profile-ops`` runs (``runtimes.profile``), kept in the runs table's ``op_profile`` column."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .errors import UsageError
from .stats import fmt_ms

TABLE_COLUMNS = ["op_type", "ms_a", "ms_b", "ratio", "diff_ms", "share_of_difference"]
COVER = 0.8  # the operators named in the sentence account for this share of the change, at most MAX_NAMED of them
MAX_NAMED = 3


@dataclass
class OpComparison:
    """``table``: one row per operator type (TABLE_COLUMNS; ms per inference in each run, B over A, B minus A and
    that difference's share of the whole difference), largest change first; ``name_a``/``name_b`` what the runs are
    called in the sentence; ``sentence``: why B is slower or faster than A; ``coverage``: each run's sum of operator
    times over its steady p50."""

    table: pd.DataFrame
    name_a: str
    name_b: str
    sentence: str
    coverage: tuple


def op_table(profile_a: dict, profile_b: dict) -> pd.DataFrame:
    """Operator types of two profiles side by side (an operator one run lacks has 0 ms there)."""
    a = {r["op_type"]: r["ms_per_inference"] for r in profile_a.get("by_type") or []}
    b = {r["op_type"]: r["ms_per_inference"] for r in profile_b.get("by_type") or []}
    ops = list(dict.fromkeys([*a, *b]))
    rows = [{"op_type": op, "ms_a": a.get(op, 0.0), "ms_b": b.get(op, 0.0)} for op in ops]
    df = pd.DataFrame(rows, columns=["op_type", "ms_a", "ms_b"])
    df["ratio"] = [mb / ma if ma else None for ma, mb in zip(df["ms_a"], df["ms_b"], strict=True)]
    df["diff_ms"] = df["ms_b"] - df["ms_a"]
    total = df["diff_ms"].sum()
    df["share_of_difference"] = df["diff_ms"] / total if total else None
    df = df.reindex(df["diff_ms"].abs().sort_values(ascending=False).index).reset_index(drop=True)
    return df[TABLE_COLUMNS]


def _ms(x: float) -> str:
    return fmt_ms(x)  # the CLI's and the pages' one spelling: an operator of a fast model takes microseconds


def _names(ops: list[str]) -> str:
    return ops[0] if len(ops) == 1 else ", ".join(ops[:-1]) + " and " + ops[-1]


def _leading(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows (largest |diff| first) that together make COVER of these rows' change, at most MAX_NAMED."""
    rows = rows.reindex(rows["diff_ms"].abs().sort_values(ascending=False).index)
    total, out, acc = rows["diff_ms"].abs().sum(), [], 0.0
    for idx, d in rows["diff_ms"].abs().items():
        if len(out) == MAX_NAMED or (out and acc >= COVER * total):
            break
        out.append(idx)
        acc += d
    return rows.loc[out]


def explain(table: pd.DataFrame, name_a: str, name_b: str) -> str:
    """Why run B is slower (or faster) than run A, from their operator times: which operators take the time that
    others took, e.g. "int8-dynamic is slower than fp32 because DynamicQuantizeLinear and ConvInteger take 12.1 ms
    that Conv took 4.2 ms in fp32 (15.3 ms against 5.5 ms of operator time per inference)."""
    ta, tb = float(table["ms_a"].sum()), float(table["ms_b"].sum())
    totals = f"({_ms(tb)} against {_ms(ta)} of operator time per inference)"
    d = tb - ta
    if abs(d) <= 0.02 * max(ta, tb):
        return f"{name_b} and {name_a} spend about the same operator time per inference ({_ms(tb)} and {_ms(ta)})."
    sign = 1 if d > 0 else -1
    drivers = _leading(table[table["diff_ms"] * sign > 0])
    counter = _leading(table[table["diff_ms"] * sign < 0])
    grew, shrank = (drivers, counter) if sign > 0 else (counter, drivers)
    new = grew[grew["ms_a"] == 0]
    gone = shrank[shrank["ms_b"] == 0]
    word = "slower" if sign > 0 else "faster"
    if len(new) and len(gone):
        core = (f"{_names(list(new['op_type']))} take{'s' if len(new) == 1 else ''} {_ms(new['ms_b'].sum())} that "
                f"{_names(list(gone['op_type']))} took {_ms(gone['ms_a'].sum())} in {name_a}")
    else:
        parts = []
        for r in drivers.itertuples():
            if r.ms_a == 0:
                parts.append(f"{r.op_type} takes {_ms(r.ms_b)} (none in {name_a})")
            elif r.ms_b == 0:
                parts.append(f"{r.op_type}, which took {_ms(r.ms_a)} in {name_a}, is gone")
            else:
                parts.append(f"{r.op_type} takes {_ms(r.ms_b)} where it took {_ms(r.ms_a)}")
        core = "; ".join(parts)
    return f"{name_b} is {word} than {name_a} because {core} {totals}."


def run_names(run_a: dict, run_b: dict) -> tuple[str, str]:
    """Short names that tell two runs apart: the precision, runtime, model or memory limit that differs (in that
    order of preference), else the runs' ids."""
    for key in ("precision", "runtime", "model", "memory_limit_mb"):
        va, vb = run_a.get(key), run_b.get(key)
        if va != vb:
            if key == "memory_limit_mb":
                return tuple("no cap" if not v else f"{v:g} MB cap" for v in (va, vb))
            return str(va), str(vb)
    return f"run ..{str(run_a.get('run_id'))[-6:]}", f"run ..{str(run_b.get('run_id'))[-6:]}"


def _profile(run: dict, prog: str) -> dict:
    prof = run.get("op_profile") or (run.get("summary") or {}).get("op_profile")
    rid = run.get("run_id")
    if not prof:
        raise UsageError(f"run {rid} has no operator profile.",
                         f"Run it again with --profile-ops (`{prog} run --model ... --profile-ops`), or tick "
                         "\"Profile operators\" on the Run page.")
    if "unavailable" in prof:
        raise UsageError(f"run {rid} has no operator profile: {prof['unavailable']}.",
                         "Compare ONNX Runtime runs made with --profile-ops.")
    return prof


def compare_profiles(run_a: dict, run_b: dict, prog: str = "edgeprof") -> OpComparison:
    """Runs as ``Store.get_run`` returns them (their ``op_profile``) -> an OpComparison. Raises UsageError with what
    to do when either has no usable profile."""
    pa, pb = _profile(run_a, prog), _profile(run_b, prog)
    table = op_table(pa, pb)
    name_a, name_b = run_names(run_a, run_b)
    return OpComparison(table, name_a, name_b, explain(table, name_a, name_b),
                        (pa.get("coverage"), pb.get("coverage")))
