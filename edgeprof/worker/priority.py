"""CPU priority for the worker over everything edgeprof does not measure (a browser on the device, the dashboard's
own page work, other users), with the kernel's own means, in order of preference:

1. cgroup v2 ``cpu.weight`` in the run's memory cgroup (``limits``): the parent's ``cgroup.subtree_control`` gets
   ``+cpu`` where the controller is available there;
2. cgroup v1 ``cpu.shares`` in a cgroup of the cpu hierarchy made for the run (``edgeprof-<owner pid>-<run>``, as the
   memory one), which the worker joins before Python starts (``limits.launcher``);
3. niceness: the parent raises the worker's priority before it reads its spec (so before anything is timed). With
   the kernel's autogroup scheduling on, nice values only rank tasks inside one session's group, and the worker
   starts a session of its own, so it is its autogroup's nice (``/proc/<pid>/autogroup``) that is set; without it,
   the worker's own nice (``setpriority``). Raising a priority needs CAP_SYS_NICE (or a RLIMIT_NICE that allows it):
   without it the run says so and runs at normal priority.

Why: on a 2-core board a Chromium watching the Run page took ~1 core, and the worker's p50 went from 6.6 ms
(CLI) to 15-16 ms (``bench/bench_observer.py``). A weight only ranks the worker against what competes at the same
level of the hierarchy: on cgroup v1 here that is every other session's autogroup (the browser, the server, a
shell); on a cgroup v2 desktop, processes in other slices are ranked by their ancestors' weights, which only the
system's administrator sets. The mechanism, or why there is none, is recorded with every run (``report``).

Watched on the device itself (a run started from a browser on this device, ``RunConfig.watched``, on a board of at
most ``WATCHED_MAX_CORES`` cores), the run gets ``WATCHED_FACTOR`` instead: the browser and the server that draw the
live view compete with the worker on the same few cores, and at 20x the Run page showed no chart during whole runs
(issue 24; ``bench/bench_scale.py`` measures the redraw rate and the p50 beside the same run headless). The runner
also leaves one core to them (``run.runner.watched_choice``) and records both in the run's ``cpu_priority.watched``.

``EDGEPROF_CPU_PRIORITY`` = ``off`` turns priority off and ``nice`` forces the fallback (to compare, or to test); a
number from 1 to 256 sets the weight factor (``WEIGHT_FACTOR``): the worker's weight against one ordinary process,
watched or not.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
from dataclasses import dataclass
from pathlib import Path

from . import limits

CGROUP_ROOT = limits.CGROUP_ROOT
PROC_SELF_CGROUP = limits.PROC_SELF_CGROUP
AUTOGROUP_ENABLED = Path("/proc/sys/kernel/sched_autogroup_enabled")
PROC = Path("/proc")
ENV = "EDGEPROF_CPU_PRIORITY"
# The worker's weight against one ordinary competitor (v1 cpu.shares 1024, v2 cpu.weight 100, nice 0). A trade-off
# measured with bench/bench_observer.py (docs/architecture.md): what the worker does not get, a browser and the
# dashboard on the device get; at 100x they got so little that the page froze for the whole run.
WEIGHT_FACTOR = 20
# While a browser on a board of at most WATCHED_MAX_CORES cores watches the run (issue 24): enough to keep other
# users' work behind the worker, little enough that the browser's redraws still get the core the worker leaves free.
WATCHED_FACTOR = 4
WATCHED_MAX_CORES = 4


def weight_factor(watched: bool = False) -> float:
    """``EDGEPROF_CPU_PRIORITY`` as a number (1 to 256), else WATCHED_FACTOR for a run watched on the device (see
    the module's docstring), else WEIGHT_FACTOR."""
    try:
        return min(256.0, max(1.0, float(os.environ.get(ENV, ""))))
    except ValueError:
        return float(WATCHED_FACTOR if watched else WEIGHT_FACTOR)


def v1_shares(factor: float) -> int:
    return min(262_144, round(1024 * factor))  # kernel range 2..262144, default 1024


def v2_weight(factor: float) -> int:
    return min(10_000, round(100 * factor))  # kernel range 1..10000, default 100


def worker_nice(factor: float) -> int:
    """The nice value whose scheduler weight is about ``factor`` times nice 0's (each step is ~1.25x), -20 at most."""
    return -min(20, round(math.log(factor) / math.log(1.25)))


@dataclass(frozen=True)
class PriorityMechanism:
    """What a run's priority would use here: ``kind`` is cgroup2, cgroup1, nice or off."""

    kind: str
    parent: str | None  # cgroup1: the cgroup under which a run's cpu cgroup is made; cgroup2: the memory parent
    reason: str


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _v1_hierarchy(root: Path) -> Path | None:
    """The mounted cgroup v1 hierarchy that carries the cpu controller (``cpu``, or ``cpu,cpuacct`` co-mounted)."""
    for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        d = root / name
        if (d / "cpu.shares").exists():
            return d
    return None


def detect(memory: limits.Mechanism | None = None, root: Path = CGROUP_ROOT,
           proc_self_cgroup: Path = PROC_SELF_CGROUP) -> PriorityMechanism:
    """The best mechanism here, given the memory cap's mechanism (``limits.detect()`` when None)."""
    forced = os.environ.get(ENV, "").strip().lower()
    if forced == "off":
        return PriorityMechanism("off", None, f"turned off by {ENV}=off")
    reasons = []
    if forced != "nice":
        memory = memory or limits.detect()
        if memory.kind == "cgroup2" and memory.parent:
            parent = Path(memory.parent)
            if "cpu" in _read(parent / "cgroup.controllers").split():
                return PriorityMechanism("cgroup2", str(parent), f"cgroup v2 cpu.weight in the run's cgroup under "
                                                                 f"{parent}")
            reasons.append(f"cgroup v2 {parent} has no cpu controller")
        hierarchy = _v1_hierarchy(root)
        if hierarchy is not None:
            own = limits._own_cgroup("cpu", proc_self_cgroup) or "/"
            base = hierarchy / own.lstrip("/")
            if base.is_dir() and os.access(base, os.W_OK):
                return PriorityMechanism("cgroup1", str(base), f"cgroup v1 cpu.shares under {base}")
            reasons.append(f"cgroup v1 {base} is not writable (run as root)")
        elif memory.kind != "cgroup2":
            reasons.append("no cpu cgroup hierarchy is mounted")
    else:
        reasons.append(f"forced by {ENV}=nice")
    return PriorityMechanism("nice", None, "niceness (" + "; ".join(reasons) + ")")


def autogroup_enabled(path: Path = AUTOGROUP_ENABLED) -> bool:
    return _read(path).strip() == "1"


@dataclass
class CpuPriority:
    """One run's priority. ``procs_file`` is the cgroup.procs the worker joins before Python starts (cgroup v1: its
    own; cgroup v2 shares the memory cgroup's); ``apply(pid)`` sets niceness after the spawn; ``report`` says what
    the run got."""

    mechanism: PriorityMechanism
    path: Path | None = None
    setting: str | None = None
    unavailable: str | None = None
    owned: bool = False  # a cgroup made here (v1), removed with the run
    factor: float = WEIGHT_FACTOR  # the worker's weight against one ordinary process (weight_factor)

    def procs_file(self) -> Path | None:
        return self.path / "cgroup.procs" if self.owned and self.path is not None else None

    def apply(self, pid: int, proc: Path = PROC, autogroup: bool | None = None) -> None:
        """The nice mechanism: raise the worker's priority (its autogroup's with autogroup scheduling on). EPERM
        (no CAP_SYS_NICE) is recorded as the reason the run has no priority; it is not an error of the run."""
        if self.mechanism.kind != "nice" or self.unavailable:
            return
        groups = autogroup_enabled() if autogroup is None else autogroup
        nice = worker_nice(self.factor)
        try:
            if groups:
                # the worker's own session (start_new_session): never renice a group this process is in
                if _read(proc / str(pid) / "autogroup").split(" ")[0] == _read(proc / "self" / "autogroup").split(" ")[0]:
                    raise OSError(errno.EINVAL, "the worker shares this process's autogroup")
                (proc / str(pid) / "autogroup").write_text(str(nice))
                self.setting = f"autogroup nice {nice} (the worker's session)"
            else:
                os.setpriority(os.PRIO_PROCESS, pid, nice)
                self.setting = f"nice {nice}"
        except PermissionError:
            self.unavailable = (f"raising the worker's priority needs CAP_SYS_NICE (root) and no cpu cgroup could be "
                                f"made ({self.mechanism.reason}): the worker runs at normal priority, so a browser on "
                                "this device competes with it; watch from another machine")
        except OSError as exc:
            if exc.errno not in (errno.ESRCH, errno.ENOENT):  # a worker that already exited needs no priority
                self.unavailable = f"could not raise the worker's priority: {exc.strerror or exc}"

    def report(self) -> dict:
        """``{"mechanism": "cgroup1 cpu.shares=102400 (default 1024)", "kind", "note"}``, or ``{"unavailable": why}``."""
        if self.unavailable or self.setting is None:
            return {"unavailable": self.unavailable or "the worker did not start"}
        return {"mechanism": f"{self.mechanism.kind} {self.setting}", "kind": self.mechanism.kind,
                "note": self.mechanism.reason}

    def join_process(self) -> None:
        """cgroup v1: move this whole process (every thread: the runner's, the sampler's, and in the app the server's)
        into the run's cpu cgroup until ``remove``. Not single threads: all of a process's Python threads share one
        GIL, so a thread left behind at a twentieth of the weight was descheduled while holding it and stalled the
        sampler waiting for it (measured: an efficientnet-lite0 run beside one busy Python thread kept 13 telemetry
        timestamps with only the runner's threads in the group, 71 with priority off). Threads started while inside
        inherit the group; ``remove`` moves them all back."""
        if self.owned and self.path is not None:
            with contextlib.suppress(OSError):
                (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def _release_own_threads(self) -> None:
        """Move this process's threads that are still in the run's cgroup back to the parent (a cgroup with tasks
        cannot be removed, and a thread of the server must never count as a worker left inside)."""
        try:
            inside = set((self.path / "tasks").read_text().split())
            mine = set(os.listdir("/proc/self/task"))
        except OSError:
            return
        for tid in inside & mine:
            with contextlib.suppress(OSError):
                (Path(self.mechanism.parent) / "tasks").write_text(tid)

    def remove(self, timeout: float = 5.0) -> None:
        if self.owned and self.path is not None:
            self._release_own_threads()
            limits.remove_cgroup(self.path, timeout)


def create(run_id: str, cap: limits.MemoryCap | None, *, mechanism: PriorityMechanism | None = None,
           factor: float | None = None) -> CpuPriority:
    """The priority of one run, made with its memory cap (``cap``: cgroup v2 puts the weight in the cap's cgroup).
    ``factor``: the weight against one ordinary process (None: ``weight_factor()``). A cgroup that cannot be set up
    falls back to niceness, with the reason."""
    factor = weight_factor() if factor is None else factor
    mech = mechanism or detect(cap.mechanism if cap is not None and cap.mechanism.kind != "none" else None)
    if mech.kind == "off":
        return CpuPriority(mech, unavailable=mech.reason, factor=factor)
    if mech.kind == "cgroup2":
        if cap is not None and cap.path is not None and cap.mechanism.kind == "cgroup2":
            try:
                control = Path(mech.parent) / "cgroup.subtree_control"
                if "cpu" not in _read(control).split():
                    control.write_text("+cpu")
                weight = v2_weight(factor)
                (cap.path / "cpu.weight").write_text(str(weight))
                return CpuPriority(mech, cap.path, f"cpu.weight={weight} (default 100)", factor=factor)
            except OSError as exc:
                reason = f"cgroup v2 cpu.weight could not be set ({exc.strerror or exc})"
        else:
            reason = "the run has no cgroup v2 memory cgroup to weight"
        mech = PriorityMechanism("nice", None, f"niceness ({reason})")
    elif mech.kind == "cgroup1":
        path = Path(mech.parent) / f"{limits.PREFIX}{os.getpid()}-{run_id}"
        try:
            path.mkdir()
            try:
                shares = v1_shares(factor)
                (path / "cpu.shares").write_text(str(shares))
            except OSError:
                path.rmdir()
                raise
            return CpuPriority(mech, path, f"cpu.shares={shares} (default 1024)", owned=True, factor=factor)
        except OSError as exc:
            mech = PriorityMechanism("nice", None, f"niceness (cgroup v1 cpu.shares could not be set: "
                                                   f"{exc.strerror or exc})")
    return CpuPriority(mech, factor=factor)


def sweep_orphans(mechanism: PriorityMechanism | None = None) -> list[str]:
    """Remove the cpu cgroups (v1) whose owning process is gone, killing workers left inside. Returns their names."""
    with contextlib.suppress(OSError):
        mech = mechanism or detect()
        if mech.kind == "cgroup1" and mech.parent:
            return limits.sweep_cgroups(Path(mech.parent))
    return []


def describe(report: dict | None) -> str:
    """A run's ``cpu_priority`` block in words, for the CLI and the pages."""
    if not report:
        return "not recorded (an older run, or the worker never started)"
    if report.get("mechanism"):
        words = f"above other processes ({report['mechanism']})"
    else:
        words = f"normal, none given: {report.get('unavailable') or 'unknown'}"
    return words + describe_watched(report.get("watched"))


def describe_watched(watched: dict | None) -> str:
    """The ``watched`` block of a run's ``cpu_priority`` in words ("" for a run nobody watched on the device)."""
    if not watched or not watched.get("local_viewer"):
        return ""
    threads, asked, cores = watched.get("threads"), watched.get("requested_threads"), watched.get("cores")
    kept = f"; watched in a browser on this {cores}-core device, so the worker ran {threads} thread" \
           f"{'s' if threads != 1 else ''}"
    if asked is not None and asked != threads:
        kept += f" (asked {asked})"
    if watched.get("factor") is not None:
        kept += f" at {watched['factor']:g}x weight"
    return kept + ", leaving the browser a core to draw the live view; watch from another machine for the full board"
