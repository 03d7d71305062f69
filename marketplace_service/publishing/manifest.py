"""What a publishable connector manifest is: every reason one is refused, at once."""

from __future__ import annotations

from collections import Counter
from typing import Any

import jsonschema
import semver

SLUG = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
_URL = {"type": "string", "pattern": r"^https?://", "maxLength": 2000}
_NAMED = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]{1,100}$"}},
}
# The connector contract's manifest (sdk/README.md), as far as the marketplace relies on it.
MANIFEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "version", "auth", "config_schema"],
    "properties": {
        "name": {"type": "string", "pattern": SLUG},
        "display_name": {"type": "string", "minLength": 1, "maxLength": 200},
        "version": {"type": "string", "maxLength": 100},
        "description": {"type": "string", "maxLength": 4000},
        "auth": {
            "type": "object",
            "required": ["scheme"],
            "properties": {
                "scheme": {"enum": ["oauth2", "api_key", "basic", "none"]},
                "scopes": {"type": "array", "items": {"type": "string", "maxLength": 200}},
                "authorize_url": _URL,
                "token_url": _URL,
                "revoke_url": _URL,
            },
            "if": {"properties": {"scheme": {"const": "oauth2"}}},
            "then": {"required": ["authorize_url", "token_url", "scopes"]},
        },
        "config_schema": {
            "type": "object",
            "properties": {"type": {"const": "object"}},
            "required": ["type"],
        },
        "streams": {"type": "array", "items": _NAMED, "maxItems": 200},
        "actions": {"type": "array", "items": _NAMED, "maxItems": 200},
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(MANIFEST_SCHEMA)

MAX_DECLARED = 1000  # streams or actions: beyond, the schema's maxItems refuses the manifest


def problems(manifest: Any) -> list[dict[str, str]]:
    """Every problem with ``manifest`` (empty when it can be published), each with its path."""
    found = [
        {"path": "/manifest/" + "/".join(map(str, e.absolute_path)), "message": e.message}
        for e in sorted(_VALIDATOR.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    ]
    if not isinstance(manifest, dict):
        return found
    version = manifest.get("version")
    if isinstance(version, str) and not semver.Version.is_valid(version):
        message = f"{version!r} is not a semantic version (MAJOR.MINOR.PATCH)"
        found.append({"path": "/manifest/version", "message": message})
    schema = manifest.get("config_schema")
    if isinstance(schema, dict):
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            where = "/".join(map(str, exc.absolute_path))
            found.append({"path": f"/manifest/config_schema/{where}".rstrip("/"),
                          "message": f"not a valid JSON Schema: {exc.message}"})  # fmt: skip
    for kind in ("streams", "actions"):
        items = manifest.get(kind)
        if isinstance(items, list) and len(items) <= MAX_DECLARED:
            # one pass (a count per name was quadratic: a large list held the event loop), and
            # only string names: others are already refused by the schema
            counted = Counter(
                i["name"] for i in items if isinstance(i, dict) and isinstance(i.get("name"), str)
            )
            twice = sorted(n for n, times in counted.items() if times > 1)
            found += [
                {"path": f"/manifest/{kind}", "message": f"{name!r} is declared twice"}
                for name in twice
            ]
    return found
