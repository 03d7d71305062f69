"""A definition checked against the provider's own machine-readable description of its API: an
OpenAPI document (3.x, or Swagger 2) or a Google API Discovery document.

Every request the definition makes (each stream's, each write's, each action's, ``check``'s)
must be an operation of the description: its method and path (a templated segment of the
definition matches a path parameter, or any segment), and every query parameter it sends,
including those its incremental cursor and pagination add (``created[gt]`` is ``created``). A
JSON or form body's fields must be fields of the operation's request body. Where the answer is
read with plain field paths (``data``, ``paging.next.after``), those fields must be in the
operation's success response, and each stream's primary key, cursor field and schema fields in
its records' schema. What cannot be checked this way (a JMESPath expression that is not a field
path, a body taken from the record) is listed as unchecked, never as passed.

    report = check(load_file("connector.yaml"), description_of(json.load(open("api.json"))))
    assert not report.problems, report.problems
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from seedos_sdk.declarative.definition import Definition
from seedos_sdk.declarative.templates import Selector, TemplateProblem, render

_TEMPLATE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}")
_PARAMETER = re.compile(r"\{[^{}/]+\}")
_FIELD_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
MAX_DEPTH = 24  # $ref chains and allOf nesting followed


@dataclass
class Operation:
    """One operation of a description: what a request to it may send and what it answers."""

    method: str
    path: str  # the full path template, e.g. /v1/customers/{customer}
    query: frozenset[str]
    body: dict[str, Any] | None  # the request body's schema (JSON or form), resolved
    response: dict[str, Any] | None  # the success answer's schema, resolved


@dataclass
class Description:
    operations: list[Operation]
    resolve: Callable[[Any], Any]  # a schema with its references followed
    source: str = ""

    def find(self, method: str, path: str) -> Operation | None:
        """The operation for ``method`` ``path`` (segments of ``*`` match anything), preferring
        the one with the most literal segments in common, then the most parameters (a templated
        segment is a parameter's value far more often than one of the API's own words)."""
        want = _segments(path)
        best, score = None, -1
        for op in self.operations:
            if op.method != method:
                continue
            have = _segments(op.path)
            if len(have) != len(want):
                continue
            points = 0
            for ours, theirs in zip(want, have, strict=True):
                if ours == theirs:
                    points += 2
                elif _PARAMETER.fullmatch(theirs):
                    points += 1  # a parameter takes any segment: ahead of a literal taking "*"
                elif ours == "*":
                    continue  # a templated segment might be that literal: the least likely
                elif _PARAMETER.search(theirs) and _matches_partial(ours, theirs):
                    points += 1
                else:
                    break
            else:
                if points > score:
                    best, score = op, points
        return best


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def _matches_partial(ours: str, theirs: str) -> bool:
    """``ours`` (``*`` for templated parts) against ``theirs`` (``{parameters}`` in literal
    text, such as ``{id}.json``)."""
    pattern = "".join(".+" if _PARAMETER.fullmatch(part) else re.escape(part)
                      for part in re.split(r"(\{[^{}/]+\})", theirs) if part)  # fmt: skip
    literal = ours.replace("*", "X")
    return re.fullmatch(pattern, literal) is not None


# ---------------------------------------------------------------------------------- descriptions


def description_of(document: dict[str, Any], source: str = "") -> Description:
    """An OpenAPI 3.x, Swagger 2 or Google Discovery document as a :class:`Description`."""
    if document.get("kind") == "discovery#restDescription":
        return _discovery(document, source)
    if "openapi" in document or "swagger" in document:
        return _openapi(document, source)
    raise ValueError("not an OpenAPI, Swagger or Google Discovery document")


def _pointer(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.lstrip("#/").split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _openapi(document: dict[str, Any], source: str) -> Description:
    def resolve(node: Any, depth: int = 0) -> Any:
        while isinstance(node, dict) and "$ref" in node and depth < MAX_DEPTH:
            ref = node["$ref"]
            node = _pointer(document, ref) if ref.startswith("#/") else None
            depth += 1
        return node

    swagger = "swagger" in document
    if swagger:
        prefix = document.get("basePath", "") or ""
    else:
        servers = document.get("servers") or [{}]
        prefix = urlsplit(str(servers[0].get("url", ""))).path
    prefix = prefix.rstrip("/")
    operations = []
    for path, item in (document.get("paths") or {}).items():
        item = resolve(item) or {}
        shared = [resolve(p) or {} for p in item.get("parameters", [])]
        for method in ("get", "post", "put", "patch", "delete"):
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            params = shared + [resolve(p) or {} for p in op.get("parameters", [])]
            query = frozenset(str(p.get("name")) for p in params if p.get("in") == "query")
            if swagger:
                bodies = [resolve(p.get("schema")) for p in params if p.get("in") == "body"]
                forms = [p for p in params if p.get("in") == "formData"]
                body = bodies[0] if bodies else (
                    {"type": "object", "properties": {p["name"]: {} for p in forms}}
                    if forms else None)  # fmt: skip
                response = _success(op.get("responses") or {}, resolve, lambda r: r.get("schema"))
            else:
                content = (resolve(op.get("requestBody")) or {}).get("content") or {}
                body = next((resolve(c.get("schema")) for t, c in content.items()
                             if "json" in t or "form" in t), None)  # fmt: skip
                response = _success(op.get("responses") or {}, resolve, _json_content(resolve))
            operations.append(Operation(method.upper(), prefix + path, query, body, response))
    return Description(operations, resolve, source)


def _json_content(resolve: Callable[[Any], Any]) -> Callable[[dict[str, Any]], Any]:
    def schema_of(response: dict[str, Any]) -> Any:
        content = response.get("content") or {}
        for kind, media in content.items():
            if "json" in kind:
                return resolve(media.get("schema"))
        return None

    return schema_of


def _success(
    responses: dict[str, Any], resolve: Callable[[Any], Any], schema_of: Callable[[Any], Any]
) -> dict[str, Any] | None:
    for status in ("200", "201", "202", "2XX", "default"):
        found = resolve(responses.get(status))
        if isinstance(found, dict):
            schema_ = resolve(schema_of(found))
            if isinstance(schema_, dict):
                return schema_
    return None


def _discovery(document: dict[str, Any], source: str) -> Description:
    schemas = document.get("schemas") or {}

    def resolve(node: Any, depth: int = 0) -> Any:
        while isinstance(node, dict) and "$ref" in node and depth < MAX_DEPTH:
            node = schemas.get(node["$ref"])
            depth += 1
        return node

    root = urlsplit(str(document.get("rootUrl", ""))).path
    prefix = "/" + (root.strip("/") + "/" if root.strip("/") else "") + str(
        document.get("servicePath", "")).strip("/")  # fmt: skip
    common = {
        k for k, p in (document.get("parameters") or {}).items() if p.get("location") == "query"
    }
    operations = []

    def walk(resources: dict[str, Any]) -> None:
        for resource in resources.values():
            for method in (resource.get("methods") or {}).values():
                path = method.get("flatPath") or method.get("path") or ""
                params = method.get("parameters") or {}
                query = frozenset({k for k, p in params.items() if p.get("location") == "query"}
                                  | common)  # fmt: skip
                full = prefix.rstrip("/") + "/" + path.lstrip("/")
                operations.append(Operation(str(method.get("httpMethod", "GET")).upper(), full,
                                            query, resolve(method.get("request")),
                                            resolve(method.get("response"))))  # fmt: skip
            walk(resource.get("resources") or {})

    walk(document.get("resources") or {})
    return Description(operations, resolve, source)


# ---------------------------------------------------------------------------------- checking


def check(definition: Definition, description: Description) -> Report:
    """Every request of ``definition`` against ``description`` (see the module's docstring)."""
    raw = definition.raw
    report = Report()
    base = urlsplit(_base_url(definition)).path.rstrip("/")
    for where, request, extra, answer in _requests(raw):
        method = request.get("method", "GET")
        path = base + _pattern(str(request.get("path", "")))
        op = description.find(method, path)
        label = f"{where}: {method} {request.get('path')}"
        if op is None:
            report.problems.append(f"{label}: no such operation in the description")
            continue
        report.checked.append(f"{label} is {op.method} {op.path}")
        written = _path_query(str(request.get("path", "")))  # /v1/items?expand[]=x is sent too
        for name in sorted(set(request.get("query") or {}) | extra.get("query", set()) | written):
            if _TEMPLATE.search(name):
                report.unchecked.append(f"{label}: query parameter {name!r} is a template")
            elif name not in op.query and _base_name(name) not in op.query:
                report.problems.append(f"{label}: query parameter {name!r} is not one of the"
                                       " operation's")  # fmt: skip
        sources = {k: extra[k] for k in ("record", "input") if k in extra}
        _check_body(report, label, request, extra.get("body", set()), op, description, sources)
        if answer is not None:
            answer(report, label, op, description)
    return report


def _base_url(definition: Definition) -> str:
    """The base URL as an install would have it: the config's defaults, and a stand-in for
    each config field without one (``https://{{ config.dc }}.api.example.com/3.0`` keeps its
    ``/3.0``); failing that, the text with each template part as ``*``."""
    properties = (definition.raw.get("config_schema") or {}).get("properties") or {}
    config = {k: v["default"] if isinstance(v, dict) and "default" in v else "placeholder"
              for k, v in properties.items()}  # fmt: skip
    try:
        return str(
            render(definition.compiled.get("base_url", ""), {"config": config, "credentials": {}})
        )
    except TemplateProblem:  # it needs what only an install has
        return _TEMPLATE.sub("*", str(definition.raw.get("base_url", "")))


def _pattern(path: str) -> str:
    """A definition's path template with each templated part as ``*``."""
    return _TEMPLATE.sub("*", path.split("?")[0])


def _path_query(path: str) -> set[str]:
    """The names of the query parameters a path template writes after its ``?``."""
    _, mark, query = path.partition("?")
    if not mark:
        return set()
    return {unquote_plus(part.split("=", 1)[0]) for part in query.split("&") if part}


def _base_name(name: str) -> str:
    return name.split("[", 1)[0]


def _check_body(report: Report, label: str, request: dict[str, Any], extra: set[str],
                op: Operation, description: Description,
                sources: dict[str, set[str]]) -> None:  # fmt: skip
    body = request.get("body")
    fields: set[str] = set(extra)
    if isinstance(body, dict) and set(body) <= {"from", "exclude"} and "from" in body:
        # the record's or the input's fields, as their schema lists them
        fields |= sources.get(body["from"], set()) - set(body.get("exclude") or ())
        if body["from"] not in sources:
            report.unchecked.append(f"{label}: the body is the {body['from']} itself")
    elif isinstance(body, dict):
        fields |= set(body)
    elif body is not None:
        report.unchecked.append(f"{label}: a body that is not an object of fields")
    if not fields:
        return
    known = _properties(op.body, description.resolve)
    if known is None:
        report.unchecked.append(f"{label}: the operation's body lists no fields")
        return
    for name in sorted(fields):
        if _base_name(name) not in known:
            report.problems.append(f"{label}: body field {name!r} is not one of the operation's")


def _properties(schema_: Any, resolve: Callable[[Any], Any], depth: int = 0) -> set[str] | None:
    """The property names ``schema_`` allows (None: any, or none listed)."""
    schema_ = resolve(schema_)
    if not isinstance(schema_, dict) or depth > MAX_DEPTH:
        return None
    names: set[str] = set((schema_.get("properties") or {}).keys())
    listed = bool(names)
    for key in ("allOf", "oneOf", "anyOf"):
        for part in schema_.get(key) or []:
            more = _properties(part, resolve, depth + 1)
            if more is not None:
                names |= more
                listed = True
    return names if listed else None


OPEN = object()  # what _at finds under an object whose schema lists no fields: anything


def _at(schema_: Any, path: str, resolve: Callable[[Any], Any]) -> tuple[Any, str | None]:
    """The schema at the field path ``path`` of ``schema_``; (None, the field) when a schema on
    the way lists its fields and not that one; (OPEN, None) when one lists none (the description
    says nothing either way)."""
    node = resolve(schema_)
    for part in path.split("."):
        if _properties(node, resolve) is None:
            return OPEN, None
        node = _property(node, part, resolve)
        if node is None:
            return None, part
    return node, None


def _property(schema_: Any, name: str, resolve: Callable[[Any], Any], depth: int = 0) -> Any:
    schema_ = resolve(schema_)
    if not isinstance(schema_, dict) or depth > MAX_DEPTH:
        return None
    found = (schema_.get("properties") or {}).get(name)
    if found is not None:
        return resolve(found) or {}
    for key in ("allOf", "oneOf", "anyOf"):
        for part in schema_.get(key) or []:
            found = _property(part, name, resolve, depth + 1)
            if found is not None:
                return found
    return None


def _items(schema_: Any, resolve: Callable[[Any], Any]) -> Any:
    schema_ = resolve(schema_)
    if isinstance(schema_, dict) and "items" in schema_:
        return resolve(schema_["items"])
    for key in ("allOf", "oneOf", "anyOf"):
        for part in (schema_ or {}).get(key) or [] if isinstance(schema_, dict) else []:
            found = _items(part, resolve)
            if found is not None:
                return found
    return None


def _plain(selector: Any) -> str | None:
    source = selector.source if isinstance(selector, Selector) else selector
    return source if isinstance(source, str) and _FIELD_PATH.match(source) else None


Answer = Callable[[Report, str, Operation, Description], None]


def _requests(raw: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, set[str]],
                                                     Answer | None]]:  # fmt: skip
    if "check" in raw:
        yield "check", raw["check"]["request"], {}, None
    for n, stream in enumerate(raw.get("streams") or []):
        where = f"streams[{n}] ({stream.get('name')})"
        query: set[str] = set()
        body: set[str] = set()
        incremental = stream.get("incremental")
        if incremental:
            where_sent = incremental.get("in", "query")
            if where_sent == "query":
                query.add(incremental["param"])
            elif where_sent == "body":  # a dotted name is a nested field: its top one is checked
                body.add(incremental["param"].split(".")[0])
        pagination = stream.get("pagination") or {}
        kind = pagination.get("type")
        if kind == "cursor":
            where_sent = pagination.get("in", "query")
            if where_sent == "query":
                query.add(pagination["param"])
            elif where_sent == "body":
                body.add(pagination["param"].split(".")[0])
        elif kind == "offset":
            query |= {pagination["offset_param"], pagination["limit_param"]}
        elif kind == "page":
            query.add(pagination["page_param"])
            if "size_param" in pagination:
                query.add(pagination["size_param"])
        yield where, stream["request"], {"query": query, "body": body}, _stream_answer(stream)
        fields = set((stream.get("schema") or {}).get("properties") or {})
        for kind_name, spec in (stream.get("write") or {}).items():
            if isinstance(spec, dict):
                yield (f"{where}.write.{kind_name}", spec, {"record": fields},
                       _write_answer(stream, spec))  # fmt: skip
    for n, action in enumerate(raw.get("actions") or []):
        fields = set((action.get("input_schema") or {}).get("properties") or {})
        yield (f"actions[{n}] ({action.get('name')})", action["request"], {"input": fields},
               _output_answer(action.get("output")))  # fmt: skip


def _stream_answer(stream: dict[str, Any]) -> Answer:
    def answer(report: Report, label: str, op: Operation, description: Description) -> None:
        resolve = description.resolve
        if op.response is None:
            report.unchecked.append(f"{label}: the description gives no answer schema")
            return
        at = stream.get("records")
        if at is None:
            items = _items(op.response, resolve)
        elif (path := _plain(at)) is not None:
            listing, missing = _at(op.response, path, resolve)
            if listing is None:
                report.problems.append(f"{label}: the answer has no {missing!r} (records: {path})")
                return
            if listing is OPEN:
                report.unchecked.append(f"{label}: the description lists no fields of the answer")
                return
            items = _items(listing, resolve)
        else:
            report.unchecked.append(f"{label}: records selector {at!r} is no field path")
            return
        pagination = stream.get("pagination") or {}
        for key in ("has_more",):
            _answer_field(report, label, pagination.get(key), op.response, resolve, "answer")
        if pagination.get("type") == "cursor" and pagination.get("from") == "body":
            _answer_field(report, label, pagination.get("select"), op.response, resolve,
                          "answer")  # fmt: skip
        if items is None:
            report.problems.append(f"{label}: the records are not a list in the description")
            return
        known = _properties(items, resolve)
        if known is None:
            report.unchecked.append(f"{label}: the description lists no fields of a record")
            return
        wanted = {stream.get("primary_key"): "primary key"}
        if stream.get("incremental"):
            wanted[stream["incremental"]["cursor_field"]] = "cursor field"
        if pagination.get("type") == "cursor" and pagination.get("from") == "last_record":
            path = _plain(pagination.get("select"))
            if path:
                wanted[path.split(".")[0]] = "page cursor"
        for name in (stream.get("schema") or {}).get("properties") or {}:
            wanted.setdefault(name, "schema field")
        for name, what in wanted.items():
            if name and name not in known:
                report.problems.append(f"{label}: {what} {name!r} is not a field of the"
                                       " description's records")  # fmt: skip

    return answer


def _answer_field(report: Report, label: str, selector: Any, response: Any,
                  resolve: Callable[[Any], Any], what: str) -> None:  # fmt: skip
    if selector is None:
        return
    path = _plain(selector)
    if path is None:
        report.unchecked.append(f"{label}: {selector!r} is no field path")
        return
    found, missing = _at(response, path, resolve)
    if found is None:
        report.problems.append(f"{label}: the {what} has no {missing!r} ({path})")
    elif found is OPEN:
        report.unchecked.append(f"{label}: the description lists no fields of the {what}"
                                f" ({path})")  # fmt: skip


def _write_answer(stream: dict[str, Any], spec: dict[str, Any]) -> Answer:
    def answer(report: Report, label: str, op: Operation, description: Description) -> None:
        if op.response is None or spec.get("method") == "DELETE":
            return
        record = op.response
        if spec.get("record") is not None:
            path = _plain(spec["record"])
            if path is None:
                report.unchecked.append(f"{label}: record selector {spec['record']!r}")
                return
            record, missing = _at(op.response, path, description.resolve)
            if record is None:
                report.problems.append(f"{label}: the answer has no {missing!r}")
                return
            if record is OPEN:
                report.unchecked.append(f"{label}: the description lists no fields of the answer")
                return
        known = _properties(record, description.resolve)
        pk = stream.get("primary_key")
        if known is not None and pk not in known:
            report.problems.append(f"{label}: the written record's answer has no {pk!r}")

    return answer


def _output_answer(output: Any) -> Answer | None:
    if output is None:
        return None

    def answer(report: Report, label: str, op: Operation, description: Description) -> None:
        if op.response is not None:
            _answer_field(report, label, output, op.response, description.resolve, "answer")

    return answer
