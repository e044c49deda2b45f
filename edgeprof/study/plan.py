"""A study's cells and the order they run in (docs/studies.md says why): repetitions outermost; within a
repetition the variants (model, precision, runtime, threads) rotated from one repetition to the next; within a variant
the memory limits from the most generous ("none") down to the tightest.

Every cell has a key (``r0|digits-cnn|fp32|onnx|t2|1.25x``) stored with ``Store.set_cell``; a cell whose status is
final (``FINAL_STATUSES``) is never rerun.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import MemLimit, StudyConfig

# A cell with one of these statuses is a result and is never rerun; "error" means no run record could be made.
FINAL_STATUSES = ("ok", "oom_killed", "crashed", "timed_out", "failed", "error")
# Counted in "failed": the cell produced no run record, or its run ended failed (the tool, not the device, gave up).
FAILED_STATUSES = ("failed", "error")

# ------------------------------------------------------------------------------------------------ cells and order

@dataclass(frozen=True)
class Cell:
    rep: int
    model: str
    precision: str
    runtime: str
    threads: int
    mem: str  # the canonical memory-limit label

    @property
    def key(self) -> str:
        return f"r{self.rep}|{self.model}|{self.precision}|{self.runtime}|t{self.threads}|{self.mem}"

    @property
    def variant(self) -> tuple[str, str, str, int]:
        return (self.model, self.precision, self.runtime, self.threads)


def calibration_key(variant: tuple[str, str, str, int]) -> str:
    m, p, r, t = variant
    return f"calibrate|{m}|{p}|{r}|t{t}"


def parse_cell_key(key: str) -> dict | None:
    parts = key.split("|")
    if len(parts) != 6 or not parts[0].startswith("r") or not parts[4].startswith("t"):
        return None
    return {"rep": int(parts[0][1:]), "model": parts[1], "precision": parts[2], "runtime": parts[3],
            "threads": int(parts[4][1:]), "mem": parts[5]}


def variant_order(cfg: StudyConfig, rep: int) -> list[tuple[str, str, str, int]]:
    """Variants for repetition ``rep``: the list rotated by floor(rep * V / R) (rep mod V when R > V), so over the
    R repetitions each variant runs at evenly spread positions of a pass: near the start, the middle, the end."""
    v = cfg.variants
    if not v:
        return []
    n, reps = len(v), cfg.repetitions
    k = (rep * n) // reps if reps <= n else rep % n
    return v[k:] + v[:k]


def order_limits(limits: tuple[MemLimit, ...], footprint_mb: float | None) -> list[MemLimit]:
    """Most generous first: "none", then by resolved MB descending (relative ones by factor if no footprint), then
    multiples of the measured minimum cap."""
    def key(x: MemLimit):
        if x.kind == "none":
            return (0, 0.0)
        if x.kind == "min_factor":  # multiples of the smallest cap that completes: the tight end, last
            return (2, -x.value)
        mb = x.resolve(footprint_mb)
        return (1, -(mb if mb is not None else x.value * 1e6))

    return sorted(limits, key=key)


def plan(cfg: StudyConfig, footprints: dict | None = None) -> list[Cell]:
    """All cells in execution order. Footprints (variant -> MB) order mixed absolute and relative limits."""
    footprints = footprints or {}
    cells = []
    for rep in range(cfg.repetitions):
        for var in variant_order(cfg, rep):
            for lim in order_limits(cfg.limits, footprints.get(var)):
                cells.append(Cell(rep, *var, lim.label))
    return cells


