"""What a publishable connector manifest is: every reason one is refused, at once."""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from typing import Any

import jsonschema
import semver

from common import jsonschemas

SLUG = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
MAX_DEPTH = 32  # objects and arrays inside one another, the config schema's included
MAX_BYTES = 256 * 1024  # the manifest as compact JSON (every catalog page and call reads it)
MAX_SCOPES = 100
MAX_REPORTED = 50  # unstorable strings listed at most (the answer stays small)
_URL = {"type": "string", "pattern": r"^https?://", "maxLength": 2000}
_NAMED = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]{1,100}$"}},
}
# The connector contract's manifest (sdk/README.md), as far as the marketplace relies on it.
MANIFEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "version", "auth", "config_schema"],
    "properties": {
        "name": {"type": "string", "pattern": SLUG},
        "display_name": {"type": "string", "minLength": 1, "maxLength": 200},
        "version": {"type": "string", "maxLength": 100},
        "description": {"type": "string", "maxLength": 4000},
        "auth": {
            "type": "object",
            "required": ["scheme"],
            "properties": {
                "scheme": {"enum": ["oauth2", "api_key", "basic", "none"]},
                "scopes": {
                    "type": "array",
                    "items": {"type": "string", "maxLength": 200},
                    "maxItems": MAX_SCOPES,
                },
                "authorize_url": _URL,
                "token_url": _URL,
                "revoke_url": _URL,
            },
            "if": {"properties": {"scheme": {"const": "oauth2"}}},
            "then": {"required": ["authorize_url", "token_url", "scopes"]},
        },
        "config_schema": {
            "type": "object",
            "properties": {"type": {"const": "object"}},
            "required": ["type"],
        },
        "streams": {"type": "array", "items": _NAMED, "maxItems": 200},
        "actions": {"type": "array", "items": _NAMED, "maxItems": 200},
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(MANIFEST_SCHEMA)

MAX_DECLARED = 1000  # streams or actions: beyond, the schema's maxItems refuses the manifest


def storable(text: str) -> bool:
    """Whether PostgreSQL can store ``text`` (no NUL, no lone surrogate, which JSON allows)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unstorable(value: Any, root: str) -> list[dict[str, str]]:
    """Strings (keys included) that cannot be stored, and nesting deeper than ``MAX_DEPTH``,
    each with its path under ``root``. Checked first: nothing else may read such a value (a
    deep one overflows the stack of recursive checks, a surrogate breaks the answer's
    encoding), so the walk is iterative and paths never quote a bad string."""
    found: list[dict[str, str]] = []
    stack = [(value, root, 0)]
    while stack and len(found) < MAX_REPORTED:
        item, path, depth = stack.pop()
        if isinstance(item, str) and not storable(item):
            found.append({"path": path or "/", "message": f"text holds {_UNSTORABLE}"})
        elif isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                found.append({"path": path, "message": f"nested deeper than {MAX_DEPTH} levels"})
                continue
            for key, child in item.items() if isinstance(item, dict) else enumerate(item):
                if isinstance(key, str) and not storable(key):
                    found.append({"path": path or "/", "message": f"a key holds {_UNSTORABLE}"})
                else:
                    stack.append((child, f"{path}/{key}", depth + 1))
    return sorted(found, key=lambda p: p["path"])


_UNSTORABLE = (
    "a NUL character or a lone surrogate (\\u0000, \\ud800-\\udfff), which cannot be stored"
)


def display_name(manifest: dict[str, Any]) -> str | None:
    """The entry's name as the manifest gives it, without surrounding whitespace."""
    name = manifest.get("display_name")
    return name.strip() if isinstance(name, str) else None


def problems(manifest: Any) -> list[dict[str, str]]:
    """Every problem with ``manifest`` (empty when it can be published), each with its path."""
    if found := unstorable(manifest, "/manifest"):
        return found
    size = len(json.dumps(manifest, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_BYTES:
        message = f"{size} bytes of JSON; at most {MAX_BYTES} are accepted"
        return [{"path": "/manifest", "message": message}]
    found = [
        {"path": "/manifest/" + "/".join(map(str, e.absolute_path)), "message": e.message}
        for e in sorted(_VALIDATOR.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    ]
    if not isinstance(manifest, dict):
        return found
    found += _display_name_problems(manifest)
    version = manifest.get("version")
    if isinstance(version, str) and not semver.Version.is_valid(version):
        message = f"{version!r} is not a semantic version (MAJOR.MINOR.PATCH)"
        found.append({"path": "/manifest/version", "message": message})
    found += _schema_problems(manifest.get("config_schema"), "/manifest/config_schema")
    streams = manifest.get("streams")
    if isinstance(streams, list) and len(streams) <= MAX_DECLARED:
        # connector_service checks records written to a stream against its schema
        for i, stream in enumerate(streams):
            if isinstance(stream, dict) and "schema" in stream:
                found += _schema_problems(stream["schema"], f"/manifest/streams/{i}/schema")
    for kind in ("streams", "actions"):
        items = manifest.get(kind)
        if isinstance(items, list) and len(items) <= MAX_DECLARED:
            # one pass (a count per name was quadratic: a large list held the event loop), and
            # only string names: others are already refused by the schema
            counted = Counter(
                i["name"] for i in items if isinstance(i, dict) and isinstance(i.get("name"), str)
            )
            twice = sorted(n for n, times in counted.items() if times > 1)
            found += [
                {"path": f"/manifest/{kind}", "message": f"{name!r} is declared twice"}
                for name in twice
            ]
    return found


def _schema_problems(schema: Any, at: str) -> list[dict[str, str]]:
    """A JSON Schema the services will validate with: well formed, and usable (references
    local and resolving, patterns compiling)."""
    if not isinstance(schema, dict):
        return []
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(map(str, exc.absolute_path))
        return [{"path": f"{at}/{where}".rstrip("/"),
                 "message": f"not a valid JSON Schema: {exc.message}"}]  # fmt: skip
    return [{"path": f"{at}{path}", "message": message}
            for path, message in jsonschemas.schema_problems(schema)]  # fmt: skip


def _display_name_problems(manifest: dict[str, Any]) -> list[dict[str, str]]:
    """A name people choose the entry by: not blank, and without what makes it look like
    another entry's: invisible characters (bidi overrides, zero-width spaces, controls), or
    Latin, Cyrillic and Greek letters mixed."""
    name = display_name(manifest)
    if name is None:
        return []
    if not name:
        return [{"path": "/manifest/display_name", "message": "only whitespace"}]
    hidden = sorted({f"U+{ord(c):04X}" for c in name if unicodedata.category(c) in ("Cc", "Cf")})
    if hidden:
        message = f"control or invisible formatting characters: {', '.join(hidden)}"
        return [{"path": "/manifest/display_name", "message": message}]
    # a word of letters from scripts that look alike (Salesforce with a Cyrillic a, U+0430);
    # words of different scripts side by side are fine ("Сбербанк Business")
    for word in _WORDS.findall(name):
        scripts = {unicodedata.name(c, "").split(" ", 1)[0] for c in word}
        if len(mixed := sorted(scripts & _LOOKALIKE_SCRIPTS)) > 1:
            message = (f"{word!r} mixes {' and '.join(s.title() for s in mixed)} letters, which"
                       " can make it look like another entry's name")  # fmt: skip
            return [{"path": "/manifest/display_name", "message": message}]
    return []


_WORDS = re.compile(r"[^\W\d_]+")


_LOOKALIKE_SCRIPTS = {"LATIN", "CYRILLIC", "GREEK"}
