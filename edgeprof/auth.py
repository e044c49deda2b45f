"""Booth (LAN) mode: a password before any page works, and read-only history unless an admin password is given.

Off by default: the app binds 127.0.0.1 and whoever can reach it owns the device. To serve a LAN or a demo booth:

    EDGEPROF_PASSWORD=visitors EDGEPROF_ADMIN_PASSWORD=staff bash scripts/app.sh --server.address 0.0.0.0

or put ``password`` / ``admin_password`` under ``[edgeprof]`` in ``.streamlit/secrets.toml``. Environment variables
win. Passwords are compared with ``hmac.compare_digest`` on their SHA-256 digests, so the comparison takes the same
time whatever the input and whatever its length. A server bound to a non-loopback address with no password refuses to
show any page.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from dataclasses import dataclass

ENV_PASSWORD = "EDGEPROF_PASSWORD"
ENV_ADMIN = "EDGEPROF_ADMIN_PASSWORD"


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


def is_loopback(address: str | None) -> bool:
    if not address or address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


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
    address = st.get_option("server.address")
    if not s.enabled and not is_loopback(address):
        st.error(f"This server listens on {address} but has no password. Set {ENV_PASSWORD} (and {ENV_ADMIN} for staff) "
                 "and restart, or bind it to 127.0.0.1.")
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
        r = role(s, pw, None)
        if r:
            st.session_state["edgeprof_role"] = r
            st.rerun()
        st.error("Wrong password. Ask the person running this booth.")
    st.stop()


def can_modify() -> bool:
    """Delete, import and upload are for admins; in booth mode a visitor may run models and look at history."""
    import streamlit as st

    return st.session_state.get("edgeprof_role", "admin") == "admin"


def admin_unlock() -> None:
    """A small sidebar form that upgrades a visitor to admin with the admin password."""
    import streamlit as st

    s = settings(secrets=_secrets())
    if not s.enabled or can_modify() or not s.admin_password:
        return
    with st.sidebar.expander("Staff"):
        pw = st.text_input("Admin password", type="password", key="admin_password")
        if st.button("Unlock", key="admin_unlock") and pw:
            if matches(pw, s.admin_password):
                st.session_state["edgeprof_role"] = "admin"
                st.rerun()
            st.error("Wrong admin password.")
