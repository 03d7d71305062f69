"""What a review of the first cut found a definition could do, each now refused: a YAML alias
bomb, templates and selectors that allocate without bound, requests (and resumed links) to
another origin carrying the install's credentials, a query-string credential kept in the
contract cursor, a write batch failed by one answer that is not JSON, a cursor value that cannot
be formatted, dot keys that move a path up, a size counted in characters."""

from __future__ import annotations

import copy
import json

import httpx
import pytest
import yaml

from seedos_sdk.connector import Context
from seedos_sdk.declarative import DefinitionError, build, load
from seedos_sdk.declarative.engine import DefinedClient, _format, _next
from seedos_sdk.declarative.templates import Selector, Template, TemplateProblem
from seedos_sdk.errors import PermanentError
from tests.declarative.test_definitions import BASE, problems


def test_yaml_anchors_and_aliases_are_refused_before_anything_is_built():
    bomb = "a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    assert problems(bomb) == ["(file): YAML anchors and aliases (&, *) are not allowed"]


def test_the_size_limit_counts_bytes():
    text = yaml.safe_dump({**BASE, "description": "é" * 600_000})  # 1.2 MB, 0.6 M characters
    assert problems(text) == ["(file): larger than 1048576 bytes"]


@pytest.mark.parametrize("source", [
    "{{ [1] * 10000000 }}", "{{ 'a' * 100000000 }}", "{{ now * 10000000 }}",
    "{{ '%0100000000d' % 1 }}", "{{ '%*d' % (100000000, 1) }}",
])  # fmt: skip
def test_operators_build_nothing_unbounded(source):
    with pytest.raises(TemplateProblem, match=r"not built here|not allowed"):
        Template(source).render({"now": "2024-01-01T00:00:00+00:00"})


def test_operators_still_work_within_bounds():
    assert Template("{{ 'ab' * 3 }}").render({}) == "ababab"
    assert Template("{{ n * 2 + 1 }}").render({"n": 4}) == 9
    assert Template("{{ n % 3 }}").render({"n": 10}) == 1


def test_a_rendered_value_is_bounded():
    with pytest.raises(TemplateProblem, match="renders longer than"):
        Template("x{{ record.text }}").render({"record": {"text": "a" * 70_000}})


def test_join_takes_a_literal_separator_only():
    with pytest.raises(TemplateProblem, match="join's separator must be a literal"):
        Selector("join(to_string(@), items)")
    assert Selector("join(', ', items)").search({"items": ["a", "b"]}) == "a, b"


def test_a_fixed_absolute_path_is_refused_at_load():
    raw = copy.deepcopy(BASE)
    raw["check"] = {"request": {"path": "https://collector.example/keys"}}
    raw["streams"][0]["request"]["path"] = "//elsewhere.example/things"
    assert problems(raw) == [
        "check.request.path: a path on base_url, not a URL of its own (the install's"
        " credentials go to the API's origin only)",
        "streams[0].request.path: a path on base_url, not a URL of its own (the install's"
        " credentials go to the API's origin only)",
    ]


async def test_a_templated_url_to_another_origin_is_refused_before_connecting():
    attempts: list[httpx.Request] = []

    def transport(request: httpx.Request) -> httpx.Response:  # nothing is sent: recorded
        attempts.append(request)
        return httpx.Response(200, json={})

    client = DefinedClient(base_url="http://127.0.0.1:9", retry_statuses=None, message=None,
                           headers={"X-API-Key": "SECRET"},
                           transport=httpx.MockTransport(transport))  # fmt: skip
    for url in ("http://127.0.0.2:9/collect", "//127.0.0.2:9/collect", "https://127.0.0.1:9/x"):
        with pytest.raises(PermanentError) as refused:
            await client.get(url)
        assert refused.value.code == "foreign_origin"
    await client.get("/v1/things")
    await client.get("http://127.0.0.1:9/v1/things?page=2")  # its own origin: fine
    assert [str(r.url) for r in attempts] == [
        "http://127.0.0.1:9/v1/things", "http://127.0.0.1:9/v1/things?page=2"]  # fmt: skip
    await client.aclose()


def test_a_next_link_keeps_no_query_credential_and_resolves_relative_links():
    client = DefinedClient(base_url="http://127.0.0.1:9/api", retry_statuses=None, message=None,
                           params={"api_key": "SECRET"})  # fmt: skip
    ctx = Context(config={}, credentials={}, connector=None)  # type: ignore[arg-type]
    ctx.http = client
    request = httpx.Request("GET", "http://127.0.0.1:9/api/items?api_key=SECRET&page=1")
    for link, expected in (
        ("<https://api.example.com/api/items?api_key=SECRET&page=2>; rel=next",
         "http://127.0.0.1:9/api/items?page=2"),
        ("<?api_key=SECRET&page=3>; rel=next", "http://127.0.0.1:9/api/items?page=3"),
    ):  # fmt: skip
        response = httpx.Response(200, json=[], headers={"link": link}, request=request)
        found = _next({"type": "link"}, [], response, [{}], None, {}, ctx)
        assert found == expected
        assert "SECRET" not in json.dumps(found)


def test_a_cursor_value_that_cannot_be_formatted_is_a_permanent_error():
    for value, how in ((1e20, "iso8601"), ("Mon, 01 Jan 2024 00:00:00 GMT", "epoch")):
        with pytest.raises(PermanentError, match="cannot be sent as"):
            _format(value, how)


def test_dot_keys_cannot_move_a_path_up():
    path = Template("/v1/contacts/{{ key | urlencode }}")
    assert path.render({"key": "."}) == "/v1/contacts/%2E"
    assert path.render({"key": ".."}) == "/v1/contacts/%2E%2E"
    assert path.render({"key": "a.b"}) == "/v1/contacts/a.b"


async def test_a_write_answered_with_no_json_is_still_done():
    raw = copy.deepcopy(BASE)
    raw["streams"][0]["write"] = {"upsert": {"method": "PUT", "path": "/things/{{ key }}",
                                             "body": {"from": "record"}}}  # fmt: skip
    connector = build(load(yaml.safe_dump(raw)))

    def transport(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/b"):
            return httpx.Response(200, text="OK")
        return httpx.Response(200, json={"id": request.url.path.rsplit("/", 1)[1]})

    ctx = Context(config={"base_url": "http://127.0.0.1:9"}, credentials={"api_key": "k"},
                  connector=connector)  # fmt: skip
    ctx.http = DefinedClient(base_url="http://127.0.0.1:9", retry_statuses=None, message=None,
                             transport=httpx.MockTransport(transport))  # fmt: skip
    results = await connector.streams["things"].write(ctx, [{"id": k} for k in "abc"], [])
    assert [(r.key, r.ok) for r in results] == [("a", True), ("b", True), ("c", True)]
    assert results[1].record is None
    await ctx.http.aclose()


def test_the_refusals_are_definition_errors_not_crashes():
    with pytest.raises(DefinitionError):
        load("a: &x 1\nb: *x\n")
