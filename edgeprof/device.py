"""What this device is and what it can measure: the platform, the runtimes and execution providers a run will use,
each telemetry source (or why it is off) and the memory-cap mechanism. The ``devices`` command prints it; pages can
show it."""

from __future__ import annotations

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


def device_report() -> dict:
    import platform

    from . import paths
    from .install import gpu_seen
    from .runtimes import available_runtimes
    from .telemetry import probe_all, static_info
    from .worker import limits

    mech = limits.detect()
    runtimes = available_runtimes()
    ort = next(s for s in runtimes if s.name == "onnxruntime")
    checkout = paths.BUNDLED_ROOT == paths.REPO_ROOT and (paths.REPO_ROOT / "scripts" / "setup.sh").is_file()
    return {
        "device": static_info(),
        "runtimes": [{"name": s.name, "available": s.available, "version": s.version, "reason": s.reason,
                      "execution_providers": list(s.providers)} for s in runtimes],
        "onnx_providers": onnx_providers(list(ort.providers) if ort.available else None, platform.machine(),
                                         gpu_seen(), checkout),
        "telemetry": [s._asdict() for s in probe_all()],
        "memory_cap": mech.to_dict(),
    }


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
