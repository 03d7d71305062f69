"""Checking an install's configuration against its connector's JSON Schema.

The schema declares secret fields (``"x-secret": true``): those travel as credentials and are
stored encrypted, never in ``config``. So the check splits the schema: the plain part validates
``config``, the secret part validates the credentials, and a required secret must be given now
or already be stored."""

from __future__ import annotations

from collections.abc import Collection
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
    for error in jsonschema.Draft202012Validator(plain, format_checker=_FORMATS).iter_errors(
        {k: v for k, v in config.items() if k not in secrets}
    ):
        path = "/".join(str(p) for p in error.path)
        found.append({"path": f"/config/{path}".rstrip("/"), "message": error.message})
    return found


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
        validator = jsonschema.Draft202012Validator(props[name], format_checker=_FORMATS)
        found += [
            {"path": f"/credentials/{name}", "message": f"breaks the {error.validator!r} rule"}
            for error in validator.iter_errors(credentials[name])
        ]
    if require:
        missing = (set(schema.get("required", [])) & secrets) - set(credentials) - set(stored)
        found += [{"path": f"/credentials/{n}", "message": "required"} for n in sorted(missing)]
    return found
