"""Booth (LAN) mode: a password before any page works, and what a visitor may do unless an admin password is given.

Off by default: the app binds 127.0.0.1 and whoever can reach it owns the device. To serve a LAN or a demo booth:

    EDGEPROF_PASSWORD=visitors EDGEPROF_ADMIN_PASSWORD=staff bash scripts/app.sh --server.address 0.0.0.0

or put ``password`` / ``admin_password`` under ``[edgeprof]`` in ``.streamlit/secrets.toml``. Environment variables
win. Passwords are compared with ``hmac.compare_digest`` on their SHA-256 digests, so the comparison takes the same
time whatever the input and whatever its length, and wrong ones are throttled per browser session and client address
(``Throttle``: a growing wait, then a lockout, each wrong try logged). A server that listens on anything but loopback
with no password refuses to show any page, judged from its listening sockets (``exposure``), not the option's text.

Roles: staff (``admin``; everyone when booth mode is off, as the server is then only reachable from this machine) may
do everything. A ``visitor`` runs one bundled model at a time for a bounded time (``visitor_refusal``), may stop the
runs started in their own browser session and browses history; studies, stopping other people's runs and studies,
uploading, deleting, importing and exporting are for staff, and no server path is shown (``redact``). The limits a
visitor's run is held to (memory cap, inputs, wall clock) are ``edgeprof.booth``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from secrets import token_hex

ENV_PASSWORD = "EDGEPROF_PASSWORD"
ENV_ADMIN = "EDGEPROF_ADMIN_PASSWORD"
VISITOR_PRESETS = ("quick", "standard")  # ~10 s and ~60 s of steady state; "long" (10 min) is for staff
VISITOR_MAX_S = 60.0  # a visitor's duration override, in seconds of steady state
VISITOR_RULE = ("At this booth, visitors run one bundled model at a time for at most a minute of measuring (the quick "
                "or standard duration, or an override up to 60 s). Studies, longer runs, uploads and stopping other "
                "people's runs are for staff (admin password in the sidebar, under Staff).")
STAFF_HINT = "ask staff, or unlock with the admin password in the sidebar (Staff)"


@dataclass(frozen=True)
class BoothSettings:
    password: str | None
    admin_password: str | None

    @property
    def enabled(self) -> bool:
        return bool(self.password)


def settings(env: dict | None = None, secrets: dict | None = None) -> BoothSettings:
    env = os.environ if env is None else env
    secrets = secrets or {}
    return BoothSettings(env.get(ENV_PASSWORD) or secrets.get("password") or None,
                         env.get(ENV_ADMIN) or secrets.get("admin_password") or None)


def matches(given: str | None, expected: str | None) -> bool:
    """Constant-time password check; False when either side is missing."""
    if not given or not expected:
        return False
    a = hashlib.sha256(given.encode()).digest()
    b = hashlib.sha256(expected.encode()).digest()
    return hmac.compare_digest(a, b)


def _ip_is_loopback(text: str) -> bool:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def is_loopback(address: str | None) -> bool:
    """Whether a server told to bind ``address`` (Streamlit's ``server.address``) is reachable only from this machine.
    Empty or unset binds every interface (Streamlit's default), so it is not; a host name counts only when every
    address it resolves to is loopback."""
    if not address or not address.strip():
        return False
    if _ip_is_loopback(address):
        return True
    try:
        ipaddress.ip_address(address.split("%", 1)[0])
        return False  # an address, not loopback
    except ValueError:
        pass
    try:
        found = {info[4][0] for info in socket.getaddrinfo(address, None)}
    except (OSError, UnicodeError):
        return False
    return bool(found) and all(_ip_is_loopback(a) for a in found)


_BOUND: dict[int, tuple[str, ...]] = {}


def listening_addresses(port: int) -> tuple[str, ...] | None:
    """The addresses this process's listening TCP sockets on ``port`` are bound to (``0.0.0.0``, ``::``, ...), read
    from the kernel (psutil), or None when it has none (no server: AppTest, a bare script). Read once per port: a
    server binds before its first page."""
    if port in _BOUND:
        return _BOUND[port]
    import psutil

    try:
        conns = psutil.Process().net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return None
    found = tuple(sorted({c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN and c.laddr
                          and c.laddr.port == port}))
    if not found:
        return None
    _BOUND[port] = found
    return found


def exposure(address: str | None, port: int | None) -> str | None:
    """Where a server reaches beyond this machine, in words ("0.0.0.0, ::"), or None when only loopback can reach it.
    Decided from the sockets the server actually listens on; the ``address`` option only where none is found."""
    bound = listening_addresses(int(port)) if port else None
    if bound is not None:
        return None if all(_ip_is_loopback(a) for a in bound) else ", ".join(bound)
    if is_loopback(address):
        return None
    return address if address and address.strip() else "every interface"


def role(s: BoothSettings, given: str | None, given_admin: str | None) -> str | None:
    """'admin' (may delete, import, upload), 'visitor' (may run and look), or None (not let in).

    Without booth mode everyone is admin: the server is only reachable from this machine.
    """
    if not s.enabled:
        return "admin"
    if s.admin_password and matches(given_admin or given, s.admin_password):
        return "admin"
    if matches(given, s.password):
        return "visitor"
    return None


def visitor_refusal(model: str, bundled, preset: str | None, duration_s: float | None,
                    iterations: int | None = None) -> str | None:
    """Why a visitor may not start this run (one sentence that says what to pick instead), or None when they may.
    ``bundled``: the bundled model names. Bounded in seconds of steady state: a preset's minimum iteration count
    never stretches a bundled model past it (the slowest bundled variant takes ~85 ms an inference here)."""
    if model not in set(bundled):
        return f"Running an uploaded model is for staff at this booth: pick a bundled model, or {STAFF_HINT}."
    if iterations is not None:
        return f"Visitors run for a set time, not a number of iterations: pick quick or standard, or {STAFF_HINT}."
    if duration_s is not None and duration_s > VISITOR_MAX_S:
        return (f"Visitors measure for at most {VISITOR_MAX_S:g} s: set a duration up to {VISITOR_MAX_S:g} s "
                f"(or 0 for the preset), or {STAFF_HINT}.")
    if duration_s is None and preset not in VISITOR_PRESETS:
        return f"The {preset} duration is for staff at this booth: pick quick or standard, or {STAFF_HINT}."
    return None


# an absolute path: starts after a space, a quote, a bracket, '=' or the start of the text (not inside a URL)
_PATH = re.compile(r"(?:(?<=^)|(?<=[\s'\"`(\[{=:]))(?:/[^\s/'\"`:,;()\[\]{}<>]+)+/?")


def redact_paths(text: str) -> str:
    """Every absolute path in ``text`` cut to its last part (``/root/.local/share/edgeprof/runs.duckdb`` ->
    ``…/runs.duckdb``): what a visitor reads says which file, never where the server keeps it."""
    def last(m: re.Match) -> str:
        name = m.group(0).rstrip("/").rsplit("/", 1)[-1]
        return f"…/{name}"

    return _PATH.sub(last, text)


def redact(obj):
    """``redact_paths`` over every string in a JSON-like document (dicts, lists, strings; other values as they are)."""
    if isinstance(obj, str):
        return redact_paths(obj)
    if isinstance(obj, dict):
        return {k: redact(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    return obj


class Throttle:
    """Wrong-password attempts counted per key (a browser session, a client address). The first ``free`` failures cost
    nothing; each one after waits twice as long as the one before (``base_s``, 2x, 4x ...), and ``lockout_after``
    failures lock the key out for ``lockout_s``. While a key waits, no password is even compared, the right one
    neither. Thread-safe: one instance serves every session of the server process. ``clock``: seconds, monotonic."""

    MAX_KEYS = 10_000

    def __init__(self, free: int = 3, base_s: float = 2.0, lockout_after: int = 10, lockout_s: float = 300.0,
                 clock=time.monotonic):
        self.free, self.base_s, self.lockout_after, self.lockout_s = free, base_s, lockout_after, lockout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._fails: dict[str, tuple[int, float]] = {}  # key -> (failures, may try again at)

    def wait_s(self, *keys: str | None) -> float:
        """Seconds until the next attempt may be compared (0: now), the longest over ``keys``."""
        now = self._clock()
        with self._lock:
            return max([0.0] + [self._fails[k][1] - now for k in keys if k in self._fails])

    def failures(self, key: str | None) -> int:
        with self._lock:
            return self._fails.get(key, (0, 0.0))[0]

    def failed(self, *keys: str | None) -> float:
        """Count a wrong attempt for each key; returns the wait it earned (0 for a free one)."""
        now, waits = self._clock(), [0.0]
        with self._lock:
            if len(self._fails) > self.MAX_KEYS:  # sessions come and go: forget the ones long past their wait
                self._fails = {k: v for k, v in self._fails.items() if v[1] > now - self.lockout_s}
            for k in keys:
                if k is None:
                    continue
                n = self._fails.get(k, (0, 0.0))[0] + 1
                wait = (self.lockout_s if n >= self.lockout_after else
                        0.0 if n <= self.free else self.base_s * 2 ** (n - self.free - 1))
                self._fails[k] = (n, now + wait)
                waits.append(wait)
        return max(waits)

    def succeeded(self, *keys: str | None) -> None:
        with self._lock:
            for k in keys:
                self._fails.pop(k, None)

    def refusal(self, *keys: str | None) -> str | None:
        """The sentence a person reads while a key waits or is locked out, or None when they may try."""
        wait = self.wait_s(*keys)
        if wait <= 0:
            return None
        left = f"{wait:.0f} s" if wait < 90 else f"{int(wait // 60)} min {int(wait % 60)} s"
        if max(self.failures(k) for k in keys if k is not None) >= self.lockout_after:
            return (f"Too many wrong passwords: this browser is locked out for {left} more. Ask the person running "
                    "this booth.")
        return f"Too many wrong passwords: wait {left} before the next try."


THROTTLE = Throttle()
log = logging.getLogger("edgeprof.auth")


# -- Streamlit glue -----------------------------------------------------------------------------------------------

def _secrets() -> dict:
    import streamlit as st

    try:
        return dict(st.secrets.get("edgeprof", {}))
    except Exception:  # no secrets.toml: Streamlit raises on access
        return {}


def gate() -> str:
    """Call first in app.py: stops the page unless the visitor is let in; returns the role."""
    import streamlit as st

    s = settings(secrets=_secrets())
    if s.enabled and st.get_option("client.showErrorDetails") != "type":
        # an uncaught error shows its type, never a traceback full of the server's paths (the console has it all)
        st.set_option("client.showErrorDetails", "type")
    if not s.enabled:
        reach = exposure(st.get_option("server.address"), st.get_option("server.port"))
        if reach:
            st.error(f"This server listens on {reach} but has no password. Set {ENV_PASSWORD} (and {ENV_ADMIN} for "
                     "staff) and restart, or bind it to 127.0.0.1.")
            st.stop()
    current = st.session_state.get("edgeprof_role")
    if current:
        return current
    if not s.enabled:
        st.session_state["edgeprof_role"] = "admin"
        return "admin"
    st.title("edgeprof")
    with st.form("login"):
        pw = st.text_input("Password", type="password", key="login_password")
        ok = st.form_submit_button("Enter")
    if ok:
        r = _checked(lambda: role(s, pw, None), "password")
        if r:
            st.session_state["edgeprof_role"] = r
            st.rerun()
    st.stop()


def _client_keys() -> tuple[str, str]:
    """The throttle's keys for this request: its browser session, and its client address. Streamlit gives no address
    for a browser on this machine (loopback) nor outside a request: those share the key ``address:loopback``."""
    import streamlit as st

    session = st.session_state.setdefault("edgeprof_session_key", f"session:{token_hex(8)}")
    try:
        ip = st.context.ip_address
    except Exception:  # older Streamlit, or no request (AppTest)
        ip = None
    return session, f"address:{ip}" if isinstance(ip, str) and ip else "address:loopback"


def _checked(check, what: str):
    """``check()``'s answer when this session and address may try now, else None; a refusal or a wrong password is
    shown in one sentence, and every wrong one is logged with the address for staff (the server's console)."""
    import streamlit as st

    keys = _client_keys()
    refusal = THROTTLE.refusal(*keys)
    if refusal:
        st.error(refusal)
        return None
    answer = check()
    if answer:
        THROTTLE.succeeded(*keys)
        return answer
    wait = THROTTLE.failed(*keys)
    log.warning("wrong %s from %s (%s): %d in a row%s", what, keys[1], keys[0], max(map(THROTTLE.failures, keys)),
                f", next try in {wait:.0f} s" if wait else "")
    st.error("Wrong password. Ask the person running this booth."
             + (f" Wait {wait:.0f} s before the next try." if wait else ""))
    return None


def can_modify() -> bool:
    """Staff: delete, import, export, upload, studies, stopping anyone's run. In booth mode a visitor may run bundled
    models for a bounded time, stop their own runs and look at history."""
    import streamlit as st

    return st.session_state.get("edgeprof_role", "admin") == "admin"


is_admin = can_modify


def remember_start(run_id: str) -> None:
    """Note a run started from this browser session: its visitor may stop it."""
    import streamlit as st

    st.session_state.setdefault("edgeprof_my_runs", set()).add(run_id)


def may_stop(run_id: str) -> bool:
    """Staff may stop any run; a visitor only one started from their own browser session."""
    import streamlit as st

    return can_modify() or run_id in st.session_state.get("edgeprof_my_runs", set())


def for_viewer(obj):
    """``obj`` as this session may see it: unchanged for staff, without server paths for a visitor (``redact``)."""
    return obj if can_modify() else redact(obj)


def admin_unlock() -> None:
    """A small sidebar form that upgrades a visitor to admin with the admin password."""
    import streamlit as st

    s = settings(secrets=_secrets())
    if not s.enabled or can_modify() or not s.admin_password:
        return
    with st.sidebar.expander("Staff"):
        pw = st.text_input("Admin password", type="password", key="admin_password")
        if st.button("Unlock", key="admin_unlock") and pw and _checked(lambda: matches(pw, s.admin_password),
                                                                       "admin password"):
            st.session_state["edgeprof_role"] = "admin"
            st.rerun()
