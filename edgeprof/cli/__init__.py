"""The command line, one package: ``main`` (the parser, library errors to one line and an exit code, JSON out),
``run`` (run, runs, show, devices, export, import), ``study`` (study, studies, report), ``models`` (models, quantize,
fidelity), ``fleet`` (push), ``text`` (how numbers and tables are written for people). The library never imports this package."""

from .main import console_main, main, print_json

__all__ = ["console_main", "main", "print_json"]
