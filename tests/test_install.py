"""What scripts/setup.sh installs on each machine: edgeprof.install.plan with fakes for the installed distributions,
the machine, the Python version and the GPU that is visible."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, cli_env

from edgeprof import install
from edgeprof.install import BASE, CPU, DEV, GPU, TFLITE_RUNTIME, Machine, PlanError, plan

X86 = "x86_64"
ARM = "aarch64"
CPU_ORT = {"onnxruntime": "1.32.0", "numpy": "2.4.6"}
GPU_ORT = {"onnxruntime-gpu": "1.31.1", "numpy": "2.4.6"}


# -- the plan, with fakes -------------------------------------------------------------------------------------------

def test_fresh_venv_without_gpu_gets_cpu_onnxruntime_and_no_tflite_runtime():
    p = plan(Machine(X86, (3, 11), {}))
    assert p.requirements == (BASE, CPU) and p.uninstall == () and p.notes == ()
    assert p.pip_install_args() == ["-r", BASE, "-r", CPU]


@pytest.mark.parametrize("arch,gpu", [(X86, "nvidia"), (ARM, "jetson"), (X86, None)])
def test_installed_onnxruntime_gpu_is_never_replaced_by_the_cpu_wheel(arch, gpu):
    p = plan(Machine(arch, (3, 10), GPU_ORT, gpu))
    assert CPU not in p.requirements and GPU not in p.requirements and p.uninstall == ()
    assert p.requirements == (BASE,)
    assert any("keeping onnxruntime-gpu 1.31.1" in n for n in p.notes)


def test_both_onnxruntime_builds_installed_is_reported():
    p = plan(Machine(X86, (3, 11), {**GPU_ORT, **CPU_ORT}, "nvidia"))
    assert p.requirements == (BASE,)
    assert any("pip uninstall -y onnxruntime onnxruntime-gpu" in n for n in p.notes)


def test_gpu_request_on_x86_swaps_the_cpu_build_for_the_cuda_one():
    p = plan(Machine(X86, (3, 11), CPU_ORT, "nvidia"), gpu=True)
    assert p.requirements == (GPU,) and p.uninstall == ("onnxruntime",)
    assert plan(Machine(X86, (3, 10), {}, "nvidia"), gpu=True).uninstall == ()


def test_gpu_request_on_a_jetson_explains_the_jetpack_route():
    with pytest.raises(PlanError, match="NVIDIA's JetPack wheel index"):
        plan(Machine(ARM, (3, 10), CPU_ORT, "jetson"), gpu=True)


def test_gpu_seen_with_cpu_build_says_how_to_get_the_gpu_build():
    (note,) = plan(Machine(X86, (3, 11), CPU_ORT, "nvidia")).notes
    assert "NVIDIA GPU is present" in note and "scripts/setup.sh --gpu" in note
    (note,) = plan(Machine(ARM, (3, 10), CPU_ORT, "jetson")).notes
    assert "JetPack" in note and "pip uninstall -y onnxruntime" in note
    assert plan(Machine(ARM, (3, 11), CPU_ORT, None)).notes == ()  # a Raspberry Pi: nothing to say


def test_tflite_runtime_only_when_asked_for_or_already_there():
    assert plan(Machine(ARM, (3, 11), {}), tflite_runtime=True).requirements == (BASE, CPU, TFLITE_RUNTIME)
    kept = plan(Machine(X86, (3, 10), {"tflite-runtime": "2.14.0", "numpy": "1.26.4"}))
    assert kept.requirements == (BASE, CPU, TFLITE_RUNTIME)
    assert any("numpy 2" in n for n in kept.notes)
    with pytest.raises(PlanError, match="no build for Python 3.12"):
        plan(Machine(X86, (3, 12), {}), tflite_runtime=True)


def test_dev_tools_come_last():
    assert plan(Machine(X86, (3, 11), GPU_ORT, "nvidia"), dev=True).requirements == (BASE, DEV)


def test_gpu_seen_reads_the_driver_the_jetson_release_file_and_the_device_tree(tmp_path):
    none = str(tmp_path / "absent")
    assert install.gpu_seen(none, none, none, which=lambda _: None) is None
    assert install.gpu_seen(none, none, none, which=lambda _: "/usr/bin/nvidia-smi") == "nvidia"
    driver = tmp_path / "version"
    driver.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14\n")
    assert install.gpu_seen(str(driver), none, none, which=lambda _: None) == "nvidia"
    compatible = tmp_path / "compatible"
    compatible.write_bytes(b"nvidia,p3768-0000+p3767-0005\x00nvidia,p3767-0005\x00nvidia,tegra234\x00")
    assert install.gpu_seen(none, none, str(compatible), which=lambda _: None) == "jetson"


def test_dry_run_prints_the_pip_commands():
    r = subprocess.run([sys.executable, "-m", "edgeprof.install", "--dev", "--dry-run"], capture_output=True,
                       text=True, cwd=ROOT, env=cli_env(), timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"-r {BASE}" in r.stdout and f"-r {DEV}" in r.stdout


# -- what `edgeprof devices` says about execution providers -----------------------------------------------------------

def test_devices_lists_the_providers_in_the_order_a_run_uses_them():
    from edgeprof.device import onnx_providers

    gpu_build = onnx_providers(["cpu", "cuda", "tensorrt"], X86, "nvidia", checkout=True)
    assert gpu_build["chain"] == ["cuda", "cpu"] and gpu_build["on_request"] == ["tensorrt"]
    assert gpu_build["default"] == "cuda" and gpu_build["hint"] is None
    plain = onnx_providers(["cpu"], ARM, None, checkout=True)
    assert plain["chain"] == ["cpu"] and plain["hint"] is None  # a Raspberry Pi: nothing to add
    assert onnx_providers(None, X86, "nvidia", checkout=True)["chain"] == []


def test_devices_says_how_to_get_the_gpu_provider_when_a_gpu_is_present():
    from edgeprof.device import onnx_providers

    assert "scripts/setup.sh --gpu" in onnx_providers(["cpu"], X86, "nvidia", checkout=True)["hint"]
    assert "requirements-gpu.txt" in onnx_providers(["cpu"], X86, "nvidia", checkout=False)["hint"]
    jetson = onnx_providers(["cpu"], ARM, "jetson", checkout=False)["hint"]
    assert "NVIDIA's JetPack wheel index" in jetson and "pip uninstall -y onnxruntime" in jetson


def test_devices_prints_the_provider_line(capsys):
    from edgeprof.cli import main

    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "providers onnxruntime runs on " in out
    if install.gpu_seen() is None:
        assert "\ngpu " not in out


def test_setup_keeps_an_installed_onnxruntime_gpu_in_a_real_venv(tmp_path):
    """The facts come from the venv itself: a venv holding onnxruntime-gpu gets no CPU onnxruntime."""
    import sysconfig
    import venv

    venv.EnvBuilder(with_pip=False).create(tmp_path / "venv")
    purelib = sysconfig.get_path("purelib", vars={"base": str(tmp_path / "venv"), "platbase": str(tmp_path / "venv")})
    info = Path(purelib) / "onnxruntime_gpu-1.31.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: onnxruntime-gpu\nVersion: 1.31.1\n")
    r = subprocess.run([str(tmp_path / "venv" / "bin" / "python"), "-m", "edgeprof.install", "--dry-run"],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["-m", "pip", "install", "-q", "-r", BASE]
    assert "keeping onnxruntime-gpu 1.31.1" in r.stderr


def test_install_outside_a_checkout_says_so(tmp_path, capsys):
    assert install.main(["--dry-run"], root=tmp_path) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sets up a checkout" in err and "already has its dependencies" in err


def test_check_says_whether_setup_must_run_without_the_network(tmp_path, capsys):
    """scripts/app.sh runs setup only when ``--check`` fails: pip with --no-index, so a complete environment starts
    offline at once and a missing requirement still sends it through setup."""
    for name in (CPU, GPU, TFLITE_RUNTIME):  # whichever this machine's plan names
        (tmp_path / name).write_text("")
    (tmp_path / BASE).write_text("numpy\n")  # installed here
    assert install.main(["--check"], root=tmp_path) == 0
    (tmp_path / BASE).write_text("numpy\nedgeprof-no-such-package==0.0.1\n")
    assert install.main(["--check"], root=tmp_path) == 1
    assert install.main(["--check", "--dry-run"], root=tmp_path) == 0
    assert "--no-index" in capsys.readouterr().out
    assert "edgeprof.install --check" in (ROOT / "scripts" / "app.sh").read_text()
