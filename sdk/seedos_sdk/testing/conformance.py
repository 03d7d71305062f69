"""The conformance suite every connector gets in one call.

Each check talks to a running connector over HTTP, exactly as the connector service will. Use
:func:`conformance_suite` for a pytest class, or :func:`run_checks` (the ``seedos-connector
test`` command) for a report.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jsonschema

PROBLEM = "application/problem+json"
MAX_PAGES = 10_000


class ConformanceError(AssertionError):
    pass


def _ensure(condition: bool, message: str) -> None:
    if not condition:
        raise ConformanceError(message)


@dataclass
class Target:
    url: str
    config: dict[str, Any]
    credentials: dict[str, Any]
    write_samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60))

    def envelope(self, **extra: Any) -> dict[str, Any]:
        return {"config": self.config, "credentials": self.credentials, **extra}

    def manifest(self) -> dict[str, Any]:
        r = self.client.get(self.url + "/manifest")
        _ensure(r.status_code == 200, f"GET /manifest answered {r.status_code}")
        return r.json()

    def read(self, stream: str, cursor: str | None) -> dict[str, Any]:
        r = self.client.post(f"{self.url}/streams/{stream}/read", json=self.envelope(cursor=cursor))
        _ensure(r.status_code == 200, f"read {stream} answered {r.status_code}: {r.text[:300]}")
        return r.json()

    def read_all(
        self, stream: str, cursor: str | None = None
    ) -> tuple[list[dict], list[str], str | None]:
        """Every page from ``cursor`` to the end: (records, deleted, last cursor)."""
        records: list[dict] = []
        deleted: list[str] = []
        seen_cursors = {cursor}
        for _ in range(MAX_PAGES):
            page = self.read(stream, cursor)
            _ensure(
                set(page) >= {"records", "deleted", "next_cursor", "has_more"},
                f"read {stream}: a page has records, deleted, next_cursor, has_more",
            )
            records += page["records"]
            deleted += page["deleted"]
            if page["next_cursor"] is not None:
                cursor = page["next_cursor"]
            if not page["has_more"]:
                return records, deleted, cursor
            _ensure(
                page["next_cursor"] not in seen_cursors,
                f"read {stream}: the cursor did not advance ({page['next_cursor']!r})",
            )
            seen_cursors.add(page["next_cursor"])
        raise ConformanceError(f"read {stream}: more than {MAX_PAGES} pages")


# --------------------------------------------------------------------------- checks


def check_manifest(t: Target) -> None:
    m = t.manifest()
    for key in ("name", "version", "auth", "config_schema", "streams", "actions"):
        _ensure(key in m, f"the manifest has no {key!r}")
    _ensure(
        m["auth"].get("scheme") in {"oauth2", "api_key", "basic", "none"}, "unknown auth scheme"
    )
    if m["auth"]["scheme"] == "oauth2":
        _ensure(
            bool(m["auth"].get("authorize_url") and m["auth"].get("token_url")),
            "oauth2 needs authorize_url and token_url",
        )
    schemas = [("config_schema", m["config_schema"])]
    schemas += [(f"stream {s['name']}", s["schema"]) for s in m["streams"]]
    for a in m["actions"]:
        schemas += [
            (f"action {a['name']} input", a["input_schema"]),
            (f"action {a['name']} output", a["output_schema"]),
        ]
    for what, schema in schemas:
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ConformanceError(f"{what} is not a valid JSON Schema: {exc.message}") from None
    for s in m["streams"]:
        _ensure(
            s["primary_key"] in s["schema"].get("properties", {}),
            f"stream {s['name']}: primary key {s['primary_key']!r} is not in its schema",
        )


def check_connection(t: Target) -> None:
    r = t.client.post(t.url + "/check", json=t.envelope())
    _ensure(
        r.status_code == 200 and r.json().get("ok") is True,
        f"POST /check with the given config answered {r.status_code}: {r.text[:300]}",
    )


def check_bad_requests(t: Target) -> None:
    r = t.client.post(
        t.url + "/check", content=b"{not json", headers={"content-type": "application/json"}
    )
    _problem(r, 422, "POST /check with a broken body")
    r = t.client.post(t.url + "/streams/no-such-stream/read", json=t.envelope())
    _problem(r, 404, "reading an unknown stream")


def check_streams(t: Target) -> None:
    for s in t.manifest()["streams"]:
        records, _deleted, _cursor = t.read_all(s["name"])
        validator = jsonschema.Draft202012Validator(s["schema"])
        keys = []
        for record in records:
            errors = list(validator.iter_errors(record))
            _ensure(
                not errors,
                f"stream {s['name']}: record invalid: {errors[0].message if errors else ''}",
            )
            _ensure(s["primary_key"] in record, f"stream {s['name']}: a record has no primary key")
            keys.append(str(record[s["primary_key"]]))
        _ensure(len(keys) == len(set(keys)), f"stream {s['name']}: a full read repeated a record")


def check_writes(t: Target) -> None:
    """Upsert each sample, read it back; delete it, see it in ``deleted`` (or, for a stream
    without a cursor, gone from a full read). A sample the API gave a key of its own (the
    result's ``record``) is read back and deleted under that key."""
    for s in t.manifest()["streams"]:
        if not s.get("writable"):
            continue
        samples = t.write_samples.get(s["name"])
        _ensure(bool(samples), f"stream {s['name']} is writable: give write_samples for it")
        pk = s["primary_key"]
        _records, _deleted, cursor = t.read_all(s["name"])
        batch = []
        for sample in samples or []:
            item = copy.deepcopy(sample)
            item.setdefault(pk, f"conformance-{uuid.uuid4().hex[:12]}")
            batch.append(item)
        r = t.client.post(
            f"{t.url}/streams/{s['name']}/write", json=t.envelope(upserts=batch, deletes=[])
        )
        _ensure(r.status_code == 200, f"write {s['name']} answered {r.status_code}: {r.text[:300]}")
        results = r.json()["results"]
        _ensure(all(x["ok"] for x in results), f"write {s['name']}: {results}")
        _ensure(
            [str(x["key"]) for x in results] == [str(b[pk]) for b in batch],
            f"write {s['name']}: results name other keys",
        )
        keys = []  # each sample's key in the API: its own, or the one the API gave it
        for item, result in zip(batch, results, strict=True):
            given = (result.get("record") or {}).get(pk)
            keys.append(str(given) if given not in (None, "") else str(item[pk]))
        incremental = bool(s.get("cursor_field"))  # else every read is a full read
        records, _d, cursor_after = t.read_all(s["name"], cursor if incremental else None)
        by_key = {str(rec[pk]): rec for rec in records}
        for item, key in zip(batch, keys, strict=True):
            got = by_key.get(key)
            _ensure(got is not None, f"stream {s['name']}: written record {key!r} not read back")
            for field_name, value in item.items():
                if field_name == pk:
                    continue
                _ensure(
                    got.get(field_name) == value,
                    f"stream {s['name']}: {field_name!r} read back as {got.get(field_name)!r},"
                    f" wrote {value!r}",
                )
        r = t.client.post(
            f"{t.url}/streams/{s['name']}/write", json=t.envelope(upserts=[], deletes=keys)
        )
        _ensure(
            r.status_code == 200 and all(x["ok"] for x in r.json()["results"]),
            f"delete in {s['name']} failed: {r.text[:300]}",
        )
        records, deleted, _c = t.read_all(s["name"], cursor_after if incremental else None)
        if incremental:
            _ensure(set(keys) <= set(deleted),
                    f"stream {s['name']}: deletions not reported: {deleted}")  # fmt: skip
        else:  # what was deleted is no longer in a full read
            left = set(keys) & ({str(rec[pk]) for rec in records} - set(deleted))
            _ensure(not left, f"stream {s['name']}: deleted records still read: {sorted(left)}")
        r = t.client.post(
            f"{t.url}/streams/{s['name']}/write",
            json=t.envelope(upserts=[{"no": "primary key"}], deletes=[]),
        )
        _problem(r, 422, f"write {s['name']} of a record without its primary key")


def check_actions_reject_bad_input(t: Target) -> None:
    for a in t.manifest()["actions"]:
        for bad in _invalid_inputs(a["input_schema"]):
            r = t.client.post(f"{t.url}/actions/{a['name']}", json=t.envelope(input=bad))
            _problem(r, 422, f"action {a['name']} with input {bad!r}")
    r = t.client.post(f"{t.url}/actions/no-such-action", json=t.envelope(input={}))
    _problem(r, 404, "an unknown action")


_WRONG_TYPE = {"string": 12345, "integer": "x", "number": "x", "boolean": "x",
               "array": "x", "object": "x", "null": "x"}  # fmt: skip


def _invalid_inputs(schema: dict[str, Any]) -> Iterator[Any]:
    """Inputs the schema refuses: wrong shapes, a missing required field, a wrongly typed
    property, an unknown property where none is allowed."""
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    candidates: list[Any] = ["not-an-object", 12345, [], None, {}]
    props = schema.get("properties", {})
    for name, prop in props.items():
        kind = prop.get("type") if isinstance(prop, dict) else None
        if isinstance(kind, str) and kind in _WRONG_TYPE:
            candidates.append({name: _WRONG_TYPE[kind]})
        if isinstance(prop, dict) and prop.get("format") == "email":
            candidates.append({name: "not-an-email"})
    if schema.get("additionalProperties") is False:
        candidates.append({"unexpected-property": 1})
    for candidate in candidates:
        if not validator.is_valid(candidate):
            yield candidate


def _problem(r: httpx.Response, status: int, what: str) -> None:
    _ensure(
        r.status_code == status, f"{what}: expected {status}, got {r.status_code}: {r.text[:200]}"
    )
    _ensure(r.headers.get("content-type", "").startswith(PROBLEM), f"{what}: not problem+json")
    body = r.json()
    _ensure("code" in body and "category" in body, f"{what}: the problem has no code/category")


CHECKS: dict[str, Callable[[Target], None]] = {
    "manifest": check_manifest,
    "connection": check_connection,
    "bad_requests": check_bad_requests,
    "streams": check_streams,
    "writes_and_deletions": check_writes,
    "actions_reject_bad_input": check_actions_reject_bad_input,
}


def run_checks(target: Target) -> dict[str, str | None]:
    """Run every check; returns check name -> None when it passed, else the failure."""
    results: dict[str, str | None] = {}
    for name, check in CHECKS.items():
        try:
            check(target)
            results[name] = None
        except (ConformanceError, httpx.HTTPError, ValueError, KeyError) as exc:
            results[name] = f"{type(exc).__name__}: {exc}"
    return results


def conformance_suite(
    *,
    url_fixture: str,
    config: dict[str, Any] | str,
    credentials: dict[str, Any] | str | None = None,
    write_samples: dict[str, list[dict[str, Any]]] | None = None,
) -> type:
    """A pytest test class with one test per conformance check::

        TestConformance = conformance_suite(url_fixture="connector_url", config={...})

    ``url_fixture`` names a fixture returning the running connector's base URL. ``config`` and
    ``credentials`` are dicts, or names of fixtures returning them (when they depend on
    something a fixture starts, such as the external API's port).
    """

    import pytest

    def resolve(request: Any, value: dict[str, Any] | str | None) -> dict[str, Any]:
        return request.getfixturevalue(value) if isinstance(value, str) else (value or {})

    def make(check: Callable[[Target], None]) -> Callable[..., None]:
        def test(self: Any, request: Any) -> None:
            target = Target(
                request.getfixturevalue(url_fixture),
                resolve(request, config),
                resolve(request, credentials),
                write_samples or {},
            )
            try:
                check(target)
            finally:
                target.client.close()

        test.__doc__ = check.__doc__
        # asked for by name up front, so a parametrized fixture runs the suite once per value
        return pytest.mark.usefixtures(url_fixture)(test)

    namespace = {f"test_{name}": make(check) for name, check in CHECKS.items()}
    return type("ConformanceSuite", (), namespace)
