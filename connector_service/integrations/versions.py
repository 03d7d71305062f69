"""What changes for an install between two published versions of its connector: the hosts its
credentials and data are sent to, the OAuth scopes asked for, the config fields, streams and
actions. Pure functions over two manifests and endpoints; the upgrade preview shows them, and
the upgrade refuses new hosts the tenant has not confirmed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from connector_service.integrations import config as config_rules

# Where a version sends something, by what it is used for. authorize_url is only visited by
# people's browsers, but it is where they type their password: a change there is worth a look.
_AUTH_URLS = {
    "token_url": "OAuth token requests (client secret, codes, refresh tokens)",
    "revoke_url": "OAuth token revocation",
    "authorize_url": "OAuth sign-in and consent (people's browsers)",
}
ENDPOINT_USE = "connector calls (config, decrypted credentials, records)"


def host_of(url: str | None) -> str | None:
    """``host:port`` of a URL (the port made explicit), or None for no or a malformed URL."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        return None
    if not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}" if port else host


def hosts(manifest: Mapping[str, Any], endpoint_url: str | None) -> dict[str, list[str]]:
    """Each host a version sends to, with what for, sorted."""
    found: dict[str, list[str]] = {}
    auth = manifest.get("auth") or {}
    for url, use in [(endpoint_url, ENDPOINT_USE)] + [
        (auth.get(key), use) for key, use in _AUTH_URLS.items()
    ]:
        if (host := host_of(url)) is not None:
            found.setdefault(host, []).append(use)
    return dict(sorted(found.items()))


def _names(items: Any) -> set[str]:
    return {
        i["name"] for i in items or [] if isinstance(i, dict) and isinstance(i.get("name"), str)
    }


def _added_removed(old: set[str], new: set[str]) -> dict[str, list[str]]:
    return {"added": sorted(new - old), "removed": sorted(old - new)}


def changes(
    old_manifest: Mapping[str, Any],
    old_endpoint: str | None,
    new_manifest: Mapping[str, Any],
    new_endpoint: str | None,
) -> dict[str, Any]:
    """What moving from the old version to the new one changes."""
    before, after = hosts(old_manifest, old_endpoint), hosts(new_manifest, new_endpoint)
    old_schema = old_manifest.get("config_schema") or {}
    new_schema = new_manifest.get("config_schema") or {}
    old_fields = set(old_schema.get("properties") or {})
    new_fields = set(new_schema.get("properties") or {})
    old_required = set(old_schema.get("required") or [])
    new_required = set(new_schema.get("required") or [])
    old_scopes = set((old_manifest.get("auth") or {}).get("scopes") or [])
    new_scopes = set((new_manifest.get("auth") or {}).get("scopes") or [])
    old_auth = (old_manifest.get("auth") or {}).get("scheme")
    new_auth = (new_manifest.get("auth") or {}).get("scheme")
    return {
        "hosts": {
            "added": [{"host": h, "used_for": u} for h, u in after.items() if h not in before],
            "removed": sorted(set(before) - set(after)),
            "kept": sorted(set(before) & set(after)),
        },
        "auth_scheme": {"from": old_auth, "to": new_auth} if old_auth != new_auth else None,
        "scopes": _added_removed(old_scopes, new_scopes),
        "config_fields": {
            **_added_removed(old_fields, new_fields),
            "newly_required": sorted(new_required - old_required),
            "secret_added": sorted(
                config_rules.secret_fields(new_schema) - config_rules.secret_fields(old_schema)
            ),
        },
        "streams": _added_removed(
            _names(old_manifest.get("streams")), _names(new_manifest.get("streams"))
        ),
        "actions": _added_removed(
            _names(old_manifest.get("actions")), _names(new_manifest.get("actions"))
        ),
    }


def new_hosts(found: Mapping[str, Any]) -> list[str]:
    """The hosts a tenant must confirm to upgrade: those the new version adds."""
    return [h["host"] for h in found["hosts"]["added"]]
