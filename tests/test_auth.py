"""Booth mode: who gets in, who may change history, and the constant-time comparison."""

from __future__ import annotations

from edgeprof import auth


def test_no_password_means_local_admin():
    s = auth.settings(env={})
    assert not s.enabled and auth.role(s, None, None) == "admin"


def test_visitor_and_admin_roles():
    s = auth.settings(env={auth.ENV_PASSWORD: "visit", auth.ENV_ADMIN: "staff"})
    assert auth.role(s, "visit", None) == "visitor"
    assert auth.role(s, "staff", None) == "admin"
    assert auth.role(s, "wrong", None) is None
    assert auth.role(s, "", None) is None
    assert auth.role(s, None, None) is None


def test_secrets_are_used_when_env_is_empty():
    s = auth.settings(env={}, secrets={"password": "p", "admin_password": "a"})
    assert s.enabled and auth.role(s, "p", None) == "visitor" and auth.role(s, "a", None) == "admin"


def test_matches_is_exact():
    assert auth.matches("abc", "abc")
    assert not auth.matches("abc", "abcd") and not auth.matches("abd", "abc")
    assert not auth.matches(None, "abc") and not auth.matches("abc", None)
    assert auth.matches("pässwörd", "pässwörd")


def test_loopback_detection():
    assert auth.is_loopback("127.0.0.1") and auth.is_loopback("::1") and auth.is_loopback("localhost")
    assert not auth.is_loopback(None) and not auth.is_loopback("") and not auth.is_loopback(" ")
    assert not auth.is_loopback("0.0.0.0") and not auth.is_loopback("192.168.1.5")
