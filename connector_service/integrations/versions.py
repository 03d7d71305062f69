"""What changes for an install between two published versions of its connector: where its
credentials and data are sent (each use's origin), the OAuth scopes asked for, the config
fields, streams and actions. Pure functions over two manifests and endpoints; the upgrade
preview shows them, and the upgrade refuses a destination the tenant has not confirmed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from connector_service.integrations import config as config_rules

# Where a version sends something, by what it is used for. authorize_url is only visited by
# people's browsers, but it is where they type their password: a change there is worth a look.
USES = {
    "endpoint": "connector calls (config, decrypted credentials, records)",
    "token_url": "OAuth token requests (client secret, codes, refresh tokens)",
    "revoke_url": "OAuth token revocation (tokens)",
    "authorize_url": "OAuth sign-in and consent (people's browsers)",
}


def origin_of(url: str | None) -> str | None:
    """``scheme://host:port`` of a URL (lowercase, the port made explicit), or None for no or
    a malformed URL. Two URLs go to the same place with the same protection when their origins
    are equal: the scheme counts (https to http is a downgrade), and so does the port."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.hostname or not port:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme.lower()}://{host}:{port}"


def destinations(manifest: Mapping[str, Any], endpoint_url: str | None) -> dict[str, str]:
    """Each use a version sends to (``USES``), with its origin."""
    auth = manifest.get("auth") or {}
    urls = {"endpoint": endpoint_url} | {use: auth.get(use) for use in USES if use != "endpoint"}
    return {use: origin for use, url in urls.items() if (origin := origin_of(url)) is not None}


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
    """What moving from the old version to the new one changes. Destinations are compared use
    by use: a host the old version already used for something else is still a change when it
    takes on another use (an authorize_url's host becoming the token_url's receives secrets)."""
    before = destinations(old_manifest, old_endpoint)
    after = destinations(new_manifest, new_endpoint)
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
            "changed": [
                {"use": use, "used_for": USES[use], "from": before.get(use), "to": after.get(use)}
                for use in USES if before.get(use) != after.get(use)
            ],
            "added": sorted(set(after.values()) - set(before.values())),
            "removed": sorted(set(before.values()) - set(after.values())),
            "kept": sorted(set(before.values()) & set(after.values())),
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
    }  # fmt: skip


def to_confirm(found: Mapping[str, Any]) -> list[str]:
    """The origins a tenant must confirm to upgrade: each one a use moves to (a use that goes
    away sends less, and needs none)."""
    return sorted({c["to"] for c in found["hosts"]["changed"] if c["to"] is not None})
