"""Connectors' JSON Schemas (their config schemas) run against tenants' input, safely.

Python's ``re`` backtracks without bound (``^(a+)+$`` takes seconds on 30 characters) and
validation runs on the event loop, so :func:`errors` matches ``pattern`` and
``patternProperties`` with the ``regex`` engine under one time budget per validation: a value
that exhausts it is reported as a problem, never waited for. A ``$ref`` that does not resolve,
or a pattern that does not compile, makes the schema unusable (:class:`UnusableSchema`), which
callers report instead of failing. Publishing refuses such schemas up front
(:func:`schema_problems`): only local references that resolve, patterns that compile.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import jsonschema
import orjson
import regex
from jsonschema import ValidationError
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

PATTERN_BUDGET = 0.1  # seconds of pattern matching for one validation
FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER
_DEADLINE: ContextVar[float] = ContextVar("seedos_pattern_deadline", default=0.0)

# Where a schema holds schemas (draft 2020-12, and the older spellings still met)
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_ONE = (
    "additionalProperties", "unevaluatedProperties", "items", "additionalItems", "contains",
    "unevaluatedItems", "propertyNames", "not", "if", "then", "else",
)  # fmt: skip
_UNBOUNDED = (
    "unevaluatedProperties with patternProperties (property names would be matched without a"
    " time limit)"
)


class UnusableSchema(Exception):
    """The schema cannot validate anything: a reference or pattern in it is broken."""


class _OutOfTime(Exception):
    pass


def _validator(schema: dict[str, Any]) -> Any:
    """A validator for ``schema``, reused for an equal schema: building one costs about as much
    as a record's validation (a stream's schema checks every record a sync or edit changes)."""
    try:
        key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):  # not JSON (a caller's own object): uncached
        return _build(schema)
    return _cached(key)


@functools.lru_cache(maxsize=512)
def _cached(key: bytes) -> Any:
    return _build(orjson.loads(key))


def _build(schema: dict[str, Any]) -> Any:
    if _pattern_names_unbounded(schema):
        raise UnusableSchema(f"it uses {_UNBOUNDED}")
    return _Validator(schema, format_checker=FORMATS)


def errors(schema: dict[str, Any], instance: Any) -> list[ValidationError]:
    """Every validation error of ``instance`` (draft 2020-12, formats checked), patterns matched
    within :data:`PATTERN_BUDGET`; :class:`UnusableSchema` when the schema itself is broken."""
    token = _DEADLINE.set(time.monotonic() + PATTERN_BUDGET)
    try:
        return list(_validator(schema).iter_errors(instance))
    except Unresolvable as exc:
        raise UnusableSchema(
            f"the reference {getattr(exc, 'ref', '?')!r} does not resolve"
        ) from None
    except regex.error as exc:
        raise UnusableSchema(f"a pattern does not compile ({exc})") from None
    except RecursionError:
        raise UnusableSchema("it is nested too deeply") from None
    finally:
        _DEADLINE.reset(token)


def schema_problems(schema: dict[str, Any]) -> list[tuple[str, str]]:
    """What would make a well-formed schema fail when used: ``(path, message)`` pairs, paths
    relative to the schema. References must be local (``#...``) and resolve; nested ``$id``
    (which would move what ``#`` means) is refused; patterns must compile."""
    base = schema.get("$id") if isinstance(schema.get("$id"), str) else ""
    resolver = Registry().with_resource(base, DRAFT202012.create_resource(schema)).resolver(base)
    found = []
    for path, sub in subschemas(schema):
        if path and "$id" in sub:
            found.append((f"{path}/$id", "an $id below the schema's root is not supported"))
        for keyword in ("$ref", "$dynamicRef"):
            ref = sub.get(keyword)
            if not isinstance(ref, str):
                continue
            if not ref.startswith("#"):
                found.append((f"{path}/{keyword}", "only references within the schema (#/...)"
                              " are allowed"))  # fmt: skip
                continue
            try:
                resolver.lookup(ref)
            except (Unresolvable, LookupError, ValueError, TypeError):
                found.append((f"{path}/{keyword}", f"{ref!r} does not resolve in this schema"))
        patterns = [("pattern", sub["pattern"])] if isinstance(sub.get("pattern"), str) else []
        if isinstance(sub.get("patternProperties"), dict):
            patterns += [(f"patternProperties/{p}", p) for p in sub["patternProperties"]]
        for where, pattern in patterns:
            try:
                regex.compile(pattern)
            except regex.error as exc:
                found.append((f"{path}/{where}", f"the pattern does not compile: {exc}"))
    if _pattern_names_unbounded(schema):
        found.append(("", f"not supported: {_UNBOUNDED}"))
    return sorted(found)


def subschemas(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object schema inside ``schema`` (itself included) with its path; data such as
    ``enum``, ``const`` or ``default`` is not walked. Iterative: depth costs no stack."""
    stack = [(schema, path)]
    while stack:
        sub, where = stack.pop()
        if not isinstance(sub, dict):
            continue
        yield where, sub
        for keyword in _SCHEMA_MAPS:
            if isinstance(sub.get(keyword), dict):
                stack += [(s, f"{where}/{keyword}/{k}") for k, s in sub[keyword].items()]
        for keyword in (*_SCHEMA_LISTS, *_SCHEMA_ONE):
            value = sub.get(keyword)
            if isinstance(value, list) and keyword in (*_SCHEMA_LISTS, "items"):
                stack += [(s, f"{where}/{keyword}/{i}") for i, s in enumerate(value)]
            elif keyword in _SCHEMA_ONE:
                stack.append((value, f"{where}/{keyword}"))


def _pattern_names_unbounded(schema: dict[str, Any]) -> bool:
    """jsonschema matches patternProperties for unevaluatedProperties with ``re`` itself."""
    keywords = {k for _, sub in subschemas(schema) for k in sub}
    return {"unevaluatedProperties", "patternProperties"} <= keywords


def _search(pattern: str, text: str) -> bool:
    remaining = _DEADLINE.get() - time.monotonic()
    if remaining <= 0:
        raise _OutOfTime
    try:
        return regex.search(pattern, text, timeout=remaining) is not None
    except TimeoutError:
        raise _OutOfTime from None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "string"):
        return
    try:
        if not _search(pattern, instance):
            yield ValidationError(f"{instance!r} does not match {pattern!r}")
    except _OutOfTime:
        yield ValidationError(f"took too long to check against the pattern {pattern!r}")


def _matching(names: Any, patterns: Any) -> Iterator[tuple[str, str | None]]:
    """Each name with the first pattern it matches (None: none); out of time raises."""
    for name in names:
        yield name, next((p for p in patterns if _search(p, name)), None)


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    try:
        for pattern, subschema in patterns.items():
            for name, hit in _matching(instance, [pattern]):
                if hit:
                    yield from validator.descend(
                        instance[name], subschema, path=name, schema_path=pattern
                    )
    except _OutOfTime:
        yield ValidationError("took too long to match the property names against patterns")


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    undeclared = [n for n in instance if n not in schema.get("properties", {})]
    try:
        matched = list(_matching(undeclared, list(schema.get("patternProperties", {}))))
    except _OutOfTime:
        yield ValidationError("took too long to match the property names against patterns")
        return
    extras = sorted(name for name, hit in matched if hit is None)
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:  # jsonschema's own messages
        listed, plural = ", ".join(repr(e) for e in extras), len(extras) > 1
        if "patternProperties" in schema:
            patterns = ", ".join(repr(p) for p in sorted(schema["patternProperties"]))
            verb = "do" if plural else "does"
            yield ValidationError(f"{listed} {verb} not match any of the regexes: {patterns}")
        else:
            verb = "were" if plural else "was"
            yield ValidationError(
                f"Additional properties are not allowed ({listed} {verb} unexpected)"
            )


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
    },
)
