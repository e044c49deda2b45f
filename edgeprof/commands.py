"""The registry of subcommands: each module adds its parsers; the CLI core stays unaware of them."""

from __future__ import annotations

import importlib

# modules that define ``register(subparsers)``
COMMAND_MODULES = ("edgeprof.runs_cli", "edgeprof.models.commands", "edgeprof.study_cli")


def register_all(sub) -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
