"""A catalog entry's generated reference (issue 18, part 4): from the manifest of every platform
definition (and of the hand-written demo CRM connector), what a tenant gets before installing;
GET /api/v1/marketplace/connectors/{slug}/reference as JSON and, asked for, as Markdown, through
the real gateway and marketplace_service on the session's catalog."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from markdown_it import MarkdownIt

from common.roles import Role
from marketplace_service.catalog import definitions as catalog_definitions
from marketplace_service.catalog import reference, reference_markdown
from marketplace_service.catalog.routes import prefers
from marketplace_service.catalog.service import register_deployed
from tests.conftest import ROOT
from tests.support import connected, make_tenant

CONNECTORS = "/api/v1/marketplace/connectors"
PLATFORM = sorted(p.stem for p in catalog_definitions.DEFINITIONS.glob("*.yaml"))
# GitHub's webhooks as a definition declares them (docs/connector-definitions.md, "Webhooks"):
# the manifest carries the section as written
WEBHOOKS = {
    "signature": {"scheme": "github"},
    "setup": "Settings > Webhooks: paste the URL, pick *Issues*.",
    "events": [
        {"types": ["contact"], "stream": "contacts", "record": "contact",
         "deleted": {"when": "action == 'deleted'"}},
        {"types": ["company.*"], "pull": "companies"},
    ],
}  # fmt: skip


def _demo_crm_manifest() -> dict[str, Any]:
    """The hand-written example connector's own manifest (sdk/examples/crm_connector)."""
    path = ROOT / "sdk" / "examples" / "crm_connector" / "connector.py"
    spec = importlib.util.spec_from_file_location("reference_demo_crm_connector", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.connector.manifest()


def _by_name(items: list[Any]) -> dict[str, Any]:
    return {item.name: item for item in items}


def _html(markdown: str) -> str:
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)


# ---------------------------------------------------------------------------------- pure


@pytest.mark.parametrize("slug", PLATFORM)
def test_every_platform_definition_has_a_whole_reference(slug: str) -> None:
    found = catalog_definitions.of(slug)
    assert found is not None
    manifest = json.loads(json.dumps(found.manifest))  # as the catalog keeps it
    ref = reference.build(manifest, slug=slug, definition=found.definition.raw)
    raw = found.definition.raw
    assert [s.name for s in ref.streams] == [s["name"] for s in raw.get("streams", [])]
    assert [a.name for a in ref.actions] == [a["name"] for a in raw.get("actions", [])]
    assert ref.auth.scopes == list(raw["auth"].get("scopes", []))
    for stream, spec in zip(ref.streams, raw.get("streams", []), strict=True):
        names = {f.name for f in stream.fields}
        assert set(spec["schema"].get("properties", {})) <= names, stream.name
        assert stream.primary_key == spec["primary_key"]
        assert stream.incremental == ("incremental" in spec)
        assert stream.writable == ("write" in spec)
        assert (stream.writes is not None) and (bool(stream.writes) == ("write" in spec))
        assert ("delete" in stream.writes) == ("delete" in spec.get("write", {}))
        assert ("read" in stream.deletions_seen_by) == ("deleted" in spec)
    secret = {f.name for f in ref.config if f.secret}
    props = raw.get("config_schema", {}).get("properties", {})
    assert secret == {k for k, v in props.items() if v.get("x-secret")}
    assert {f.name for f in ref.config if f.required} == set(
        raw.get("config_schema", {}).get("required", [])
    )
    webhooks = raw.get("webhooks")
    assert (ref.webhooks is None) == (webhooks is None)
    if webhooks is not None:  # a definition with webhooks: each event says what it updates
        assert [e.types for e in ref.webhooks.events] == [e["types"] for e in webhooks["events"]]
        assert all(e.updates for e in ref.webhooks.events)

    html = _html(reference_markdown.render(ref))
    for stream in ref.streams:
        assert f"<h3><code>{stream.name}</code></h3>" in html
    assert "<script" not in html and html.count("<table>") >= len(ref.streams)


def test_stripe_says_what_it_writes_and_how_it_reads() -> None:
    found = catalog_definitions.of("stripe")
    assert found is not None
    ref = reference.build(found.manifest, slug="stripe", definition=found.definition.raw)
    streams = _by_name(ref.streams)
    customers, charges = streams["customers"], streams["charges"]
    assert customers.writes == ["create", "update", "delete"] and not customers.incremental
    assert "read" not in customers.deletions_seen_by  # a deleted customer just leaves the list
    assert charges.incremental and charges.cursor_field == "created"
    assert charges.writable is False and charges.writes == []
    fields = _by_name(customers.fields)
    assert fields["email"].type == "string" and fields["email"].nullable
    assert fields["id"].required and not fields["id"].nullable
    config = _by_name(ref.config)
    assert config["api_key"].secret and config["api_key"].required
    assert config["api_key"].default is None
    assert config["base_url"].default == "https://api.stripe.com"
    refund = _by_name(ref.actions)["refund_charge"]
    assert not refund.idempotent
    assert _by_name(refund.input)["reason"].type == (
        'one of "duplicate", "fraudulent", "requested_by_customer"'
    )
    assert _by_name(refund.output)["object"].type == 'constant "refund"'


def test_nested_fields_types_and_rules_in_words() -> None:
    schema = {
        "type": "object",
        "required": ["id"],
        "properties": {
            "id": {"type": "integer"},
            "when": {"type": ["string", "null"], "format": "date-time", "description": " At "},
            "kind": {"enum": ["a", "b", None]},
            "either": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
            "owner": {"type": ["object", "null"], "title": "Owner",
                      "properties": {"login": {"type": "string"}}, "required": ["login"]},
            "tags": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "ids": {"type": "array", "items": {"type": "integer"}},
            }}},
            "free": {},
        },
        "anyOf": [{"required": ["owner"]}, {"required": ["tags", "kind"]}],
    }  # fmt: skip
    fields = reference.fields_of(schema)
    assert [(f.name, f.type, f.nullable, f.required, f.description) for f in fields] == [
        ("either", "string or integer", True, False, None),
        ("free", "any", False, False, None),
        ("id", "integer", False, True, None),
        ("kind", 'one of "a", "b"', True, False, None),
        ("owner", "object", True, False, "Owner"),
        ("owner.login", "string", False, True, None),
        ("tags", "array of object", False, False, None),
        ("tags[].ids", "array of integer", False, False, None),
        ("tags[].name", "string", False, False, None),
        ("when", "string (date-time)", True, False, "At"),
    ]
    needs = reference.needs_of(schema)
    assert [(n.rule, n.groups) for n in needs] == [("any_of", [["owner"], ["tags", "kind"]])]
    deep: dict[str, Any] = {"type": "object", "properties": {}}
    level = deep
    for n in range(10):  # nesting is listed to a depth, not forever
        level["properties"][f"l{n}"] = level = {"type": "object", "properties": {}}
    assert [f.name for f in reference.fields_of(deep)] == ["l0", "l0.l1", "l0.l1.l2", "l0.l1.l2.l3"]


def test_markdown_escapes_what_a_manifest_says() -> None:
    hostile = "Ends | a cell <script>alert(1)</script> [x](https://evil.test) *loud* `tick`"
    manifest = {
        "name": "hostile", "version": "1.0.0", "description": "# Not a heading\n- nor a list",
        "auth": {"scheme": "oauth2", "scopes": ["read|write", "a`b"]},
        "config_schema": {"type": "object", "properties": {
            "token": {"type": "string", "x-secret": True, "title": "<b>Token</b>",
                      "description": hostile, "default": "never shown"}}},
        "streams": [{"name": "things", "primary_key": "id", "cursor_field": None,
                     "writable": False, "description": "1. first",
                     "schema": {"type": "object", "properties": {
                         "id": {"type": "string", "description": hostile},
                         "a|b": {"type": "string"}}}}],
        "actions": [],
    }  # fmt: skip
    ref = reference.build(manifest, slug="hostile")
    assert ref.config[0].default is None  # a secret's default is not shown
    markdown = reference_markdown.render(ref)
    html = _html(markdown)
    assert "<script" not in html and "<b>" not in html and "<a " not in html
    assert "<em>" not in html and html.count("<h1>") == 1 and "<ol" not in html
    assert html.count("<ul>") == 1  # the stream's facts; a description opens no list
    assert "<p>1. first</p>" in html and "# Not a heading - nor a list" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<code>read|write</code>" in html and "<code>a`b</code>" in html
    # every row has as many cells as its header: no pipe broke out of its cell
    for table in re.findall(r"<table>.*?</table>", html, flags=re.S):
        widths = {row.count("<td") or row.count("<th") for row in re.findall(r"<tr>.*?</tr>",
                                                                            table, flags=re.S)}  # fmt: skip
        assert len(widths) == 1, table
    assert "<code>a|b</code>" in html


def test_a_manifest_no_longer_built_by_its_file_says_nothing_of_writes() -> None:
    found = catalog_definitions.of("google-calendar")  # events: written, deletions read
    assert found is not None
    manifest = json.loads(json.dumps({**found.manifest, "display_name": "Google Calendar"}))
    assert reference.platform_definition("google-calendar", manifest) == found.definition.raw
    events = reference.build(manifest, slug="x", definition=found.definition.raw).streams[0]
    assert events.writes == ["create", "update", "delete"] and "read" in events.deletions_seen_by
    changed = copy.deepcopy(manifest)
    changed["streams"][0]["description"] = "Edited since"
    assert reference.platform_definition("google-calendar", changed) is None
    assert reference.platform_definition("no-such-entry", manifest) is None
    events = reference.build(changed, slug="x").streams[0]
    assert events.writable and events.writes is None and "read" not in events.deletions_seen_by


@pytest.mark.parametrize(
    ("accept", "markdown"),
    [
        ("text/markdown", True),
        ("text/markdown, */*;q=0.8", True),
        ("text/*, application/json;q=0.5", True),
        ("text/markdown;q=0.5, application/json", False),
        ("application/json, text/markdown", False),
        ("text/markdown;q=0", False),
        ("*/*", False),
        ("", False),
        ("text/html", False),
        ("TEXT/MARKDOWN; charset=utf-8", True),
        ("text/markdown;q=oops", False),
    ],
)
def test_accept_decides_markdown(accept: str, markdown: bool) -> None:
    assert prefers(accept, "text/markdown") is markdown


# ---------------------------------------------------------------------------------- the API


@pytest.fixture
async def demo_crm(dsn: str) -> AsyncIterator[str]:
    """The hand-written demo CRM connector in the catalog (as seedos up registers it), its
    manifest with webhooks declared; its slug. Removed afterwards."""
    slug = f"demo-crm-{secrets.token_hex(3)}"
    manifest = {**_demo_crm_manifest(), "name": slug, "webhooks": WEBHOOKS}
    async with connected(dsn) as conn:
        assert await register_deployed(conn, manifest=manifest, endpoint_url="http://127.0.0.1:9",
                                       category="crm", vendor="SEED-OS") is None  # fmt: skip
        try:
            yield slug
        finally:
            await conn.execute("DELETE FROM marketplace_connectors WHERE slug = $1", slug)


async def test_the_reference_of_a_platform_entry(suite, dsn) -> None:
    viewer = await make_tenant(dsn, role=Role.viewer)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=viewer.headers) as client:
        r = await client.get(f"{CONNECTORS}/stripe/reference")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        assert "accept" in r.headers["vary"].lower()
        body = r.json()
        detail = (await client.get(f"{CONNECTORS}/stripe")).json()
        assert (body["name"], body["version"]) == (detail["name"], detail["version"])
        assert [s["name"] for s in body["streams"]] == [
            s["name"] for s in detail["manifest"]["streams"]
        ]
        customers = next(s for s in body["streams"] if s["name"] == "customers")
        assert customers["writes"] == ["create", "update", "delete"]  # from its definition
        assert customers["incremental"] is False and customers["primary_key"] == "id"
        email = next(f for f in customers["fields"] if f["name"] == "email")
        assert email == {"name": "email", "type": "string", "nullable": True, "required": False,
                         "description": None}  # fmt: skip
        assert {"name": "api_key", "secret": True, "required": True}.items() <= next(
            f for f in body["config"] if f["name"] == "api_key"
        ).items()

        r = await client.get(f"{CONNECTORS}/github/reference",
                             headers={"accept": "text/markdown"})  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "text/markdown; charset=utf-8"
        assert r.text.startswith("# GitHub ")
        assert "OAuth scopes asked for: `repo`." in r.text
        assert "### `issues`\n" in r.text and "- Read: incremental, by `updated_at`" in r.text
        assert "| `user.login` | string | no | no |" in r.text

        r = await client.get(f"{CONNECTORS}/no-such-connector/reference")
        assert r.status_code == 404 and r.json()["code"] == "connector_not_found"
        r = await client.get(f"{CONNECTORS}/NOT A SLUG/reference")
        assert r.status_code == 422
    async with httpx.AsyncClient(base_url=suite.gateway) as anonymous:
        assert (await anonymous.get(f"{CONNECTORS}/stripe/reference")).status_code == 401


async def test_the_reference_of_a_hand_written_connector(suite, dsn, demo_crm) -> None:
    viewer = await make_tenant(dsn, role=Role.viewer)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=viewer.headers) as client:
        body = (await client.get(f"{CONNECTORS}/{demo_crm}/reference")).json()
        assert body["name"] == "Demo CRM" and body["auth"] == {"scheme": "api_key", "scopes": []}
        contacts = next(s for s in body["streams"] if s["name"] == "contacts")
        # writable, but a hand-written connector does not say which writes; its reads' deletions
        # are not declared either; the provider's webhooks say it sees them
        assert contacts["writable"] is True and contacts["writes"] is None
        assert contacts["deletions"] is True and contacts["deletions_seen_by"] == ["webhooks"]
        assert contacts["cursor_field"] == "updated_at" and contacts["incremental"]
        companies = next(s for s in body["streams"] if s["name"] == "companies")
        assert companies["deletions"] is None and companies["deletions_seen_by"] == []
        action = body["actions"][0]
        assert action["name"] == "create_contact" and action["idempotent"] is False
        assert [(f["name"], f["required"]) for f in action["input"]] == [
            ("email", True), ("first_name", False), ("last_name", False)]  # fmt: skip
        assert [f["name"] for f in action["output"]] == ["email", "id"]
        config = {f["name"]: f for f in body["config"]}
        assert config["api_key"]["secret"] and config["base_url"]["required"]
        assert config["base_url"]["default"] == "http://127.0.0.1:8011"
        assert body["webhooks"] == {
            "scheme": "github", "tolerance_seconds": None,
            "signature": reference.SIGNATURES["github"],
            "setup": "Settings > Webhooks: paste the URL, pick *Issues*.",
            "events": [
                {"types": ["contact"], "updates": "contacts", "carries_record": True,
                 "pull": None, "deletions": True},
                {"types": ["company.*"], "updates": "companies", "carries_record": False,
                 "pull": "companies", "deletions": False},
            ],
        }  # fmt: skip

        r = await client.get(f"{CONNECTORS}/{demo_crm}/reference",
                             headers={"accept": "text/markdown, application/json;q=0.9"})  # fmt: skip
        text = r.text
        assert "- Writes: yes (which writes is not declared)" in text
        assert "- Deletions at the provider: seen through webhooks" in text
        assert "- Deletions at the provider: not declared" in text
        assert "| `company.*` | `companies` | triggers a pull of `companies` |" in text
        assert (
            "Setup at the provider: Settings \\> Webhooks: paste the URL, pick \\*Issues\\*."
            in text
        )
