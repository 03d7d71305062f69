"""Declaring a connector: name, version, auth, config schema, streams and actions.

Example::

    connector = Connector(
        name="acme-crm",
        version="1.0.0",
        auth=ApiKeyAuth(),
        config_schema={"type": "object", "properties": {"api_key": secret_string()}},
    )

    @connector.stream("contacts", primary_key="id", cursor_field="updated_at", schema=CONTACT)
    async def contacts(ctx: Context, cursor: str | None) -> AsyncIterator[Page]:
        async for page in cursor_pages(ctx.http, "/contacts", cursor=cursor):
            yield page

    @connector.action("send_email", input_schema=IN, output_schema=OUT, idempotent=False)
    async def send_email(ctx: Context, data: dict) -> dict: ...

``connector.app()`` then serves the connector contract (see :mod:`seedos_sdk.server`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import jsonschema

from seedos_sdk.http import HttpClient

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
JSONSchema = dict[str, Any]


@functools.cache
def _meta() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(jsonschema.Draft202012Validator.META_SCHEMA)


def check_schema(schema: JSONSchema) -> None:
    """Raise :class:`jsonschema.SchemaError` unless ``schema`` is a valid 2020-12 JSON Schema
    (one meta-schema validator for the process: ``check_schema`` builds one per call)."""
    error = jsonschema.exceptions.best_match(_meta().iter_errors(schema))
    if error is not None:
        raise jsonschema.SchemaError.create_from(error)


@dataclass(frozen=True)
class OAuth2Auth:
    """OAuth 2.0 authorization code (with PKCE); the platform runs the flow and passes the
    access token in ``credentials["access_token"]``."""

    authorize_url: str
    token_url: str
    scopes: tuple[str, ...] = ()
    revoke_url: str | None = None
    scheme: Literal["oauth2"] = "oauth2"
    # more query parameters of the authorization request (Google: access_type=offline)
    authorize_params: tuple[tuple[str, str], ...] = ()
    scope_separator: str = " "  # how scopes are joined (RFC 6749: a space; Linear: a comma)

    def manifest(self) -> dict[str, Any]:
        out = {"scheme": self.scheme, "authorize_url": self.authorize_url,
               "token_url": self.token_url, "scopes": list(self.scopes)}  # fmt: skip
        if self.revoke_url:
            out["revoke_url"] = self.revoke_url
        if self.authorize_params:
            out["authorize_params"] = dict(self.authorize_params)
        if self.scope_separator != " ":
            out["scope_separator"] = self.scope_separator
        return out


@dataclass(frozen=True)
class ApiKeyAuth:
    """An API key: declare it in the config schema with :func:`secret_string`; it arrives in
    ``ctx.credentials``."""

    scheme: Literal["api_key"] = "api_key"

    def manifest(self) -> dict[str, Any]:
        return {"scheme": self.scheme}


@dataclass(frozen=True)
class BasicAuth:
    """A username and a password. Declare them in the config schema, the password with
    :func:`secret_string`: non-secret fields arrive in ``ctx.config``, secret ones in
    ``ctx.credentials``."""

    scheme: Literal["basic"] = "basic"

    def manifest(self) -> dict[str, Any]:
        return {"scheme": self.scheme}


@dataclass(frozen=True)
class NoAuth:
    scheme: Literal["none"] = "none"

    def manifest(self) -> dict[str, Any]:
        return {"scheme": self.scheme}


Auth = OAuth2Auth | ApiKeyAuth | BasicAuth | NoAuth


def secret_string(title: str = "Secret", description: str = "", **extra: Any) -> JSONSchema:
    """A config property that holds a secret: stored encrypted, never returned or logged."""
    return {"type": "string", "title": title, "description": description,
            "writeOnly": True, "x-secret": True, **extra}  # fmt: skip


@dataclass
class Page:
    """One page of a stream: records, primary keys deleted since the cursor, where to go next.

    ``has_more`` defaults to whether there is a ``next_cursor``; set it when a cursor should be
    kept (for the next sync) although this read is complete."""

    records: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    next_cursor: str | None = None
    has_more: bool | None = None

    def as_contract(self) -> dict[str, Any]:
        more = self.has_more if self.has_more is not None else self.next_cursor is not None
        return {"records": self.records, "deleted": [str(d) for d in self.deleted],
                "next_cursor": self.next_cursor, "has_more": more}  # fmt: skip


@dataclass
class WriteResult:
    """The outcome of writing one record: ``ok``, or an error and whether to retry it."""

    key: str
    ok: bool
    error: str | None = None
    category: str | None = None
    record: dict[str, Any] | None = None


@dataclass
class Context:
    """What a read, write, check or action function gets: the install's config and decrypted
    credentials, an HTTP client for the external API, and the connector."""

    config: Mapping[str, Any]
    credentials: Mapping[str, Any]
    connector: Connector
    http: HttpClient = field(default=None)  # type: ignore[assignment]  # set right after


ReadFn = Callable[[Context, str | None], AsyncIterator[Page]]
WriteFn = Callable[[Context, list[dict[str, Any]], list[str]], Awaitable[list[WriteResult]]]
ActionFn = Callable[[Context, dict[str, Any]], Awaitable[dict[str, Any]]]
CheckFn = Callable[[Context], Awaitable[None]]
HttpFactory = Callable[[Context], HttpClient]


@dataclass
class Stream:
    name: str
    primary_key: str
    cursor_field: str | None
    schema: JSONSchema
    read: ReadFn
    write: WriteFn | None = None
    description: str = ""

    def writer(self, fn: WriteFn) -> WriteFn:
        """Decorator: the function that upserts and deletes records of this stream."""
        self.write = fn
        return fn

    def manifest(self) -> dict[str, Any]:
        return {"name": self.name, "primary_key": self.primary_key,
                "cursor_field": self.cursor_field, "schema": self.schema,
                "writable": self.write is not None, "description": self.description}  # fmt: skip


@dataclass
class Action:
    name: str
    input_schema: JSONSchema
    output_schema: JSONSchema
    run: ActionFn
    idempotent: bool = False
    description: str = ""

    def manifest(self) -> dict[str, Any]:
        return {"name": self.name, "input_schema": self.input_schema,
                "output_schema": self.output_schema, "idempotent": self.idempotent,
                "description": self.description}  # fmt: skip


class Connector:
    """A connector definition. Register streams and actions with the decorators, then serve it
    with :meth:`app`.

    Args:
        name: lowercase id, e.g. ``"acme-crm"``.
        version: semantic version of this connector.
        auth: how the external API authenticates (:class:`OAuth2Auth`, :class:`ApiKeyAuth`,
            :class:`BasicAuth`, :class:`NoAuth`).
        config_schema: JSON Schema of the install's configuration; mark secret fields with
            :func:`secret_string` (``"x-secret": true``).
        base_url: the external API's base URL, or a function of the context that returns it.
        display_name, description: shown in the marketplace.
    """

    def __init__(
        self,
        *,
        name: str,
        version: str,
        auth: Auth,
        config_schema: JSONSchema | None = None,
        base_url: str | Callable[[Context], str] | None = None,
        display_name: str | None = None,
        description: str = "",
        webhooks: dict[str, Any] | None = None,
    ) -> None:
        if not NAME.match(name):
            raise ValueError(f"connector name {name!r}: lowercase letters, digits, '-' and '_'")
        self.name = name
        self.version = version
        self.auth = auth
        self.config_schema: JSONSchema = config_schema or {"type": "object", "properties": {}}
        check_schema(self.config_schema)
        self.base_url = base_url
        self.display_name = display_name or name
        self.description = description
        # the provider's webhooks, as data the platform verifies and applies (see
        # docs/connector-definitions.md, "Webhooks"): passed on in the manifest
        self.webhooks = webhooks
        self.streams: dict[str, Stream] = {}
        self.actions: dict[str, Action] = {}
        self.check_fn: CheckFn | None = None
        self.http_factory: HttpFactory | None = None

    # ----------------------------------------------------------------- registration

    def stream(
        self,
        name: str,
        *,
        primary_key: str,
        schema: JSONSchema,
        cursor_field: str | None = None,
        description: str = "",
    ) -> Callable[[ReadFn], Stream]:
        """Decorator registering an async generator ``read(ctx, cursor)`` that yields pages."""
        _check_name(name, "stream", self.streams)
        check_schema(schema)

        def register(read: ReadFn) -> Stream:
            stream = Stream(name, primary_key, cursor_field, schema, read, description=description)
            self.streams[name] = stream
            return stream

        return register

    def action(
        self,
        name: str,
        *,
        input_schema: JSONSchema,
        output_schema: JSONSchema,
        idempotent: bool = False,
        description: str = "",
    ) -> Callable[[ActionFn], ActionFn]:
        """Decorator registering ``run(ctx, input) -> output``. Non-idempotent actions are
        deduplicated by the caller's ``Idempotency-Key``."""
        _check_name(name, "action", self.actions)
        check_schema(input_schema)
        check_schema(output_schema)

        def register(run: ActionFn) -> ActionFn:
            self.actions[name] = Action(name, input_schema, output_schema, run, idempotent,
                                        description)  # fmt: skip
            return run

        return register

    def check(self, fn: CheckFn) -> CheckFn:
        """Decorator: verify config and credentials against the external API (raise on failure)."""
        self.check_fn = fn
        return fn

    def http_client(self, fn: HttpFactory) -> HttpFactory:
        """Decorator: build the HTTP client for a context (base URL, auth headers)."""
        self.http_factory = fn
        return fn

    # ----------------------------------------------------------------- contract

    def secret_fields(self) -> list[str]:
        props = self.config_schema.get("properties", {})
        return sorted(k for k, v in props.items() if isinstance(v, dict) and v.get("x-secret"))

    def manifest(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "display_name": self.display_name,
            "version": self.version,
            "description": self.description,
            "auth": self.auth.manifest(),
            "config_schema": self.config_schema,
            "secret_fields": self.secret_fields(),
            "streams": [s.manifest() for s in self.streams.values()],
            "actions": [a.manifest() for a in self.actions.values()],
            "contract_version": "1",
        } | ({"webhooks": self.webhooks} if self.webhooks else {})

    def app(self, **settings: Any) -> Any:
        """The ASGI app serving the connector contract."""
        from seedos_sdk.server import create_app

        return create_app(self, **settings)


def _check_name(name: str, kind: str, taken: Mapping[str, Any]) -> None:
    if not NAME.match(name) or "/" in name:
        raise ValueError(f"{kind} name {name!r}: lowercase letters, digits, '-' and '_'")
    if name in taken:
        raise ValueError(f"{kind} {name!r} is defined twice")
