"""What an upgrade preview reports between two versions (pure: two manifests, two endpoints)."""

from __future__ import annotations

from connector_service.integrations import versions


def _manifest(**auth) -> dict:
    return {
        "auth": {"scheme": "oauth2", "scopes": ["read"], **auth},
        "config_schema": {"type": "object", "properties": {"base_url": {}, "region": {}},
                          "required": ["base_url"]},
        "streams": [{"name": "contacts"}], "actions": [{"name": "create_contact"}],
    }  # fmt: skip


def test_destinations_are_compared_use_by_use_with_scheme_and_port():
    old = _manifest(token_url="https://auth.example.com/token")
    new = _manifest(token_url="https://auth.example.com:8443/token",
                    revoke_url="https://AUTH.example.com/revoke")  # fmt: skip
    found = versions.changes(old, "http://10.0.0.5:8080/", new, "http://10.0.0.5:8080")
    changed = {c["use"]: (c["from"], c["to"]) for c in found["hosts"]["changed"]}
    assert changed == {
        "token_url": ("https://auth.example.com:443", "https://auth.example.com:8443"),
        "revoke_url": (None, "https://auth.example.com:443"),  # a new use of a known host
    }
    assert versions.to_confirm(found) == [
        "https://auth.example.com:443", "https://auth.example.com:8443"]  # fmt: skip
    assert found["hosts"]["added"] == ["https://auth.example.com:8443"]
    assert set(found["hosts"]["kept"]) == {"https://auth.example.com:443", "http://10.0.0.5:8080"}


def test_a_host_taking_on_another_use_must_be_confirmed():
    """The publisher's own host as the sign-in page first, then as the token URL: it would
    receive the client secret and refresh tokens, though it is no new host."""
    old = _manifest(authorize_url="https://pub.example/authorize",
                    token_url="https://provider.example/token")  # fmt: skip
    new = _manifest(authorize_url="https://pub.example/authorize",
                    token_url="https://pub.example/token")  # fmt: skip
    found = versions.changes(old, "http://10.0.0.5:8080", new, "http://10.0.0.5:8080")
    assert found["hosts"]["added"] == []  # no new host...
    assert versions.to_confirm(found) == ["https://pub.example:443"]  # ...but a new use


def test_a_downgrade_to_plain_http_must_be_confirmed():
    old = _manifest(token_url="https://auth.example.com/token")
    new = _manifest(token_url="http://auth.example.com:443/token")
    assert versions.to_confirm(versions.changes(old, None, new, None)) == [
        "http://auth.example.com:443"]  # fmt: skip


def test_a_use_that_goes_away_needs_no_confirmation():
    old = _manifest(token_url="https://a.example/t", revoke_url="https://a.example/r")
    new = _manifest(token_url="https://a.example/t")
    found = versions.changes(old, None, new, None)
    assert [c["use"] for c in found["hosts"]["changed"]] == ["revoke_url"]
    assert versions.to_confirm(found) == []


def test_scopes_fields_streams_and_actions():
    old = _manifest()
    new = _manifest(scopes=["read", "write"])
    new["config_schema"] = {
        "type": "object", "required": ["base_url", "api_key"],
        "properties": {"base_url": {}, "api_key": {"x-secret": True}},
    }  # fmt: skip
    new["streams"] = [{"name": "contacts"}, {"name": "deals"}]
    new["actions"] = []
    found = versions.changes(old, None, new, None)
    assert found["scopes"] == {"added": ["write"], "removed": []}
    assert found["config_fields"] == {
        "added": ["api_key"], "removed": ["region"], "newly_required": ["api_key"],
        "secret_added": ["api_key"],
    }  # fmt: skip
    assert found["streams"] == {"added": ["deals"], "removed": []}
    assert found["actions"] == {"added": [], "removed": ["create_contact"]}
    assert found["auth_scheme"] is None and found["hosts"]["changed"] == []


def test_origins():
    assert versions.origin_of("not a url") is None
    assert versions.origin_of("HTTP://[::1]:99/x") == "http://[::1]:99"
    assert versions.origin_of("https://h:99999/") is None
    assert versions.origin_of("ftp://h/") is None
