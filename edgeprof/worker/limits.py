"""Memory caps for the worker, in order of preference: cgroup v2, cgroup v1, RLIMIT_AS, none (with the reason).

A cgroup cap is resident memory as the kernel charges it (anonymous pages plus page cache, so a model's mapped file
counts); exceeding it gets the worker OOM-killed, which is a result to record. RLIMIT_AS bounds address space, not
resident memory: runtimes reserve far more than they touch (ONNX Runtime needs ~236 MB of address space to start an
85 MB model here), so it is labelled as such and only used when no cgroup can be made.

The worker joins its cgroup before Python starts (``sh -c 'echo $$ > cgroup.procs; exec python ...'``), so the
interpreter, the runtime and the model are all charged. Each cgroup is named ``edgeprof-<owner pid>-<run>``;
``sweep_orphans`` removes those whose owner is gone, killing any worker left inside.

Raspberry Pi OS ships with the memory controller disabled (``cgroup_disable=memory`` on the kernel command line):
``detect`` says so and gives the fix instead of silently falling back.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..locks import pid_alive

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
PROC_CGROUPS = Path("/proc/cgroups")
PROC_CMDLINE = Path("/proc/cmdline")
PREFIX = "edgeprof-"


@dataclass(frozen=True)
class Mechanism:
    """What a cap would use on this device: ``kind`` is cgroup2, cgroup1, rlimit_as or none."""

    kind: str
    parent: str | None  # the cgroup under which caps are created
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def _own_cgroup(controller: str | None, proc_self_cgroup: Path) -> str | None:
    """The path of this process's cgroup in the v1 hierarchy of ``controller`` (or the v2 one when None)."""
    try:
        lines = proc_self_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        num, ctrls, path = line.split(":", 2)
        if controller is None and num == "0" and ctrls == "":
            return path
        if controller is not None and controller in ctrls.split(","):
            return path
    return None


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)


def detect(root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP, proc_cgroups: Path = PROC_CGROUPS,
           cmdline: Path = PROC_CMDLINE) -> Mechanism:
    """The best mechanism here. ``EDGEPROF_MEMORY_MECHANISM=rlimit_as`` forces the fallback (to compare, or to test)."""
    if os.environ.get("EDGEPROF_MEMORY_MECHANISM") == "rlimit_as":
        return Mechanism("rlimit_as", None, "RLIMIT_AS address-space limit (not resident memory), forced by "
                                            "EDGEPROF_MEMORY_MECHANISM")
    reasons = []
    from ..telemetry.rpi import memory_cgroup_disabled

    fix = memory_cgroup_disabled(str(cmdline), str(proc_cgroups))
    if fix:
        return Mechanism("rlimit_as", None, "RLIMIT_AS address-space limit (not resident memory): " + fix)
    # cgroup v2: unified at the root, or the hybrid "unified" mount when it carries the memory controller
    for v2root in (root, root / "unified"):
        controllers = v2root / "cgroup.controllers"
        if not controllers.exists():
            continue
        own = _own_cgroup(None, proc_self_cgroup) or "/"
        base = v2root / own.lstrip("/")
        if "memory" not in controllers.read_text().split():
            reasons.append(f"cgroup v2 at {v2root} has no memory controller")
            continue
        if _writable_dir(base) and "memory" in (base / "cgroup.subtree_control").read_text().split():
            return Mechanism("cgroup2", str(base), f"cgroup v2 memory.max under {base}")
        reasons.append(f"cgroup v2 subtree {base} is not writable or does not delegate memory (run as root, or"
                       " under `systemd-run --user --scope -p Delegate=yes`)")
    v1 = root / "memory"
    if v1.is_dir():
        own = _own_cgroup("memory", proc_self_cgroup) or "/"
        base = v1 / own.lstrip("/")
        if _writable_dir(base):
            return Mechanism("cgroup1", str(base), f"cgroup v1 memory.limit_in_bytes under {base}")
        reasons.append(f"cgroup v1 {base} is not writable (run as root)")
    else:
        reasons.append("no memory cgroup hierarchy is mounted")
    return Mechanism("rlimit_as", None, "RLIMIT_AS address-space limit (not resident memory): " + "; ".join(reasons))


@dataclass
class MemoryCap:
    """One worker's cap. ``launcher`` prefixes the worker's command so it joins the cgroup before Python starts."""

    requested_mb: float | None
    mechanism: Mechanism
    path: Path | None = None

    @property
    def kind(self) -> str:
        return self.mechanism.kind if self.requested_mb else "none"

    def launcher(self) -> list[str]:
        if self.path is None:
            return []
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.path / "cgroup.procs")]

    def rlimit_bytes(self) -> int | None:
        if self.requested_mb and self.kind == "rlimit_as":
            return int(self.requested_mb * 1024 * 1024)
        return None

    def _read(self, name: str) -> str | None:
        if self.path is None:
            return None
        try:
            return (self.path / name).read_text()
        except OSError:
            return None

    def _stat(self) -> dict[str, int]:
        text = self._read("memory.stat") or ""
        return {k: int(v) for k, v in (line.split() for line in text.splitlines() if line.count(" ") == 1)}

    def current_bytes(self) -> int | None:
        name = "memory.current" if self.mechanism.kind == "cgroup2" else "memory.usage_in_bytes"
        text = self._read(name)
        return int(text) if text else None

    def report(self) -> dict:
        """Peak charged memory, OOM kills, major faults and swap, read from the cgroup after the worker ends."""
        out = {"requested_mb": self.requested_mb, "mechanism": self.kind, "peak_charged_mb": None,
               "oom_kill_count": None, "major_faults": None, "swap_peak_mb": None, "reason": self.mechanism.reason}
        if self.path is None:
            return out
        stat = self._stat()
        if self.mechanism.kind == "cgroup1":
            peak = self._read("memory.max_usage_in_bytes")
            oom = dict(line.split() for line in (self._read("memory.oom_control") or "").splitlines() if " " in line)
            out["oom_kill_count"] = int(oom.get("oom_kill", 0))
            memsw = self._read("memory.memsw.max_usage_in_bytes")
            if memsw and peak:
                out["swap_peak_mb"] = max(0, int(memsw) - int(peak)) / 2**20
            out["major_faults"] = stat.get("total_pgmajfault", stat.get("pgmajfault"))
        else:
            peak = self._read("memory.peak")
            events = dict(line.split() for line in (self._read("memory.events") or "").splitlines() if " " in line)
            out["oom_kill_count"] = int(events.get("oom_kill", 0))
            swap = self._read("memory.swap.peak") or self._read("memory.swap.current")
            out["swap_peak_mb"] = int(swap) / 2**20 if swap else None
            out["major_faults"] = stat.get("pgmajfault")
        if peak:
            out["peak_charged_mb"] = int(peak) / 2**20
        return out

    def kill_all(self) -> None:
        text = self._read("cgroup.procs") or ""
        for pid in text.split():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(pid), signal.SIGKILL)

    def remove(self, timeout: float = 5.0) -> None:
        """Remove the cgroup; any process still inside is killed first (a cgroup with tasks cannot be removed)."""
        if self.path is None or not self.path.exists():
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                self.kill_all()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def create(requested_mb: float | None, run_id: str, *, swap: bool = True, mechanism: Mechanism | None = None) -> MemoryCap:
    """Create the cap for one run. No cap requested: a MemoryCap of kind ``none``, still in a cgroup of its own (with
    no limit) where one can be made, so the kernel accounts the memory it charges: a run without a limit measures the
    variant's footprint (peak charged) too, which is what a student needs to choose a limit."""
    mech = mechanism or detect()
    cgroup = mech.kind in ("cgroup1", "cgroup2")
    if not requested_mb:
        if not cgroup:
            return MemoryCap(None, Mechanism("none", None, "no memory limit requested"))
        path = Path(mech.parent) / f"{PREFIX}{os.getpid()}-{run_id}"
        path.mkdir()
        note = f"no memory limit; charged memory accounted in a {mech.kind} cgroup with no limit"
        return MemoryCap(None, Mechanism(mech.kind, mech.parent, note), path)
    if not cgroup:
        return MemoryCap(requested_mb, mech)
    path = Path(mech.parent) / f"{PREFIX}{os.getpid()}-{run_id}"
    path.mkdir()
    limit = str(int(requested_mb * 1024 * 1024))
    try:
        if mech.kind == "cgroup1":
            (path / "memory.limit_in_bytes").write_text(limit)
            if not swap:
                with contextlib.suppress(OSError):
                    (path / "memory.swappiness").write_text("0")
                with contextlib.suppress(OSError):
                    (path / "memory.memsw.limit_in_bytes").write_text(limit)
        else:
            (path / "memory.max").write_text(limit)
            if not swap:
                with contextlib.suppress(OSError):
                    (path / "memory.swap.max").write_text("0")
    except OSError:
        path.rmdir()
        raise
    return MemoryCap(requested_mb, mech, path)


def sweep_orphans(mechanism: Mechanism | None = None) -> list[str]:
    """Remove edgeprof cgroups whose owning process is gone, killing workers left inside. Returns their names."""
    mech = mechanism or detect()
    if mech.parent is None:
        return []
    removed = []
    for child in Path(mech.parent).glob(PREFIX + "*"):
        try:
            owner = int(child.name[len(PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if owner != os.getpid() and pid_alive(owner):
            continue
        if owner == os.getpid():
            continue
        cap = MemoryCap(None, mech, child)
        with contextlib.suppress(OSError):
            cap.remove()
            removed.append(child.name)
    return removed
