"""Helpers shared by test modules (conftest holds only fixtures)."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def cgroup_writable() -> bool:
    from edgeprof.worker import limits

    return limits.detect().kind in ("cgroup1", "cgroup2")


requires_cgroup = pytest.mark.skipif(not cgroup_writable(), reason="needs a writable memory cgroup (root on cgroup v1 "
                                                                   "or a delegated cgroup v2 subtree)")


def tflite_runtime_problem() -> str | None:
    """None when tflite-runtime runs here, else why not (it is optional: requirements-tflite-runtime.txt)."""
    from edgeprof.errors import RuntimeUnavailable
    from edgeprof.runtimes import tflite

    try:
        tflite._load("tflite-runtime")
    except RuntimeUnavailable as exc:
        return exc.message
    return None


# tflite-runtime needs numpy < 2, so the main test venvs (numpy 2) skip these; .ci/run runs them in .venv-tflite,
# built from requirements.txt + requirements-tflite-runtime.txt, with `-m tflite_runtime`.
requires_tflite_runtime = [
    pytest.mark.tflite_runtime,
    pytest.mark.skipif(tflite_runtime_problem() is not None,
                       reason=f"optional tflite-runtime unusable here ({tflite_runtime_problem()}); CI runs it in .venv-tflite"),
]


def cli_env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def s3_emulator(env: dict | None = None):
    """An S3 API on 127.0.0.1 (moto's server mode, in this process, a free port): returns (server, endpoint URL).
    ``env`` (default os.environ) gets the endpoint and test credentials; the EC2 metadata lookup is switched off so
    nothing leaves 127.0.0.1."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # every emulator in one process shares moto's backends: start empty (an earlier test's buckets stayed otherwise)
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10).close()
    target = os.environ if env is None else env
    target.update(s3_env(endpoint))
    return server, endpoint


def s3_env(endpoint: str) -> dict:
    """The standard AWS variables for an emulator at ``endpoint``; config files pointed away from the user's."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "NO_PROXY": "127.0.0.1"}
