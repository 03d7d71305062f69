"""Reading a connector definition (``connector.yaml``): parsed, checked against its published
JSON Schema (``definition.schema.json``), and every template and selector compiled. A definition
that fails is refused with every problem at once, each with where it is."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from seedos_sdk.connector import check_schema
from seedos_sdk.declarative.templates import Selector, TemplateProblem, compile_value

SELECTOR_KEYS = frozenset({"records", "select", "output", "has_more", "message", "when", "record",
                           "retry_when"})  # fmt: skip
MAX_BYTES = 1024 * 1024  # a definition's size
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, when PyYAML has it: 6x faster


class DefinitionError(ValueError):
    """A definition that cannot be used: ``problems`` lists every one, ``where: what``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("the connector definition has problems:\n- " + "\n- ".join(problems))


@cache
def schema() -> dict[str, Any]:
    """The definition format's JSON Schema (version 1)."""
    text = resources.files("seedos_sdk.declarative").joinpath("definition.schema.json").read_text()
    return json.loads(text)


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema())


@dataclass(frozen=True)
class Definition:
    """A checked definition: its raw data, compiled parts and digest (SHA-256 of its text)."""

    raw: dict[str, Any]
    compiled: dict[str, Any]
    digest: str

    @property
    def name(self) -> str:
        return self.raw["name"]

    @property
    def version(self) -> str:
        return self.raw["version"]


def digest_of(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def load(text: str | bytes) -> Definition:
    """A definition from its YAML (or JSON) text, checked and compiled; :class:`DefinitionError`
    with every problem otherwise."""
    size = len(text.encode()) if isinstance(text, str) else len(text)
    if size > MAX_BYTES:
        raise DefinitionError([f"(file): larger than {MAX_BYTES} bytes"])
    try:
        if _aliased(text):  # &anchors and *aliases: a few KB could expand to gigabytes
            raise DefinitionError(["(file): YAML anchors and aliases (&, *) are not allowed"])
        raw = yaml.load(text, Loader=_LOADER)  # noqa: S506  (a safe loader: C or Python)
    except yaml.YAMLError as exc:
        raise DefinitionError([f"(file): not valid YAML: {exc}"]) from None
    except RecursionError:
        raise DefinitionError(["(file): nested too deeply"]) from None
    if not isinstance(raw, dict):
        raise DefinitionError(["(file): a definition is a mapping (name, version, streams ...)"])
    try:
        problems = [f"{_where(e.absolute_path)}: {e.message}" for e in _schema_errors(raw)]
        # templates and selectors are compiled whatever the shape: their problems are listed
        # with the schema's, and the consistency checks run on a valid shape only
        schema_ok = not problems
        compiled = _compile(raw, problems)
        if schema_ok:
            problems += _consistency(raw)
    except RecursionError:
        raise DefinitionError(["(file): nested too deeply"]) from None
    if problems:
        raise DefinitionError(problems)
    return Definition(raw=raw, compiled=compiled, digest=digest_of(text))


def _aliased(text: str | bytes) -> bool:
    """Whether the YAML refers to an anchor (a parse of its events, without building it)."""
    return any(isinstance(e, yaml.AliasEvent) for e in yaml.parse(text, Loader=_LOADER))


def load_file(path: str | Path) -> Definition:
    return load(Path(path).read_bytes())


def _schema_errors(raw: dict[str, Any]) -> list[jsonschema.ValidationError]:
    """Every schema error; of a oneOf, the errors of the branch its `type` names (not "is not
    valid under any of the given schemas")."""
    out: list[jsonschema.ValidationError] = []
    for error in sorted(_validator().iter_errors(raw), key=lambda e: list(e.absolute_path)):
        if error.validator == "oneOf" and error.context:
            kind = error.instance.get("type") if isinstance(error.instance, dict) else None
            chosen = [
                e for e in error.context
                if kind is not None and _branch_type(error.schema, e.schema_path) == kind
            ]  # fmt: skip
            if chosen:
                out += chosen
                continue
            if kind is not None:
                types = ", ".join(
                    b["properties"]["type"]["const"] for b in error.schema["oneOf"]
                )  # fmt: skip
                error.message = f"type {kind!r} is not one of: {types}"
        out.append(error)
    return out


def _branch_type(schema_: dict[str, Any], path: Any) -> str | None:
    branch = schema_["oneOf"][next(iter(path))]
    return branch.get("properties", {}).get("type", {}).get("const")


def _where(path: Any) -> str:
    parts = list(path)
    if not parts:
        return "(top)"
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _compile(raw: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """The definition with its templates and selectors compiled (JSON Schemas left as they are);
    what does not compile is added to ``problems``."""

    def walk(value: Any, path: list[Any]) -> Any:
        key = path[-1] if path else None
        if key in ("schema", "config_schema", "input_schema", "output_schema"):
            return value
        if key in SELECTOR_KEYS and isinstance(value, str):
            try:
                return Selector(value)
            except TemplateProblem as exc:
                problems.append(f"{_where(path)}: {exc}")
                return None
        if isinstance(value, dict):
            return {k: walk(v, [*path, k]) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, [*path, n]) for n, v in enumerate(value)]
        try:
            return compile_value(value)
        except TemplateProblem as exc:
            problems.append(f"{_where(path)}: {exc}")
            return None

    return walk(raw, [])


def _consistency(raw: dict[str, Any]) -> list[str]:
    """What the schema cannot say: unique names, schemas that are schemas, the primary key and
    cursor field among a stream's properties, writes that can write."""
    problems: list[str] = []
    for kind in ("streams", "actions"):
        seen: set[str] = set()
        for n, item in enumerate(raw.get(kind, [])):
            if item["name"] in seen:
                problems.append(f"{kind}[{n}].name: {item['name']!r} is defined twice")
            seen.add(item["name"])
    for field_ in ("config_schema",):
        if field_ in raw:
            problems += _json_schema(raw[field_], field_)
    for n, stream in enumerate(raw.get("streams", [])):
        where = f"streams[{n}]"
        problems += _json_schema(stream["schema"], f"{where}.schema")
        properties = stream["schema"].get("properties", {})
        if properties and stream["primary_key"] not in properties:
            problems.append(f"{where}.primary_key: {stream['primary_key']!r} is not a property"
                            " of its schema")  # fmt: skip
        incremental = stream.get("incremental")
        if incremental and properties and incremental["cursor_field"] not in properties:
            field_ = incremental["cursor_field"]
            problems.append(f"{where}.incremental.cursor_field: {field_!r} is not a property"
                            " of its schema")  # fmt: skip
        pagination = stream.get("pagination", {})
        if pagination.get("type") == "watermark" and not incremental:
            problems.append(f"{where}.pagination: watermark pages need incremental (the"
                            " parameter the last value is sent in)")  # fmt: skip
        if (
            pagination.get("type") == "cursor"
            and pagination.get("from") == "header"
            and (not pagination.get("header"))
        ):
            problems.append(f"{where}.pagination.header: needed with from: header")
        if (
            pagination.get("type") == "cursor"
            and pagination.get("from") != "header"
            and (not pagination.get("select"))
        ):
            problems.append(f"{where}.pagination.select: needed with from: body or last_record")
        method = stream["request"].get("method", "GET")
        if (
            incremental
            and incremental.get("in", "query") != "query"
            and not incremental.get("param")
        ):
            problems.append(f"{where}.incremental.param: needed with in: {incremental['in']}")
        if method == "GET" and incremental and incremental.get("in") == "body":
            problems.append(f"{where}.incremental.in: a GET request has no body to send"
                            f" {incremental.get('param')!r} in")  # fmt: skip
        in_body = pagination.get("in") == "body" and pagination.get("type") in (
            "cursor", "offset", "page")  # fmt: skip
        if method == "GET" and in_body:
            what = pagination.get("param") or pagination.get("offset_param") or pagination.get(
                "page_param")  # fmt: skip
            problems.append(f"{where}.pagination.in: a GET request has no body to send"
                            f" {what!r} in")  # fmt: skip
        if (
            pagination.get("type") == "link"
            and pagination.get("from") == "body"
            and not (pagination.get("select"))
        ):
            problems.append(f"{where}.pagination.select: needed with from: body")
        write = stream.get("write")
        if write is not None and not ({"upsert", "update", "create"} & write.keys()):
            problems.append(f"{where}.write: give upsert, or update (and create)")
    streams = {s["name"] for s in raw.get("streams") or []}
    for n, event in enumerate((raw.get("webhooks") or {}).get("events") or []):
        where = f"webhooks.events[{n}]"
        if not event.get("pull") and not (event.get("stream") and event.get("record")):
            problems.append(f"{where}: give stream and record (the event carries the record),"
                            " or pull (a stream to read now)")  # fmt: skip
        for key in ("stream", "pull"):
            if event.get(key) and event[key] not in streams:
                problems.append(f"{where}.{key}: no stream {event[key]!r}")
        if event.get("deleted") and not event.get("stream"):
            problems.append(f"{where}.deleted: needs the stream whose record it deletes")
    for where, request in _requests(raw):
        path = request["path"]
        if "{{" not in path and "{%" not in path and _ABSOLUTE.match(path):
            problems.append(f"{where}.path: a path on base_url, not a URL of its own (the"
                            " install's credentials go to the API's origin only)")  # fmt: skip
    for n, action in enumerate(raw.get("actions", [])):
        for field_ in ("input_schema", "output_schema"):
            if field_ in action:
                problems += _json_schema(action[field_], f"actions[{n}].{field_}")
    return problems


_ABSOLUTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:|//)")


def _requests(raw: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every request of the definition, with where it is."""
    out = [("check.request", raw["check"]["request"])] if "check" in raw else []
    for n, stream in enumerate(raw.get("streams", [])):
        out.append((f"streams[{n}].request", stream["request"]))
        for kind, request in (stream.get("write") or {}).items():
            if isinstance(request, dict):
                out.append((f"streams[{n}].write.{kind}", request))
    out += [(f"actions[{n}].request", a["request"]) for n, a in enumerate(raw.get("actions", []))]
    return out


def _json_schema(value: dict[str, Any], where: str) -> list[str]:
    try:
        check_schema(value)
    except jsonschema.SchemaError as exc:
        return [f"{where}: not a valid JSON Schema: {exc.message}"]
    return []
