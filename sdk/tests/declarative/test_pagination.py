"""Each pagination kind of the definition format, run by the generic connector (a real process
serving definitions written here) against a real HTTP API (paged_api.py), through the contract:
pages are read with the contract's cursor until ``has_more`` is false, every record arrives
exactly once, and a cursor taken from the middle or the end of a read resumes where it should."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from seedos_sdk.testing import serve

SDK = Path(__file__).resolve().parents[2]
ALL = [f"i{n:02d}" for n in range(23)]
ITEM = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                   "updated": {"type": "string"}, "created": {"type": "integer"}},
    "required": ["id"],
}  # fmt: skip


def _definition(name: str, stream: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"definition_version": 1, "name": name, "version": "1.0.0",
            "base_url": "{{ config.base_url }}", "auth": {"type": "none"},
            "streams": [{"name": "items", "primary_key": "id", "schema": ITEM, **stream}],
            **top}  # fmt: skip


DEFINITIONS = [
    _definition("body-cursor", {
        "request": {"path": "/body-cursor", "query": {"limit": 5}},
        "records": "data",
        "pagination": {"type": "cursor", "from": "body", "select": "next_cursor",
                       "param": "cursor"},
    }),
    _definition("header-cursor", {
        "request": {"path": "/header-cursor", "query": {"per_page": 5}},
        "pagination": {"type": "cursor", "from": "header", "header": "X-Next-Page-Token",
                       "param": "X-Page-Token", "in": "header"},
    }, auth={"type": "bearer", "token": "{{ credentials.token }}"}),
    # Stripe: newest first; the next page starts after the last record's id while has_more
    _definition("stripe-like", {
        "request": {"path": "/v1/customers", "query": {"limit": 5}},
        "records": "data",
        "pagination": {"type": "cursor", "from": "last_record", "select": "id",
                       "param": "starting_after", "has_more": "has_more"},
    }, auth={"type": "basic", "username": "{{ credentials.api_key }}"}),
    # GitHub: the Link header names https://api.example.com; the base URL here has a path
    _definition("github-like", {
        "request": {"path": "/repos/{{ config.owner }}/{{ config.repo }}/issues",
                    "query": {"per_page": 5}},
        "pagination": {"type": "link"},
    }),
    _definition("offset", {
        "request": {"path": "/offset"},
        "records": "items",
        "pagination": {"type": "offset", "offset_param": "offset", "limit_param": "limit",
                       "limit": "{{ config.page_size }}"},
    }),
    _definition("page", {
        "request": {"path": "/pages"},
        "records": "items",
        "pagination": {"type": "page", "page_param": "page", "start": 0, "size_param": "size",
                       "size": 10},
    }),
    _definition("watermark", {
        "request": {"path": "/watermark", "query": {"limit": 5}},
        "records": "items",
        "incremental": {"cursor_field": "updated", "param": "since", "format": "epoch",
                        "start": "2024-01-01T00:05:00Z", "lookback_seconds": 120},
        "pagination": {"type": "watermark", "has_more": "has_more"},
    }),
    _definition("start-from-config", {
        "request": {"path": "/watermark", "query": {"limit": 5}},
        "records": "items",
        "incremental": {"cursor_field": "updated", "param": "updated_after",
                        "start": "{{ config.start }}"},
        "pagination": {"type": "watermark", "has_more": "has_more"},
    }),
    _definition("offset-since", {
        "request": {"path": "/offset"},
        "records": "items",
        "incremental": {"cursor_field": "updated", "param": "updated_after",
                        "start": "2024-01-01T00:00:00Z"},
        "pagination": {"type": "offset", "offset_param": "offset", "limit_param": "limit",
                       "limit": 5},
    }),
    _definition("page-since", {
        "request": {"path": "/pages", "query": {"size": 5}},
        "records": "items",
        "incremental": {"cursor_field": "updated", "param": "updated_after",
                        "start": "2024-01-01T00:00:00Z"},
        "pagination": {"type": "page", "page_param": "page", "start": 0},
    }),
    _definition("cursor-since", {
        "request": {"path": "/body-cursor", "query": {"limit": 5}},
        "records": "data",
        "incremental": {"cursor_field": "updated", "param": "updated_after",
                        "start": "2024-01-01T00:00:00Z"},
        "pagination": {"type": "cursor", "from": "body", "select": "next_cursor",
                       "param": "cursor"},
    }),
    # GitHub's rate limit: a 403 whose headers say the limit is spent and when it resets
    _definition("rate-limited", {
        "request": {"path": "/limited", "query": {"limit": 5}},
        "records": "items",
        "incremental": {"cursor_field": "updated", "param": "updated_after",
                        "start": "2024-01-01T00:00:00Z"},
        "pagination": {"type": "watermark", "has_more": "has_more"},
    }, errors={"rate_limit": {"remaining_header": "x-ratelimit-remaining",
                              "reset_header": "x-ratelimit-reset"}}),
    # GraphQL: the cursor and the incremental value are variables in the JSON body
    _definition("graphql", {
        "request": {"method": "POST", "path": "/graphql", "body": {
            "query": "query($first: Int, $after: String, $since: String) { items(first: $first,"
                     " after: $after, since: $since) { nodes { id } pageInfo { endCursor"
                     " hasNextPage } } }",
            "variables": {"first": 5}}},
        "records": "data.items.nodes",
        "incremental": {"cursor_field": "updated", "param": "variables.since", "in": "body",
                        "start": "2024-01-01T00:00:00Z"},
        "pagination": {"type": "cursor", "from": "body", "select": "data.items.pageInfo.endCursor",
                       "param": "variables.after", "in": "body",
                       "has_more": "data.items.pageInfo.hasNextPage"},
    }),
    # Zoho's lists: the incremental value in a header, as an HTTP date
    _definition("if-modified-since", {
        "request": {"path": "/modified-since"},
        "records": "items",
        "incremental": {"cursor_field": "updated", "param": "If-Modified-Since", "in": "header",
                        "format": "http_date"},
    }),
    # Graph's and Twilio's: the next page's URL in the answer's body
    _definition("body-link", {
        "request": {"path": "/body-link"},
        "records": "value",
        "pagination": {"type": "link", "from": "body", "select": '"@odata.nextLink"'},
    }),
    # a GraphQL API answering errors with 200: retried when it says so, else refused
    _definition("graphql-errors", {
        "request": {"method": "POST", "path": "/graphql-throttled", "retry": True,
                    "body": {"query": "{ items { nodes { id } } }"}},
        "records": "data.items.nodes",
    }, errors={"when": "errors != null", "message": "errors[0].message",
               "retry_when": "errors[?extensions.code == 'THROTTLED'] | length(@) > `0`"},
       actions=[{"name": "ask", "input_schema": {"type": "object"},
                 "request": {"method": "POST", "path": "/graphql-throttled",
                             "body": {"query": "{ nonsense }"}}}]),
    # page numbers in the body
    _definition("page-body", {
        "request": {"method": "POST", "path": "/page-body", "body": {"paging": {"size": 9}},
                    "retry": True},
        "records": "items",
        "pagination": {"type": "page", "page_param": "paging.page", "in": "body"},
    }),
    # Jira's JQL: the read's filter value only inside a template
    _definition("jql", {
        "request": {"path": "/jql", "query": {
            "jql": 'project = X{% if since %} AND updated > "{{ since }}"{% endif %}'
                   " ORDER BY updated ASC"}},
        "records": "issues",
        "incremental": {"cursor_field": "updated"},
    }),
    # a filter "at or after" the watermark: a page all of one value would be asked for again
    _definition("watermark-from", {
        "request": {"path": "/watermark", "query": {"limit": 5}},
        "records": "items",
        "incremental": {"cursor_field": "updated", "param": "updated_from"},
        "pagination": {"type": "watermark", "has_more": "has_more"},
    }),
    _definition("not-rate-limited", {  # the same API, its rate limit not described
        "request": {"path": "/limited", "query": {"limit": 5}},
        "records": "items",
    }),
]  # fmt: skip


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    with serve("tests.declarative.paged_api:create_app", factory=True, cwd=SDK) as served:
        yield served.url


@pytest.fixture(scope="module")
def generic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The generic connector serving DEFINITIONS: each one's URL, by name."""
    folder = tmp_path_factory.mktemp("definitions")
    for definition in DEFINITIONS:
        (folder / f"{definition['name']}.yaml").write_text(yaml.safe_dump(definition))
    # the paged API is on loopback, which the egress rule must list
    env = {"SEEDOS_DEFINITIONS": str(folder), "SEEDOS_EGRESS_ALLOWED_NETWORKS": "127.0.0.0/8"}
    with serve("seedos_sdk.declarative.server:app_factory", factory=True, cwd=SDK,
               env=env) as served:  # fmt: skip
        listing = httpx.get(served.url + "/definitions", timeout=10).json()
        assert listing["refused"] == {}
        yield {d["name"]: served.url + d["path"] for d in listing["items"]}


@pytest.fixture
def api(api_url: str) -> Iterator[httpx.Client]:
    """The paged API, its items as they were and its request log empty."""
    with httpx.Client(base_url=api_url, timeout=10) as client:
        client.post("/admin/reset").raise_for_status()
        yield client


def read(url: str, config: dict[str, Any], cursor: str | None = None, *,
         credentials: dict[str, str] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Every page of one read of the stream, from ``cursor`` until has_more is false."""
    pages: list[dict[str, Any]] = []
    while len(pages) < 50:
        body = {"config": config, "credentials": credentials or {}, "cursor": cursor}
        response = httpx.post(f"{url}/streams/items/read", json=body, timeout=30)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return pages
    raise AssertionError(f"no end after 50 pages: {pages[-1]}")


def ids(pages: list[dict[str, Any]]) -> list[str]:
    return [record["id"] for page in pages for record in page["records"]]


def state(page: dict[str, Any]) -> dict[str, Any]:
    return json.loads(page["next_cursor"])


def epoch(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def queries(api: httpx.Client, key: str) -> list[Any]:
    return [entry["query"].get(key) for entry in api.get("/admin/log").json()]


CASES = [
    # name, credentials, records per page, order of the ids
    pytest.param("body-cursor", {}, [5, 5, 5, 5, 3], ALL, id="body-cursor"),
    pytest.param("header-cursor", {"token": "paged-token"}, [5, 5, 5, 5, 3], ALL,
                 id="header-cursor"),
    pytest.param("stripe-like", {"api_key": "sk_test_paged"}, [5, 5, 5, 5, 3], ALL[::-1],
                 id="stripe-like"),
    pytest.param("github-like", {}, [5, 5, 5, 5, 3], ALL, id="github-like"),
    pytest.param("offset", {}, [5, 5, 5, 5, 3], ALL, id="offset"),
    # a page-number read ends at the first empty page
    pytest.param("page", {}, [10, 10, 3, 0], ALL, id="page"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "credentials", "sizes", "order"), CASES)
def test_every_record_arrives_once_and_a_cursor_resumes(
    name, credentials, sizes, order, generic, api, api_url
):
    config = {"base_url": api_url + ("/gh" if name == "github-like" else ""),
              "owner": "octo", "repo": "hello", "page_size": 5}  # fmt: skip
    pages = read(generic[name], config, credentials=credentials)
    assert [len(p["records"]) for p in pages] == sizes
    assert ids(pages) == order
    assert [p["has_more"] for p in pages] == [True] * (len(pages) - 1) + [False]
    assert state(pages[-1]) == {"w": None, "p": None}  # no incremental field: start over

    # a read stopped after its second page resumes from the contract cursor with the rest
    resumed = read(generic[name], config, pages[1]["next_cursor"], credentials=credentials)
    assert ids(resumed) == order[sum(sizes[:2]) :]
    # the read that is complete starts over
    assert ids(read(generic[name], config, pages[-1]["next_cursor"],
                    credentials=credentials)) == order  # fmt: skip


def test_cursor_pagination_sends_each_token_where_it_is_said(generic, api, api_url):
    config = {"base_url": api_url}
    body_pages = read(generic["body-cursor"], config)
    assert state(body_pages[0])["p"] == "NQ=="  # the body's next_cursor, as the API wrote it
    read(generic["header-cursor"], config, credentials={"token": "paged-token"})
    read(generic["stripe-like"], config, credentials={"api_key": "sk_test_paged"})
    log = api.get("/admin/log").json()
    by_path: dict[str, list[dict[str, Any]]] = {}
    for entry in log:
        by_path.setdefault(entry["path"], []).append(entry)
    assert [e["query"].get("cursor") for e in by_path["/body-cursor"]] == [
        None, "NQ==", "MTA=", "MTU=", "MjA="]  # fmt: skip
    assert [e["page_token"] for e in by_path["/header-cursor"]] == [None, "5", "10", "15", "20"]
    assert [e["query"].get("starting_after") for e in by_path["/v1/customers"]] == [
        None, "i18", "i13", "i08", "i03"]  # fmt: skip


def test_a_link_is_put_on_the_configured_base_url(generic, api, api_url):
    """GitHub's Link header names api.example.com: the next page keeps the link's path and
    query, on the configured base URL and under its own path."""
    config = {"base_url": api_url + "/gh", "owner": "octo", "repo": "hello"}
    body = {"config": config, "credentials": {}, "cursor": None}
    page = httpx.post(f"{generic['github-like']}/streams/items/read", json=body, timeout=30)
    assert page.status_code == 200, page.text
    following = f"{api_url}/gh/repos/octo/hello/issues?per_page=5&page=2"
    assert page.json()["has_more"] and state(page.json()) == {"w": None, "p": following}


def test_link_pages_are_fetched_from_the_configured_base_url(generic, api, api_url):
    config = {"base_url": api_url + "/gh", "owner": "octo", "repo": "hello"}
    read(generic["github-like"], config)
    log = api.get("/admin/log").json()
    assert {e["path"] for e in log} == {"/gh/repos/octo/hello/issues"}
    assert [e["query"] for e in log] == [
        {"per_page": "5"}, *({"per_page": "5", "page": str(n)} for n in range(2, 6))]  # fmt: skip


def test_offset_and_page_numbers_are_sent_as_configured(generic, api, api_url):
    config = {"base_url": api_url, "page_size": 5}
    read(generic["offset"], config)
    assert queries(api, "offset") == ["0", "5", "10", "15", "20"]
    assert set(queries(api, "limit")) == {"5"}
    api.post("/admin/reset")
    read(generic["page"], config)
    assert queries(api, "page") == ["0", "1", "2", "3"]
    assert set(queries(api, "size")) == {"10"}


def test_incremental_start_epoch_and_lookback(generic, api, api_url):
    config = {"base_url": api_url}
    first = read(generic["watermark"], config)
    # first sync: `start` as seconds; each next page from the last record's `updated`
    assert queries(api, "since") == [str(epoch(f"2024-01-01T00:{m:02d}:00Z"))
                                     for m in (5, 10, 15, 20)]  # fmt: skip
    assert ids(first) == ALL[6:]
    assert state(first[-1]) == {"w": "2024-01-01T00:22:00Z", "p": None}

    # a change after the sync; the next sync starts lookback_seconds (120) before the last value
    api.post("/admin/items/i03/touch", params={"minutes": 30}).raise_for_status()
    log_before = len(api.get("/admin/log").json())
    second = read(generic["watermark"], config, first[-1]["next_cursor"])
    sent = queries(api, "since")[log_before:]
    assert sent[0] == str(epoch("2024-01-01T00:20:00Z"))
    assert ids(second) == ["i21", "i22", "i03"]  # the lookback re-reads two; the change once
    assert state(second[-1]) == {"w": "2024-01-01T00:30:00Z", "p": None}

    # a sync stopped mid-way resumes from the last record seen, without going back
    mid = read(generic["watermark"], config, first[0]["next_cursor"])
    assert ids(mid)[:1] == ["i11"]


@pytest.mark.parametrize("name", ["offset-since", "page-since", "cursor-since"])
def test_incremental_with_positional_pages_reads_every_record(name, generic, api, api_url):
    pages = read(generic[name], {"base_url": api_url})
    assert ids(pages) == ALL[1:]


def test_a_start_templated_from_the_config_is_rendered(generic, api, api_url):
    pages = read(generic["start-from-config"],
                 {"base_url": api_url, "start": "2024-01-01T00:05:00Z"})  # fmt: skip
    assert queries(api, "updated_after")[0] == "2024-01-01T00:05:00Z"
    assert ids(pages) == ALL[6:]


@pytest.mark.parametrize("style", ["headers", "retry_after"])
def test_a_spent_rate_limit_is_waited_for_as_the_api_says(style, generic, api, api_url):
    api.post("/admin/limit", params={"answers": 1, "reset_in": 1, "style": style})
    began = time.monotonic()
    pages = read(generic["rate-limited"], {"base_url": api_url})
    assert ids(pages) == ALL[1:]  # strictly after the start: the first item is at it
    assert time.monotonic() - began >= 0.9  # until the limit reset, not at once
    log = api.get("/admin/log").json()
    assert len(log) == len(pages) + 1, log  # the refused request, again


def test_a_limit_that_resets_later_than_a_client_waits_is_retryable(generic, api, api_url):
    api.post("/admin/limit", params={"answers": 1, "reset_in": 3600})
    body = {"config": {"base_url": api_url}, "credentials": {}, "cursor": None}
    r = httpx.post(f"{generic['rate-limited']}/streams/items/read", json=body, timeout=30)
    problem = r.json()
    assert r.status_code in (429, 503) and problem["category"] == "retryable", problem
    assert 3500 <= int(r.headers["retry-after"]) <= 3602
    assert len(api.get("/admin/log").json()) == 1  # asked once: not an hour of waiting


@pytest.mark.parametrize("reset", ["inf", "1e999", "nan", "soon", "-5"])
def test_a_reset_header_that_is_no_time_is_retried_at_once(reset, generic, api, api_url):
    api.post("/admin/limit", params={"answers": 1, "reset": reset})
    pages = read(generic["rate-limited"], {"base_url": api_url})
    assert ids(pages) == ALL[1:]
    assert len(api.get("/admin/log").json()) == len(pages) + 1


def test_without_its_rate_limit_described_a_403_is_no_access(generic, api, api_url):
    api.post("/admin/limit", params={"answers": 1, "reset_in": 1})
    body = {"config": {"base_url": api_url}, "credentials": {}, "cursor": None}
    r = httpx.post(f"{generic['not-rate-limited']}/streams/items/read", json=body, timeout=30)
    assert r.json()["category"] != "retryable", r.text


def test_graphql_variables_carry_the_cursor_and_the_incremental_value(generic, api, api_url):
    pages = read(generic["graphql"], {"base_url": api_url})
    assert ids(pages) == ALL[1:] and len(pages) == 5
    sent = [entry["body"]["variables"] for entry in api.get("/admin/log").json()]
    assert sent[0] == {"first": 5, "since": "2024-01-01T00:00:00Z"}  # the rest of the body kept
    assert [v.get("after") for v in sent] == [None, "i05", "i10", "i15", "i20"]
    assert all(v["since"] == "2024-01-01T00:00:00Z" for v in sent)  # the read's filter, kept
    assert all("items(first:" in e["body"]["query"] for e in api.get("/admin/log").json())
    # the next sync sends the watermark as the variable
    api.post("/admin/reset")
    later = read(generic["graphql"], {"base_url": api_url}, pages[-1]["next_cursor"])
    assert ids(later) == []
    assert api.get("/admin/log").json()[0]["body"]["variables"]["since"] == "2024-01-01T00:22:00Z"


def test_an_incremental_value_in_a_header_as_an_http_date(generic, api, api_url):
    first = read(generic["if-modified-since"], {"base_url": api_url})
    assert ids(first) == ALL
    api.post("/admin/items/i03/touch", params={"minutes": 30})
    again = read(generic["if-modified-since"], {"base_url": api_url}, first[-1]["next_cursor"])
    assert ids(again) == ["i03"]
    log = api.get("/admin/log").json()
    assert log[0]["if_modified_since"] is None  # a first sync: no header
    assert log[-1]["if_modified_since"] == "Mon, 01 Jan 2024 00:22:00 GMT"


def test_a_next_link_in_the_body_is_followed_on_the_configured_base(generic, api, api_url):
    pages = read(generic["body-link"], {"base_url": api_url})
    assert ids(pages) == ALL and len(pages) == 5
    assert [e["query"].get("$skip") for e in api.get("/admin/log").json()] == [
        None, "5", "10", "15", "20"]  # fmt: skip
    assert state(pages[0])["p"] == f"{api_url}/body-link?$skip=5"  # on the base, not the host


def test_errors_in_a_successful_answer(generic, api, api_url):
    """THROTTLED with a 200 is a retryable error (the platform tries the page again later);
    an error the API says is a refusal, with its message; a clean answer reads as ever."""
    url = generic["graphql-errors"]
    api.post("/admin/limit", params={"answers": 1})
    body = {"config": {"base_url": api_url}, "credentials": {}, "cursor": None}
    r = httpx.post(f"{url}/streams/items/read", json=body, timeout=30)
    assert r.json()["category"] == "retryable" and "Throttled" in r.json()["detail"], r.text
    assert ids(read(url, {"base_url": api_url})) == ALL[:3]
    r = httpx.post(f"{url}/actions/ask", timeout=30, json={
        "config": {"base_url": api_url}, "credentials": {}, "input": {}})  # fmt: skip
    assert r.status_code == 422 and r.json()["category"] == "permanent", r.text
    assert "Field 'nonsense' doesn't exist" in r.json()["detail"]


def test_page_numbers_in_the_body(generic, api, api_url):
    pages = read(generic["page-body"], {"base_url": api_url})
    assert ids(pages) == ALL
    sent = [e["body"] for e in api.get("/admin/log").json()]
    assert sent[0] == {"paging": {"size": 9, "page": 1}}
    assert [b["paging"]["page"] for b in sent] == [1, 2, 3, 4]  # the 4th is empty: the end


def test_the_reads_filter_value_in_a_template(generic, api, api_url):
    first = read(generic["jql"], {"base_url": api_url})
    assert ids(first) == ALL
    api.post("/admin/items/i04/touch", params={"minutes": 40})
    again = read(generic["jql"], {"base_url": api_url}, first[-1]["next_cursor"])
    assert ids(again) == ["i04"]
    sent = [e["query"]["jql"] for e in api.get("/admin/log").json()]
    assert sent[0] == "project = X ORDER BY updated ASC"  # a first sync: no filter yet
    assert sent[-1] == 'project = X AND updated > "2024-01-01T00:22:00Z" ORDER BY updated ASC'


def test_a_page_stuck_on_one_cursor_value_is_an_error_not_a_loop(generic, api, api_url):
    for n in range(8):  # more records with one updated time than a page holds
        api.post(f"/admin/items/i{n:02d}/touch", params={"minutes": 50})
    body = {"config": {"base_url": api_url}, "credentials": {}, "cursor": json.dumps(
        {"w": "2024-01-01T00:50:00Z", "p": 1})}  # a read under way, at that value  # fmt: skip
    r = httpx.post(f"{generic['watermark-from']}/streams/items/read", json=body, timeout=30)
    assert r.status_code >= 400 and "would never end" in r.json()["detail"], r.text
    assert len(api.get("/admin/log").json()) == 1  # asked once, not over and over
