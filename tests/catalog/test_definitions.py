"""Every claim the platform catalog makes about its connectors, held to account: each entry has
a definition or says why not; each definition loads (the format's schema, templates, selectors,
consistency), is named by its entry's slug and keeps the egress rule with every fixed URL; each
has a verification level, and each level rests on what it says: a `verified` entry's stand-in
test exists and runs its definition, a `checked` (or verified) one passes the check against the
provider's own description of its API, pinned in verification.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from marketplace_service.catalog.definitions import DEFINITIONS, LEVELS, of, verification
from marketplace_service.catalog.service import DEMO_CATALOG
from seedos_sdk.declarative import load_file
from seedos_sdk.declarative.checking import check, description_of
from seedos_sdk.egress import AddressNotAllowed, egress_policy
from tests.catalog import descriptions
from tests.conftest import ROOT

ENTRIES = {e["slug"]: e for e in json.loads(DEMO_CATALOG.read_text())}
FILES = sorted(DEFINITIONS.glob("*.yaml"))
CLAIMS = verification()["entries"]
DESCRIBED = sorted(slug for slug, claim in CLAIMS.items() if claim.get("description"))
TEMPLATE = re.compile(r"\{\{|\{%")
PUBLIC = "93.184.215.14"  # what every name resolves to here (a public address; never connected)


def test_every_entry_has_a_definition_or_says_why_not():
    defined = {f.stem for f in FILES}
    assert defined <= set(ENTRIES), defined - set(ENTRIES)
    for slug in ENTRIES:
        claim = CLAIMS.get(slug)
        assert claim is not None, f"{slug}: no verification.json entry"
        if slug in defined:
            assert claim["level"] in LEVELS, slug
        else:
            assert claim.get("not_declarative"), f"{slug}: no definition, and no reason why"
    assert set(CLAIMS) <= set(ENTRIES)


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_each_definition_loads_and_is_its_entrys(path: Path):
    found = of(path.stem)
    assert found is not None and found.definition.name == path.stem
    assert found.manifest["auth"]["scheme"] in ("oauth2", "api_key", "basic", "none")
    # it syncs something, or (Segment's Tracking API, which only receives) acts on something
    assert found.manifest["streams"] or found.manifest["actions"]


async def _public(host: str, port: int) -> list[str]:
    return [PUBLIC]


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
async def test_every_fixed_url_keeps_the_egress_rule(path: Path):
    raw = load_file(path).raw
    urls = [raw["base_url"]] + [raw["auth"][k] for k in ("authorize_url", "token_url",
                                                         "revoke_url") if k in raw["auth"]]  # fmt: skip
    policy = egress_policy({}).using(_public)  # unset: public addresses only, as in production
    for url in urls:
        if TEMPLATE.search(url):
            continue  # rendered from an install's config: checked when it connects
        assert url.startswith("https://"), url
        await policy.check(url, fixed_path=False)


async def test_the_rule_refuses_what_it_should():
    """The check above can fail: a private or loopback address is refused before connecting."""
    policy = egress_policy({}).using(_public)
    for url in ("https://10.0.0.5/api", "https://127.0.0.1/api", "https://169.254.169.254/x"):
        with pytest.raises(AddressNotAllowed):
            await policy.check(url, fixed_path=False)


@pytest.mark.parametrize(
    "slug", sorted(s for s, c in CLAIMS.items() if c.get("level") == "verified")
)
def test_a_verified_entrys_stand_in_test_runs_its_definition(slug: str):
    test = ROOT / CLAIMS[slug]["test"]
    assert test.is_file(), test
    assert f"{slug}.yaml" in test.read_text() or f'"{slug}"' in test.read_text()


@pytest.mark.parametrize("slug", DESCRIBED)
def test_each_definition_matches_the_providers_own_description(slug: str):
    described = CLAIMS[slug]["description"]
    description = description_of(descriptions.load(described["package"], described["file"]))
    report = check(load_file(DEFINITIONS / f"{slug}.yaml"), description)
    gaps = CLAIMS[slug].get("known_gaps") or []
    assert all(gap["why"] for gap in gaps)
    # exactly the differences that are the description's own, each said why: no other, and
    # none that went away (the claim would then say more than it needs to)
    assert sorted(report.problems) == sorted(gap["problem"] for gap in gaps), report.problems
    assert report.checked
