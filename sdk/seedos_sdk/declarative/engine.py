"""A definition run as a :class:`~seedos_sdk.connector.Connector`: the same contract server,
HTTP client (retries, Retry-After, metrics) and conformance suite as a hand-written connector.

A stream's contract cursor is a compact JSON object: ``w``, the incremental value the next
sync starts from (the last record's cursor field, or the highest), ``p``, the pagination state
of a read under way (a token, an offset, a page number, the next link; null once the read is
complete), and ``s``, the incremental value that read was filtered by (its pages count within
that filter, so it is sent again until the read ends; watermark pages move the filter instead).

Every call to the external API goes through an address rule (:mod:`seedos_sdk.egress`), checked
when connecting: a definition's base URL, or a next link, that leads outside it is refused with
nothing sent.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import orjson

from seedos_sdk.connector import (
    ApiKeyAuth,
    Auth,
    BasicAuth,
    Connector,
    Context,
    NoAuth,
    OAuth2Auth,
    Page,
    WriteResult,
)
from seedos_sdk.declarative.definition import Definition
from seedos_sdk.declarative.templates import Selector, TemplateProblem, render
from seedos_sdk.egress import AddressPolicy, egress_policy
from seedos_sdk.errors import AuthError, PermanentError, RetryableError
from seedos_sdk.http import HttpClient, parse_retry_after
from seedos_sdk.redaction import scrub

MAX_CURSOR = 4096


class DefinedClient(HttpClient):
    """The SDK's client with the definition's retryable statuses and error message, which only
    ever calls the API's own origin (``base_url``): a request path that is an absolute URL to
    another host is refused, so the install's credentials go nowhere else."""

    def __init__(self, *, retry_statuses: frozenset[int] | None, message: Selector | None,
                 params: Mapping[str, str] | None = None,
                 rate_limit: Mapping[str, str] | None = None, when: Selector | None = None,
                 retry_when: Selector | None = None, **kw: Any) -> None:  # fmt: skip
        super().__init__(**kw)
        self.base_url = str(kw.get("base_url", ""))
        self.retry_statuses = retry_statuses
        self.message = message
        self.params = dict(params or {})
        self.rate_limit = rate_limit
        self.when, self.retry_when = when, retry_when

    def judge(self, response: httpx.Response, document: Any) -> None:
        """A successful answer the definition says is a refusal all the same (``errors.when``:
        GraphQL's ``errors``, Slack's ``ok: false``) or a "try again later"
        (``errors.retry_when``: Shopify's THROTTLED) raises it as such."""
        if document is None or (self.when is None and self.retry_when is None):
            return
        request = response.request
        where = f"{request.method} {request.url.path} answered {response.status_code}"
        said = self.message.search(document) if self.message is not None else None
        if isinstance(said, str) and said:
            where += ": " + scrub(said[:300])
        if self.retry_when is not None and self.retry_when.search(document):
            raise RetryableError(where, retry_after=parse_retry_after(
                response.headers.get("retry-after")), code="upstream_unavailable",
                status_code=response.status_code)  # fmt: skip
        if self.when is not None and self.when.search(document):
            raise PermanentError(where, code="upstream_rejected", status_code=response.status_code)

    async def _once(self, method: str, url: str, **kw: Any) -> httpx.Response:
        target = httpx.URL(url)
        if target.is_absolute_url or url.startswith("//"):
            base = httpx.URL(self.base_url)
            if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
                # the install's credentials go to the API's own origin, nowhere else
                raise PermanentError(f"{method} {target.host}: not the API's origin"
                                     f" ({base.host}); refused", code="foreign_origin")  # fmt: skip
        params = {**self.params, **(kw.pop("params", None) or {})}
        if params and "?" in url:  # a next link's own query: kept, the rest merged into it
            url = str(httpx.URL(url).copy_merge_params(params))
        elif params:
            kw["params"] = params
        return await super()._once(method, url, **kw)

    def _error(self, method: str, url: str, response: httpx.Response) -> Exception:
        status = response.status_code
        if self.rate_limit is not None and (spent := self._spent(response)) is not None:
            where = f"{method} {url.split('?', 1)[0]} answered {status}: rate limit spent"
            if spent > self.max_retry_after:
                where += f"; it resets in {spent:g} s, longer than this client waits"
            return RetryableError(where, retry_after=spent, code="rate_limited",
                                  status_code=status)  # fmt: skip
        if self.retry_when is not None and status < 500:  # Google's 403 rateLimitExceeded
            try:
                said = orjson.loads(response.content) if response.content else None
            except orjson.JSONDecodeError:
                said = None
            if said is not None and self.retry_when.search(said):
                wait = parse_retry_after(response.headers.get("retry-after"))
                return RetryableError(f"{method} {url.split('?', 1)[0]} answered {status}: try"
                                      " again later", retry_after=wait, code="rate_limited",
                                      status_code=status)  # fmt: skip
        error = super()._error(method, url, response)
        if (
            self.retry_statuses is not None
            and status in self.retry_statuses
            and not isinstance(error, RetryableError)
        ):
            wait = parse_retry_after(response.headers.get("retry-after"))
            return RetryableError(f"{method} {url.split('?', 1)[0]} answered {status}",
                                  retry_after=wait, code="upstream_unavailable",
                                  status_code=status)  # fmt: skip
        if self.message is not None and isinstance(error, PermanentError):
            try:
                said = self.message.search(orjson.loads(response.content))
            except orjson.JSONDecodeError:
                said = None
            if isinstance(said, str) and said:
                error.message = f"{method} {url.split('?', 1)[0]} answered {status}: " + scrub(
                    said[:300]
                )
        return error

    def _spent(self, response: httpx.Response) -> float | None:
        """Seconds until the rate limit an error answer says is spent resets (0 when it does
        not say), or None when the answer is no rate limit."""
        assert self.rate_limit is not None
        headers = response.headers
        wait = parse_retry_after(headers.get("retry-after"))
        if wait is not None and response.status_code in (403, 429):
            return wait
        if headers.get(self.rate_limit["remaining_header"], "").strip() != "0":
            return None
        reset = headers.get(self.rate_limit.get("reset_header", ""), "").strip()
        try:
            value = float(reset)
        except ValueError:
            return 0.0
        if not math.isfinite(value):  # inf or nan: no time either (inf broke the answer: 500)
            return 0.0
        how = self.rate_limit.get("reset", "epoch")
        if how == "epoch_ms":
            value /= 1000
        if how in ("epoch", "epoch_ms"):
            value -= time.time()
        return max(0.0, value)


def build(definition: Definition, *, egress: AddressPolicy | None = None) -> Connector:
    """The connector a definition describes, calling its API only where ``egress`` allows
    (default: public addresses only, whatever the environment says)."""
    rule = egress or egress_policy({})
    raw, compiled = definition.raw, definition.compiled
    connector = Connector(
        name=raw["name"],
        version=raw["version"],
        auth=_auth(raw["auth"]),
        config_schema=raw.get("config_schema") or {"type": "object", "properties": {}},
        display_name=raw.get("display_name"),
        description=raw.get("description", ""),
        webhooks=raw.get("webhooks"),
    )
    errors = compiled.get("errors", {})
    retry = errors.get("retry_statuses")
    retry_statuses = frozenset(retry) if retry else None

    @connector.http_client
    def http_client(ctx: Context) -> HttpClient:
        scope = _scope(ctx)
        headers = {k: str(v) for k, v in render(compiled.get("headers", {}), scope).items()}
        auth = compiled["auth"]
        params: dict[str, str] = {}
        basic = None
        kind = auth["type"]
        if kind == "api_key":
            value = str(render(auth["value"], scope))
            (headers if auth["in"] == "header" else params)[auth["name"]] = value
        elif kind == "bearer":
            headers["Authorization"] = f"Bearer {render(auth['token'], scope)}"
        elif kind == "oauth2":
            token = ctx.credentials.get("access_token")
            if not token:  # a "Bearer " with nothing after it is no request at all
                raise AuthError("no access token: the account is not connected")
            headers["Authorization"] = f"Bearer {token}"
        elif kind == "basic":
            basic = httpx.BasicAuth(str(render(auth["username"], scope)),
                                    str(render(auth.get("password", ""), scope)))  # fmt: skip
        return DefinedClient(
            base_url=str(render(compiled["base_url"], scope)).rstrip("/"), headers=headers,
            auth=basic, params=params, connector=connector.name,
            retry_statuses=retry_statuses, message=errors.get("message"), egress=rule,
            rate_limit=errors.get("rate_limit"), when=errors.get("when"),
            retry_when=errors.get("retry_when"),
        )  # fmt: skip

    if "check" in compiled:
        check_request = compiled["check"]["request"]

        @connector.check
        async def check(ctx: Context) -> None:
            response = await _send(ctx, check_request, _scope(ctx))
            try:
                document = _json(response) if response.content else None
            except PermanentError:
                return  # answered, and not JSON: nothing to judge
            ctx.http.judge(response, document)

    for spec, raw_stream in zip(compiled.get("streams", []), raw.get("streams", []), strict=True):
        _stream(connector, spec, raw_stream)
    for spec in compiled.get("actions", []):
        _action(connector, spec)
    return connector


def _auth(auth: dict[str, Any]) -> Auth:
    kind = auth["type"]
    if kind == "oauth2":
        extra = tuple((auth.get("authorize_params") or {}).items())
        return OAuth2Auth(authorize_url=auth["authorize_url"], token_url=auth["token_url"],
                          scopes=tuple(auth.get("scopes", ())),
                          revoke_url=auth.get("revoke_url"), authorize_params=extra,
                          scope_separator=auth.get("scope_separator", " "))  # fmt: skip
    if kind == "basic":
        return BasicAuth()
    if kind in ("api_key", "bearer"):
        return ApiKeyAuth()
    return NoAuth()


def _scope(ctx: Context, **more: Any) -> dict[str, Any]:
    return {"config": ctx.config, "credentials": ctx.credentials,
            "now": datetime.now(UTC).isoformat(), **more}  # fmt: skip


# ---------------------------------------------------------------------------------- requests


async def _send(
    ctx: Context, request: dict[str, Any], scope: dict[str, Any], *, url: str | None = None,
    query: dict[str, Any] | None = None, body: Any = None, headers: dict[str, str] | None = None,
    retry: bool | None = None,
) -> httpx.Response:  # fmt: skip
    """One request of the definition's, rendered in ``scope``; ``url``, ``query``, ``body`` and
    ``headers`` add to (or replace) what it says."""
    method = request.get("method", "GET")
    path = url if url is not None else str(render(request["path"], scope))
    params = {k: v for k, v in render(request.get("query", {}), scope).items() if v is not None}
    params.update(query or {})
    sent_headers = {k: str(v) for k, v in render(request.get("headers", {}), scope).items()}
    sent_headers.update(headers or {})
    payload = _body(request.get("body"), scope) if body is None else body
    kw: dict[str, Any] = {"params": {k: _param(v) for k, v in params.items()},
                          "headers": sent_headers}  # fmt: skip
    if payload is not None and method != "GET":
        if request.get("body_encoding") == "form":
            kw["data"] = dict(_form(payload))
        else:
            kw["content"] = orjson.dumps(payload)
            sent_headers.setdefault("content-type", "application/json")
    if retry is None:
        retry = request.get("retry")  # None: the client's rule for the method
    return await ctx.http.request(method, path, retry=retry, **kw)


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _body(spec: Any, scope: dict[str, Any]) -> Any:
    """``{from: record|input, exclude: [...]}``: that value itself, less the fields excluded;
    anything else: rendered."""
    if isinstance(spec, dict) and set(spec) <= {"from", "exclude"} and "from" in spec:
        value = scope.get(spec["from"]) or {}
        exclude = set(spec.get("exclude", ()))
        return {k: v for k, v in value.items() if k not in exclude}
    return render(spec, scope) if spec is not None else None


def _form(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """A JSON value as form fields, nested keys as ``a[b]`` and lists as ``a[0]`` (Stripe's)."""
    if isinstance(value, dict):
        out: list[tuple[str, str]] = []
        for k, v in value.items():
            out += _form(v, f"{prefix}[{k}]" if prefix else str(k))
        return out
    if isinstance(value, list):
        out = []
        for n, v in enumerate(value):
            out += _form(v, f"{prefix}[{n}]")
        return out
    if value is None:
        return []
    return [(prefix, _param(value))]


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise PermanentError(f"{response.request.method} {response.request.url.path} did not"
                             " answer JSON", code="unexpected_response") from None  # fmt: skip


# ---------------------------------------------------------------------------------- streams


def _stream(connector: Connector, spec: dict[str, Any], raw: dict[str, Any]) -> None:
    incremental = spec.get("incremental")
    pagination = spec.get("pagination") or {"type": "none"}
    records_at: Selector | None = spec.get("records")
    deleted = spec.get("deleted")
    when: Selector | None = deleted["when"] if deleted is not None else None
    flag = when.field if when is not None else None  # a plain field: read without the selector
    drops = tuple(deleted.get("drop_fields", ())) if deleted is not None else ()
    pk = raw["primary_key"]

    @connector.stream(raw["name"], primary_key=pk, schema=raw["schema"],
                      cursor_field=incremental["cursor_field"] if incremental else None,
                      description=raw.get("description", ""))  # fmt: skip
    async def read(ctx: Context, cursor: str | None) -> AsyncIterator[Page]:
        state = _decode(cursor)
        watermark, token, since = state.get("w"), state.get("p"), state.get("s")
        scope = _scope(ctx, cursor=watermark)
        request = spec["request"]
        query: dict[str, Any] = {}
        body: dict[str, Any] | None = None
        url: str | None = None
        kind = pagination["type"]
        sent = None
        if incremental:
            if token is not None and kind != "watermark":
                sent = since  # a read under way keeps its filter: its pages count within it
            elif watermark is not None:
                sent = watermark
                if token is None:  # a new sync: a little before where the last one ended
                    sent = _lookback(sent, incremental.get("lookback_seconds", 0))
            elif incremental.get("start") is not None:
                sent = render(incremental["start"], scope)
        headers: dict[str, str] = {}
        # the read's filter, the same on each of its pages, for templates that put it in a
        # larger text (a JQL or SOQL filter, Graph's $filter): None until there is one
        scope["since"] = None
        if sent is not None:
            value = _format(sent, incremental.get("format", "as_is"))
            scope["since"] = value
            param, where_sent = incremental.get("param"), incremental.get("in", "query")
            if param is None:
                pass  # only where the request's templates put it
            elif where_sent == "query":
                query[param] = value
            elif where_sent == "header":
                headers[param] = str(value)
            else:
                body = _put(_body(request.get("body"), scope) or {}, param, value)
        numbers: dict[str, Any] = {}  # offset and limit, or page and size
        if token is not None:
            if kind == "cursor":
                where = pagination.get("in", "query")
                if where == "query":
                    query[pagination["param"]] = token
                elif where == "header":
                    headers[pagination["param"]] = str(token)
                else:
                    body = _put(body or _body(request.get("body"), scope) or {},
                                pagination["param"], token)  # fmt: skip
            elif kind == "link":
                url = _rebase(str(token), ctx.http.base_url)
            elif kind == "offset":
                numbers[pagination["offset_param"]] = token
            elif kind == "page":
                numbers[pagination["page_param"]] = token
        if kind == "offset":
            numbers.setdefault(pagination["offset_param"], 0)
            numbers[pagination["limit_param"]] = _limit(pagination["limit"], scope)
        elif kind == "page":
            numbers.setdefault(pagination["page_param"], pagination.get("start", 1))
            if "size_param" in pagination:
                numbers[pagination["size_param"]] = _limit(pagination.get("size", 100), scope)
        if numbers and pagination.get("in", "query") == "body":
            body = body or _body(request.get("body"), scope) or {}
            for name, number in numbers.items():
                body = _put(body, name, number)
        else:
            query.update(numbers)
        response = await _send(ctx, request, scope, url=url, query=query if url is None else {},
                               body=body, headers=headers)  # fmt: skip
        document = _json(response)
        ctx.http.judge(response, document)
        found = records_at.search(document) if records_at is not None else document
        rows = found if isinstance(found, list) else []
        records: list[dict[str, Any]] = []
        gone: list[str] = []
        for row in rows:  # the hot loop: a thousand records a page
            if type(row) is not dict:
                continue
            if flag is not None:
                if row.get(flag):
                    gone.append(str(row.get(pk)))
                    continue
            elif when is not None and when.search(row):
                gone.append(str(row.get(pk)))
                continue
            for name in drops:
                row.pop(name, None)
            records.append(row)
        if incremental and rows:
            watermark = _advance(watermark, rows, incremental)
        following = _next(pagination, document, response, rows, token, numbers, ctx)
        if following is not None and following == token and kind in ("cursor", "link"):
            raise PermanentError("the API answered the same page token again: the read would"
                                 " never end", code="unexpected_response")  # fmt: skip
        if following is not None and kind == "watermark" and rows and watermark == sent:
            raise PermanentError(f"a whole page of records has the cursor value it was asked"
                                 f" from ({str(sent)[:100]}): the read would never end; a"
                                 " larger page would get past it",
                                 code="unexpected_response")  # fmt: skip
        more = following is not None
        yield Page(
            records=records,
            deleted=gone,
            has_more=more,
            next_cursor=_encode(watermark, following, since=sent if more else None),
        )

    write = spec.get("write")
    if write is not None:
        read.writer(_writer(write, pk))


def _next(pagination: dict[str, Any], document: Any, response: httpx.Response,
          rows: list[Any], token: Any, numbers: dict[str, Any], ctx: Context) -> Any:  # fmt: skip
    """The next page's state, or None when this page was the last."""
    kind = pagination["type"]
    has_more: Selector | None = pagination.get("has_more")
    if has_more is not None and not has_more.search(document):
        return None
    if kind == "none":
        return None
    if kind == "watermark":
        return 1 if rows else None
    if kind == "cursor":
        source = pagination["from"]
        if source == "header":
            found = response.headers.get(pagination["header"])
        elif source == "last_record":
            found = pagination["select"].search(rows[-1]) if rows else None
        else:
            found = pagination["select"].search(document)
        return found if found not in (None, "") else None
    if kind == "link":
        if pagination.get("from") == "body":  # Graph's @odata.nextLink, Twilio's next_page_uri
            found = pagination["select"].search(document)
            if not isinstance(found, str) or not found:
                return None
            next_url = found
        else:
            link = response.links.get(pagination.get("rel", "next"))
            if not link:
                return None
            next_url = link["url"]
        # relative to the page it came on, then on the configured base URL; without any
        # query-string credential the API echoed into it (the cursor is stored and shown)
        absolute = urljoin(str(response.request.url), next_url)
        return _without(_rebase(absolute, ctx.http.base_url), ctx.http.params)
    if kind == "offset":
        limit = int(numbers[pagination["limit_param"]])
        return int(numbers[pagination["offset_param"]]) + limit if len(rows) >= limit else None
    if kind == "page":
        return int(numbers[pagination["page_param"]]) + 1 if rows else None
    return None


def _rebase(link: str, base: str) -> str:
    """A next link put on the configured base URL: its path (under the base's own path, when
    it is not there already) and query, so a gateway or mock in front of the API is kept."""
    parts, root = urlsplit(link), urlsplit(base)
    path = parts.path
    prefix = root.path.rstrip("/")
    if prefix and not path.startswith(prefix + "/"):
        path = prefix + path
    return f"{root.scheme}://{root.netloc}{path}" + (f"?{parts.query}" if parts.query else "")


def _without(url: str, secret: Mapping[str, str]) -> str:
    """``url`` without the query parameters named in ``secret`` (the client's own: query-string
    auth), which it adds again to every request."""
    if not secret or "?" not in url:
        return url
    parsed = httpx.URL(url)
    kept = [(k, v) for k, v in parsed.params.multi_items() if k not in secret]
    return str(parsed.copy_with(query=None).copy_merge_params(kept) if kept
               else parsed.copy_with(query=None))  # fmt: skip


def _limit(value: Any, scope: dict[str, Any]) -> int:
    return int(render(value, scope))


def _put(body: dict[str, Any], param: str, value: Any) -> dict[str, Any]:
    """``body`` with ``value`` at ``param``: a dotted name is a nested field (a GraphQL query's
    ``variables.after``), its objects made as needed; ``body`` itself is left as it was."""
    *parents, last = param.split(".")
    out = dict(body)
    node: Any = out
    for name in parents:
        if isinstance(node, list):  # a list's item: HubSpot's filterGroups.0.filters.0.value
            if not (name.isdigit() and int(name) < len(node)):
                raise PermanentError(f"{param!r} names no item of the request's body",
                                     code="invalid_definition")  # fmt: skip
            key: Any = int(name)
        else:
            key = name
        child = node[key] if isinstance(node, list) else node.get(key)
        node[key] = dict(child) if isinstance(child, dict) else (
            list(child) if isinstance(child, list) else {})  # fmt: skip
        node = node[key]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise PermanentError(f"{param!r} names no field of the request's body",
                             code="invalid_definition")  # fmt: skip
    return out


def _format(value: Any, how: str) -> Any:
    try:
        if how == "http_date":  # If-Modified-Since
            moment = (datetime.fromtimestamp(value, UTC) if isinstance(value, int | float)
                      else datetime.fromisoformat(str(value).replace("Z", "+00:00")))  # fmt: skip
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return email.utils.format_datetime(moment.astimezone(UTC), usegmt=True)
        if how == "epoch":
            if isinstance(value, int | float):
                return int(value)
            return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp())
        if how == "iso8601" and isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC).isoformat()
    except (ValueError, OverflowError, OSError):
        raise PermanentError(f"the cursor value {str(value)[:100]!r} cannot be sent as {how}",
                             code="unexpected_response") from None  # fmt: skip
    return value


def _lookback(value: Any, seconds: int) -> Any:
    """``value`` moved ``seconds`` back (a number of seconds, or an ISO 8601 time)."""
    if not seconds:
        return value
    if isinstance(value, int | float):
        return value - seconds
    text = str(value)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return value
    earlier = (moment - timedelta(seconds=seconds)).isoformat()
    return earlier.replace("+00:00", "Z") if text.endswith("Z") else earlier  # as the API wrote it


def _advance(watermark: Any, rows: list[Any], incremental: dict[str, Any]) -> Any:
    """The watermark after ``rows``: the last record's cursor value (records oldest first), or
    with ``cursor_from: max`` the highest seen (an API that lists newest first)."""
    field = incremental["cursor_field"]
    if incremental.get("cursor_from", "last") == "last":
        for row in reversed(rows):
            value = row.get(field) if type(row) is dict else None
            if value is not None:
                return value
        return watermark
    values = [r.get(field) for r in rows if type(r) is dict and r.get(field) is not None]
    if watermark is not None:
        values.append(watermark)
    try:
        return max(values) if values else watermark
    except TypeError:  # values of mixed kinds: the last one, as if unsorted
        return values[-1]


def _encode(watermark: Any, token: Any, *, since: Any = None) -> str:
    state = {"w": watermark, "p": token}
    if token is not None and since is not None:
        state["s"] = since  # the filter the read under way started with
    text = json.dumps(state, separators=(",", ":"))
    if len(text) > MAX_CURSOR:
        raise PermanentError("the API's page token is too long to resume from",
                             code="unexpected_response")  # fmt: skip
    return text


def _decode(cursor: str | None) -> dict[str, Any]:
    if not cursor:
        return {}
    try:
        state = json.loads(cursor)
    except ValueError:
        return {"w": cursor}  # a plain value: where to start
    return state if isinstance(state, dict) else {"w": state}


# ---------------------------------------------------------------------------------- writes


def _writer(write: dict[str, Any], pk: str) -> Any:
    gate_size = write.get("concurrency", 8)
    upsert_spec, create, update = write.get("upsert"), write.get("create"), write.get("update")
    missing = frozenset(write.get("missing_statuses", (404,))) if create and update else frozenset()

    async def run(
        ctx: Context, upserts: list[dict[str, Any]], deletes: list[str]
    ) -> list[WriteResult]:
        gate = asyncio.Semaphore(gate_size)

        async def one(spec: dict[str, Any], key: str, scope: dict[str, Any]) -> WriteResult | None:
            """The result of ``spec``'s request, or None when the API has no record with this
            key (a status in ``missing``, for an update that may become a create)."""
            async with gate:
                try:
                    response = await _send(ctx, spec, scope)
                except (PermanentError, RetryableError) as exc:
                    if exc.upstream_status in spec.get("ok_statuses", ()):
                        return WriteResult(key, True)
                    if spec is update and exc.upstream_status in missing:
                        return None
                    return WriteResult(key, False, exc.message, exc.category.value)
                except TemplateProblem as exc:
                    return WriteResult(key, False, str(exc), "permanent")
            try:
                answer = _json(response) if response.content else None
            except PermanentError:  # done, with an answer that is no record (200 "OK", say)
                answer = None
            try:
                ctx.http.judge(response, answer)
            except (PermanentError, RetryableError) as exc:  # a 2xx that says it refused
                return WriteResult(key, False, exc.message, exc.category.value)
            at: Selector | None = spec.get("record")
            record = at.search(answer) if at is not None and answer is not None else answer
            written = record if isinstance(record, dict) else None
            return WriteResult(str(written.get(pk, key)) if written and not key else key, True,
                               record=written)  # fmt: skip

        async def upsert(record: dict[str, Any]) -> WriteResult:
            key = str(record.get(pk) or "")
            scope = _scope(ctx, record=record, key=key)
            if upsert_spec is not None:
                return await one(upsert_spec, key, scope) or WriteResult(key, True)
            if key and update is not None:
                updated = await one(update, key, scope)
                if updated is not None:
                    return updated
            if create is None:
                return WriteResult(key, False, f"this stream cannot create records without"
                                   f" their {pk}", "permanent")  # fmt: skip
            # a key the API does not know (one the platform made): created, the API's key in
            # the answer's record
            return await one(create, key, scope) or WriteResult(key, True)

        async def delete(key: str) -> WriteResult:
            spec = write.get("delete")
            if spec is None:
                return WriteResult(key, False, "this stream cannot delete records", "permanent")
            return await one(spec, key, _scope(ctx, key=key)) or WriteResult(key, True)

        jobs = [upsert(r) for r in upserts] + [delete(k) for k in deletes]
        return list(await asyncio.gather(*jobs))

    return run


# ---------------------------------------------------------------------------------- actions


def _action(connector: Connector, spec: dict[str, Any]) -> None:
    output: Selector | None = spec.get("output")

    @connector.action(spec["name"], input_schema=spec["input_schema"],
                      output_schema=spec.get("output_schema") or {"type": "object"},
                      idempotent=spec.get("idempotent", False),
                      description=spec.get("description", ""))  # fmt: skip
    async def run(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
        response = await _send(ctx, spec["request"], _scope(ctx, input=data))
        answer = _json(response)
        ctx.http.judge(response, answer)
        found = output.search(answer) if output is not None else answer
        return found if isinstance(found, dict) else {"value": found}
