"""Secrets that travel in a URL's path (an invitation link's token) never reach the access log:
the line names the route's template instead."""

from __future__ import annotations

import asyncio
import secrets
import time

import httpx


async def test_an_invitation_links_token_is_not_logged(suite) -> None:
    token = secrets.token_urlsafe(32)
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        r = await client.get(f"/auth/invitations/{token}")
        assert r.status_code == 303 and token in r.headers["location"]
        answers = [r]
        # no route matches these, and still the token is not logged
        for path in (f"/auth/invitations/{token}/", f"/auth/invitations/{token}/x"):
            answers.append(await client.get(path))
            assert answers[-1].status_code == 404
    # the access log line is written once the answer is sent: wait for all three (by their
    # request ids), so that the token's absence below is not merely a line still to come
    ids = [a.headers["x-request-id"] for a in answers]
    deadline = time.monotonic() + 5
    while True:
        logs = suite.logs()
        if all(i in logs for i in ids) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert '"path": "/auth/invitations/{token}"' in logs
    assert token not in logs
