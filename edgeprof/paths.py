"""Where edgeprof keeps its files: the bundled models, and the user's data directory (database, cache, uploads)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = Path(os.environ.get("EDGEPROF_MODELS", REPO_ROOT / "models"))
MANIFEST = MODELS_DIR / "manifest.json"


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
