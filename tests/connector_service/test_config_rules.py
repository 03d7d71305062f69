"""An install's config against a connector's schema that is broken, or slow to match: reported
as problems (a 422 for the caller), never an exception or a stalled event loop."""

from __future__ import annotations

import time

import pytest

from connector_service.integrations import config


def test_a_schema_whose_reference_does_not_resolve_is_a_problem():
    schema = {"type": "object", "properties": {
        "a": {"$ref": "#/$defs/nope"}, "k": {"x-secret": True, "$ref": "#/nope"}}}  # fmt: skip
    found = config.problems(schema, config={"a": 1}, credentials={"k": "s3cret"})
    assert [p["path"] for p in found] == ["/config", "/credentials/k"]
    assert all("config schema cannot be used" in p["message"] for p in found)
    assert "s3cret" not in str(found)


def test_a_catastrophic_pattern_is_a_problem_of_the_value_quickly():
    schema = {"type": "object", "properties": {"name": {"type": "string", "pattern": "^(a|aa)+$"},
                                               "key": {"x-secret": True, "pattern": "^(a|aa)+$"}}}  # fmt: skip
    started = time.monotonic()
    found = config.problems(schema, config={"name": "a" * 60 + "!"},
                            credentials={"key": "a" * 60 + "!"})  # fmt: skip
    assert time.monotonic() - started < 1
    assert found == [
        {"path": "/config/name", "message": "took too long to check against the pattern '^(a|aa)+$'"},
        {"path": "/credentials/key", "message": "breaks the 'pattern' rule"},
    ]  # fmt: skip


def test_a_record_against_a_broken_or_slow_stream_schema_is_refused_quickly():
    from connector_service.sync.record_service import _validate
    from connector_service.sync.service import InvalidRecord

    broken = {"name": "contacts", "schema": {"type": "object",
              "properties": {"owner": {"$ref": "#/$defs/nope"}}}}  # fmt: skip
    with pytest.raises(InvalidRecord) as info:
        _validate({"owner": "x"}, broken)
    assert "schema is unusable" in info.value.extra["errors"][0]["message"]
    slow = {"name": "contacts", "schema": {"type": "object",
            "properties": {"name": {"type": "string", "pattern": "^(a|aa)+$"}}}}  # fmt: skip
    started = time.monotonic()
    with pytest.raises(InvalidRecord) as info:
        _validate({"name": "a" * 60 + "!"}, slow)
    assert time.monotonic() - started < 1
    assert info.value.extra["errors"][0]["path"] == "/name"
