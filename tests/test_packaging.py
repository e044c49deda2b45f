"""The package and its requirements: pyproject.toml and the requirements files agreeing, tflite-runtime's numpy
probe, where models and presets are found, the worker's PYTHONPATH, the program name in --help, and the wheel
installed away from the checkout."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, cli_env

from edgeprof import paths

BASE, CPU = "requirements-base.txt", "requirements-onnxruntime.txt"
GPU, TFLITE_RUNTIME = "requirements-gpu.txt", "requirements-tflite-runtime.txt"

# -- requirements files and pyproject.toml ----------------------------------------------------------------------------

def _requirements(name: str) -> list[str]:
    lines = [line.split("#")[0].strip() for line in (ROOT / name).read_text().splitlines()]
    return [line for line in lines if line]


def _name(req: str) -> str:
    return re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].lower()


def test_requirements_files_are_what_pyproject_reads():
    """pyproject.toml takes its dependencies from the requirements files (one source of truth): setuptools reads only
    plain requirement lines there, and requirements.txt must stay exactly those two files."""
    text = (ROOT / "pyproject.toml").read_text()
    assert f'file = ["{BASE}", "{CPU}"]' in text and f'file = ["{TFLITE_RUNTIME}"]' in text
    for name in (BASE, CPU, TFLITE_RUNTIME):
        assert not [line for line in _requirements(name) if line.startswith("-")], name
    assert _requirements("requirements.txt") == [f"-r {BASE}", f"-r {CPU}"]
    assert _requirements(GPU)[0] == f"-r {BASE}"
    assert {_name(r) for r in _requirements(GPU)[1:]} == {"onnxruntime-gpu"}


def test_numpy_2_unless_tflite_runtime_is_asked_for():
    base = {_name(r): r for r in _requirements(BASE)}
    assert "tflite-runtime" not in base and base["numpy"].startswith("numpy>=1.26,<3")
    assert {_name(r) for r in _requirements(TFLITE_RUNTIME)} == {"tflite-runtime", "numpy"}


@pytest.mark.parametrize("python", ["3.10", "3.11"])
def test_every_pinned_requirement_has_one_version_per_python(python):
    """Markers split pins by Python version; each distribution must resolve to exactly one line per version."""
    seen: dict[str, int] = {}
    for req in _requirements(BASE) + _requirements(CPU):
        marker = req.partition(";")[2].strip()
        if marker and not _marker_true(marker, python):
            continue
        seen[_name(req)] = seen.get(_name(req), 0) + 1
    assert all(n == 1 for n in seen.values()), seen
    assert {"onnxruntime", "duckdb", "streamlit", "pillow", "numpy"} <= set(seen)


def _marker_true(marker: str, python: str) -> bool:
    env = {"python_version": python, "platform_machine": "aarch64"}
    out = []
    for clause in marker.split(" and "):
        var, op, value = re.match(r'(\w+)\s*([<>=!]+)\s*"([^"]+)"', clause.strip()).groups()
        left, right = env[var], value
        if var == "python_version":
            left, right = tuple(map(int, left.split("."))), tuple(map(int, right.split(".")))
        out.append({"<": left < right, ">=": left >= right, "==": left == right, "<=": left <= right,
                    ">": left > right, "!=": left != right}[op])
    return all(out)


# -- tflite-runtime's probe -------------------------------------------------------------------------------------------

def test_tflite_runtime_under_numpy_2_says_it_needs_numpy_below_2():
    from edgeprof.runtimes.tflite import blocker

    message, fix = blocker("tflite-runtime", "2.14.0", "2.4.6")
    assert "needs numpy < 2" in message and "numpy 2.4.6" in message and "--tflite-interpreter litert" in fix
    assert blocker("tflite-runtime", "2.14.0", "1.26.4") is None
    assert "not installed" in blocker("tflite-runtime", None, "2.4.6")[0]
    assert blocker("litert", "2.3.0", "2.4.6") is None


def test_runtime_statuses_never_call_tflite_runtime_available_under_numpy_2():
    import numpy as np

    from edgeprof.runtimes import tflite

    (status,) = [s for s in tflite.statuses() if s.name == "tflite-runtime"]
    if int(np.__version__.split(".")[0]) >= 2:
        assert not status.available and ("needs numpy < 2" in status.reason or "not installed" in status.reason)


# -- where things are found -------------------------------------------------------------------------------------------

def test_a_checkout_finds_its_models_and_studies():
    if paths.INSTALLED_DATA.is_dir():
        pytest.skip("this edgeprof is an installed copy, not a checkout")
    assert paths.BUNDLED_ROOT == ROOT and paths.MANIFEST == ROOT / "models" / "manifest.json"
    assert (paths.STUDIES_DIR / "quick.toml").is_file()


def test_worker_pythonpath_only_for_a_package_outside_site_packages(tmp_path):
    site = tmp_path / "site-packages"
    site.mkdir()
    assert paths.worker_pythonpath({}, site, installed_in={site.resolve()}) is None
    assert paths.worker_pythonpath({}, ROOT, installed_in={site.resolve()}) == str(ROOT)
    assert paths.worker_pythonpath({"PYTHONPATH": "/x"}, ROOT, installed_in=set()) == f"{ROOT}:/x"


# -- the program's name -----------------------------------------------------------------------------------------------

def test_help_names_the_program_as_invoked(capsys):
    from edgeprof.cli import console_main, main

    r = subprocess.run([sys.executable, "-m", "edgeprof", "--help"], capture_output=True, text=True, cwd=ROOT,
                       env=cli_env(), timeout=60)
    assert r.stdout.startswith("usage: python -m edgeprof ")
    sys_argv = sys.argv
    try:
        sys.argv = ["edgeprof", "runs", "--help"]
        with pytest.raises(SystemExit):
            console_main()
    finally:
        sys.argv = sys_argv
    assert capsys.readouterr().out.startswith("usage: edgeprof runs ")
    assert main(["nosuch"]) == 2
    assert "python -m edgeprof: argument COMMAND" in capsys.readouterr().err


def _pyproject() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.relative_to(ROOT).parent.parts) for p in (ROOT / "edgeprof").rglob("__init__.py")}
    assert on_disk <= listed, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(on_disk - listed)}"


# -- the wheel, installed away from the checkout ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                        str(ROOT)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = out.glob("edgeprof-*.whl")
    return whl


@pytest.mark.slow
@pytest.mark.portability
def test_wheel_carries_the_models_and_presets_but_not_the_build_recipe(wheel):
    import json
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    manifest = json.loads((ROOT / "models" / "manifest.json").read_text())
    shipped = {v["file"] for m in manifest["models"] for v in m["variants"]} | {im["file"] for im in manifest["images"]}
    shipped |= {m["labels"] for m in manifest["models"]} | {m["eval"] for m in manifest["models"] if m["eval"]}
    assert {f"edgeprof/_data/models/{f}" for f in shipped | {"manifest.json", "README.md"}} <= names
    assert {f"edgeprof/_data/studies/{p.name}" for p in (ROOT / "studies").glob("*.toml")} <= names
    assert not [n for n in names if "/build/" in n or n.startswith(("tests/", "models/", "views/"))]
    sources = {str(p.relative_to(ROOT)) for p in (ROOT / "edgeprof").rglob("*.py")}
    assert sources <= names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "edgeprof = edgeprof.cli:console_main" in zipfile.ZipFile(wheel).read(entry).decode()


@pytest.mark.slow
@pytest.mark.portability
def test_installed_wheel_runs_from_any_folder(wheel, tmp_path, edgeprof_home):
    """pip install (not -e) into a folder of its own, then the console script from an unrelated folder: models and
    presets come from the package, and the worker imports the installed copy."""
    import json
    import os

    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(target), EDGEPROF_HOME=str(edgeprof_home))
    script = str(target / "bin" / "edgeprof")

    def edgeprof(*args):
        return subprocess.run([script, *args], capture_output=True, text=True, cwd=elsewhere, env=env, timeout=300)

    models = edgeprof("models", "--json")
    assert models.returncode == 0, models.stderr
    assert {"digits-cnn", "efficientnet-lite0"} <= {m["name"] for m in json.loads(models.stdout)}
    assert edgeprof("--help").stdout.startswith("usage: edgeprof ")
    run = edgeprof("run", "--model", "digits-cnn", "--iterations", "100", "--json", "--quiet")
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["status"] == "ok" and doc["latency_ms"]["n"] >= 1
    where = subprocess.run([sys.executable, "-c", "import edgeprof.paths as p; print(p.MANIFEST, p.STUDIES_DIR)"],
                           capture_output=True, text=True, cwd=elsewhere, env=env, timeout=60)
    assert where.stdout.split() == [str(target / "edgeprof/_data/models/manifest.json"),
                                    str(target / "edgeprof/_data/studies")]
