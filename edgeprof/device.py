"""What this device is and what it can measure: the platform, the runtimes and execution providers a run will use,
each telemetry source (or why it is off) and the memory-cap mechanism. The ``devices`` command prints it; pages can
show it. Also whether a browser watching the dashboard runs on this device (it then competes with the model for
the CPU)."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import secrets
import socket
from pathlib import Path
from typing import NamedTuple


def onnx_providers(providers: list[str] | None, arch: str, gpu: str | None, checkout: bool) -> dict:
    """The execution providers a run will use, in order, and how to get the GPU one when a GPU is visible but this
    ONNX Runtime is the CPU build (``providers`` None: ONNX Runtime is not installed). Pure: tests pass fakes."""
    from .install import gpu_hint

    if providers is None:
        return {"default": None, "chain": [], "on_request": [], "gpu": gpu, "hint": None}
    chain = (["cuda"] if "cuda" in providers else []) + ["cpu"]
    hint = gpu_hint(arch, gpu, checkout) if "cuda" not in providers else None
    return {"default": chain[0], "chain": chain, "on_request": [p for p in providers if p not in chain],
            "gpu": gpu, "hint": hint}


def memory_pressure(mech, parent, system_readable: bool) -> dict:
    """Where a run's memory pressure will come from: the worker's own cgroup (``scope`` cgroup, ``where`` the v2
    directory its PSI group is made under, or the cap's own v2 group), else the system's file (``scope`` system),
    else {"unavailable": why}. Pure: tests pass what the probes found."""
    from .telemetry.memory import PROC_PRESSURE_MEMORY

    if mech.kind == "cgroup2":
        return {"scope": "cgroup", "where": f"memory.pressure of the cap's cgroup under {mech.parent}"}
    if parent is not None:
        return {"scope": "cgroup", "where": f"memory.pressure of a group of the worker's own under {parent}"}
    if system_readable:
        return {"scope": "system", "where": f"{PROC_PRESSURE_MEMORY} (system-wide: every process counts)"}
    return {"unavailable": f"the kernel gives no pressure-stall information ({PROC_PRESSURE_MEMORY} cannot be read)"}


def device_report() -> dict:
    """What ``devices`` prints: the device, its runtimes and providers, each telemetry source (or why it is off),
    ``measures`` ({device class: [sources]}: what this device can measure, from ``telemetry.measurable``), the memory
    cap, CPU priority and memory pressure mechanisms."""
    import platform

    from . import paths
    from .install import gpu_seen
    from .runtimes import available_runtimes
    from .telemetry import default_sources, measurable, static_info
    from .worker import limits, priority

    mech = limits.detect()
    prio = priority.detect(mech)
    runtimes = available_runtimes()
    sources = default_sources()
    ort = next(s for s in runtimes if s.name == "onnxruntime")
    checkout = paths.BUNDLED_ROOT == paths.REPO_ROOT and (paths.REPO_ROOT / "scripts" / "setup.sh").is_file()
    report = {
        "device": static_info(),
        "runtimes": [{"name": s.name, "available": s.available, "version": s.version, "reason": s.reason,
                      "execution_providers": list(s.providers)} for s in runtimes],
        "onnx_providers": onnx_providers(list(ort.providers) if ort.available else None, platform.machine(),
                                         gpu_seen(), checkout),
        "telemetry": [s.status()._asdict() for s in sources],
        "measures": measurable(sources),
        "memory_cap": mech.to_dict(),
        "cpu_priority": {"kind": prio.kind, "parent": prio.parent, "reason": prio.reason},
        "memory_pressure": memory_pressure(mech, limits.psi_parent(), _readable(PSI_SYSTEM)),
    }
    for src in sources:
        src.close()
    return report


def own_addresses() -> set[str]:
    """Every IP address of this device's network interfaces (loopback included), as text."""
    import psutil

    out = set()
    with contextlib.suppress(OSError):
        for addrs in psutil.net_if_addrs().values():
            for a in addrs:
                if a.family in (socket.AF_INET, socket.AF_INET6):
                    out.add(a.address.split("%", 1)[0])  # fe80::1%eth0 -> fe80::1
    return out


def lan_addresses(own: set[str]) -> list[str]:
    """The addresses another machine could reach this one at: IPv4, not loopback or link-local, sorted."""
    out = []
    for text in own:
        with contextlib.suppress(ValueError):
            ip = ipaddress.ip_address(text)
            if ip.version == 4 and not (ip.is_loopback or ip.is_link_local):
                out.append(text)
    return sorted(out)


def client_on_device(client: str | None, own: set[str]) -> bool:
    """Whether a browser that connects from ``client`` runs on this device: no address (Streamlit gives none for
    loopback), a loopback address, or one of this device's own addresses. Pure: tests pass addresses."""
    if not client:
        return True
    text = client.strip().split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return text == "localhost"
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback or str(ip) in own or text in own


PSI_SYSTEM = "/proc/pressure/memory"


def _readable(path: str) -> bool:
    try:
        with open(path) as fh:
            return bool(fh.read())
    except OSError:
        return False


IDENTITY_FILE = "device.json"
NAME_MAX = 64


class Identity(NamedTuple):
    """Who this device is in a fleet: ``device_id`` (16 hex digits, made once) and ``device_name`` (a person's)."""

    device_id: str
    device_name: str


def check_name(name: str) -> str:
    """A device name as given, stripped: 1-64 printable characters, no '/' (it appears in folder listings)."""
    from .errors import UsageError

    text = str(name).strip()
    if not text or len(text) > NAME_MAX or not text.isprintable() or "/" in text:
        raise UsageError(f"the device name {text[:80]!r} is not 1-{NAME_MAX} printable characters without '/'.",
                         "Pick a short name such as pi-07.")
    return text


def identity(data_dir: Path | None = None) -> Identity:
    """This data directory's device id and name, made on first use (id: 16 random hex digits, so twenty boards with
    one hostname stay apart; name: the hostname) and stored in ``device.json`` there. Later calls read the file; a
    damaged file is replaced with a new id (runs already stored keep theirs)."""
    from . import paths

    folder = Path(data_dir) if data_dir is not None else paths.data_dir()
    file = folder / IDENTITY_FILE
    try:
        doc = json.loads(file.read_text())
        ident = Identity(str(doc["device_id"]), str(doc["device_name"]))
        if re.fullmatch(r"[0-9a-f]{16}", ident.device_id):
            return ident
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return _write_identity(folder, Identity(secrets.token_hex(8), socket.gethostname()[:NAME_MAX] or "device"),
                           keep_existing=not file.exists())


def set_name(name: str, data_dir: Path | None = None) -> Identity:
    """Rename this device (the id stays); returns the new identity. Runs already stored keep the name they had."""
    from . import paths

    folder = Path(data_dir) if data_dir is not None else paths.data_dir()
    current = identity(folder)
    return _write_identity(folder, current._replace(device_name=check_name(name)), keep_existing=False)


def _write_identity(folder: Path, ident: Identity, keep_existing: bool) -> Identity:
    """Write ``device.json`` atomically; with ``keep_existing`` a file another process made first wins (two first
    runs at once agree on one id)."""
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / IDENTITY_FILE
    tmp = folder / f".{IDENTITY_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(ident._asdict(), indent=2) + "\n")
    if keep_existing:
        try:
            os.link(tmp, file)  # fails if the file exists: the first writer wins
        except FileExistsError:
            tmp.unlink()
            doc = json.loads(file.read_text())
            return Identity(str(doc["device_id"]), str(doc["device_name"]))
        except OSError:
            os.replace(tmp, file)
            return ident
        tmp.unlink()
    else:
        os.replace(tmp, file)
    return ident
