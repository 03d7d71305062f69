"""A catalog entry's reference (issue 18, part 4): what a tenant gets before installing, generated
from the entry's manifest, so it is never out of step with what runs.

:func:`build` turns a manifest (the contract's: streams with their schemas, keys, cursors and
whether they are writable; actions with input and output schemas; auth with its scopes; the
config schema; and the provider's ``webhooks`` when the connector declares them) into a
structured reference: every field with its type, whether it may be null or must be given, and
its description where the schema has one.

A manifest does not say which writes a writable stream makes (create, update, delete) nor
whether its reads see deletions. A manifest that says so (``writes``, ``deletions`` on a
stream) is read; an entry of the platform's catalog whose manifest was built from one of its
definitions (``definitions/<slug>.yaml``: only when that file still builds exactly this
manifest) is read from there; for any other entry these two stay ``null``: not declared.
"""

from __future__ import annotations

import asyncio
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel, Field

from marketplace_service.catalog import definitions as catalog_definitions
from marketplace_service.catalog import repository
from marketplace_service.catalog.service import CatalogEntryNotFound

MAX_DEPTH = 4  # nested objects and lists of objects listed down to user.address.city.name
MAX_FIELDS = 500  # per schema: a reference, not a dump of a provider's every field
MAX_ENUM = 12
Write = Literal["create", "update", "delete"]
WRITES: tuple[Write, ...] = ("create", "update", "delete")
# a definition's write requests, as what they let the platform do
_WRITE_KEYS: dict[str, tuple[Write, ...]] = {
    "upsert": ("create", "update"), "create": ("create",), "update": ("update",),
    "delete": ("delete",),
}  # fmt: skip
SIGNATURES = {
    "github": "an HMAC-SHA256 of the body, in X-Hub-Signature-256 (GitHub's scheme)",
    "stripe": "an HMAC-SHA256 of a timestamp and the body, in Stripe-Signature (Stripe's scheme)",
    "shopify": "a base64 HMAC-SHA256 of the body, in X-Shopify-Hmac-Sha256 (Shopify's scheme)",
    "slack": "an HMAC-SHA256 of a timestamp and the body, in X-Slack-Signature with"
    " X-Slack-Request-Timestamp (Slack's v0 scheme)",
}
TIMESTAMPED = frozenset({"stripe", "slack"})
DEFAULT_TOLERANCE = 300


class FieldRef(BaseModel):
    name: str = Field(description="Dotted for a nested field (user.login), [] for a list's items")
    type: str = Field(description="In words: string (date-time), array of string, one of ...")
    nullable: bool
    required: bool
    description: str | None = None


class ConfigFieldRef(FieldRef):
    title: str | None = None
    secret: bool = Field(description="Stored encrypted, never shown again")
    default: Any = None


class Needs(BaseModel):
    """A rule over fields beyond ``required``: any_of (at least one group given in full) or
    one_of (exactly one)."""

    rule: Literal["any_of", "one_of"]
    groups: list[list[str]]


class StreamRef(BaseModel):
    name: str
    description: str | None = None
    primary_key: str | None
    cursor_field: str | None
    incremental: bool = Field(description="Read from where the last sync ended (cursor_field)")
    writable: bool
    writes: list[Write] | None = Field(
        description="What writes it makes; null: writable or not, the connector does not say"
    )
    deletions: bool | None = Field(
        description="Whether records deleted at the provider are seen; null: not declared"
    )
    deletions_seen_by: list[Literal["read", "webhooks"]] = Field(
        description="How deletions are seen: by its reads, through the provider's webhooks"
    )
    fields: list[FieldRef]


class ActionRef(BaseModel):
    name: str
    description: str | None = None
    idempotent: bool = Field(description="Safe to repeat; else send an Idempotency-Key")
    input: list[FieldRef]
    input_needs: list[Needs] = Field(default_factory=list)
    output: list[FieldRef]


class AuthRef(BaseModel):
    scheme: str
    scopes: list[str] = Field(description="OAuth scopes asked for when an account is connected")


class WebhookEventRef(BaseModel):
    types: list[str] = Field(description="Event types (a trailing * matches a prefix)")
    updates: str | None = Field(description="The stream the event updates")
    carries_record: bool = Field(description="The record is applied as the event carries it")
    pull: str | None = Field(description="A stream read incrementally when the event arrives")
    deletions: bool = Field(description="The event can say the record was deleted")


class WebhooksRef(BaseModel):
    scheme: str
    signature: str = Field(description="How a delivery is signed")
    tolerance_seconds: int | None = Field(description="How old a signed timestamp may be")
    events: list[WebhookEventRef]
    setup: str | None = Field(description="What to do at the provider")


class Reference(BaseModel):
    slug: str
    name: str
    version: str
    description: str | None = None
    auth: AuthRef
    config: list[ConfigFieldRef]
    config_needs: list[Needs] = Field(default_factory=list)
    streams: list[StreamRef]
    actions: list[ActionRef]
    webhooks: WebhooksRef | None = Field(description="null: the provider's webhooks are not used")


# ---------------------------------------------------------------------------------- types


def type_of(schema: Any, depth: int = 0) -> tuple[str, bool]:
    """A JSON Schema's type in words, and whether null is allowed."""
    if not isinstance(schema, dict) or depth > MAX_DEPTH:
        return "any", False
    nullable = schema.get("nullable") is True  # OpenAPI 3.0's way, in schemas copied from one
    if "const" in schema:
        return f"constant {json.dumps(schema['const'])}", schema["const"] is None
    if isinstance(schema.get("enum"), list):
        values = [v for v in schema["enum"] if v is not None]
        words = ", ".join(json.dumps(v) for v in values[:MAX_ENUM])
        return f"one of {words}{', …' if len(values) > MAX_ENUM else ''}", (
            nullable or None in schema["enum"]
        )
    declared = schema.get("type")
    types = [declared] if isinstance(declared, str) else list(declared or [])
    names: list[str] = []
    for kind in types:
        if kind == "null":
            nullable = True
        elif kind == "array":
            items = schema.get("items")
            names.append(f"array of {type_of(items, depth + 1)[0]}" if items else "array")
        elif schema.get("format") and kind in ("string", "integer", "number"):
            names.append(f"{kind} ({schema['format']})")
        else:
            names.append(str(kind))
    if not types:  # the type is in its branches: anyOf: [{type: string}, {type: null}]
        for branch in schema.get("anyOf") or schema.get("oneOf") or []:
            if isinstance(branch, dict) and ("type" in branch or "const" in branch):
                name, null = type_of(branch, depth + 1)
                nullable |= null
                if name not in names and name != "null":
                    names.append(name)
    return " or ".join(names) or ("null" if nullable else "any"), nullable


def _nested(schema: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """The object schema whose properties are listed under a field, and how they are named."""
    if isinstance(schema.get("properties"), dict):
        return schema, "."
    items = schema.get("items")
    if isinstance(items, dict) and isinstance(items.get("properties"), dict):
        return items, "[]."
    return None


def fields_of(schema: Any, *, prefix: str = "", depth: int = 0) -> list[FieldRef]:
    """An object schema's fields by name, nested ones after their parent (user, user.login)."""
    out: list[FieldRef] = []
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return out
    required = set(schema.get("required") or [])
    # by name: the catalog keeps manifests as jsonb, which does not keep the order of keys
    for name, sub in sorted(schema["properties"].items()):
        if len(out) >= MAX_FIELDS:
            break
        sub = sub if isinstance(sub, dict) else {}
        kind, nullable = type_of(sub)
        described = _text(sub.get("description")) or _text(sub.get("title"))
        out.append(FieldRef(name=prefix + str(name), type=kind, nullable=nullable,
                            required=name in required, description=described))  # fmt: skip
        nested = _nested(sub) if depth + 1 < MAX_DEPTH else None
        if nested is not None:
            inner, joint = nested
            out += fields_of(inner, prefix=f"{prefix}{name}{joint}", depth=depth + 1)
    return out[:MAX_FIELDS]


def needs_of(schema: Any) -> list[Needs]:
    """``anyOf``/``oneOf`` of ``required`` lists (Segment: a userId or an anonymousId)."""
    out = []
    if isinstance(schema, dict):
        for key, rule in (("anyOf", "any_of"), ("oneOf", "one_of")):
            branches = schema.get(key)
            if (
                isinstance(branches, list)
                and branches
                and all(isinstance(b, dict) and set(b) == {"required"} for b in branches)
            ):
                out.append(Needs(rule=rule, groups=[list(b["required"]) for b in branches]))
    return out


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def config_of(schema: Any) -> list[ConfigFieldRef]:
    """The fields an install fills in: each with its title, whether it is secret, its default."""
    props = schema.get("properties") if isinstance(schema, dict) else None
    out = []
    for field in fields_of(schema):
        top = props.get(field.name) if isinstance(props, dict) else None
        top = top if isinstance(top, dict) else {}  # a nested field: no title of its own here
        secret = bool(top.get("x-secret") or top.get("writeOnly"))
        description = _text(top.get("description"))
        out.append(ConfigFieldRef(**field.model_dump() | {"description": description},
                                  title=_text(top.get("title")), secret=secret,
                                  default=None if secret else top.get("default")))  # fmt: skip
    return out


# ---------------------------------------------------------------------------------- parts


def _stream(spec: dict[str, Any], facts: dict[str, Any], webhook_deletes: set[str]) -> StreamRef:
    """One stream; ``facts``: its writes and deletions as its definition says, if known."""
    name = str(spec.get("name"))
    writable = bool(spec.get("writable"))
    writes = spec.get("writes")
    if isinstance(writes, list):
        writes = [w for w in WRITES if w in writes]
    elif not writable:
        writes = []
    else:
        writes = facts.get("writes")
    deletions = spec.get("deletions")
    if not isinstance(deletions, bool):
        deletions = facts.get("deletions")
    seen_by: list[Literal["read", "webhooks"]] = ["read"] if deletions else []
    if name in webhook_deletes:
        deletions = True
        seen_by.append("webhooks")
    cursor = spec.get("cursor_field")
    return StreamRef(
        name=name, description=_text(spec.get("description")),
        primary_key=spec.get("primary_key"), cursor_field=cursor, incremental=cursor is not None,
        writable=writable, writes=writes, deletions=deletions, deletions_seen_by=seen_by,
        fields=fields_of(spec.get("schema")),
    )  # fmt: skip


def _action(spec: dict[str, Any]) -> ActionRef:
    return ActionRef(
        name=str(spec.get("name")), description=_text(spec.get("description")),
        idempotent=bool(spec.get("idempotent")), input=fields_of(spec.get("input_schema")),
        input_needs=needs_of(spec.get("input_schema")), output=fields_of(spec.get("output_schema")),
    )  # fmt: skip


def _webhooks(raw: Any) -> WebhooksRef | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("events"), list):
        return None
    signature = raw.get("signature") if isinstance(raw.get("signature"), dict) else {}
    scheme = str(signature.get("scheme") or "unknown")
    tolerance = signature.get("tolerance_seconds")
    if tolerance is None and scheme in TIMESTAMPED:
        tolerance = DEFAULT_TOLERANCE
    events = []
    for event in raw["events"]:
        if not isinstance(event, dict):
            continue
        stream, pull = event.get("stream"), event.get("pull")
        events.append(WebhookEventRef(
            types=[str(t) for t in event.get("types") or []], updates=stream or pull,
            carries_record=stream is not None, pull=pull,
            deletions=stream is not None and event.get("deleted") is not None,
        ))  # fmt: skip
    return WebhooksRef(scheme=scheme, signature=SIGNATURES.get(scheme, scheme),
                       tolerance_seconds=tolerance if isinstance(tolerance, int) else None,
                       events=events, setup=_text(raw.get("setup")))  # fmt: skip


def build(
    manifest: dict[str, Any], *, slug: str, name: str | None = None, version: str | None = None,
    description: str | None = None, definition: dict[str, Any] | None = None,
) -> Reference:  # fmt: skip
    """The reference of a connector from its manifest. ``definition``: the raw definition the
    manifest was built from, when known (what its streams write, whether reads see deletions)."""
    auth = manifest.get("auth") if isinstance(manifest.get("auth"), dict) else {}
    facts = stream_facts(definition) if definition else {}
    webhooks = _webhooks(manifest.get("webhooks"))
    deleting = {e.updates for e in webhooks.events if e.deletions} if webhooks else set()
    return Reference(
        slug=slug, name=name or manifest.get("display_name") or manifest.get("name") or slug,
        version=version or str(manifest.get("version") or ""),
        description=_text(description) or _text(manifest.get("description")),
        auth=AuthRef(scheme=str(auth.get("scheme") or "none"),
                     scopes=[str(s) for s in auth.get("scopes") or []]),
        config=config_of(manifest.get("config_schema")),
        config_needs=needs_of(manifest.get("config_schema")),
        streams=[_stream(s, facts.get(s.get("name"), {}), deleting)  # type: ignore[arg-type]
                 for s in manifest.get("streams") or [] if isinstance(s, dict)],
        actions=[_action(a) for a in manifest.get("actions") or [] if isinstance(a, dict)],
        webhooks=webhooks,
    )  # fmt: skip


def stream_facts(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per stream of a raw definition: the writes it makes and whether reads see deletions."""
    out = {}
    for stream in definition.get("streams") or []:
        write = stream.get("write") or {}
        made = {w for key, writes in _WRITE_KEYS.items() if key in write for w in writes}
        out[stream["name"]] = {"writes": [w for w in WRITES if w in made],
                               "deletions": stream.get("deleted") is not None}  # fmt: skip
    return out


# ---------------------------------------------------------------------------------- entries


async def get_reference(conn: asyncpg.Connection, slug: str) -> Reference:
    """The reference of the catalog entry ``slug``, from its manifest."""
    row = await repository.get_by_slug(conn, slug)
    if row is None:
        raise CatalogEntryNotFound(f"no connector '{slug}' in the catalog")
    manifest = row["manifest"] or {}
    definition = None
    if row["published_by_tenant"] is None:  # the platform's own: maybe from its definition
        definition = await asyncio.to_thread(platform_definition, slug, manifest)
    return build(manifest, slug=slug, name=row["name"], version=row["version"],
                 description=row["description"], definition=definition)  # fmt: skip


def platform_definition(
    slug: str, manifest: dict[str, Any], folder: Path = catalog_definitions.DEFINITIONS
) -> dict[str, Any] | None:
    """The raw definition of the platform's entry ``slug`` if that file builds exactly this
    manifest (the catalog was loaded from it and neither has changed since), else None."""
    path = folder / f"{slug}.yaml"
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return None
    found = _built(str(path), stamp)
    if found is None:
        return None
    raw, built = found
    same = {k: v for k, v in manifest.items() if k != "display_name"} == built
    return raw if same else None


@lru_cache(maxsize=128)
def _built(path: str, stamp: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """A definition file's raw data and the manifest it builds (by path and modification
    time: the same file is loaded once)."""
    where = Path(path)
    try:
        found = catalog_definitions.of(where.stem, where.parent)
    except ValueError:  # it does not load: nothing to read from it
        return None
    if found is None:
        return None
    built = {k: v for k, v in found.manifest.items() if k != "display_name"}
    # as the catalog keeps it (JSON): tuples are lists
    return found.definition.raw, json.loads(json.dumps(built))
