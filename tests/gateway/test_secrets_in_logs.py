"""Secrets that travel in a URL's path (an invitation link's token) never reach the access log:
the line names the route's template instead."""

from __future__ import annotations

import asyncio
import secrets

import httpx


async def test_an_invitation_links_token_is_not_logged(suite) -> None:
    token = secrets.token_urlsafe(32)
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        r = await client.get(f"/auth/invitations/{token}")
        assert r.status_code == 303 and token in r.headers["location"]
        # no route matches these, and still the token is not logged
        for path in (f"/auth/invitations/{token}/", f"/auth/invitations/{token}/x"):
            assert (await client.get(path)).status_code == 404
    await asyncio.sleep(0.3)  # the access log line is written once the answer is sent
    logs = suite.logs()
    assert '"path": "/auth/invitations/{token}"' in logs
    assert token not in logs
