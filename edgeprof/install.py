"""What to install into a checkout's venv: which ONNX Runtime build, and whether the optional tflite-runtime.

``plan`` decides from plain facts (installed distributions, machine, Python version, which NVIDIA GPU is visible) so
tests can hand it fakes; ``main`` gathers the real facts and runs pip. scripts/setup.sh calls ``python -m
edgeprof.install``; scripts/app.sh first asks ``--check`` (pip without an index: no network) and runs setup only when
something is missing, so an offline booth starts without waiting on retries. Standard library only: it runs in a
venv that has nothing else yet.

Rules, and why:
- An installed onnxruntime-gpu (PyPI's CUDA build on x86_64, or the JetPack wheel on a Jetson) is kept, and the CPU
  onnxruntime is never installed over it: both put their files in the same ``onnxruntime`` folder, and the one
  installed last wins, which left GPU users with only the CPU provider after each restart.
- ``--gpu`` installs onnxruntime-gpu from requirements-gpu.txt on x86_64 (removing the CPU build first). PyPI has no
  onnxruntime-gpu for JetPack, so on a Jetson it explains where the wheel comes from instead.
- tflite-runtime is installed when asked for or already there (requirements-tflite-runtime.txt holds numpy below 2);
  without it the environment gets numpy 2. It has no build for Python 3.12 or newer.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

NVIDIA_DRIVER_PATH = "/proc/driver/nvidia/version"
NV_TEGRA_RELEASE_PATH = "/etc/nv_tegra_release"
DEVICE_TREE_COMPATIBLE_PATH = "/proc/device-tree/compatible"

BASE = "requirements-base.txt"
CPU = "requirements-onnxruntime.txt"
GPU = "requirements-gpu.txt"
TFLITE_RUNTIME = "requirements-tflite-runtime.txt"
DEV = "requirements-dev.txt"
CHECKOUT = Path(__file__).resolve().parent.parent

JETPACK_ROUTE = ("PyPI has no onnxruntime-gpu for JetPack: download the onnxruntime-gpu wheel built for your JetPack "
                 "release and Python 3.10 from NVIDIA's JetPack wheel index (Jetson AI Lab), then run "
                 "`pip uninstall -y onnxruntime` and `pip install` that .whl file in the same environment")


class PlanError(Exception):
    """A request that cannot be met on this machine; the message says what to do instead."""


@dataclass(frozen=True)
class Machine:
    arch: str  # platform.machine(): x86_64, aarch64, ...
    python: tuple[int, int]
    installed: Mapping[str, str]  # canonical distribution name -> version
    gpu: str | None = None  # "jetson", "nvidia" (a driver or nvidia-smi) or None


@dataclass(frozen=True)
class Plan:
    requirements: tuple[str, ...]  # files for `pip install -r`, in order
    uninstall: tuple[str, ...] = ()  # distributions to remove first
    notes: tuple[str, ...] = field(default=())

    def pip_install_args(self) -> list[str]:
        return [arg for f in self.requirements for arg in ("-r", f)]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def gpu_hint(arch: str, gpu: str | None, checkout: bool = True) -> str | None:
    """How to get ONNX Runtime's GPU build where an NVIDIA GPU is visible (the caller knows it is not installed)."""
    if gpu is None:
        return None
    if gpu == "jetson" or arch != "x86_64":
        return f"{JETPACK_ROUTE}; the set-up keeps it from then on."
    if checkout:
        return "run `bash scripts/setup.sh --gpu` to install onnxruntime-gpu (CUDA) in place of the CPU onnxruntime."
    return ("run `pip uninstall -y onnxruntime` and `pip install -r requirements-gpu.txt` from edgeprof's sources "
            "(or install onnxruntime-gpu of the same version).")


def plan(machine: Machine, *, gpu: bool = False, tflite_runtime: bool = False, dev: bool = False) -> Plan:
    """The requirements files to install (and distributions to remove first) for this machine and request."""
    have = machine.installed
    files, uninstall, notes = [BASE], [], []
    if "onnxruntime-gpu" in have:
        notes.append(f"keeping onnxruntime-gpu {have['onnxruntime-gpu']} (the CPU onnxruntime is not installed over it)")
        if "onnxruntime" in have:
            notes.append("onnxruntime (CPU) is installed too and shares its folder, so the GPU provider may be gone: "
                         "run `.venv/bin/pip uninstall -y onnxruntime onnxruntime-gpu`, then reinstall the GPU build.")
    elif gpu:
        if machine.arch != "x86_64":
            raise PlanError(f"{JETPACK_ROUTE}; then run scripts/setup.sh again without --gpu (it keeps the GPU build).")
        files[0] = GPU  # requirements-gpu.txt includes requirements-base.txt
        if "onnxruntime" in have:
            uninstall.append("onnxruntime")
        notes.append("installing onnxruntime-gpu (CUDA) from requirements-gpu.txt")
    else:
        files.append(CPU)
        hint = gpu_hint(machine.arch, machine.gpu)
        if hint:
            notes.append(f"an NVIDIA GPU is present but ONNX Runtime will be the CPU build: {hint}")
    want_tflite = tflite_runtime or "tflite-runtime" in have
    if want_tflite:
        if machine.python >= (3, 12):
            raise PlanError(f"tflite-runtime 2.14 has no build for Python {machine.python[0]}.{machine.python[1]}: "
                            "use Python 3.10 or 3.11 for it, or the default ai-edge-litert interpreter.")
        files.append(TFLITE_RUNTIME)
        if not tflite_runtime:
            notes.append("keeping tflite-runtime, which holds numpy below 2: for numpy 2 run "
                         "`.venv/bin/pip uninstall -y tflite-runtime` and `.venv/bin/pip install -U 'numpy>=2,<3'`")
    if dev:
        files.append(DEV)
    return Plan(tuple(files), tuple(uninstall), tuple(notes))


# ------------------------------------------------------------------------------------------------ facts and main


def installed_distributions() -> dict[str, str]:
    from importlib.metadata import distributions

    return {canonical(d.metadata["Name"]): d.version for d in distributions() if d.metadata["Name"]}


def gpu_seen(
    driver_path: str = NVIDIA_DRIVER_PATH,
    nv_tegra_release_path: str = NV_TEGRA_RELEASE_PATH,
    compatible_path: str = DEVICE_TREE_COMPATIBLE_PATH,
    which=shutil.which,
) -> str | None:
    """'jetson' on L4T (JetPack), 'nvidia' where the NVIDIA driver is loaded or nvidia-smi exists, else None."""
    if os.path.exists(nv_tegra_release_path):
        return "jetson"
    try:
        with open(compatible_path, "rb") as fh:
            if b"nvidia,tegra" in fh.read():
                return "jetson"
    except OSError:
        pass
    if os.path.exists(driver_path) or which("nvidia-smi"):
        return "nvidia"
    return None


def this_machine() -> Machine:
    import platform

    return Machine(platform.machine(), sys.version_info[:2], installed_distributions(), gpu_seen())


def main(argv: list[str] | None = None, root: Path = CHECKOUT) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgeprof.install",
                                     description="Install edgeprof's requirements into this Python environment.")
    parser.add_argument("--gpu", action="store_true", help="ONNX Runtime's CUDA build (x86_64 with an NVIDIA GPU)")
    parser.add_argument("--tflite-runtime", action="store_true", help="also tflite-runtime 2.14 (holds numpy < 2)")
    parser.add_argument("--dev", action="store_true", help="also the test and lint tools")
    parser.add_argument("--dry-run", action="store_true", help="print the pip commands instead of running them")
    parser.add_argument("--check", action="store_true",
                        help="install nothing: exit 0 when the environment already has every requirement (pip with "
                             "--no-index, so no network: a booth offline starts at once), 1 when setup must run")
    args = parser.parse_args(argv)
    if not (root / BASE).is_file():
        print(f"error: python -m edgeprof.install sets up a checkout and {root} is not one (no {BASE}); an installed "
              "edgeprof already has its dependencies.", file=sys.stderr)
        return 2
    try:
        p = plan(this_machine(), gpu=args.gpu, tflite_runtime=args.tflite_runtime, dev=args.dev)
    except PlanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in p.notes:
        print(f"setup: {note}", file=sys.stderr)
    pip = [sys.executable, "-m", "pip"]
    if args.check:
        cmd = [*pip, "install", "-q", "--no-index", "--disable-pip-version-check", *p.pip_install_args()]
        if args.dry_run:
            print(" ".join(cmd[1:]))
            return 0
        if p.uninstall:
            return 1
        return 0 if subprocess.call(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0 else 1
    commands = ([[*pip, "uninstall", "-y", *p.uninstall]] if p.uninstall else []) + [
        [*pip, "install", "-q", *p.pip_install_args()]]
    for cmd in commands:
        if args.dry_run:
            print(" ".join(cmd[1:]))
        elif subprocess.call(cmd, cwd=root) != 0:
            print(f"error: `{' '.join(cmd[1:])}` failed; its output above says why.", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
