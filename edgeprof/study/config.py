"""A study's description: ``StudyConfig`` (frozen, validated when built), the memory-limit settings of its grid,
the bundled presets (``studies/<name>.toml``), and the config a study is run or resumed with.

A study is described by a preset or a TOML file of the same format (docs/studies.md). The resolved config is stored
with the study, so a resumed study runs exactly the grid it started with.

A study file, a page's TOML text and a stored config (which may have come in with a bundle) are input from outside:
a model path in them must lie in the data directory (uploads are there) or the bundled models folder, or under a path
the user gave on this command line (``--allow-path``, passed here as ``allowed_paths``); the path is checked before
anything looks at it (:func:`check_model_paths`). Giving ``--file X.toml`` trusts the file's settings, not every path
in it. A StudyConfig built in Python is trusted like the rest of the caller's code.
"""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .. import paths
from ..config import PRECISIONS, RETENTIONS, RUNTIMES, check_input_fills, check_input_shapes, check_number
from ..config import PRESETS as RUN_PRESETS
from ..errors import ConfigError, EdgeprofError, UsageError
from ..untrusted import within

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

STUDIES_DIR = paths.STUDIES_DIR
STUDY_PRESETS = ("quick", "paper")
MAX_STUDY_FILE_BYTES = 1024 * 1024
CELL_OVERHEAD_S = 3.0  # spawn, import, load and warm-up on top of the measured seconds; used for estimates only
_KEYS = ("name", "description", "models", "precisions", "runtimes", "memory_limits", "threads", "repetitions",
         "duration_s", "iterations", "run_preset", "warmup", "timeout_s", "cooldown_s", "sample_hz", "inputs",
         "profile_ops", "retention")
_INPUT_KEYS = ("input_shapes", "input_fills", "data")
STUDY_ID_RE = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"  # as store.checks.STUDY_ID: what new_study_id makes
_MEM_RE = re.compile(r"^\s*(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>xmin|x|mb|MB|)\s*$")

# ------------------------------------------------------------------------------------------------ memory limits

@dataclass(frozen=True)
class MemLimit:
    """One memory-limit setting: ``kind`` none | mb | factor (of the footprint) | min_factor (of the smallest cap
    that completed a run, from the device's stored memory curve: ``edgeprof memory``); ``label`` is its canonical
    text (used in cell keys)."""

    kind: str
    value: float | None
    label: str

    def resolve(self, footprint_mb: float | None, min_cap_mb: float | None = None) -> float | None:
        if self.kind == "none":
            return None
        if self.kind == "mb":
            return self.value
        base = min_cap_mb if self.kind == "min_factor" else footprint_mb
        return None if base is None else round(self.value * base, 3)


def parse_memory_limit(value) -> MemLimit:
    """``"none"`` (or 0), a number of MB (``256``, ``"256MB"``), a multiple of the footprint (``"1.25x"``) or of the
    measured minimum cap (``"1.1xmin"``)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "")):
        return MemLimit("none", None, "none")
    if isinstance(value, bool):
        raise ConfigError(f"memory limit {value!r} is not 'none', a number of MB or a multiple like '2x'.")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"memory limit {value!r} must be a positive number of MB, 'none' or a multiple like '2x'.")
        return MemLimit("none", None, "none") if value == 0 else MemLimit("mb", float(value), f"{float(value):g}MB")
    m = _MEM_RE.match(str(value))
    if not m:
        raise ConfigError(f"memory limit {value!r} is not one of: 'none', a number of MB (256 or '256MB'), "
                          "a multiple of the variant's footprint ('2x', '0.75x') or of its measured minimum cap "
                          "('1.0xmin', '1.1xmin': `edgeprof memory MODEL` measures it).")
    num = float(m["num"])
    if m["unit"] == "xmin":
        if num <= 0:
            raise ConfigError(f"memory limit {value!r}: a multiple of the minimum cap must be above 0.")
        return MemLimit("min_factor", num, f"{num:g}xmin")
    if m["unit"] == "x":
        if num <= 0:
            raise ConfigError(f"memory limit {value!r}: a multiple of the footprint must be above 0.")
        return MemLimit("factor", num, f"{num:g}x")
    return MemLimit("none", None, "none") if num == 0 else MemLimit("mb", num, f"{num:g}MB")


# ------------------------------------------------------------------------------------------------ config

def _as_list(name: str, value, allowed: tuple | None = None) -> tuple:
    if value is None:
        raise ConfigError(f"{name} is missing" + (f"; allowed: {', '.join(allowed)} or 'all'." if allowed else "."))
    if isinstance(value, str) and value.strip().lower() == "all":
        if allowed is None:
            raise ConfigError(f"{name} cannot be 'all'.")
        return tuple(allowed)
    if isinstance(value, (str, int, float)):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{name} must be a non-empty list" + (f" of: {', '.join(allowed)}." if allowed else "."))
    out = []
    for v in value:
        if allowed is not None and v not in allowed:
            raise ConfigError(f"{name}: {v!r} is not one of: {', '.join(map(str, allowed))} (or 'all').")
        if v in out:
            raise ConfigError(f"{name}: {v!r} is listed twice.")
        out.append(v)
    return tuple(out)


def _model_file(model: str) -> bool:
    """A model path a study can use: an existing .onnx/.tflite file, without '|' (the cell key's separator)."""
    return model.lower().endswith((".onnx", ".tflite")) and "|" not in model and Path(model).is_file()


def _study_inputs(value, models: tuple) -> dict:
    """``inputs`` validated as RunConfig validates --shape/--fill: {model: {"input_shapes": .., "input_fills": ..}}."""
    if not isinstance(value, dict):
        raise ConfigError("inputs must be a table per model: [inputs.MODEL] with input_shapes and input_fills.")
    out = {}
    for model, spec in value.items():
        if model not in models:
            raise ConfigError(f"inputs names model {model!r}, which is not in the study's models.")
        if not isinstance(spec, dict) or set(spec) - set(_INPUT_KEYS):
            raise ConfigError(f"inputs.{model} may hold only {' and '.join(_INPUT_KEYS)}, e.g. "
                              "input_shapes = { input = \"1x512\" }, input_fills = { sr = 16000 }.")
        shapes = check_input_shapes(spec.get("input_shapes", {}))
        fills = check_input_fills(spec.get("input_fills", {}))
        known = input_names(model)
        unknown = sorted((set(shapes) | set(fills)) - known) if known else []
        if unknown:
            raise ConfigError(f"inputs.{model} names {', '.join(map(repr, unknown))}, which no variant of {model} has "
                              f"as an input; its inputs are {', '.join(map(repr, sorted(known)))}.")
        out[model] = {"input_shapes": {k: list(v) for k, v in shapes.items()}, "input_fills": fills}
        if spec.get("data") is not None:  # --data of run: what int8-static of this fp32 .onnx file calibrates on
            if not isinstance(spec["data"], str) or not spec["data"].strip():
                raise ConfigError(f"inputs.{model}.data must be the path of a folder of images or a .npz file.")
            out[model]["data"] = spec["data"]
    return out


def check_data_paths(inputs, allowed_paths=()) -> None:
    """Refuse ``inputs.MODEL.data`` outside :func:`model_roots`, as model paths are (a study file names only places
    the user chose)."""
    if not isinstance(inputs, dict):
        return
    roots = model_roots(allowed_paths)
    for model, spec in inputs.items():
        data = spec.get("data") if isinstance(spec, dict) else None
        if isinstance(data, str) and ("\0" in data or not within(data, roots)):
            raise ConfigError(
                f"inputs.{model}.data {data!r} is outside the data directory ({paths.data_dir()}) and the bundled "
                f"models ({paths.MODELS_DIR}), the only places a study file may name.",
                "Give the folder on the command line with --allow-path.")


def input_names(model: str, precision: str | None = None, runtime: str | None = None) -> set[str]:
    """Input names of the model's variants (of one variant when precision and runtime are given); an empty set when
    no file can be read (the run then says why). ONNX and TFLite exports of one model often name inputs differently
    ("input" and "serving_default_input:0"), so a study names both and each variant takes the one it has."""
    from ..models.catalog import model_inputs, resolve_variant

    formats = [runtime] if runtime else (["onnx", "tflite"] if model in _bundled_models() else [None])
    names: set[str] = set()
    for fmt in formats:
        try:
            names |= {s.name for s in model_inputs(resolve_variant(model, precision or "fp32", fmt, build=False))}
        except EdgeprofError:
            continue
    return names


def _bundled_models() -> tuple[str, ...]:
    from ..models.catalog import model_names

    return tuple(model_names())


def model_roots(allowed_paths=()) -> list[Path]:
    """Where a model path from a study file may lie: the data directory, the bundled models, and ``allowed_paths``."""
    return [paths.data_dir(), paths.MODELS_DIR, *(Path(p) for p in allowed_paths)]


def check_model_paths(models, allowed_paths=()) -> None:
    """Refuse a model path (not a bundled name) outside :func:`model_roots` with a ConfigError, before any file is
    looked at: the check is lexical first (edgeprof.untrusted.within), then with links resolved."""
    if not isinstance(models, (list, tuple)):
        return  # a single name or "all": the config's own checks judge it
    bundled = _bundled_models()
    roots = model_roots(allowed_paths)
    for m in models:
        if not isinstance(m, str) or m in bundled or not (m.lower().endswith((".onnx", ".tflite")) or "/" in m
                                                            or os.sep in m):
            continue
        if "\0" in m or not within(m, roots):
            raise ConfigError(
                f"models: {m!r} is outside the data directory ({paths.data_dir()}) and the bundled models "
                f"({paths.MODELS_DIR}), the only places a study file may name.",
                "Upload the model (Models page) and name its stored path, or give the file or its folder on the "
                "command line with --allow-path.")


@dataclass(frozen=True)
class StudyConfig:
    """A study's grid and how each cell is measured. Lists may be given as ``"all"`` (resolved when built)."""

    name: str
    models: tuple = ()
    precisions: tuple = ("fp32",)
    runtimes: tuple = ("onnx",)
    memory_limits: tuple = ("none",)
    threads: tuple = (2,)
    repetitions: int = 1
    duration_s: float | None = None
    iterations: int | None = None
    run_preset: str | None = None  # RunConfig duration preset when duration_s and iterations are both absent
    warmup: str | int = "auto"
    timeout_s: float | None = None
    cooldown_s: float = 2.0
    sample_hz: float = 10.0
    description: str = ""
    # per model: {"input_shapes": {input: "1x512"}, "input_fills": {input: 16000}}, as --shape/--fill of `run`
    inputs: dict = field(default_factory=dict)
    profile_ops: bool = False  # each cell also profiles operators after its steady phase (--profile-ops of `run`)
    retention: str = "auto"  # what each cell's run keeps of its samples (config.RETENTIONS; --retention of `run`)

    def __post_init__(self):
        set_ = object.__setattr__
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", self.name):
            raise ConfigError(f"study name {self.name!r} must be 1-64 letters, digits, '-', '_' or '.'.")
        bundled = _bundled_models()
        every = isinstance(self.models, str) and self.models.strip().lower() == "all"
        models = bundled if every else _as_list("models", self.models or None, None)
        for m in models:
            if not isinstance(m, str) or (m not in bundled and not _model_file(m)):
                raise ConfigError(f"models: {m!r} is not one of: {', '.join(bundled)}, nor a .onnx or .tflite file "
                                  "that exists.")
        set_(self, "models", models)
        set_(self, "inputs", _study_inputs(self.inputs, models))
        set_(self, "precisions", _as_list("precisions", self.precisions, PRECISIONS))
        set_(self, "runtimes", _as_list("runtimes", self.runtimes, RUNTIMES))
        limits = [parse_memory_limit(v) for v in _as_list("memory_limits", self.memory_limits)]
        labels = [x.label for x in limits]
        dup = {x for x in labels if labels.count(x) > 1}
        if dup:
            raise ConfigError(f"memory_limits: {', '.join(sorted(dup))} listed twice.")
        set_(self, "memory_limits", tuple(labels))
        threads = tuple(check_number("threads", t, 1, integer=True) for t in _as_list("threads", self.threads))
        if len(set(threads)) != len(threads):
            raise ConfigError("threads: a value is listed twice.")
        set_(self, "threads", threads)
        set_(self, "repetitions", check_number("repetitions", self.repetitions, 1, integer=True))
        set_(self, "duration_s", check_number("duration_s", self.duration_s, 0.05))
        set_(self, "iterations", check_number("iterations", self.iterations, 1, integer=True))
        if self.run_preset is not None and self.run_preset not in RUN_PRESETS:
            raise ConfigError(f"run_preset {self.run_preset!r} is not one of: {', '.join(RUN_PRESETS)}.")
        if self.duration_s is None and self.iterations is None and self.run_preset is None:
            set_(self, "run_preset", "quick")
        if self.warmup != "auto":
            set_(self, "warmup", check_number("warmup", self.warmup, 0, integer=True))
        set_(self, "timeout_s", check_number("timeout_s", self.timeout_s, 1))
        if self.timeout_s is not None and self.timeout_s <= self.cell_seconds():
            raise ConfigError(f"timeout_s ({self.timeout_s:g} s) must be longer than the {self.cell_seconds():g} s each "
                              "cell measures (it also covers loading and warm-up): raise it or leave it out.")
        set_(self, "cooldown_s", check_number("cooldown_s", self.cooldown_s, 0))
        set_(self, "sample_hz", check_number("sample_hz", self.sample_hz, 0.1))
        if not isinstance(self.description, str):
            raise ConfigError("description must be text.")
        if not isinstance(self.profile_ops, bool):
            raise ConfigError(f"profile_ops must be true or false, got {self.profile_ops!r}.")
        if self.retention not in RETENTIONS:
            raise ConfigError(f"retention {self.retention!r} is not one of: {', '.join(RETENTIONS)}.")

    # -- construction ---------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, doc: dict, *, allowed_paths=()) -> StudyConfig:
        """A config from settings that came from outside: model paths must lie in :func:`model_roots`."""
        if not isinstance(doc, dict):
            raise ConfigError("a study description must be a table of settings.")
        unknown = sorted(map(str, set(doc) - set(_KEYS)))
        if unknown:
            raise ConfigError(f"unknown study setting(s) {', '.join(unknown)}; allowed: {', '.join(_KEYS)}.")
        if "name" not in doc:
            raise ConfigError("a study needs a name (name = \"my-study\").")
        check_model_paths(doc.get("models"), allowed_paths)
        check_data_paths(doc.get("inputs"), allowed_paths)
        return cls(**doc)

    @classmethod
    def from_toml(cls, text: str, *, source: str = "the study file", allowed_paths=()) -> StudyConfig:
        if not isinstance(text, str):
            raise ConfigError(f"{source} is not text.")
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source} is not valid TOML ({exc}).", "See docs/studies.md for the format.") from None
        except RecursionError:
            raise ConfigError(f"{source} nests tables too deeply.", "See docs/studies.md for the format.") from None
        return cls.from_dict(doc, allowed_paths=allowed_paths)

    @classmethod
    def from_file(cls, path: str | os.PathLike, *, allowed_paths=()) -> StudyConfig:
        p = Path(path)
        try:
            if p.stat().st_size > MAX_STUDY_FILE_BYTES:
                raise UsageError(f"the study file {p} is over {MAX_STUDY_FILE_BYTES // 1024} KiB; a study file is a "
                                 "few lines of TOML.")
            text = p.read_text(encoding="utf-8")
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read the study file {p}: {getattr(exc, 'strerror', None) or exc}.") from None
        return cls.from_toml(text, source=str(p), allowed_paths=allowed_paths)

    def to_dict(self) -> dict:
        doc = asdict(self)
        for k in ("models", "precisions", "runtimes", "memory_limits", "threads"):
            doc[k] = list(doc[k])
        return doc

    def with_overrides(self, duration_s: float | None = None, cooldown_s: float | None = None,
                       iterations: int | None = None) -> StudyConfig:
        """A longer duration moves the per-cell timeout by as much, so the slack the study allowed (for load, warm-up
        and thrashing under a tight cap) is kept: a timeout written for 3-s cells must not end every 146-s cell."""
        changes: dict = {}
        if duration_s is not None:
            changes["duration_s"] = duration_s
            if self.timeout_s is not None and duration_s > self.cell_seconds():
                changes["timeout_s"] = self.timeout_s + (duration_s - self.cell_seconds())
        if cooldown_s is not None:
            changes["cooldown_s"] = cooldown_s
        if iterations is not None:
            changes["iterations"] = iterations
        return replace(self, **changes) if changes else self

    # -- the grid -----------------------------------------------------------------------------------------------
    @property
    def limits(self) -> tuple[MemLimit, ...]:
        return tuple(parse_memory_limit(x) for x in self.memory_limits)

    @property
    def variants(self) -> list[tuple[str, str, str, int]]:
        return [(m, p, r, t) for m in self.models for p in self.precisions for r in self.runtimes for t in self.threads]

    @property
    def n_cells(self) -> int:
        return len(self.variants) * len(self.memory_limits) * self.repetitions

    def cell_seconds(self) -> float:
        if self.duration_s is not None:
            return self.duration_s
        if self.iterations is not None:
            return 1.0
        return RUN_PRESETS[self.run_preset][0]

    def estimate_s(self) -> float:
        """A rough wall-clock estimate: measured seconds plus a fixed overhead and the cooldown per cell."""
        return self.n_cells * (self.cell_seconds() + CELL_OVERHEAD_S + self.cooldown_s)

    def grid_signature(self) -> dict:
        """What must match for a resumed study to be the same study (the cooldown may change)."""
        doc = self.to_dict()
        doc.pop("cooldown_s")
        doc.pop("description")
        return doc


def preset_path(name: str) -> Path:
    return STUDIES_DIR / f"{name}.toml"


def load_preset(name: str) -> StudyConfig:
    if name not in STUDY_PRESETS:
        raise UsageError(f"study preset {name!r} is not one of: {', '.join(STUDY_PRESETS)}.",
                         "Or pass --file with a TOML study description.")
    return StudyConfig.from_file(preset_path(name))


def preset_text(name: str) -> str:
    load_preset(name)  # validates the name
    return preset_path(name).read_text()


def _stored_settings(doc) -> dict | None:
    import json

    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except (ValueError, RecursionError):
            return None
    if not isinstance(doc, dict):
        return None
    return {k: v for k, v in doc.items() if k in _KEYS}


def stored_config(doc, allowed_paths=()) -> StudyConfig | None:
    """The StudyConfig stored with a study (a JSON string or dict), or None if it cannot be read or names a model
    outside :func:`model_roots` (stored settings may have come in with a bundle: they are checked like a file)."""
    settings = _stored_settings(doc)
    if settings is None:
        return None
    try:
        return StudyConfig.from_dict(settings, allowed_paths=allowed_paths)
    except EdgeprofError:
        return None


def check_study_id(study_id: str) -> str:
    """A study id a user gives (``--study-id``): the shape ``study.runner.new_study_id`` makes and bundles carry."""
    if not isinstance(study_id, str) or not re.fullmatch(STUDY_ID_RE, study_id):
        raise UsageError(f"study id {study_id!r} must be 1-128 letters, digits, '-', '_' or '.', starting with a letter "
                         "or digit.")
    return study_id


def resolve_config(store, *, preset: str | None = None, file: str | None = None, toml_text: str | None = None,
                   study_id: str | None = None, duration_s: float | None = None, cooldown_s: float | None = None,
                   iterations: int | None = None, allowed_paths=()) -> StudyConfig:
    """The config to run: the named preset / file / text with overrides; for a resumed study (its id exists) its
    stored config (a given preset or file must describe the same grid). Model paths in the file, the text or the
    stored config must lie in :func:`model_roots` (``allowed_paths``: those the user gave on the command line)."""
    given = [x for x in (preset, file, toml_text) if x]
    if len(given) > 1:
        raise UsageError("give one of a preset, a file or TOML text.")
    cfg = None
    if preset:
        cfg = load_preset(preset)
    elif file:
        cfg = StudyConfig.from_file(file, allowed_paths=allowed_paths)
    elif toml_text:
        cfg = StudyConfig.from_toml(toml_text, allowed_paths=allowed_paths)
    stored = None
    if study_id:
        studies = store.list_studies()
        row = studies[studies["study_id"] == study_id] if not studies.empty else studies
        if len(row):
            settings = _stored_settings(row.iloc[0]["config"])
            if settings is None:
                raise UsageError(f"study {study_id} has no readable stored settings.", "Start a new study.")
            try:
                stored = StudyConfig.from_dict(settings, allowed_paths=allowed_paths)
            except EdgeprofError as exc:
                raise UsageError(f"study {study_id}'s stored settings cannot be used: {exc.message}", exc.hint) from None
        else:
            check_study_id(study_id)
        if stored is None and cfg is None:
            raise UsageError(f"there is no study {study_id} in {store.path}.",
                             "List studies with `python -m edgeprof studies`, or give --preset / --file to start it.")
    if stored is not None:
        base = stored
        if cfg is not None:
            cfg = cfg.with_overrides(duration_s=duration_s, iterations=iterations)
            if cfg.grid_signature() != stored.grid_signature():
                raise UsageError(f"study {study_id} was started with different settings than given now.",
                                 "Resume it with only --study-id, or start a new study.")
        elif (duration_s is not None or iterations is not None) and \
                base.with_overrides(duration_s=duration_s, iterations=iterations).grid_signature() != base.grid_signature():
            raise UsageError(f"study {study_id} was started with other run settings; a resumed study keeps them.",
                                 "Leave out --duration to resume it.")
        return base.with_overrides(cooldown_s=cooldown_s)
    if cfg is None:
        raise UsageError("say which study to run: --preset quick|paper, --file STUDY.toml, or --study-id ID to resume.")
    return cfg.with_overrides(duration_s=duration_s, cooldown_s=cooldown_s, iterations=iterations)


