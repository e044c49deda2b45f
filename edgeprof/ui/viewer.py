"""Who is watching: the browser's address as the server sees it, and the warning shown when it is the device being
measured."""

from __future__ import annotations

import contextlib

import streamlit as st


@st.cache_resource(show_spinner=False, ttl=60)
def _own_addresses() -> frozenset:
    from ..device import own_addresses

    return frozenset(own_addresses())


def viewer_address() -> str | None:
    """The browser's address as the server sees it (None: loopback, as Streamlit reports it); behind a proxy on this
    device, the first hop of X-Forwarded-For."""
    with contextlib.suppress(Exception):  # no client context (a bare script run)
        forwarded = st.context.headers.get("X-Forwarded-For")
        if isinstance(forwarded, str) and forwarded:
            return forwarded.split(",")[0].strip()
    ip = st.context.ip_address
    return ip if isinstance(ip, str) else None  # AppTest's client is a mock: it runs on this machine


def _small_board_words() -> str:
    from ..run.runner import device_cores
    from ..worker.priority import WATCHED_FACTOR, WATCHED_MAX_CORES

    cores = device_cores()
    if cores > WATCHED_MAX_CORES:
        return ""
    return (f"On this {cores}-core device a run started here uses at most {max(1, cores - 1)} thread"
            f"{'s' if cores > 2 else ''} and a {WATCHED_FACTOR}x CPU weight, leaving this browser a core to draw "
            "the live chart. ")


def watched_threads_words(model: str, threads: int) -> str:
    """Under the Run page's Threads: what a run started from this browser gets when the browser runs on a small
    device (``run.runner.watched_choice`` gives the browser a core), so the widget's 2 does not read as the run's 2;
    "" where the run gets what it asks for. The choice itself stays the user's."""
    from ..config import RunConfig
    from ..device import client_on_device
    from ..run.runner import watched_choice

    if not client_on_device(viewer_address(), set(_own_addresses())):
        return ""
    _, choice = watched_choice(RunConfig(model=model, threads=int(threads), watched=True))
    if not choice or choice["threads"] == int(threads):
        return ""
    got = choice["threads"]
    return (f"Asks for {int(threads)} threads; watched on this {choice['cores']}-core device the run gets {got} "
            f"thread{'s' if got > 1 else ''} (a core is left to draw this page).")


def on_device_warning() -> bool:
    """Before Start: say so when the browser runs on the device being measured, and how to watch from another
    machine. Returns whether it was shown."""
    from ..device import client_on_device, lan_addresses

    client, own = viewer_address(), set(_own_addresses())
    if not client_on_device(client, own):
        return False
    port = st.get_option("server.port")
    lan = lan_addresses(own)
    where = " or ".join(f"`http://{a}:{port}`" for a in lan[:2]) if lan else f"`http://<this device's address>:{port}`"
    st.warning(f"**This browser runs on the device being measured** (it connects from {client or 'this machine'}). "
               "Drawing the live charts takes CPU that the model needs: edgeprof gives the model CPU priority where "
               "the system allows it (each run's summary says how), but its numbers can still come out slower. "
               f"{_small_board_words()}To watch from another machine, start the app with `--server.address 0.0.0.0` "
               f"and a password (README, \"A demo booth or a LAN\") and open {where} there; or start runs from the command line "
               "and look at them here afterwards.")
    return True
