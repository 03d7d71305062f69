"""The platform catalog's connector definitions (issue 18): one file per entry whose provider has
an HTTP API (``definitions/<slug>.yaml``), run by the generic connector, and how far each is known
to work (``verification.json``).

``verification.json`` says, per slug, the level shown to tenants:

- ``verified``: passes the conformance suite in ``make test`` against a stand-in of the provider
  no one here wrote (``stand_in``; ``test`` names the test file);
- ``checked``: checked in ``make test`` against the provider's own machine-readable description
  of its API (``description``: a file of a package in ``descriptions``, pinned by version and
  integrity); a difference that is the description's fault (it omits what the provider
  documents) is listed with why in ``known_gaps``, and the check must find exactly those;
- ``described``: written from the provider's documentation only (``why_not_checked`` when a
  description exists but cannot vouch for it).

An entry without a definition says why (``not_declarative``). The tests in ``tests/catalog/``
hold every claim to account: each definition loads, keeps the egress rule, has a level, and
passes what its level says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from seedos_sdk.declarative import Definition, build, load

HERE = Path(__file__).parent
DEFINITIONS = HERE / "definitions"
VERIFICATION = HERE / "verification.json"
LEVELS = ("verified", "checked", "described")
_DESCRIBED = "Written from the provider's API documentation; not checked against a description."


@dataclass(frozen=True)
class CatalogDefinition:
    definition: Definition
    text: str
    manifest: dict[str, Any]
    level: str
    note: str

    def endpoint(self, generic_url: str) -> str:
        """Where the generic connector serves this very text."""
        d = self.definition
        return f"{generic_url.rstrip('/')}/definitions/{d.name}/{d.version}/{d.digest}"


@cache
def verification() -> dict[str, Any]:
    return json.loads(VERIFICATION.read_text())


def note_of(slug: str) -> str | None:
    """What the level rests on, or why an entry has no definition, in one line."""
    claim = verification()["entries"].get(slug)
    if claim is None:
        return None
    if claim.get("not_declarative"):
        return f"Not declarative: {claim['not_declarative']}"
    level = claim["level"]
    if level == "verified":
        return f"Passes the conformance suite against {claim['stand_in']}."
    if level == "checked":
        described = claim["description"]
        package = verification()["descriptions"][described["package"]]
        gaps = claim.get("known_gaps") or []
        more = (
            f" One difference is the description's own: {gaps[0]['why']}."
            if len(gaps) == 1
            else f" {len(gaps)} differences are the description's own."
            if gaps
            else ""
        )
        where = f"{package['name']} {package['version']}, {described['file']}"
        return (f"Requests and answers checked against the provider's own API description"
                f" ({where}).{more}")  # fmt: skip
    if claim.get("why_not_checked"):
        return f"{_DESCRIBED} Not checked because {claim['why_not_checked']}."
    return _DESCRIBED


def of(slug: str, definitions: Path = DEFINITIONS) -> CatalogDefinition | None:
    """The entry's definition, manifest and level, or None when it has no definition."""
    path = definitions / f"{slug}.yaml"
    if not path.is_file():
        return None
    text = path.read_text()
    definition = load(text)
    if definition.name != slug:
        raise ValueError(f"{path.name}: the definition's name is {definition.name!r}, not {slug!r}")
    claim = verification()["entries"].get(slug) or {}
    # a definition nothing vouches for is shown as written from documentation only (the
    # catalog's tests refuse one without its own entry in verification.json)
    level = claim.get("level") if claim.get("level") in LEVELS else "described"
    note = note_of(slug) if claim.get("level") in LEVELS else None
    return CatalogDefinition(definition, text, build(definition).manifest(), level,
                             note or _DESCRIBED)  # fmt: skip
