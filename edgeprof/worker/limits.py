"""Memory caps for the worker, in order of preference: cgroup v2, cgroup v1, RLIMIT_AS, none (with the reason).

A cgroup cap is resident memory as the kernel charges it (anonymous pages plus page cache, so a model's mapped file
counts); exceeding it gets the worker OOM-killed, which is a result to record. RLIMIT_AS bounds address space, not
resident memory: runtimes reserve far more than they touch (ONNX Runtime needs ~236 MB of address space to start an
85 MB model here), so it is labelled as such and only used when no cgroup can be made.

The worker joins its cgroup before Python starts (``sh -c 'echo $$ > cgroup.procs; exec python ...'``, ``launcher``,
which also takes the cpu cgroup of ``priority``), so the interpreter, the runtime and the model are all charged. Each
cgroup is named ``edgeprof-<owner pid>-<run>``; ``sweep_orphans`` removes those whose owner is gone, killing any
worker left inside.

Pressure-stall information (PSI) is kept per cgroup only in a cgroup v2 hierarchy. Under cgroup v2 the cap's own
cgroup has ``memory.pressure``; elsewhere (cgroup v1, a hybrid machine, no cap, RLIMIT_AS) the worker also joins a
group of its own in a v2 hierarchy when one is mounted and writable (``/sys/fs/cgroup`` itself, or the hybrid
``/sys/fs/cgroup/unified``): PSI is a core file of every v2 cgroup, present without the memory controller, so the
worker's stalls are its own, not the whole system's. That group limits nothing.

Raspberry Pi OS ships with the memory controller disabled (``cgroup_disable=memory`` on the kernel command line):
``detect`` says so and gives the fix instead of silently falling back.
"""

from __future__ import annotations

import contextlib
import os
import shlex
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


def psi_parent(root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP) -> Path | None:
    """The writable cgroup v2 directory (this process's own group) under which a worker's PSI group can be made:
    in the unified hierarchy at ``root`` (pure v2) or ``root/unified`` (hybrid); None when there is none."""
    for v2root in (root, root / "unified"):
        if not (v2root / "cgroup.controllers").exists():
            continue
        own = _own_cgroup(None, proc_self_cgroup) or "/"
        base = v2root / own.lstrip("/")
        if _writable_dir(base) and (base / "memory.pressure").exists():
            return base
    return None


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
    psi_path: Path | None = None  # a v2 group for the worker's pressure-stall information, when the cap has none

    @property
    def kind(self) -> str:
        return self.mechanism.kind if self.requested_mb else "none"

    def procs_file(self) -> Path | None:
        return None if self.path is None else self.path / "cgroup.procs"

    def launcher(self) -> list[str]:
        return launcher(self.procs_file())

    def pressure_path(self) -> Path | None:
        """The worker's own ``memory.pressure``: its PSI group's, else the cap's under cgroup v2; None otherwise."""
        if self.psi_path is not None:
            return self.psi_path / "memory.pressure"
        if self.path is not None and self.mechanism.kind == "cgroup2":
            return self.path / "memory.pressure"
        return None

    def stat_path(self) -> Path | None:
        """The cap's ``memory.stat`` (faults, refaults, the anonymous/file split); None without a memory cgroup."""
        return self.path / "memory.stat" if self.path is not None and self.mechanism.kind in ("cgroup1", "cgroup2") \
            else None

    def join_psi(self, pid: int) -> str | None:
        """Move ``pid`` into the PSI group; None when it is there (or there is none), else why it could not."""
        if self.psi_path is None:
            return None
        try:
            (self.psi_path / "cgroup.procs").write_text(str(pid))
        except OSError as exc:
            return f"the worker could not join {self.psi_path} ({exc.strerror or exc})"
        return None

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
        if not self.requested_mb and out["oom_kill_count"]:
            out["enclosing_limit_mb"] = enclosing_limit_mb(self.path)
        return out

    def kill_all(self) -> None:
        for path in (self.path, self.psi_path):
            if path is not None:
                kill_all(path)

    def remove(self, timeout: float = 5.0) -> None:
        """Remove the cgroups (the memory one, and the PSI one where made); any process still inside is killed first
        (a cgroup with tasks cannot be removed)."""
        for path in (self.path, self.psi_path):
            if path is not None:
                remove_cgroup(path, timeout)


def enclosing_limit_mb(path: Path, root: Path = CGROUP_ROOT) -> float | None:
    """The tightest memory limit on the cgroups above ``path`` (v1 ``memory.limit_in_bytes``, v2 ``memory.max``), in
    MB, or None when none is below the device's RAM: what the kernel enforced on a run that had no cap of its own."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    best = None
    here = Path(path).parent
    while root in here.parents:
        for name in ("memory.limit_in_bytes", "memory.max"):
            try:
                text = (here / name).read_text().strip()
            except OSError:
                continue
            if text.isdigit() and int(text) < ram:
                best = int(text) if best is None else min(best, int(text))
        here = here.parent
    return None if best is None else best / 2**20


def launcher(*procs_files: Path | None) -> list[str]:
    """The command prefix that puts the worker into its cgroups before Python starts: a shell writes its own pid
    into each ``cgroup.procs`` (the memory one, and the cpu one of cgroup v1), then execs the worker's command."""
    files = [p for p in procs_files if p is not None]
    if not files:
        return []
    script = " && ".join(f"echo $$ > {shlex.quote(str(p))}" for p in files) + ' && exec "$@"'
    return ["/bin/sh", "-c", script, "edgeprof-worker"]


def kill_all(path: Path) -> None:
    """SIGKILL every process in the cgroup at ``path``, never this one (cgroup v1 lists a process in cgroup.procs
    when any of its threads is in the group, and the runner puts its sampler thread in the run's cpu cgroup)."""
    try:
        text = (path / "cgroup.procs").read_text()
    except OSError:
        return
    for pid in text.split():
        if int(pid) == os.getpid():
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(int(pid), signal.SIGKILL)


def remove_cgroup(path: Path, timeout: float = 5.0) -> None:
    """Remove a cgroup; any process still inside is killed first (a cgroup with tasks cannot be removed)."""
    if not path.exists():
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            kill_all(path)
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _psi_group(run_id: str, parent: Path | None) -> Path | None:
    """A v2 group of the worker's own for its pressure-stall information (it limits nothing); None when none can be
    made (the run then reads the system's PSI, labelled so)."""
    if parent is None:
        return None
    path = parent / f"{PREFIX}{os.getpid()}-{run_id}"
    try:
        path.mkdir()
    except OSError:
        return None
    return path


def create(requested_mb: float | None, run_id: str, *, swap: bool = True, mechanism: Mechanism | None = None,
           psi: Path | None | bool = False) -> MemoryCap:
    """Create the cap for one run. No cap requested: a MemoryCap of kind ``none``, still in a cgroup of its own (with
    no limit) where one can be made, so the kernel accounts the memory it charges: a run without a limit measures the
    variant's footprint (peak charged) too, which is what a student needs to choose a limit. ``psi``: True to make the
    worker a PSI group where the cap has none (under ``psi_parent()``; the runner asks for one), a directory to make it
    under, False/None for none."""
    mech = mechanism or detect()
    parent = psi_parent() if psi is True else (psi or None)
    cgroup = mech.kind in ("cgroup1", "cgroup2")
    if not requested_mb:
        if not cgroup:
            return MemoryCap(None, Mechanism("none", None, "no memory limit requested"),
                             psi_path=_psi_group(run_id, parent))
        path = Path(mech.parent) / f"{PREFIX}{os.getpid()}-{run_id}"
        path.mkdir()
        note = f"no memory limit; charged memory accounted in a {mech.kind} cgroup with no limit"
        return MemoryCap(None, Mechanism(mech.kind, mech.parent, note), path,
                         None if mech.kind == "cgroup2" else _psi_group(run_id, parent))
    if not cgroup:
        return MemoryCap(requested_mb, mech, psi_path=_psi_group(run_id, parent))
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
    psi_path = None if mech.kind == "cgroup2" else _psi_group(run_id, parent)
    return MemoryCap(requested_mb, mech, path, psi_path)


def sweep_orphans(mechanism: Mechanism | None = None) -> list[str]:
    """Remove edgeprof cgroups whose owning process is gone, killing workers left inside. Returns their names."""
    mech = mechanism or detect()
    parents = [Path(p) for p in dict.fromkeys(x for x in (mech.parent, psi_parent()) if x is not None)]
    return [name for parent in parents for name in sweep_cgroups(parent)]


def sweep_cgroups(parent: Path) -> list[str]:
    """Remove the edgeprof cgroups under ``parent`` whose owner (the pid in the name) is gone; returns their names."""
    removed = []
    for child in parent.glob(PREFIX + "*"):
        try:
            owner = int(child.name[len(PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if owner == os.getpid() or pid_alive(owner):
            continue
        with contextlib.suppress(OSError):
            remove_cgroup(child)
            removed.append(child.name)
    return removed
