"""Numbers and text as the pages write them: a duration, a rate, a value with its unit, and text from data made safe
to show inside markdown. Pure (no Streamlit), so the CLI-free tests and every page module share one spelling."""

from __future__ import annotations

import re

import numpy as np

from ..stats import fmt_ms  # noqa: F401  (one spelling of a duration for the pages and the CLI)

_MARKDOWN = re.compile(r"([\\`\[\]<>$])")


def md_text(text) -> str:
    """``text`` to show inside markdown (st.markdown, st.error, captions) as text: the characters that open a link,
    an image, HTML, code, LaTeX or a Streamlit directive (``:red[...]``) are escaped, so a name from a bundle or a model
    file (``![b](http://host/x)``) never fetches or links anything. Emphasis marks stay (harmless, and common in
    names: int8_static)."""
    return _MARKDOWN.sub(r"\\\1", str(text))


def fmt(v, nd=2, unit=""):
    """``v`` with ``nd`` decimals, thousands separated, and ``unit``; ``-`` for None or a number that is not finite."""
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    return f"{v:,.{nd}f}{unit}"


def fmt_file_mb(mb) -> str:
    """A model file's size in MB of 10**6 bytes, as ``edgeprof models``, the Models page and the store's
    ``model_size_mb`` count it: ``18.55 MB``; ``-`` for None or a number that is not finite."""
    return fmt(mb, 2, " MB")


def fmt_rate(v) -> str:
    """Inferences a second: ``0.79/s``, ``12/s``, ``3,456/s``, ``45.6k/s``."""
    if v is None or not np.isfinite(v):
        return "-"
    if v >= 10_000:
        return f"{v / 1000:.1f}k/s"
    return f"{v:,.0f}/s" if v >= 10 else f"{v:.2g}/s"


def fmt_duration(seconds: float) -> str:
    """``75`` -> ``1 min 15 s``, ``8.4`` -> ``8 s``."""
    s = int(round(seconds))
    return f"{s // 60} min {s % 60} s" if s >= 60 else f"{s} s"
