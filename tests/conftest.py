"""Shared fixtures: every test gets its own data directory and database, so nothing touches the user's files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@pytest.fixture(autouse=True)
def edgeprof_home(tmp_path, monkeypatch):
    home = tmp_path / "edgeprof-home"
    home.mkdir()
    monkeypatch.setenv("EDGEPROF_HOME", str(home))
    monkeypatch.delenv("EDGEPROF_DB", raising=False)
    return home


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "runs.duckdb"
