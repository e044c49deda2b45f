"""Every page's start: the store (opened and recovered once per process), the sidebar, the booth gate, the fleet
push, links between pages and an error in one sentence."""

from __future__ import annotations

import contextlib
from pathlib import Path

import streamlit as st

from .. import paths
from ..errors import EdgeprofError

PAGES = {  # page file -> (title, icon); views/6_Study.py and views/7_Report.py are picked up when present
    "0_Booth.py": ("Try it", ":material/photo_camera:"),
    "1_Run.py": ("Run", ":material/play_circle:"),
    "2_Runs.py": ("Runs", ":material/table_rows:"),
    "3_Correlations.py": ("Correlations", ":material/scatter_plot:"),
    "4_Compare.py": ("Compare", ":material/compare_arrows:"),
    "5_Models.py": ("Models", ":material/deployed_code:"),
    "6_Study.py": ("Study", ":material/grid_view:"),
    "7_Report.py": ("Report", ":material/description:"),
}


def db_path() -> Path:
    return paths.default_db()


@st.cache_resource(show_spinner=False)
def _store_for(path: str):
    """One Store per database path and process; recover() runs here, so once per process: runs whose owner died
    are marked interrupted and leftover cgroups are removed."""
    from ..run import recover
    from ..store import Store

    store = Store(path)
    with contextlib.suppress(EdgeprofError, OSError):
        recover(store)
    return store


def recover_at_start() -> None:
    """Open the store once per process before anything else, the password screen included, so that runs a crashed
    server left ``running`` are marked interrupted as soon as the next server serves its first page, not after the
    first login. Silent: an error is for ``get_store`` to show to someone let in."""
    with contextlib.suppress(EdgeprofError):
        _store_for(str(db_path()))


def get_store():
    """The run database, or a page-stopping st.error that says what to do."""
    from .. import auth

    try:
        return _store_for(str(db_path()))
    except EdgeprofError as exc:
        st.error(auth.for_viewer(f"Cannot open the run database: {exc}"))
        st.info("Set EDGEPROF_DB to a writable file path and restart the dashboard.")
        st.stop()


def sidebar() -> None:
    from .. import auth

    if auth.can_modify():  # a server path is for staff only
        with st.sidebar:
            st.caption(f"Database: `{db_path()}`")
    auth.admin_unlock()


def page_setup(title: str | None = None):
    """Every page starts here: the booth gate, the sidebar and the store (standalone pages under AppTest work too)."""
    from .. import auth

    auth.gate()
    sidebar()
    if title:
        st.title(title)
    store = get_store()
    fleet_push(store)
    return store


@st.cache_resource
def _auto_push():
    from ..store.fleet import AutoPush

    return AutoPush()


def fleet_push(store) -> None:
    """With ``EDGEPROF_FLEET`` set, push finished runs there in the background (queued while it is unreachable), and
    say in the sidebar how the last push went."""
    from ..store.fleet import fleet_url

    url = fleet_url()
    if not url or store is None:
        return
    try:
        state = _auto_push().poke(store, url)
    except Exception as exc:  # the store busy or unreadable: the page itself says so
        state = {"ok": False, "error": str(exc)}
    if state.get("ok"):
        st.sidebar.caption(f"Fleet: runs pushed to {url} (last push sent {state['pushed']}).")
    elif state:
        st.sidebar.caption(f"Fleet: the last push did not reach {url}; it is queued and tried again. "
                           f"({state['error']})")


def page_link(page: str, label: str, query: dict | None = None) -> None:
    """st.page_link to another page; outside st.navigation (a page run on its own) a plain link instead."""
    try:
        st.page_link(page, label=label, query_params=query)
    except Exception:  # StreamlitPageNotFoundError and friends: the page is not registered in this session
        name = Path(page).stem.split("_", 1)[-1]
        q = "&".join(f"{k}={v}" for k, v in (query or {}).items())
        st.markdown(f"[{label}](/{name}{'?' + q if q else ''})")


def show_error(exc: BaseException, what: str = "") -> None:
    """An error in one sentence; a visitor in booth mode reads it without the server's paths."""
    from .. import auth

    prefix = f"{what}: " if what else ""
    st.error(auth.for_viewer(prefix + str(exc)))
