"""The shape of the package, checked: every import resolves, no import cycles, no module imports from a layer above
its own, the library never imports the CLI or Streamlit, and the worker imports nothing heavy.

Every import counts, also the ones inside functions (a lazy import is still a dependency). The layers, bottom up:

  base      errors, paths, locks, heap, install, config,     what everything may use
            untrusted
  platform  runtimes, telemetry, worker, models              the device, the runtimes, the worker process
  data      store, stats, charts, device, compare, ops       the database and pure computations on numbers
  run       run                                              one run from request to stored result
  study     study, doctor                                    grids of runs and their report; the quantization doctor
  front     ui, auth, booth, cli, __main__                   Streamlit helpers, the booth's limits, the command line

Pages (``views/*.py``, ``app.py``) sit above all of these and may import any library module but never the CLI.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from helpers import ROOT

PKG = ROOT / "edgeprof"
LAYERS = {
    "base": ["errors", "paths", "locks", "heap", "install", "config", "untrusted"],
    "platform": ["runtimes", "telemetry", "worker", "models"],
    "data": ["store", "stats", "charts", "device", "compare", "questions", "ops"],
    "run": ["run"],
    "study": ["study", "doctor", "showcase"],
    "front": ["ui", "auth", "booth", "cli", "__main__"],
}
ORDER = list(LAYERS)
# Within "base" a module may import an earlier one in this list; everything else stays inside its own layer or below.
BASE_ORDER = LAYERS["base"]


def modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, known: dict) -> set[str]:
    """The edgeprof modules ``name`` imports (at any depth of its code), resolved to module names."""
    is_pkg = path.name == "__init__.py"
    out = set()
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node.test)
                   for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in typing_only:  # annotations only: no dependency at run time
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in known]
            # "from pkg import sub" depends on pkg.sub; pkg itself only when a name is not a submodule
            targets = subs + ([mod] if len(subs) < len(node.names) else [])
        else:
            continue
        for t in targets:
            if t == "edgeprof" or t.startswith("edgeprof."):
                out.add(t)
    return out


def _is_type_checking(test) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def layer_of(module: str) -> tuple[int, int]:
    """(layer index, position within base) of an edgeprof module."""
    top = module.split(".")[1] if module.count(".") else ""
    for i, layer in enumerate(ORDER):
        if top in LAYERS[layer]:
            return i, (BASE_ORDER.index(top) if layer == "base" else 0)
    if module == "edgeprof":
        return 0, -1  # the package root holds only __version__
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_architecture.py")


def test_every_import_resolves():
    known = modules()
    g = graph()
    missing = sorted(f"{m} -> {t}" for m, ts in g.items() for t in ts if t not in known)
    assert not missing, "imports of edgeprof modules that do not exist:\n" + "\n".join(missing)


def test_no_import_cycles():
    g = graph()
    g = {m: {t for t in ts if t in g and t != m} for m, ts in g.items()}
    seen, stack, cycles = set(), [], []

    def visit(m):
        if m in stack:
            cycles.append(stack[stack.index(m):] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        stack.append(m)
        for t in sorted(g[m]):
            visit(t)
        stack.pop()

    for m in sorted(g):
        visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_module_imports_from_a_layer_above_its_own():
    g = graph()
    up = []
    for m, ts in g.items():
        mine = layer_of(m)
        for t in ts:
            if t == "edgeprof" or not t.startswith("edgeprof."):
                continue
            theirs = layer_of(t)
            same_top = m.split(".")[:2] == t.split(".")[:2]
            if theirs[0] > mine[0] or (theirs[0] == mine[0] == 0 and theirs[1] > mine[1] and not same_top):
                up.append(f"{m} ({ORDER[mine[0]]}) imports {t} ({ORDER[theirs[0]]})")
    assert not up, "imports that go up a layer:\n" + "\n".join(sorted(up))


def test_the_library_never_imports_the_cli_or_streamlit():
    for name, path in modules().items():
        if name.startswith(("edgeprof.cli", "edgeprof.ui")) or name in ("edgeprof.__main__", "edgeprof.auth"):
            continue
        text = path.read_text()
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(m == "streamlit" or m.startswith("streamlit.") for m in mods), f"{name} imports streamlit"
        assert not any(t.startswith("edgeprof.cli") for t in imports_of(name, path, modules())), f"{name} imports the CLI"


@pytest.mark.parametrize("page", sorted(p.name for p in (ROOT / "views").glob("*.py")) + ["app.py"])
def test_pages_import_the_library_not_the_cli(page):
    path = ROOT / ("app.py" if page == "app.py" else f"views/{page}")
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            assert not node.module.startswith("edgeprof.cli"), f"{page} imports {node.module}"


def test_the_worker_imports_only_what_its_memory_cap_can_afford():
    """Everything the worker imports is charged to its cap: its modules import nothing beyond the standard library,
    numpy, the runtimes and edgeprof's small pure modules (a test of the running worker checks sys.modules too)."""
    g = graph()
    allowed = ("edgeprof.worker", "edgeprof.runtimes", "edgeprof.errors", "edgeprof.config")
    for m in ("edgeprof.worker.child", "edgeprof.worker.messages", "edgeprof.worker.warmup"):
        assert all(t.startswith(allowed) for t in g[m]), (m, sorted(g[m]))


# Where a backend's name or a telemetry metric's name may be written as a string: the registries, and what must stay
# (each with why). A new file that names them fails here: ask runtimes.registry or telemetry.catalog instead.
BACKEND_NAMES_MAY_APPEAR = {
    "edgeprof/runtimes/onnx.py": "the backend itself",
    "edgeprof/runtimes/litert.py": "the backend itself",
    "edgeprof/runtimes/tflite_runtime.py": "the backend itself",
    "edgeprof/runtimes/tflite.py": "the interpreter both TFLite backends share",
    "edgeprof/runtimes/profile.py": "aggregates ONNX Runtime's own profiler trace",
    "edgeprof/store/schema.py": "migrations and upgrade_summary map the names stored by older versions",
    "edgeprof/install.py": "pip distributions of the same name, not backends",
    "edgeprof/models/quantize.py": "the version of the onnxruntime package that quantized a file",
    "edgeprof/models/fidelity.py": "ONNX quantization is judged against the FP32 model in ONNX Runtime",
    "edgeprof/models/inspect.py": "names the onnxruntime package to upgrade for a newer opset",
    "edgeprof/device.py": "which execution providers this ONNX Runtime build has (the GPU hint)",
    "edgeprof/cli/run.py": "devices prints the execution providers of this ONNX Runtime build",
    "edgeprof/doctor/child.py": "the doctor's document keeps the onnxruntime package's version",
    "edgeprof/cli/doctor.py": "prints that version",
    "views/5_Models.py": "shows that version",
}
# the Python packages the backends import, written as a module would name them
BACKEND_PACKAGES = ("onnxruntime", "ai_edge_litert", "tflite_runtime")
METRIC_NAMES_MAY_APPEAR = {
    "edgeprof/telemetry/": "the sources write them; the catalog declares them",
    "edgeprof/run/runner.py": "the run's cgroup source writes mem.charged_mb",
    "edgeprof/run/summary.py": "the summary's CPU and memory figures are made of named metrics",
    "edgeprof/charts.py": "the CPU and memory charts draw named metrics",
    "edgeprof/compare.py": "the host metrics the overlay always offers",
    "edgeprof/ui/summary.py": "the why block reads the pressure metrics back",
    "edgeprof/ui/frames.py": "the sentence under a missing thermal chart quotes the CPU frequency",
    "views/3_Correlations.py": "the metric a windowed chart starts with",
}
METRIC_LIKE = re.compile(r"(?<![\w.])(?:cpu|mem|swap|gpu\d+|npu\d+|temp|power|emc|engine|throttle)\.[a-z0-9_]+(?!\w)")
UNIT_SUFFIX = re.compile(r".*_(?:pct|mb|mhz|w|c|v|a|per_s)")


def _strings(path: Path):
    """(text, rendered) of every string in a file but its docstrings: plain constants as they are, f-strings with
    each placeholder read as 0 (``f"npu{i}.util_pct"`` -> ``npu0.util_pct``) and ``rendered`` True."""
    tree = ast.parse(path.read_text())
    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body
            and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    parts = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts.update(id(v) for v in node.values)
            yield "".join(v.value if isinstance(v, ast.Constant) else "0" for v in node.values), True
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs | parts:
            yield node.value, False


def stray_names(files, root: Path = ROOT) -> dict[str, list[str]]:
    """Backend and metric names written outside their registries and allow-listed consumers, and metric names that
    a consumer writes but no catalog family declares: {"backends", "metrics", "undeclared"} -> ["file: 'text'"].
    A backend name counts as a word inside any string (``"install litert"``), so do the packages the backends
    import; a metric name counts anywhere in a string, also assembled in an f-string."""
    from edgeprof.runtimes import registry
    from edgeprof.telemetry import catalog

    words = {*registry.names(), *(n.replace("-", "_") for n in registry.names()), *BACKEND_PACKAGES}
    backend_word = re.compile(r"(?<![\w.-])(?:" + "|".join(map(re.escape, sorted(words, key=len, reverse=True)))
                              + r")(?![\w-])")
    out: dict[str, list[str]] = {"backends": [], "metrics": [], "undeclared": []}
    for path in files:
        rel = path.relative_to(root).as_posix()
        consumer = any(rel.startswith(p) for p in METRIC_NAMES_MAY_APPEAR)
        for text, rendered in _strings(path):
            if rel not in BACKEND_NAMES_MAY_APPEAR and backend_word.search(text):
                out["backends"].append(f"{rel}: {text!r}")
            for m in METRIC_LIKE.finditer(text):
                name = m.group(0)
                if catalog.family(name) is not None and not consumer:
                    out["metrics"].append(f"{rel}: {name!r}")
                elif catalog.family(name) is None and consumer and not rendered and UNIT_SUFFIX.fullmatch(name):
                    out["undeclared"].append(f"{rel}: {name!r}")
    return out


def test_backend_and_metric_names_live_in_their_registries():
    files = [*PKG.rglob("*.py"), *(ROOT / "views").glob("*.py"), ROOT / "app.py"]
    found = stray_names(files)
    assert not found["backends"], "backend names outside runtimes.registry's modules:\n" + "\n".join(found["backends"])
    assert not found["metrics"], "metric names outside telemetry.catalog's consumers:\n" + "\n".join(found["metrics"])
    assert not found["undeclared"], ("metric names no family in telemetry.catalog declares:\n"
                                     + "\n".join(found["undeclared"]))


def test_the_name_check_catches_a_name_written_where_it_does_not_belong(tmp_path):
    """The check above would fail for each of these lines in a new module (a page, the study report, the CLI)."""
    (tmp_path / "edgeprof" / "study").mkdir(parents=True)
    new = tmp_path / "edgeprof" / "study" / "new.py"
    new.write_text('''"""A docstring may say onnxruntime and gpu0.util_pct."""
BACKEND = "litert"
HINT = "install tflite_runtime first"
PACKAGE = "ai_edge_litert"
def label(i):
    return f"npu{i}.power_w", "the NPU at npu0.temp_c"
OK = "edgeprof runs on the device; temperature.csv"
''')
    found = stray_names([new], tmp_path)
    assert found["backends"] == ["edgeprof/study/new.py: 'litert'", "edgeprof/study/new.py: 'install tflite_runtime "
                                 "first'", "edgeprof/study/new.py: 'ai_edge_litert'"]
    assert sorted(found["metrics"]) == ["edgeprof/study/new.py: 'npu0.power_w'", "edgeprof/study/new.py: 'npu0.temp_c'"]
    consumer = tmp_path / "edgeprof" / "charts.py"
    consumer.write_text('X = "gpu0.utilisation_pct"\nY = "npu0.util_pct"\n')
    found = stray_names([consumer], tmp_path)
    assert found == {"backends": [], "metrics": [], "undeclared": ["edgeprof/charts.py: 'gpu0.utilisation_pct'"]}


def test_the_reports_claims_live_only_in_claims():
    """A claim is a ``claim_*`` function in ``study/report/claims.py`` listed in ``CLAIMS``; no other module of the
    report defines one or names a claim's id (the renderer shows the findings as ``CLAIMS`` gives them)."""
    from edgeprof.study.report import claims

    ids = {c.__name__.removeprefix("claim_") for c in claims.CLAIMS}
    defined = {node.name for node in ast.walk(ast.parse((PKG / "study/report/claims.py").read_text()))
               if isinstance(node, ast.FunctionDef) and node.name.startswith("claim_")}
    assert defined == {c.__name__ for c in claims.CLAIMS}, "claim functions not in CLAIMS: " + ", ".join(
        sorted(defined - {c.__name__ for c in claims.CLAIMS}))
    stray = []
    for path in [*(PKG / "study").rglob("*.py"), *(ROOT / "views").glob("*.py")]:
        if path.name == "claims.py" and path.parent.name == "report":
            continue
        tree = ast.parse(path.read_text())
        stray += [f"{path.relative_to(ROOT)}: def {n.name}" for n in ast.walk(tree)
                  if isinstance(n, ast.FunctionDef) and n.name.startswith("claim_")]
        stray += [f"{path.relative_to(ROOT)}: {text!r}" for text, _ in _strings(path) if text in ids]
    assert not stray, "claims outside study/report/claims.py:\n" + "\n".join(stray)
