"""A browser on the device competes with the model: the Run page says so before Start, with how to watch from another
machine (the browser test checks it from a real Chromium on 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from edgeprof.device import client_on_device, lan_addresses, own_addresses

ROOT = Path(__file__).resolve().parent.parent
OWN = {"127.0.0.1", "::1", "192.168.1.20", "fe80::1", "10.0.0.5"}


def test_which_clients_are_on_the_device():
    assert client_on_device(None, OWN), "Streamlit reports loopback clients as no address"
    for local in ("127.0.0.1", "::1", "::ffff:127.0.0.1", "192.168.1.20", "fe80::1%eth0", "localhost"):
        assert client_on_device(local, OWN), local
    for remote in ("192.168.1.21", "2001:db8::7", "::ffff:192.168.1.21"):
        assert not client_on_device(remote, OWN), remote


def test_lan_addresses_leave_out_loopback_and_link_local():
    assert lan_addresses(OWN) == ["10.0.0.5", "192.168.1.20"]
    assert "127.0.0.1" in own_addresses()


def test_run_page_says_the_browser_is_on_the_device_and_how_to_watch_from_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPROF_DB", str(tmp_path / "runs.duckdb"))
    at = AppTest.from_file(str(ROOT / "views" / "1_Run.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    (warning,) = [w.value for w in at.warning if "This browser runs on the device being measured" in w.value]
    assert "Drawing the live charts takes CPU that the model needs" in warning
    assert "start the app with `--server.address 0.0.0.0` and a password" in warning
    assert 'README, "A demo booth or a LAN"' in warning
    where = lan_addresses(own_addresses())
    assert (f"`http://{where[0]}:" in warning) if where else "`http://<this device's address>:" in warning
    order = [getattr(e, "key", None) or type(e).__name__ for e in at.main]
    assert order.index("Warning") < order.index("start"), "said before the Start button"
