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


def test_hosts_are_compared_with_their_ports_and_uses():
    old = _manifest(token_url="https://auth.example.com/token")
    new = _manifest(token_url="https://auth.example.com:8443/token",
                    revoke_url="https://AUTH.example.com/revoke")  # fmt: skip
    found = versions.changes(old, "http://10.0.0.5:8080/", new, "http://10.0.0.5:8080")
    added = {h["host"]: h["used_for"] for h in found["hosts"]["added"]}
    assert list(added) == ["auth.example.com:8443"]  # the revocation host is one already used
    assert "token" in added["auth.example.com:8443"][0]
    assert found["hosts"]["removed"] == []
    assert set(found["hosts"]["kept"]) == {"auth.example.com:443", "10.0.0.5:8080"}
    assert versions.new_hosts(found) == ["auth.example.com:8443"]


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
    assert found["auth_scheme"] is None and found["hosts"]["added"] == []


def test_malformed_urls_name_no_host():
    assert versions.host_of("not a url") is None
    assert versions.host_of("http://[::1]:99/x") == "[::1]:99"
    assert versions.host_of("https://h:99999/") is None
