"""Connectors' schemas against tenants' input: patterns in bounded time, broken schemas
reported, and what publishing refuses up front."""

from __future__ import annotations

import time

import jsonschema
import pytest

from common import jsonschemas

# catastrophic backtracking for re (seconds at 34 characters, doubling per few more) and regex
SLOW = r"^(a|aa)+$"


def _messages(schema: dict, instance: object) -> list[str]:
    return sorted(e.message for e in jsonschemas.errors(schema, instance))


def test_a_catastrophic_pattern_is_a_problem_within_the_budget():
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": SLOW},
                                               "b": {"type": "integer"}}}  # fmt: skip
    started = time.monotonic()
    found = _messages(schema, {"a": "a" * 60 + "!", "b": "x"})
    assert time.monotonic() - started < 1
    assert found == ["'x' is not of type 'integer'",
                     f"took too long to check against the pattern {SLOW!r}"]  # fmt: skip
    names = {"type": "object", "patternProperties": {SLOW: {}}, "additionalProperties": False}
    started = time.monotonic()
    assert _messages(names, {"a" * 60 + "!": 1}) == [
        "took too long to match the property names against patterns"] * 2  # fmt: skip
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    ("schema", "instance"),
    [
        ({"pattern": "^ab?c$"}, "abc"),
        ({"pattern": "^ab?c$"}, "abd"),
        ({"patternProperties": {"^x_": {"type": "integer"}}, "additionalProperties": False},
         {"x_a": 1, "x_b": "no", "y": 2}),
        ({"properties": {"a": {}}, "additionalProperties": False}, {"a": 1, "b": 2, "c": 3}),
        ({"properties": {"a": {}}, "additionalProperties": False}, {"b": 2}),
        ({"properties": {"a": {}}, "patternProperties": {"^b": {}},
          "additionalProperties": {"type": "string"}}, {"a": 1, "b": 2, "c": 3}),
    ],
)  # fmt: skip
def test_ordinary_patterns_validate_as_jsonschema_does(schema, instance):
    expected = jsonschema.Draft202012Validator(schema).iter_errors(instance)
    assert _messages(schema, instance) == sorted(e.message for e in expected)


def test_a_broken_schema_is_unusable_not_an_exception_midway():
    with pytest.raises(jsonschemas.UnusableSchema, match="does not resolve"):
        jsonschemas.errors({"properties": {"a": {"$ref": "#/$defs/nope"}}}, {"a": 1})
    with pytest.raises(jsonschemas.UnusableSchema, match="unevaluatedProperties"):
        jsonschemas.errors({"patternProperties": {"^a": {}}, "unevaluatedProperties": False}, {})


def test_publishing_refuses_references_and_patterns_that_cannot_work():
    assert jsonschemas.schema_problems({
        "type": "object", "$defs": {"ok": {"type": "string"}},
        "properties": {"a": {"$ref": "#/$defs/ok"}, "b": {"enum": [{"$ref": "data, not a ref"}]},
                       "c": {"pattern": SLOW}},
    }) == []  # fmt: skip
    assert jsonschemas.schema_problems({
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/nope"}, "r": {"$ref": "https://example.com/s"},
                       "n": {"$id": "inner", "items": [{"pattern": "(?<"}]}},
        "patternProperties": {"[": {}},
    }) == [
        ("/patternProperties/[", "the pattern does not compile: unterminated character set at position 1"),
        ("/properties/a/$ref", "'#/$defs/nope' does not resolve in this schema"),
        ("/properties/n/$id", "an $id below the schema's root is not supported"),
        ("/properties/n/items/0/pattern", "the pattern does not compile: missing group name at position 3"),
        ("/properties/r/$ref", "only references within the schema (#/...) are allowed"),
    ]  # fmt: skip
