"""Installing says how far the connector is known to work (issue 18, part 2): the install's answer
carries the catalog entry's verification level and, for one written from documentation only, a
notice saying it was not checked against the provider; the same through the marketplace's install
and in a replayed answer (real processes, real Postgres)."""

from __future__ import annotations

import secrets
import uuid

import httpx

from common.roles import Role
from marketplace_service.catalog import repository, service
from tests.support import connected, make_tenant


async def _entry(dsn: str, level: str | None) -> str:
    """A catalog entry of that level (an API key, nothing to configure); its slug."""
    slug = f"levels-{level or 'unrated'}-{secrets.token_hex(3)}"
    raw = {
        "slug": slug, "name": f"Levels {slug[7:]}", "description": "Installs with a level",
        "logo_url": None, "category": "crm", "vendor": "Levels Inc", "auth_scheme": "api_key",
        "scopes": [], "setup_guide_url": None, "is_featured": False, "allow_multiple": True,
        "config_schema": {"type": "object"},
    }  # fmt: skip
    entry = service.demo_entry(raw) | {"verification": level, "verification_note": None}
    async with connected(dsn) as conn:
        assert await repository.upsert(conn, entry) is None
    return slug


async def test_the_install_answer_says_how_far_the_connector_is_known_to_work(suite, dsn):
    t = await make_tenant(dsn, role=Role.editor)
    slugs = {level: await _entry(dsn, level) for level in ("described", "checked", None)}
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        direct = await client.post("/api/v1/integrations", json={"connector": slugs["described"]})
        assert direct.status_code == 201, direct.text
        body = direct.json()
        assert body["verification"] == "described"
        notice = body["notice"]
        assert notice.startswith(f"Levels {slugs['described'][7:]} was written from")
        assert "documentation only" in notice and "not been checked" in notice

        # the marketplace passes connector_service's answer on, notice and all
        via = await client.post(
            "/api/v1/marketplace/install", json={"connector": slugs["described"]}
        )
        assert via.status_code == 201, via.text
        assert (via.json()["verification"], via.json()["notice"]) == ("described", notice)

        for level in ("checked", None):  # no notice but for described
            r = await client.post("/api/v1/marketplace/install", json={"connector": slugs[level]})
            assert r.status_code == 201, r.text
            assert (r.json()["verification"], r.json()["notice"]) == (level, None), level

        # a repeat under the same key gets the first answer, notice included
        key = {"Idempotency-Key": str(uuid.uuid4())}
        install = {"connector": slugs["described"]}
        first = await client.post("/api/v1/integrations", json=install, headers=key)
        again = await client.post("/api/v1/integrations", json=install, headers=key)
        assert again.headers.get("idempotent-replayed") == "true"
        assert again.json() == first.json() and again.json()["notice"] == notice

        # the install itself, read back, is an install: the level is the catalog's to say
        shown = (await client.get(f"/api/v1/integrations/{body['id']}")).json()
        assert "notice" not in shown and "verification" not in shown
