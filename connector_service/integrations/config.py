"""Checking an install's configuration against its connector's JSON Schema.

The schema declares secret fields (``"x-secret": true``): those travel as credentials and are
stored encrypted, never in ``config``. So the check splits the schema: the plain part validates
``config``, the secret part validates the credentials, and a required secret must be given now
or already be stored."""

from __future__ import annotations

from typing import Any

import jsonschema

_FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER


def secret_fields(schema: dict[str, Any]) -> set[str]:
    props = schema.get("properties", {})
    return {k for k, v in props.items() if isinstance(v, dict) and v.get("x-secret")}


def problems(
    schema: dict[str, Any],
    *,
    config: dict[str, Any],
    credentials: dict[str, Any],
    stored_secrets: set[str] = frozenset(),  # type: ignore[assignment]
) -> list[dict[str, str]]:
    """Every problem with this config and these credentials (empty when they are valid).
    Messages never quote a credential's value."""
    secrets = secret_fields(schema)
    found: list[dict[str, str]] = []
    for name in sorted(set(config) & secrets):
        found.append({"path": f"/config/{name}", "message": "a secret: send it in credentials"})
    for name in sorted(set(credentials) - secrets):
        found.append({"path": f"/credentials/{name}", "message": "not a secret field"})
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    plain = {
        **schema,
        "properties": {k: v for k, v in props.items() if k not in secrets},
        "required": sorted(required - secrets),
    }
    for error in jsonschema.Draft202012Validator(plain, format_checker=_FORMATS).iter_errors(
        {k: v for k, v in config.items() if k not in secrets}
    ):
        path = "/".join(str(p) for p in error.path)
        found.append({"path": f"/config/{path}".rstrip("/"), "message": error.message})
    for name in sorted(secrets & set(credentials)):
        validator = jsonschema.Draft202012Validator(props[name], format_checker=_FORMATS)
        for error in validator.iter_errors(credentials[name]):
            found.append(
                {"path": f"/credentials/{name}", "message": f"breaks the {error.validator!r} rule"}
            )
    for name in sorted((required & secrets) - set(credentials) - set(stored_secrets)):
        found.append({"path": f"/credentials/{name}", "message": "required"})
    return found
