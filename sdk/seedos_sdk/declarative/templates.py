"""Templates and selectors of connector definitions: data, never code.

- **Templates** (strings holding ``{{ ... }}``) are Jinja2 expressions in a sandbox narrower than
  Jinja's own: a template may hold text, ``{{ expression }}`` and ``{% if %}``, nothing else (no
  loops, macros, ``set``, includes or calls); an expression may read names (``config``,
  ``credentials``, ``record``, ``input``, ``key``, ``cursor``, ``now``), look items up in them
  (``config.base_url`` and ``config["base_url"]`` are the same: a mapping's item, never a Python
  attribute), compare, combine with ``and``/``or``/``not``/``~``/``+``, and apply the filters of
  :data:`FILTERS`. Anything else is refused when the definition is compiled, with where it is.
  A template that is one expression alone (``"{{ config.page_size }}"``) keeps its value's type.
- **Selectors** are JMESPath expressions: no loops or code, so their work is bounded by the
  document they read, except for what :class:`Selector` refuses as unbounded: a syntax tree
  nested deeper than :data:`MAX_SELECTOR_DEPTH` (the evaluator recurses), and a selector whose
  answer can hold what it read more than :data:`MAX_SELECTOR_COPIES` times over (``[@, @]``
  doubles its input; chained, ``[@, @] | [@, @] | ...`` grows exponentially).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import jmespath
from jinja2 import StrictUndefined, Undefined, nodes
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_TEMPLATE = 4096  # characters of one template
MAX_SELECTOR_DEPTH = 32  # levels of a selector's syntax tree
MAX_SELECTOR_COPIES = 16  # times over a selector's answer may hold what it reads


class TemplateProblem(ValueError):
    """A template or selector that may not be used (why, in words)."""


def _epoch(value: Any) -> int:
    """An ISO 8601 time (or a number) as whole seconds since 1970."""
    if isinstance(value, int | float):
        return int(value)
    return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp())


def _iso(value: Any) -> str:
    """Seconds since 1970 (or an ISO 8601 time) as ISO 8601 in UTC."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).isoformat()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).isoformat()


FILTERS: dict[str, Callable[..., Any]] = {
    "default": lambda value, fallback="": (
        fallback if isinstance(value, Undefined) or value is None or value == "" else value
    ),
    "lower": lambda value: str(value).lower(),
    "upper": lambda value: str(value).upper(),
    "trim": lambda value: str(value).strip(),
    "string": lambda value: "" if value is None else str(value),
    "int": lambda value: int(value),
    # '.' and '..' would be dot segments (removed, moving the path up): encoded too
    "urlencode": lambda value: (
        quote(str(value), safe="").replace(".", "%2E")
        if str(value) in (".", "..")
        else quote(str(value), safe="")
    ),
    "b64encode": lambda value: base64.b64encode(str(value).encode()).decode(),
    "tojson": lambda value: json.dumps(value, separators=(",", ":")),
    "epoch": _epoch,
    "iso8601": _iso,
    "replace": lambda value, old, new: str(value).replace(str(old), str(new)),
}
_ALLOWED_NODES = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.If, nodes.Name, nodes.Const,
    nodes.Getattr, nodes.Getitem, nodes.Filter, nodes.Test, nodes.Compare, nodes.Operand,
    nodes.And, nodes.Or, nodes.Not, nodes.Neg, nodes.CondExpr, nodes.Concat, nodes.Add,
    nodes.Sub, nodes.Mul, nodes.Div, nodes.FloorDiv, nodes.Mod, nodes.List, nodes.Tuple,
    nodes.Dict, nodes.Pair, nodes.Keyword,
)  # fmt: skip
_TESTS = frozenset({"defined", "undefined", "none", "string", "number", "mapping", "true",
                    "false", "eq", "ne", "in"})  # fmt: skip


MAX_VALUE = 64 * 1024  # characters (or items) a template's operators may build, and it render


class _Sandbox(ImmutableSandboxedEnvironment):
    """Item lookups only: ``a.b`` reads the mapping ``a``'s item ``b``, never an attribute.
    ``*``, ``%`` and ``+`` go through :meth:`call_binop` (and are so never folded into constants
    when compiling): no string formatting, and nothing longer than :data:`MAX_VALUE`."""

    intercepted_binops = frozenset({"*", "%", "+"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        sized = (str, list, tuple)
        if operator == "%" and isinstance(left, str):
            raise SecurityError("string formatting with % is not allowed in a template")
        if operator == "*" and (isinstance(left, sized) or isinstance(right, sized)):
            seq, times = (left, right) if isinstance(left, sized) else (right, left)
            if isinstance(times, int) and len(seq) * max(times, 0) > MAX_VALUE:
                raise SecurityError(f"a value longer than {MAX_VALUE} is not built here")
        concatenated = isinstance(left, sized) and isinstance(right, sized)
        if operator == "+" and concatenated and len(left) + len(right) > MAX_VALUE:
            raise SecurityError(f"a value longer than {MAX_VALUE} is not built here")
        return super().call_binop(context, operator, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Undefined):  # what is missing is named: the first name not there
            return obj
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return self.undefined(obj=obj, name=attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, Undefined):
            return obj
        if isinstance(obj, Mapping):
            return obj[argument] if argument in obj else self.undefined(obj=obj, name=argument)
        if isinstance(obj, list | tuple | str) and isinstance(argument, int):
            return obj[argument]
        return self.undefined(obj=obj, name=argument)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return False

    def call(self, *_args: Any, **_kwargs: Any) -> Any:  # no call ever reaches here: refused
        raise SecurityError("templates may not call anything")


ENV = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
ENV.filters = dict(FILTERS)
ENV.tests = {name: test for name, test in ENV.tests.items() if name in _TESTS}
ENV.globals = {}


class Template:
    """One compiled template: ``render(scope)`` its value (a string, or the value of a lone
    expression, whose type it keeps)."""

    def __init__(self, source: str) -> None:
        self.source = source
        if len(source) > MAX_TEMPLATE:
            raise TemplateProblem(f"longer than {MAX_TEMPLATE} characters")
        try:
            tree = ENV.parse(source)
            _check(tree)
            self._render: Callable[[Mapping[str, Any]], Any]
            lone = _lone_expression(source, tree)
            if lone is not None:
                expression = ENV.compile_expression(lone, undefined_to_none=False)
                self._render = lambda scope: expression(**scope)
            else:
                template = ENV.from_string(source)
                self._render = lambda scope: template.render(**scope)
        except TemplateSyntaxError as exc:
            raise TemplateProblem(f"not a valid template: {exc.message}") from None
        except RecursionError:
            raise TemplateProblem("nested too deeply") from None

    def render(self, scope: Mapping[str, Any]) -> Any:
        try:
            value = self._render(scope)
        except (TemplateError, TypeError, ValueError, KeyError, OverflowError, OSError) as exc:
            raise TemplateProblem(f"{self.source!r}: {exc}") from None
        if isinstance(value, str | list | tuple) and len(value) > MAX_VALUE:
            raise TemplateProblem(f"{self.source!r}: renders longer than {MAX_VALUE}")
        if isinstance(value, Undefined):  # a lone expression reading what is not there
            raise TemplateProblem(f"{self.source!r}: {value._undefined_message}")
        return value


def _lone_expression(source: str, tree: nodes.Template) -> str | None:
    """The expression's source when the template is ``{{ expression }}`` and nothing else."""
    stripped = source.strip()
    if not (stripped.startswith("{{") and stripped.endswith("}}") and stripped.count("{{") == 1):
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], nodes.Output):
        return None
    parts = tree.body[0].nodes
    if len(parts) != 1 or isinstance(parts[0], nodes.TemplateData):
        return None
    return stripped[2:-2].strip()


def _check(tree: nodes.Node) -> None:
    for node in tree.find_all(nodes.Node):
        if not isinstance(node, _ALLOWED_NODES):
            raise TemplateProblem(f"{type(node).__name__.lower()} is not allowed in a template"
                                  " (only text, {{ expressions }} and {% if %})")  # fmt: skip
        if isinstance(node, nodes.Filter) and node.name not in FILTERS:
            raise TemplateProblem(f"no filter {node.name!r} (allowed: {', '.join(FILTERS)})")
        if isinstance(node, nodes.Test) and node.name not in _TESTS:
            raise TemplateProblem(f"no test {node.name!r}")
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            raise TemplateProblem(f"{node.attr!r}: names starting with '_' are not allowed")


def compile_value(value: Any) -> Any:
    """A definition's value with every template string compiled: a string holding ``{{`` or
    ``{%`` becomes a :class:`Template`, mappings and lists are compiled item by item, anything
    else is kept as it is."""
    if isinstance(value, str):
        return Template(value) if "{{" in value or "{%" in value else value
    if isinstance(value, Mapping):
        return {k: compile_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [compile_value(v) for v in value]
    return value


def render(value: Any, scope: Mapping[str, Any]) -> Any:
    """A compiled value (:func:`compile_value`) with its templates rendered in ``scope``."""
    if isinstance(value, Template):
        return value.render(scope)
    if isinstance(value, dict):
        return {k: render(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, scope) for v in value]
    return value


_FIELD_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class Selector:
    """A compiled JMESPath expression: ``search(document)``. Refused (:class:`TemplateProblem`)
    when it does not compile, or is unbounded (see the module's documentation). A plain field
    path (``deleted``, ``data.items``) is read with dictionary lookups, which give the same
    answer as JMESPath without its interpreter (it runs once per record of every page)."""

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self._expression = jmespath.compile(source)
        except jmespath.exceptions.JMESPathError as exc:
            raise TemplateProblem(f"not a valid JMESPath selector {source!r}: {exc}") from None
        except RecursionError:  # the parser recurses too: a deeper tree than the check's
            raise TemplateProblem(f"selector {_shown(source)} nests deeper than"
                                  f" {MAX_SELECTOR_DEPTH} levels") from None  # fmt: skip
        tree = self._expression.parsed
        if _depth(tree) > MAX_SELECTOR_DEPTH:
            raise TemplateProblem(f"selector {_shown(source)} nests deeper than"
                                  f" {MAX_SELECTOR_DEPTH} levels")  # fmt: skip
        if _unbounded_join(tree):
            raise TemplateProblem(
                f"selector {_shown(source)}: join's separator must be a literal string"
                " (else it is repeated once per item)"
            )
        if _copies(tree) > MAX_SELECTOR_COPIES:
            raise TemplateProblem(
                f"selector {_shown(source)} can hold what it reads more than {MAX_SELECTOR_COPIES}"
                " times over (a multiselect or function taking the same value twice, nested"
                " or chained with |, multiplies it)"
            )
        self._path = tuple(source.split(".")) if _FIELD_PATH.match(source) else None
        # a single field's name, for loops that read it from each record themselves
        self.field = self._path[0] if self._path is not None and len(self._path) == 1 else None

    def search(self, document: Any) -> Any:
        """What the selector finds in ``document``; None where it finds nothing, including
        where a function meets a value of another type (``length(null)``): an answer's shape
        is the API's, and a selector that does not fit it finds nothing rather than failing."""
        if self._path is None:
            try:
                return self._expression.search(document)
            except jmespath.exceptions.JMESPathError:
                return None
        for name in self._path:
            if not isinstance(document, dict):
                return None
            document = document.get(name)
        return document


def _shown(source: str) -> str:
    return repr(source if len(source) <= 60 else source[:57] + "...")


def _depth(tree: dict[str, Any]) -> int:
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack += [(c, level + 1) for c in node.get("children", ()) if isinstance(c, dict)]
    return deepest


_SUMS = frozenset({"multi_select_list", "multi_select_dict", "function_expression"})
_EITHER = frozenset({"or_expression", "and_expression"})  # one operand's value
_TRUTH = frozenset({"comparator", "not_expression"})  # a boolean


def _unbounded_join(node: Any) -> bool:
    """Whether ``node`` calls ``join`` with a separator that is not a literal."""
    if not isinstance(node, dict):
        return False
    children = node.get("children", ())
    if node.get("type") == "function_expression" and node.get("value") == "join":
        glue = children[0] if children else None
        if not (isinstance(glue, dict) and glue.get("type") == "literal"):
            return True
    return any(_unbounded_join(c) for c in children)


def _copies(node: dict[str, Any]) -> int:
    """How many times over ``node``'s answer can hold what it reads (at least 1): children
    read one after the other multiply, the items of a multiselect or a function's arguments
    add up when they read the same part of the value (``{a: a, b: b}`` reads two parts once)."""
    kind = node["type"]
    children = [c for c in node.get("children", ()) if isinstance(c, dict)]
    if kind in _TRUTH or kind == "literal":
        return 1
    if kind in _EITHER:
        return max(_copies(c) for c in children)
    if kind == "filter_projection":
        children = children[:2]  # the condition's value is not in the answer
    if kind in _SUMS:
        parts: dict[str | None, int] = {}
        for child in children:
            if child["type"] != "literal":
                part = _part(child)
                parts[part] = parts.get(part, 0) + _copies(child)
        whole = parts.pop(None, 0)  # what reads all of the value overlaps every part
        return max(1, whole + max(parts.values(), default=0))
    total = 1
    for child in children:
        total *= _copies(child)
    return total


def _part(node: dict[str, Any]) -> str | None:
    """The top-level field ``node`` reads within (None: possibly all of the value)."""
    kind = node["type"]
    if kind == "field":
        return node["value"]
    if kind in ("subexpression", "index_expression", "projection", "filter_projection",
                "value_projection", "flatten", "pipe", "key_val_pair", "expref"):  # fmt: skip
        first = next((c for c in node["children"] if isinstance(c, dict)), None)
        return _part(first) if first is not None else None
    return None
