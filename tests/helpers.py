"""Helpers shared by test modules (conftest holds only fixtures)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def cgroup_writable() -> bool:
    from edgeprof.worker import limits

    return limits.detect().kind in ("cgroup1", "cgroup2")


requires_cgroup = pytest.mark.skipif(not cgroup_writable(), reason="needs a writable memory cgroup (root on cgroup v1 "
                                                                   "or a delegated cgroup v2 subtree)")


def cli_env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env.update({k: str(v) for k, v in extra.items()})
    return env
