"""The command line: ``edgeprof COMMAND`` (the console script) or ``python -m edgeprof COMMAND``. The command modules
(``run``, ``study``, ``models``) each register their subcommands; usage and help name the program the way it was
invoked.

Library errors become one line on stderr and their exit code (2 usage: a refused flag, file or model; 1 anything
else); ``--debug`` shows the traceback. Commands print one JSON document on stdout with ``--json`` and human text otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from ..errors import EdgeprofError, UsageError, disk_problem
from .text import TerminalSafe, print_json  # noqa: F401  (print_json re-exported: cli.print_json)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors: one line, exit 2
        raise UsageError(f"{self.prog}: {message}", f"See `{self.prog} --help`.")


MODULE_PROG = "python -m edgeprof"
SCRIPT_PROG = "edgeprof"


def build_parser(prog: str = MODULE_PROG) -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description="On-device profiler for compressed deep-learning models.")
    parser.set_defaults(prog=prog)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    from . import doctor, fleet, memory, models, run, study

    for module in (run, study, models, fleet, memory, doctor):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None, prog: str = MODULE_PROG) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = TerminalSafe(sys.stdout), TerminalSafe(sys.stderr)
    try:
        return _main(argv, prog, debug)
    finally:
        sys.stdout, sys.stderr = saved


def _main(argv: list[str], prog: str, debug: bool) -> int:
    try:
        parser = build_parser(prog)
        args = parser.parse_args((["--debug"] if debug else []) + [a for a in argv if a != "--debug"])
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except EdgeprofError as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `edgeprof ops ... | head`: the reader has what it wanted; the shell's code for SIGPIPE
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        return 141
    except OSError as exc:  # a full disk or a read-only data directory anywhere: its own sentence
        if debug:
            traceback.print_exc()
        disk = disk_problem(f"[Errno {exc.errno}] {exc.strerror}", exc.filename or "the data directory")
        print(f"error: {disk or f'unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)'}",
              file=sys.stderr)
        return disk.exit_code if disk else 1
    except Exception as exc:  # the last resort: still one line unless --debug
        if debug:
            traceback.print_exc()
        print(f"error: unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


def console_main() -> int:
    """The ``edgeprof`` console script of an installed package."""
    return main(prog=SCRIPT_PROG)
