"""Checking an install's configuration against its connector's JSON Schema.

The schema declares secret fields (``"x-secret": true``): those travel as credentials and are
stored encrypted, never in ``config``. So the check splits the schema: the plain part validates
``config``, the secret part validates the credentials, and a required secret must be given now
or already be stored."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from common import jsonschemas


def secret_fields(schema: dict[str, Any]) -> set[str]:
    props = schema.get("properties", {})
    return {k for k, v in props.items() if isinstance(v, dict) and v.get("x-secret")}


def problems(
    schema: dict[str, Any],
    *,
    config: dict[str, Any],
    credentials: dict[str, Any],
    stored_secrets: Collection[str] = (),
) -> list[dict[str, str]]:
    """Every problem with this config and these credentials (empty when they are valid).
    Messages never quote a credential's value."""
    return config_problems(schema, config) + credential_problems(
        schema, credentials, stored=stored_secrets
    )


def config_problems(schema: dict[str, Any], config: dict[str, Any]) -> list[dict[str, str]]:
    """The non-secret part: secrets sent here by mistake, then the schema without them."""
    secrets = secret_fields(schema)
    found = [
        {"path": f"/config/{name}", "message": "a secret: send it in credentials"}
        for name in sorted(set(config) & secrets)
    ]
    props = schema.get("properties", {})
    plain = {
        **schema,
        "properties": {k: v for k, v in props.items() if k not in secrets},
        "required": sorted(set(schema.get("required", [])) - secrets),
    }
    try:
        errors = jsonschemas.errors(plain, {k: v for k, v in config.items() if k not in secrets})
    except jsonschemas.UnusableSchema as exc:
        return [*found, {"path": "/config", "message": f"{_UNUSABLE}: {exc}"}]
    for error in errors:
        path = "/".join(str(p) for p in error.path)
        found.append({"path": f"/config/{path}".rstrip("/"), "message": error.message})
    return found


_UNUSABLE = "the connector's config schema cannot be used"


def credential_problems(
    schema: dict[str, Any],
    credentials: dict[str, Any],
    *,
    stored: Collection[str] = (),
    require: bool = True,
) -> list[dict[str, str]]:
    """The secret part: only secret fields, each valid by its own rules, and (with
    ``require``) every required secret given now or already ``stored``."""
    secrets = secret_fields(schema)
    props = schema.get("properties", {})
    found = [
        {"path": f"/credentials/{name}", "message": "not a secret field"}
        for name in sorted(set(credentials) - secrets)
    ]
    for name in sorted(secrets & set(credentials)):
        try:
            errors = jsonschemas.errors(props[name], credentials[name])
        except jsonschemas.UnusableSchema as exc:
            found.append({"path": f"/credentials/{name}", "message": f"{_UNUSABLE}: {exc}"})
            continue
        found += [
            {"path": f"/credentials/{name}", "message": f"breaks the {error.validator!r} rule"}
            for error in errors
        ]
    if require:
        missing = (set(schema.get("required", [])) & secrets) - set(credentials) - set(stored)
        found += [{"path": f"/credentials/{n}", "message": "required"} for n in sorted(missing)]
    return found
