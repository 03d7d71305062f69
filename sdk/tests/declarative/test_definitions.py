"""Loading a connector definition: what is refused, and said how and where; the template
sandbox and its filters; selectors, bounded ones only."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from seedos_sdk.declarative import DefinitionError, build, load, load_file
from seedos_sdk.declarative.templates import Selector, Template, TemplateProblem

SDK = Path(__file__).resolve().parents[2]
DEMO = SDK / "examples" / "definitions" / "demo-crm.yaml"
ONLY = "is not allowed in a template (only text, {{ expressions }} and {% if %})"
FILTERS = "default, lower, upper, trim, string, int, urlencode, b64encode, tojson, epoch, iso8601"
BASE: dict[str, Any] = {
    "definition_version": 1,
    "name": "things",
    "version": "1.0.0",
    "base_url": "{{ config.base_url }}",
    "auth": {"type": "api_key", "in": "header", "name": "X-Key",
             "value": "{{ credentials.api_key }}"},
    "streams": [{
        "name": "things",
        "primary_key": "id",
        "schema": {"type": "object", "properties": {"id": {"type": "string"},
                                                    "updated_at": {"type": "string"}}},
        "request": {"path": "/things", "query": {"limit": 100}},
        "records": "data",
    }],
}  # fmt: skip


def definition(**changes: Any) -> dict[str, Any]:
    """BASE with ``changes``: ``stream__x=v`` sets the first stream's ``x``."""
    out = copy.deepcopy(BASE)
    for key, value in changes.items():
        if key.startswith("stream__"):
            out["streams"][0][key.removeprefix("stream__")] = value
        else:
            out[key] = value
    return out


def problems(raw: dict[str, Any] | str | bytes) -> list[str]:
    text = raw if isinstance(raw, str | bytes) else yaml.safe_dump(raw, sort_keys=False)
    with pytest.raises(DefinitionError) as refused:
        load(text)
    assert str(refused.value).startswith("the connector definition has problems:\n- ")
    return refused.value.problems


def test_the_base_definition_loads():
    assert load(yaml.safe_dump(BASE)).name == "things"


def test_oauth_urls_may_name_the_config_and_add_parameters():
    """Both reach the manifest as written: connector_service renders the URLs with an install's
    config when a tenant connects (tests/connector_service/test_oauth.py)."""
    auth = {"type": "oauth2", "authorize_url": "https://{{ config.shop }}.example.com/authorize",
            "token_url": "https://{{ config.shop }}.example.com/token", "scopes": ["read"],
            "authorize_params": {"access_type": "offline"}}  # fmt: skip
    manifest = build(load(yaml.safe_dump(definition(auth=auth)))).manifest()
    assert manifest["auth"] == {"scheme": "oauth2", "authorize_url": auth["authorize_url"],
                                "token_url": auth["token_url"], "scopes": ["read"],
                                "authorize_params": {"access_type": "offline"}}  # fmt: skip
    linear = build(load(yaml.safe_dump(definition(auth={**auth, "scope_separator": ","}))))
    assert linear.manifest()["auth"]["scope_separator"] == ","
    for own in ("state", "redirect_uri", "client_id", "scope", "code_challenge"):
        refused = problems(definition(auth={**auth, "authorize_params": {own: "x"}}))
        assert any(p.startswith("auth") for p in refused), refused


# ------------------------------------------------------------------------- every problem


def test_every_schema_problem_is_listed_with_where_it_is():
    raw = definition(version="1.0", extra=True,
                     auth={"type": "api_key", "in": "cookie", "name": "X-Key"})  # fmt: skip
    raw["streams"][0]["request"]["method"] = "FETCH"
    raw["streams"][0]["pagination"] = {"type": "pages"}
    raw["streams"].append({"name": "Bad Name", "primary_key": "id", "schema": {},
                           "request": {"query": {"a": [1]}}})  # fmt: skip
    assert problems(raw) == [
        "(top): Additional properties are not allowed ('extra' was unexpected)",
        "auth.in: 'cookie' is not one of ['header', 'query']",
        "auth: 'value' is a required property",
        "streams[0].pagination: type 'pages' is not one of: none, watermark, cursor, link,"
        " offset, page",
        "streams[0].request.method: 'FETCH' is not one of ['GET', 'POST', 'PUT', 'PATCH',"
        " 'DELETE']",
        "streams[1].name: 'Bad Name' does not match '^[a-z][a-z0-9_-]{0,62}$'",
        "streams[1].request: 'path' is a required property",
        "streams[1].request.query.a: [1] is not of type 'string', 'number', 'boolean'",
        r"version: '1.0' does not match '^(0|[1-9]\\d*)\\.(0|[1-9]\\d*)\\.(0|[1-9]\\d*)"
        r"(?:-[0-9A-Za-z.-]+)?$'",
    ]  # fmt: skip


def test_every_template_and_selector_problem_is_listed_with_where_it_is():
    raw = definition(
        headers={"X-Trace": "{% for h in config.hops %}{{ h }}{% endfor %}"},
        stream__records="data[?",
        stream__pagination={
            "type": "cursor",
            "from": "body",
            "param": "after",
            "select": "[@, @] | [@, @] | [@, @] | [@, @] | [@, @]",
        },
    )
    raw["streams"][0]["request"]["path"] = "/things/{{ config.__class__ }}"
    assert problems(raw) == [  # in the file's order
        "streams[0].request.path: '__class__': names starting with '_' are not allowed",
        "streams[0].records: not a valid JMESPath selector 'data[?': Invalid jmespath"
        ' expression: Incomplete expression:\n"data[?"\n       ^',
        "streams[0].pagination.select: selector '[@, @] | [@, @] | [@, @] | [@, @] | [@, @]'"
        " can hold what it reads more than 16 times over (a multiselect or function taking"
        " the same value twice, nested or chained with |, multiplies it)",
        f"headers.X-Trace: for {ONLY}",
    ]  # fmt: skip


def test_schema_template_and_selector_problems_are_listed_together():
    raw = definition(version="one", stream__records="data[?")
    raw["streams"][0]["request"]["path"] = "/things/{{ config.__class__ }}"
    assert len(problems(raw)) == 3


# ------------------------------------------------------------------------- the sandbox

ESCAPES = [
    ("{{ config.__class__ }}", "'__class__': names starting with '_' are not allowed"),
    ("{{ x.__init__.__globals__ }}", "'__globals__': names starting with '_' are not allowed"),
    ("{{ (1).__class__ }}", "'__class__': names starting with '_' are not allowed"),
    ("{{ range(9) }}", f"call {ONLY}"),
    ("{{ config.items() }}", f"call {ONLY}"),
    ("{% for x in config %}{{ x }}{% endfor %}", f"for {ONLY}"),
    ("{% set a = 1 %}{{ a }}", f"assign {ONLY}"),
    ("{% include 'other' %}", f"include {ONLY}"),
    ("{% import 'other' as o %}", f"import {ONLY}"),
    ("{% extends 'other' %}", f"extends {ONLY}"),
    ("{% macro m() %}x{% endmacro %}", f"macro {ONLY}"),
    ("{% with a = 1 %}{{ a }}{% endwith %}", f"with {ONLY}"),
    ("{% filter upper %}x{% endfilter %}", f"filterblock {ONLY}"),
    ("{{ config.name[0:9] }}", f"slice {ONLY}"),
    ("{{ 9 ** 999999 }}", f"pow {ONLY}"),
    ("{{ config | attr('mro') }}", f"no filter 'attr' (allowed: {FILTERS}, replace)"),
    ("{{ config | map('upper') }}", f"no filter 'map' (allowed: {FILTERS}, replace)"),
    ("{{ '%s' | format(config) }}", f"no filter 'format' (allowed: {FILTERS}, replace)"),
    ("{{ config is callable }}", "no test 'callable'"),
    ("{{ config.base_url", "not a valid template: unexpected end of template, expected"
                           " 'end of print statement'."),
]  # fmt: skip


@pytest.mark.parametrize(("source", "said"), ESCAPES, ids=[s for s, _ in ESCAPES])
def test_an_escape_attempt_is_refused_where_it_is(source, said):
    raw = definition()
    raw["streams"][0]["request"]["path"] = source
    assert problems(raw) == [f"streams[0].request.path: {said}"]


def test_an_item_is_read_never_an_attribute():
    config = {"base_url": "https://api.example", "name": "x"}
    assert Template("{{ config['__class__'] | default('none') }}").render({"config": config}) \
        == "none"  # fmt: skip
    with pytest.raises(TemplateProblem, match="has no attribute 'upper'"):
        Template("x{{ config.name.upper }}").render({"config": config})
    assert Template("{{ config.base_url }}").render({"config": config}) == config["base_url"]


def test_a_template_longer_than_4096_characters_is_refused():
    raw = definition()
    raw["streams"][0]["request"]["body"] = {"note": "{{ config.a }}" + "x" * 4096}
    assert problems(raw) == ["streams[0].request.body.note: longer than 4096 characters"]


def test_a_name_not_in_scope_is_a_render_error_in_text():
    with pytest.raises(TemplateProblem) as raised:
        Template("/things/{{ nothere }}").render({"config": {}})
    assert str(raised.value) == "'/things/{{ nothere }}': 'nothere' is undefined"


def test_a_lone_expression_reading_a_name_not_in_scope_is_a_render_error():
    with pytest.raises(TemplateProblem, match="'record' is undefined"):
        Template("{{ record.id }}").render({"config": {}})


SCOPE = {"config": {"page_size": 50, "flag": True, "ids": [1, 2], "none": None, "empty": "",
                    "name": "Ada"},
         "credentials": {"user": "ada", "password": "s3cret"}, "cursor": None}  # fmt: skip
RENDERED = [
    ("{{ config.page_size }}", 50),
    ("{{ config.flag }}", True),
    ("{{ config.ids }}", [1, 2]),
    ("{{ config.none }}", None),
    ("{{ cursor }}", None),
    ("{{ config.page_size * 2 }}", 100),
    ("{{ config['name'] }}", "Ada"),
    ("{{ config.ids[0] }}", 1),
    ("{{ config.page_size }} items", "50 items"),
    (" {{ config.page_size }}", " 50"),
    ("{{ config.flag }}{{ config.page_size }}", "True50"),
    ("{% if config.flag %}on{% else %}off{% endif %}", "on"),
    ("{{ config.name | lower }}-{{ config.name | upper }}", "ada-ADA"),
    ("{{ config.name ~ '!' }}", "Ada!"),
    ("{{ config | tojson }}",
     '{"page_size":50,"flag":true,"ids":[1,2],"none":null,"empty":"","name":"Ada"}'),
    ("{{ '42' | int }}", 42),
    ("{{ ' x ' | trim }}", "x"),
    ("{{ config.none | string }}", ""),
    ("{{ 'a-b-c' | replace('-', '_') }}", "a_b_c"),
    # default: for what is missing, None or empty
    ("{{ config.missing | default(1000) }}", 1000),
    ("{{ config.none | default('x') }}", "x"),
    ("{{ config.empty | default('x') }}", "x"),
    ("{{ config.page_size | default(1000) }}", 50),
    ("{{ config.missing | default }}", ""),
    ("{{ record.id | default('new') }}", "new"),
    # urlencode: every reserved character, as a path segment needs
    ("{{ 'a b/c?d=é&' | urlencode }}", "a%20b%2Fc%3Fd%3D%C3%A9%26"),
    # epoch: an ISO 8601 time (or a number) as whole seconds
    ("{{ '2024-01-01T00:00:00Z' | epoch }}", 1704067200),
    ("{{ '2024-01-01T01:00:00+01:00' | epoch }}", 1704067200),
    ("{{ 1704067200.9 | epoch }}", 1704067200),
    # iso8601: seconds as ISO 8601 in UTC; a time kept in its offset, Z written +00:00
    ("{{ 1704067200 | iso8601 }}", "2024-01-01T00:00:00+00:00"),
    ("{{ '2024-01-01T00:00:00Z' | iso8601 }}", "2024-01-01T00:00:00+00:00"),
    ("{{ '2024-01-01T01:00:00+01:00' | iso8601 }}", "2024-01-01T01:00:00+01:00"),
    # b64encode: of the text's UTF-8 (filters bind tighter than ~: group first)
    ("{{ (credentials.user ~ ':' ~ credentials.password) | b64encode }}", "YWRhOnMzY3JldA=="),
    ("{{ credentials.user ~ ':' ~ credentials.password | b64encode }}", "ada:czNjcmV0"),
]  # fmt: skip


@pytest.mark.parametrize(("source", "value"), RENDERED, ids=[s for s, _ in RENDERED])
def test_rendering_keeps_a_lone_expressions_type_and_writes_text_otherwise(source, value):
    rendered = Template(source).render(SCOPE)
    assert rendered == value and type(rendered) is type(value)


@pytest.mark.parametrize(("source", "said"), [
    ("{{ 'abc' | int }}", "\"{{ 'abc' | int }}\": invalid literal for int() with base 10: 'abc'"),
    ("{{ 'soon' | epoch }}", "\"{{ 'soon' | epoch }}\": Invalid isoformat string: 'soon'"),
])  # fmt: skip
def test_a_filter_that_fails_is_a_render_error(source, said):
    with pytest.raises(TemplateProblem) as raised:
        Template(source).render(SCOPE)
    assert str(raised.value) == said


# ------------------------------------------------------------------------- selectors


@pytest.mark.parametrize("source", [
    "results", "data[*].attributes", "items[?deleted].id", "pages[].items[]",
    "next_cursor != null", "{id: id, email: email}", "error.message || message",
    "sort_by(@, &updated_at)", "{record: @, meta: meta}", "[@, @] | [@, @] | [@, @] | [@, @]",
    "a" + ".b" * 100,
])  # fmt: skip
def test_a_bounded_selector_compiles(source):
    Selector(source)


COPIES = (
    "can hold what it reads more than 16 times over (a multiselect or function taking the"
    " same value twice, nested or chained with |, multiplies it)"
)
DEEP = "nests deeper than 32 levels"
UNBOUNDED = [
    ("[@, @] | [@, @] | [@, @] | [@, @] | [@, @]", COPIES),  # 32 times its input
    ("{a: {b: @, c: @, d: @}, e: [@, @, @], f: merge(@, @, @)} | [@, @]", COPIES),
    ("data[*].[@, @, @, @].[@, @, @, @, @]", COPIES),
    ("[" * 33 + "a" + "]" * 33, DEEP),
    ("(" * 499 + "a" + ")" * 499, DEEP),  # deep enough to exhaust the parser's recursion
]  # fmt: skip


@pytest.mark.parametrize(("source", "said"), UNBOUNDED, ids=[s[:40] for s, _ in UNBOUNDED])
def test_an_unbounded_selector_is_refused_where_it_is(source, said):
    shown = repr(source if len(source) <= 60 else source[:57] + "...")
    assert problems(definition(stream__records=source)) == [
        f"streams[0].records: selector {shown} {said}"
    ]


def test_a_selector_that_does_not_compile_is_refused_where_it_is():
    raw = definition(errors={"message": "error.[message"})
    assert problems(raw) == [
        "errors.message: not a valid JMESPath selector 'error.[message': Invalid jmespath"
        ' expression: Incomplete expression:\n"error.[message"\n               ^'
    ]


# ------------------------------------------------------------------------- consistency


def test_each_consistency_problem_is_refused():
    raw = definition(config_schema={"type": "objekt"})
    things = raw["streams"][0]
    things["incremental"] = {"cursor_field": "changed", "param": "since"}
    things["write"] = {"delete": {"method": "DELETE", "path": "/things/{{ key }}"}}
    raw["streams"] += [
        {**copy.deepcopy(BASE["streams"][0]), "primary_key": "key",
         "pagination": {"type": "watermark", "has_more": "more"}},
        {**copy.deepcopy(BASE["streams"][0]), "name": "others", "schema": {"required": 3},
         "pagination": {"type": "cursor", "from": "header", "param": "page"}},
        {**copy.deepcopy(BASE["streams"][0]), "name": "more",
         "pagination": {"type": "cursor", "from": "last_record", "param": "after"}},
    ]  # fmt: skip
    raw["actions"] = [
        {"name": "act", "input_schema": {"properties": []}, "request": {"path": "/a"}},
        {"name": "act", "input_schema": {}, "request": {"path": "/a"}},
    ]
    assert problems(raw) == [
        "streams[1].name: 'things' is defined twice",
        "actions[1].name: 'act' is defined twice",
        "config_schema: not a valid JSON Schema: 'objekt' is not valid under any of the given"
        " schemas",
        "streams[0].incremental.cursor_field: 'changed' is not a property of its schema",
        "streams[0].write: give upsert, or update (and create)",
        "streams[1].primary_key: 'key' is not a property of its schema",
        "streams[1].pagination: watermark pages need incremental (the parameter the last value"
        " is sent in)",
        "streams[2].schema: not a valid JSON Schema: 3 is not of type 'array'",
        "streams[2].pagination.header: needed with from: header",
        "streams[3].pagination.select: needed with from: body or last_record",
        "actions[0].input_schema: not a valid JSON Schema: [] is not of type 'object'",
    ]  # fmt: skip


# ------------------------------------------------------------------------- the file


def test_a_definition_over_1_mib_is_refused_unread():
    text = yaml.safe_dump(BASE) + "#" + "x" * (1024 * 1024)
    assert problems(text) == ["(file): larger than 1048576 bytes"]


@pytest.mark.parametrize("text", ["- a list\n- of things\n", "just text", "", "42"])
def test_a_definition_is_a_mapping(text):
    assert problems(text) == ["(file): a definition is a mapping (name, version, streams ...)"]


def test_yaml_that_does_not_parse_is_refused():
    (said,) = problems("name: [things\n")
    assert said.startswith("(file): not valid YAML: while parsing a flow sequence")


def test_the_demo_crm_loads_and_its_digest_is_the_sha256_of_its_bytes():
    loaded = load_file(DEMO)
    assert (loaded.name, loaded.version) == ("demo-crm-declarative", "1.0.0")
    assert loaded.digest == hashlib.sha256(DEMO.read_bytes()).hexdigest()
    assert [s["name"] for s in loaded.raw["streams"]] == ["contacts", "companies"]
    assert loaded.compiled["actions"][0]["output"].search({"id": "c1", "email": "a@b", "x": 1}) \
        == {"id": "c1", "email": "a@b"}  # fmt: skip


def test_a_deeply_nested_template_is_refused_not_crashed():
    raw = definition()
    raw["streams"][0]["request"]["path"] = "{{ " + "(" * 100 + "1" + ")" * 100 + " }}"
    assert problems(raw) == ["streams[0].request.path: nested too deeply"]


def test_a_get_request_cannot_send_the_cursor_or_the_filter_in_a_body():
    raw = definition(
        stream__incremental={"cursor_field": "updated_at", "param": "since", "in": "body"},
        stream__pagination={"type": "cursor", "from": "body", "select": "next",
                            "param": "after", "in": "body"},
    )  # fmt: skip
    assert problems(raw) == [
        "streams[0].incremental.in: a GET request has no body to send 'since' in",
        "streams[0].pagination.in: a GET request has no body to send 'after' in",
    ]
    raw["streams"][0]["request"]["method"] = "POST"  # a search endpoint, say: fine
    assert load(yaml.safe_dump(raw)).name == "things"


def test_the_watermark_is_the_last_value_or_the_highest():
    from seedos_sdk.declarative.engine import _advance

    rows = [{"created": 30}, {"created": 20}, {"created": 10}]  # newest first (Stripe)
    assert _advance(None, rows, {"cursor_field": "created"}) == 10
    assert _advance(None, rows, {"cursor_field": "created", "cursor_from": "max"}) == 30
    assert _advance(40, rows, {"cursor_field": "created", "cursor_from": "max"}) == 40
    assert _advance(5, [{"other": 1}], {"cursor_field": "created"}) == 5  # nothing to move it
