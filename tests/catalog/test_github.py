"""GitHub's catalog definition (marketplace_service/catalog/definitions/github.yaml), run by the
generic connector, against Prism serving GitHub's own OpenAPI description (@octokit/openapi, npm
packages of tests/catalog/prism).

Prism answers every GitHub path from the description and, started with ``--errors``, refuses a
request that breaks it (query and path parameters: it does not check this description's request
bodies, see below). What it cannot do is paginate: a response's ``Link`` header is the
description's one example, the same on every page; for issues, pull requests and 200 other lists
``<https://api.github.com/resource?page=2>; rel="next"``, a path Prism does not have. Two set-ups
follow from that:

- **Prism alone** (static examples): the first page, its next link put on Prism's address by the
  engine, the page-2 request reaching Prism (and answered 404); a request the description forbids
  refused; an action answered with the description's example.
- **Prism behind GitHub's pagination** (``Pages`` of github_stand_in.py, a loopback proxy
  written here): each request goes to Prism unchanged but for ``Prefer: dynamic=true`` (a fresh
  schema-valid page each time, as real pages differ), and the answer's ``Link`` is rewritten the
  way GitHub's pagination guide shows, ``page=n+1`` of the same URL until page 3. Reads then run
  to their end: the SDK's conformance suite, every page on the configured base, ``since`` as
  GitHub documents it.

Records and action outputs are validated against the description's response schemas (OpenAPI
3.0: ``nullable`` turned into JSON Schema), and request bodies, which Prism lets through here,
against its request body schemas. The generic connector runs with the SDK's socket guard
(``guarded_app``): nothing it does may leave loopback, and a test shows the guard sees it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from seedos_sdk.testing import conformance_suite, serve
from tests.catalog.github_stand_in import (
    LAST_PAGE,
    REPO,
    ROOT,
    Guard,
    Pages,
    Prism,
    description,
    problems,
    validator,
)

DEFINITION = ROOT / "marketplace_service" / "catalog" / "definitions" / "github.yaml"
CREDENTIALS = {"access_token": "gho_prism-does-not-check-tokens"}


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def generic(tmp_path_factory: pytest.TempPathFactory, prism_started: Prism) -> Iterator[str]:
    """The generic connector serving github.yaml (alone): the root URL of the process."""
    folder = tmp_path_factory.mktemp("definitions")
    shutil.copy(DEFINITION, folder / "github.yaml")
    env = {"SEEDOS_DEFINITIONS": str(folder), "UVICORN_LOOP": "asyncio",
           "SEEDOS_EGRESS_ALLOWED_NETWORKS": "127.0.0.0/8"}  # Prism is on loopback  # fmt: skip
    log = tmp_path_factory.mktemp("logs") / "generic.log"
    with serve("tests.catalog.github_stand_in:guarded_app", factory=True, cwd=ROOT, env=env,
               log_path=log) as served:  # fmt: skip
        yield served.url


@pytest.fixture(scope="module")
def github_url(generic: str) -> str:
    listing = httpx.get(generic + "/definitions", timeout=10).json()
    assert listing["refused"] == {} and len(listing["items"]) == 1, listing
    return generic + listing["items"][0]["path"]


@pytest.fixture
def guard(generic: str) -> Iterator[Guard]:
    """The connector's socket guard; the test must leave it with nothing new refused."""
    guard = Guard(generic)
    before = guard.state()
    assert before["loop"].startswith("asyncio."), before  # not uvloop: the guard sees its calls
    yield guard
    assert guard.attempts() == before["attempts"], "the connector tried to leave loopback"


@pytest.fixture(scope="module")
def prism_started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prism]:
    """Prism, starting (it takes seconds to load the description: the generic connector
    starts meanwhile)."""
    prism = Prism(tmp_path_factory.mktemp("prism") / "prism.log")
    try:
        yield prism
    finally:
        prism.stop()


@pytest.fixture(scope="module")
def prism(prism_started: Prism) -> Prism:
    prism_started.wait_ready()
    return prism_started


@pytest.fixture(scope="module")
def pages_server(prism: Prism) -> Iterator[Pages]:
    server = Pages(prism)
    yield server
    server.close()


@pytest.fixture
def pages(pages_server: Pages) -> Pages:
    pages_server.requests.clear()
    return pages_server


@pytest.fixture(scope="module")
def paged_config(pages_server: Pages) -> dict[str, str]:
    return {"base_url": pages_server.url, "owner": "octocat", "repo": "Hello-World"}


@pytest.fixture(scope="module")
def prism_config(prism: Prism) -> dict[str, str]:
    return {"base_url": prism.url, "owner": "octocat", "repo": "Hello-World"}


# ---------------------------------------------------------------------------- helpers


def read_page(url: str, stream: str, config: dict[str, str], cursor: str | None) -> httpx.Response:
    body = {"config": config, "credentials": CREDENTIALS, "cursor": cursor}
    return httpx.post(f"{url}/streams/{stream}/read", json=body, timeout=60)


def read_all(url: str, stream: str, config: dict[str, str],
             cursor: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    pages: list[dict[str, Any]] = []
    while len(pages) < 10:
        answer = read_page(url, stream, config, cursor)
        assert answer.status_code == 200, answer.text
        pages.append(answer.json())
        cursor = pages[-1]["next_cursor"]
        if not pages[-1]["has_more"]:
            return pages
    raise AssertionError(f"no end after 10 pages: {pages[-1]}")


def act(url: str, action: str, config: dict[str, str], data: dict[str, Any]) -> httpx.Response:
    body = {"config": config, "credentials": CREDENTIALS, "input": data}
    return httpx.post(f"{url}/actions/{action}", json=body, timeout=60)


# ------------------------------------------------------------------------------- tests


TestConformance = pytest.mark.usefixtures("guard")(
    conformance_suite(url_fixture="github_url", config="paged_config", credentials=CREDENTIALS)
)


@pytest.mark.parametrize(("stream", "path", "query"), [
    ("issues", f"{REPO}/issues", {"state": "all", "sort": "updated", "direction": "asc",
                                  "per_page": "100"}),
    ("pull_requests", f"{REPO}/pulls", {"state": "all", "sort": "created", "direction": "asc",
                                        "per_page": "100"}),
])  # fmt: skip
def test_every_page_is_read_from_the_configured_base(
    stream, path, query, github_url, paged_config, pages, prism, guard
):
    """GitHub's next links name https://api.github.com; each is fetched from the configured
    base URL, and the read ends on the page without a next link."""
    mark = prism.mark()
    result = read_all(github_url, stream, paged_config)

    assert [p["has_more"] for p in result] == [True] * (LAST_PAGE - 1) + [False]
    following = [json.loads(p["next_cursor"])["p"] for p in result[:-1]]
    assert following == [f"{pages.url}{path}?{urlencode({**query, 'page': n})}"
                         for n in range(2, LAST_PAGE + 1)]  # fmt: skip
    assert [(r["method"], r["path"], r["query"]) for r in pages.requests] == [
        ("GET", path, query), *(("GET", path, {**query, "page": str(n)})
                                for n in range(2, LAST_PAGE + 1))]  # fmt: skip
    # Prism found each request valid, and the records are what the description says
    assert Prism.violations(prism.settled_log(mark, requests=LAST_PAGE)) == []
    operation = validator(path.replace(REPO, "/repos/{owner}/{repo}"), "get", "200")
    for page in result:  # (Prism's pages hold 0 to 5 records)
        assert problems(operation, page["records"]) == []
    assert problems(operation, [{"number": "1347"}]) != []  # the check can fail


def _minute_before(stamp: str) -> str:
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")) - timedelta(minutes=1)
    return moment.isoformat().replace("+00:00", "Z")


def test_since_is_sent_as_github_documents_it(github_url, paged_config, pages, prism, guard):
    """``since`` is the stored watermark less the definition's minute of lookback, written as
    GitHub writes times (``YYYY-MM-DDTHH:MM:SSZ``) and sent on every page of the read; the
    read's last record's ``updated_at`` is the next one."""
    read_all(github_url, "issues", paged_config)
    assert all("since" not in r["query"] for r in pages.requests)  # a first sync reads all

    pages.requests.clear()
    mark = prism.mark()
    stored = "2024-05-01T10:00:00Z"
    result = read_all(github_url, "issues", paged_config, json.dumps({"w": stored, "p": None}))
    sent = [r["query"]["since"] for r in pages.requests]
    assert sent == ["2024-05-01T09:59:00Z"] * LAST_PAGE
    assert Prism.violations(prism.settled_log(mark, requests=LAST_PAGE)) == []

    # Prism's pages may be empty: then the watermark stays where it was
    watermark = ([r["updated_at"] for p in result for r in p["records"]] or [stored])[-1]
    assert json.loads(result[-1]["next_cursor"]) == {"w": watermark, "p": None}
    pages.requests.clear()
    read_page(github_url, "issues", paged_config, result[-1]["next_cursor"])
    assert pages.requests[0]["query"]["since"] == _minute_before(watermark)


def test_a_request_the_description_forbids_is_refused(github_url, prism_config, prism, guard):
    """The check can fail: a stored cursor that is no time sends ``since=yesterday``; Prism
    refuses it as the description says (422), which the contract reports as permanent."""
    mark = prism.mark()
    answer = read_page(github_url, "issues", prism_config, "yesterday")
    assert answer.status_code == 422, answer.text
    assert answer.json()["category"] == "permanent"
    assert f"GET {REPO}/issues answered 422" in answer.json()["detail"]
    refused = Prism.violations(prism.settled_log(mark, requests=1))
    assert '[VALIDATOR] ✖ error Request query parameter since must match format "date-time"' in (
        refused
    )
    assert all("since" in line or "did not pass" in line for line in refused), refused


def test_prism_alone_pages_once_then_names_a_path_it_does_not_have(
    github_url, prism_config, prism, guard
):
    """What Prism itself shows: its first page (the description's example issue) with the
    example's Link, put on Prism's address; the page-2 request reaches Prism, which has no
    /resource and answers 404."""
    mark = prism.mark()
    first = read_page(github_url, "issues", prism_config, None)
    assert first.status_code == 200, first.text
    page = first.json()
    example = description()["components"]["examples"]["issue-items"]["value"]
    assert page["records"] == example and page["has_more"]
    assert problems(validator("/repos/{owner}/{repo}/issues", "get", "200"), example) == []
    cursor = json.loads(page["next_cursor"])
    assert cursor["w"] == "2011-04-22T13:33:48Z"  # the example's updated_at: GitHub's form
    assert cursor["p"] == f"{prism.url}/resource?page=2"  # https://api.github.com/resource?page=2

    second = read_page(github_url, "issues", prism_config, page["next_cursor"])
    assert second.status_code == 422, second.text
    assert f"GET {prism.url}/resource answered 404" in second.json()["detail"]
    text = prism.settled_log(mark, requests=2)
    assert "get /resource" in text and "NO_PATH_MATCHED_ERROR" in text


def test_create_issue_sends_what_the_description_accepts(
    github_url, paged_config, pages, prism, guard
):
    data = {"title": "Found a bug", "body": "I'm having a problem with this.",
            "labels": ["bug"], "assignees": ["octocat"]}  # fmt: skip
    answer = act(github_url, "create_issue", paged_config, data)
    assert answer.status_code == 200, answer.text
    (sent,) = pages.requests
    assert (sent["method"], sent["path"]) == ("POST", f"{REPO}/issues")
    body = json.loads(sent["body"])
    assert body == data
    # Prism does not check this body (see test_prism_does_not_check_issue_bodies): checked here
    request = validator("/repos/{owner}/{repo}/issues", "post")
    assert problems(request, body) == []
    assert problems(request, {"body": "no title"}) != []  # the check can fail
    output = answer.json()["output"]
    assert problems(validator("/repos/{owner}/{repo}/issues", "post", "201"), output) == []


def test_create_issue_answers_the_description_example(github_url, prism_config, prism, guard):
    answer = act(github_url, "create_issue", prism_config, {"title": "Found a bug"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["output"] == description()["components"]["examples"]["issue"]["value"]


def test_update_issue_patches_that_issue(github_url, paged_config, pages, prism, guard):
    mark = prism.mark()
    data = {"number": 1347, "state": "closed", "state_reason": "completed", "labels": ["bug"]}
    answer = act(github_url, "update_issue", paged_config, data)
    assert answer.status_code == 200, answer.text
    (sent,) = pages.requests
    assert (sent["method"], sent["path"]) == ("PATCH", f"{REPO}/issues/1347")
    body = json.loads(sent["body"])
    assert body == {"state": "closed", "state_reason": "completed", "labels": ["bug"]}
    path = "/repos/{owner}/{repo}/issues/{issue_number}"
    assert problems(validator(path, "patch"), body) == []
    assert problems(validator(path, "patch", "200"), answer.json()["output"]) == []
    assert Prism.violations(prism.settled_log(mark, requests=1)) == []


def test_prism_does_not_check_issue_bodies(prism):
    """Why the tests above check bodies themselves: Prism 5.16 answers 201 to a body without
    the required title, because it cannot compile this body's schema (``milestone`` is
    ``oneOf`` + ``nullable``: ajv's '"nullable" cannot be used without "type"') and takes a
    schema it cannot compile as no error. Should Prism start checking, this fails: drop the
    own checks then."""
    answer = httpx.post(prism.url + f"{REPO}/issues", json={"body": "no title"},
                        headers={"Accept": "application/json"})  # fmt: skip
    assert answer.status_code == 201


def test_the_guard_sees_a_call_to_github_itself(github_url, prism):
    """The guard is live in the connector: without a base URL the definition calls
    api.github.com, whose name lookup the guard refuses (and nothing is sent)."""
    guard = Guard(github_url.split("/definitions/")[0])
    before = guard.attempts()
    answer = act(github_url, "create_issue", {"owner": "octocat", "repo": "Hello-World"},
                 {"title": "never sent"})  # fmt: skip
    assert answer.status_code >= 400
    assert guard.attempts()[len(before) :] == [repr(("getaddrinfo", "api.github.com"))]
