"""Targets for ``models.isolated.run_isolated`` in tests: a step that segfaults, one that allocates past its cap,
one that raises what a third-party tool raises."""


def segfault(progress=None):
    import ctypes

    if progress is not None:
        progress("about to crash")
    ctypes.string_at(0)


def allocate(mb: int) -> int:
    import numpy as np

    chunks = [np.ones(16 * 2**20, np.uint8) for _ in range(mb // 16)]
    return len(chunks)


def tool_error():
    raise ValueError("The truth value of an array with more than one element is ambiguous.")


def add(a, b, progress=None):
    from edgeprof.models.isolated import inside

    if progress is not None:
        progress("adding")
    return {"sum": a + b, "inside": inside()}
