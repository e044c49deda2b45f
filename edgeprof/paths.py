"""Where edgeprof keeps its files: the bundled models and study presets, and the user's data directory (database,
cache, uploads).

The bundled files live in ``models/`` and ``studies/`` of a checkout. An installed wheel carries the same folders as
``edgeprof/_data/models`` and ``edgeprof/_data/studies`` (pyproject.toml maps them with ``package-dir``), so
``BUNDLED_ROOT`` is that folder when it exists and the checkout otherwise (an editable install reads the checkout).
``EDGEPROF_MODELS`` points at another models folder (one with a ``manifest.json``).
"""

from __future__ import annotations

import os
import site
import sysconfig
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent  # a checkout's root; in an installed package, the site-packages folder that holds it
INSTALLED_DATA = PACKAGE_DIR / "_data"
BUNDLED_ROOT = INSTALLED_DATA if INSTALLED_DATA.is_dir() else REPO_ROOT
MODELS_DIR = Path(os.environ.get("EDGEPROF_MODELS", BUNDLED_ROOT / "models"))
MANIFEST = MODELS_DIR / "manifest.json"
STUDIES_DIR = BUNDLED_ROOT / "studies"


def site_dirs() -> set[Path]:
    """The folders a fresh interpreter of this environment imports installed packages from."""
    dirs = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    dirs.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    if site.ENABLE_USER_SITE and site.getusersitepackages():
        dirs.add(site.getusersitepackages())
    return {Path(d).resolve() for d in dirs}


def worker_pythonpath(environ: dict[str, str], package_parent: Path = REPO_ROOT,
                      installed_in: set[Path] | None = None) -> str | None:
    """PYTHONPATH for the worker process so that it imports this very edgeprof, or None to leave it as it is.

    An installed package (pip install ., or -e) is found by any interpreter of its environment: nothing to add, and
    putting site-packages on PYTHONPATH would move it ahead of the standard library. A checkout used without
    installing (scripts/app.sh, ``python -m edgeprof`` from the repo) is added in front.
    """
    if package_parent.resolve() in (site_dirs() if installed_in is None else installed_in):
        return None
    rest = environ.get("PYTHONPATH", "")
    return str(package_parent) + (os.pathsep + rest if rest else "")


def data_dir() -> Path:
    """``$EDGEPROF_HOME``, else ``$XDG_DATA_HOME/edgeprof``, else ``~/.local/share/edgeprof``; created on first use."""
    root = os.environ.get("EDGEPROF_HOME")
    if root:
        path = Path(root)
    else:
        base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
        path = Path(base) / "edgeprof"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_db() -> Path:
    """``$EDGEPROF_DB`` if set, else ``runs.duckdb`` in the data directory."""
    env = os.environ.get("EDGEPROF_DB")
    return Path(env) if env else data_dir() / "runs.duckdb"


def cache_dir() -> Path:
    path = data_dir() / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def uploads_dir() -> Path:
    path = data_dir() / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path
