"""A small HTTP API paging the same 23 items in every way the definition format knows: a
cursor in the body or in a header, Stripe's ``starting_after``/``has_more``, GitHub's ``Link``
header (pointing at https://api.example.com, as the real API's do), offset/limit and page
numbers, each optionally filtered by an incremental parameter; and a list behind a rate limit a
test spends. It records what it was asked.

Run: ``uvicorn tests.declarative.paged_api:create_app --factory`` from ``sdk/``.
"""

from __future__ import annotations

import base64
import email.utils
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

START = datetime(2024, 1, 1, tzinfo=UTC)
COUNT = 23
BEARER = "Bearer paged-token"
STRIPE_KEY = "sk_test_paged"
GITHUB_HOST = "https://api.example.com"


def _items() -> list[dict[str, Any]]:
    return [
        {"id": f"i{n:02d}", "name": f"item {n}", "updated": _iso(START + timedelta(minutes=n)),
         "created": int((START + timedelta(minutes=n)).timestamp())}
        for n in range(COUNT)
    ]  # fmt: skip


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class State:
    def __init__(self) -> None:
        self.items = _items()
        self.log: list[dict[str, Any]] = []
        self.limit: dict[str, Any] = {}  # a rate limit spent: how many answers, how it says so

    def ordered(self, query: Any) -> list[dict[str, Any]]:
        """The items oldest first, after the incremental filters the query names (each
        strictly after its value: ``updated_after`` an ISO 8601 time, ``since`` seconds)."""
        rows = sorted(self.items, key=lambda r: (r["updated"], r["id"]))
        if "updated_after" in query:
            after = _time(query["updated_after"])
            rows = [r for r in rows if _time(r["updated"]) > after]
        if "updated_from" in query:  # at or after: a page can be all one value
            start = _time(query["updated_from"])
            rows = [r for r in rows if _time(r["updated"]) >= start]
        if "since" in query:
            since = int(query["since"])
            rows = [r for r in rows if _time(r["updated"]).timestamp() > since]
        return rows


def create_app() -> Starlette:
    state = State()

    def logged(request: Request) -> None:
        state.log.append({"path": request.url.path, "query": dict(request.query_params),
                          "page_token": request.headers.get("x-page-token")})  # fmt: skip

    async def body_cursor(request: Request) -> Response:
        logged(request)
        q = request.query_params
        rows = state.ordered(q)
        start = int(base64.urlsafe_b64decode(q["cursor"]).decode()) if "cursor" in q else 0
        end = start + int(q.get("limit", 5))
        following = base64.urlsafe_b64encode(str(end).encode()).decode()
        return JSONResponse({"data": rows[start:end],
                             "next_cursor": following if end < len(rows) else None})  # fmt: skip

    async def header_cursor(request: Request) -> Response:
        logged(request)
        if request.headers.get("authorization") != BEARER:
            return JSONResponse({"error": {"message": "bad token"}}, status_code=401)
        rows = state.ordered(request.query_params)
        start = int(request.headers.get("x-page-token") or 0)
        end = start + int(request.query_params.get("per_page", 5))
        headers = {"X-Next-Page-Token": str(end)} if end < len(rows) else {}
        return JSONResponse(rows[start:end], headers=headers)

    async def stripe_customers(request: Request) -> Response:
        """Stripe's list: newest first; ``starting_after`` an object id, ``has_more``."""
        logged(request)
        expected = "Basic " + base64.b64encode(f"{STRIPE_KEY}:".encode()).decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse({"error": {"message": "Invalid API Key provided"}}, 401)
        q = request.query_params
        rows = sorted(state.items, key=lambda r: (r["created"], r["id"]), reverse=True)
        if "starting_after" in q:
            ids = [r["id"] for r in rows]
            rows = rows[ids.index(q["starting_after"]) + 1 :]
        limit = int(q.get("limit", 10))
        return JSONResponse({"object": "list", "url": "/v1/customers",
                             "has_more": len(rows) > limit, "data": rows[:limit]})  # fmt: skip

    async def github_issues(request: Request) -> Response:
        """GitHub's pages: ``page`` and ``per_page``, the next one in a Link header on the
        API's own host (not the one this server listens on)."""
        logged(request)
        q = request.query_params
        rows = state.ordered(q)
        page, size = int(q.get("page", 1)), int(q.get("per_page", 30))
        path = request.url.path.removeprefix("/gh")
        links = []
        if page * size < len(rows):
            links.append(f'<{GITHUB_HOST}{path}?per_page={size}&page={page + 1}>; rel="next"')
        last = max(1, -(-len(rows) // size))
        links.append(f'<{GITHUB_HOST}{path}?per_page={size}&page={last}>; rel="last"')
        chunk = rows[(page - 1) * size : page * size]
        return JSONResponse(chunk, headers={"Link": ", ".join(links)})

    async def offset(request: Request) -> Response:
        logged(request)
        q = request.query_params
        rows = state.ordered(q)
        start, limit = int(q["offset"]), int(q["limit"])
        return JSONResponse({"items": rows[start : start + limit], "total": len(rows)})

    async def pages(request: Request) -> Response:
        logged(request)
        q = request.query_params
        rows = state.ordered(q)
        page, size = int(q["page"]), int(q.get("size", 10))
        return JSONResponse({"items": rows[page * size : (page + 1) * size]})  # 0-based

    async def watermark(request: Request) -> Response:
        logged(request)
        q = request.query_params
        rows = state.ordered(q)
        limit = int(q.get("limit", 5))
        return JSONResponse({"items": rows[:limit], "has_more": len(rows) > limit})

    async def limited(request: Request) -> Response:
        """The watermark list behind a rate limit that /admin/limit spends: while it is, a 403
        saying so GitHub's way (remaining 0, reset as seconds since 1970) or with Retry-After."""
        if state.limit.get("left", 0) > 0:
            logged(request)
            state.limit["left"] -= 1
            reset_in = float(state.limit["reset_in"])
            reset = state.limit.get("reset") or str(int(time.time() + reset_in) + 1)
            headers = ({"Retry-After": str(int(reset_in))} if state.limit["style"] == "retry_after"
                       else {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})  # fmt: skip
            return JSONResponse({"message": "API rate limit exceeded"}, status_code=403,
                                headers=headers)  # fmt: skip
        return await watermark(request)  # which logs it

    async def graphql(request: Request) -> Response:
        """A GraphQL connection: ``variables.after`` (an item's id) and ``variables.since`` (an
        ISO time, strictly after) in the JSON body; ``nodes`` and ``pageInfo`` in the answer."""
        body = await request.json()
        variables = body.get("variables") or {}
        state.log.append({"path": request.url.path, "query": {}, "body": body})
        if "items" not in body.get("query", ""):
            return JSONResponse({"errors": [{"message": "no such field"}]}, status_code=400)
        rows = state.ordered({"updated_after": variables["since"]} if "since" in variables
                             else {})  # fmt: skip
        if variables.get("after"):
            ids = [r["id"] for r in rows]
            rows = rows[ids.index(variables["after"]) + 1 :]
        first = int(variables.get("first", 5))
        page = rows[:first]
        return JSONResponse({"data": {"items": {"nodes": page, "pageInfo": {
            "endCursor": page[-1]["id"] if page else None,
            "hasNextPage": len(rows) > first}}}})  # fmt: skip

    async def modified_since(request: Request) -> Response:
        """Items changed after If-Modified-Since (an HTTP date), 304 when none."""
        logged(request)
        state.log[-1]["if_modified_since"] = request.headers.get("if-modified-since")
        rows = state.ordered({})
        since = request.headers.get("if-modified-since")
        if since:
            after = email.utils.parsedate_to_datetime(since)
            rows = [r for r in rows if _time(r["updated"]) > after]
        return JSONResponse({"items": rows})

    async def body_link(request: Request) -> Response:
        """Graph's pages: ``value`` and an ``@odata.nextLink`` on the API's own host."""
        logged(request)
        rows = state.ordered({})
        skip, top = int(request.query_params.get("$skip", 0)), 5
        answer: dict[str, Any] = {"value": rows[skip : skip + top]}
        if skip + top < len(rows):
            answer["@odata.nextLink"] = f"{GITHUB_HOST}/body-link?$skip={skip + top}"
        return JSONResponse(answer)

    async def graphql_throttled(request: Request) -> Response:
        """A GraphQL API answering its errors with 200: THROTTLED while the limit is spent, a
        field it does not know refused."""
        body = await request.json()
        state.log.append({"path": request.url.path, "query": {}, "body": body})
        if state.limit.get("left", 0) > 0:
            state.limit["left"] -= 1
            return JSONResponse({"data": None, "errors": [
                {"message": "Throttled", "extensions": {"code": "THROTTLED"}}]})  # fmt: skip
        if "nonsense" in body.get("query", ""):
            return JSONResponse({"data": None, "errors": [
                {"message": "Field 'nonsense' doesn't exist on type 'Query'"}]})  # fmt: skip
        return JSONResponse({"data": {"items": {"nodes": state.ordered({})[:3]}}})

    async def page_body(request: Request) -> Response:
        """Pages asked for in the body: ``{"paging": {"page": n, "size": k}}`` (1-based)."""
        body = await request.json()
        state.log.append({"path": request.url.path, "query": {}, "body": body})
        page, size = int(body["paging"]["page"]), int(body["paging"]["size"])
        return JSONResponse({"items": state.ordered({})[(page - 1) * size : page * size]})

    async def jql(request: Request) -> Response:
        """Jira's search: the filter is inside the jql text (``updated > "<iso>"``)."""
        logged(request)
        text = request.query_params.get("jql", "")
        found = re.search(r'updated > "([^"]+)"', text)
        rows = state.ordered({"updated_after": found[1]} if found else {})
        return JSONResponse({"issues": rows})

    async def limit(request: Request) -> Response:
        q = request.query_params
        state.limit = {"left": int(q["answers"]), "reset_in": q.get("reset_in", "0"),
                       "style": q.get("style", "headers"),
                       "reset": q.get("reset")}  # the reset header as given, if it is  # fmt: skip
        return JSONResponse({"ok": True})

    async def touch(request: Request) -> Response:
        """Change an item: its ``updated`` becomes ``minutes`` after the start (the query)."""
        minutes = int(request.query_params["minutes"])
        for row in state.items:
            if row["id"] == request.path_params["id"]:
                row["updated"] = _iso(START + timedelta(minutes=minutes))
                row["name"] += " (changed)"
        return JSONResponse({"ok": True})

    async def reset(_request: Request) -> Response:
        state.items, state.log, state.limit = _items(), [], {}
        return JSONResponse({"ok": True})

    async def log(_request: Request) -> Response:
        return JSONResponse(state.log)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def refused(_request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": {"message": str(exc)}}, status_code=400)

    return Starlette(exception_handlers={ValueError: refused}, routes=[
        Route("/healthz", healthz),
        Route("/body-cursor", body_cursor),
        Route("/header-cursor", header_cursor),
        Route("/v1/customers", stripe_customers),
        Route("/gh/repos/{owner}/{repo}/issues", github_issues),
        Route("/offset", offset),
        Route("/pages", pages),
        Route("/watermark", watermark),
        Route("/limited", limited),
        Route("/graphql", graphql, methods=["POST"]),
        Route("/body-link", body_link),
        Route("/graphql-throttled", graphql_throttled, methods=["POST"]),
        Route("/page-body", page_body, methods=["POST"]),
        Route("/jql", jql),
        Route("/modified-since", modified_since),
        Route("/admin/limit", limit, methods=["POST"]),
        Route("/admin/items/{id}/touch", touch, methods=["POST"]),
        Route("/admin/reset", reset, methods=["POST"]),
        Route("/admin/log", log),
    ])  # fmt: skip
