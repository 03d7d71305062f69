"""Invitations: admins invite an address with a role; the person who signs in with that address,
verified, accepts once. Through the real gateway, the acceptance service directly (as the
sign-in calls it), and with a real SMTP server on loopback for the emails."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from email import message_from_bytes
from email.message import Message

import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller

from common import db
from common.roles import Role
from gateway.invitations import service as invitations
from tests.conftest import Suite, start_suite
from tests.people import Person, audit_of, make_person, person
from tests.support import TenantKey, add_key, connected, free_port, make_tenant, until_blocked

PROBLEM = "application/problem+json"
TOKEN = re.compile(r"/auth/invitations/([A-Za-z0-9_-]{43})\b")


async def membership(dsn: str, tenant_id: uuid.UUID, user_id: uuid.UUID) -> asyncpg.Record | None:
    async with connected(dsn) as conn:
        return await conn.fetchrow(
            "SELECT role, created_by FROM memberships WHERE tenant_id = $1 AND user_id = $2",
            tenant_id, user_id,
        )  # fmt: skip


async def invite(client: httpx.AsyncClient, t: TenantKey, email: str, role="viewer") -> dict:
    r = await client.post(
        "/api/v1/invitations", json={"email": email, "role": role}, headers=t.headers
    )
    assert r.status_code == 201, r.text
    return r.json()


def token_of(link: str) -> str:
    found = TOKEN.search(link)
    assert found, link
    return found[1]


async def accept(client: httpx.AsyncClient, who: Person, token: str) -> httpx.Response:
    return await client.post("/api/v1/invitations/accept", json={"token": token},
                             headers=who.headers)  # fmt: skip


async def statuses(client: httpx.AsyncClient, t: TenantKey) -> dict[str, str]:
    r = await client.get("/api/v1/invitations", headers=t.headers)
    assert r.status_code == 200, r.text
    return {i["id"]: i["status"] for i in r.json()["items"]}


async def test_an_admin_invites_and_the_invited_person_accepts_once(suite, dsn):
    t = await make_tenant(dsn)
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        created = await invite(client, t, "  Ada.Lovelace@Example.COM ", "editor")
        assert created["email"] == "ada.lovelace@example.com"
        assert created["role"] == "editor" and created["status"] == "pending"
        assert created["emailed"] is False  # no SMTP server is configured here
        assert created["invited_by"] == f"apikey:{t.key_id}"
        assert created["link"].startswith(f"{suite.gateway}/auth/invitations/")
        token = token_of(created["link"])

        listed = await client.get("/api/v1/invitations", headers=t.headers)
        assert listed.status_code == 200, listed.text
        assert [i["id"] for i in listed.json()["items"]] == [created["id"]]
        assert token not in listed.text and "link" not in listed.json()["items"][0]

        ada = await person(suite.gateway, dsn, email="ada.lovelace@example.com")
        r = await accept(client, ada, token)
        assert r.status_code == 200, r.text
        assert r.json() == {
            "invitation_id": created["id"], "role": "editor",
            "tenant": {"id": str(t.tenant_id), "slug": t.slug, "name": f"Tenant {t.slug}"},
        }  # fmt: skip
        member = await membership(dsn, t.tenant_id, ada.user_id)
        assert dict(member) == {"role": "editor", "created_by": f"invitation:{created['id']}"}
        # the members list shows them, as the admins see it
        r = await client.get("/api/v1/members", headers=t.headers)
        assert [(m["user_id"], m["role"]) for m in r.json()["items"]] == [
            (str(ada.user_id), "editor")]  # fmt: skip

        again = await accept(client, ada, token)
        assert again.status_code == 400 and again.json()["code"] == "invitation_invalid"
        assert again.headers["content-type"] == PROBLEM
        listed = (await client.get("/api/v1/invitations", headers=t.headers)).json()["items"]
        assert listed[0]["status"] == "accepted" and listed[0]["accepted_by"] == str(ada.user_id)

    trail = await audit_of(dsn, t.tenant_id, "invitation.")
    assert [(e["action"], e["actor"]) for e in trail] == [
        ("invitation.created", f"apikey:{t.key_id}"),
        ("invitation.accepted", f"user:{ada.user_id}"),
    ]
    assert all(token not in e["payload_text"] for e in trail)
    assert trail[0]["payload"]["email"] == "ada.lovelace@example.com"


async def test_another_or_an_unverified_email_is_refused_and_recorded(suite, dsn):
    t = await make_tenant(dsn)
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        created = await invite(client, t, "grace@example.com")
        token = token_of(created["link"])
        mallory = await person(suite.gateway, dsn, email="mallory@example.com")
        r = await accept(client, mallory, token)
        assert r.status_code == 403 and r.json()["code"] == "invitation_email_mismatch", r.text
        unverified = await person(suite.gateway, dsn, email="grace@example.com",
                                  email_verified=False)  # fmt: skip
        r = await accept(client, unverified, token)
        assert r.status_code == 403 and r.json()["code"] == "invitation_email_mismatch"
        assert "verif" in r.json()["detail"]
        assert await membership(dsn, t.tenant_id, mallory.user_id) is None
        # still pending: the invited person accepts it
        grace = await person(suite.gateway, dsn, email="GRACE@example.com")
        assert (await accept(client, grace, token)).status_code == 200

    refused = await audit_of(dsn, t.tenant_id, "invitation.refused")
    # who opened the link and why, never their address: they may be no member of the tenant
    assert [(e["actor"], e["payload"]) for e in refused] == [
        (f"user:{who.user_id}", {"invitation_id": created["id"], "user_id": str(who.user_id),
                                 "reason": reason})
        for who, reason in ((mallory, "email_mismatch"), (unverified, "email_unverified"))
    ]  # fmt: skip
    assert all(token not in e["payload_text"] and "@" not in e["payload_text"] for e in refused)


async def test_used_revoked_expired_and_unknown_links_get_one_answer(suite, dsn):
    t = await make_tenant(dsn)
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        revoked = await invite(client, t, "rev@example.com")
        expired = await invite(client, t, "exp@example.com")
        conn = await db.connect(dsn)
        try:
            await conn.execute("UPDATE invitations SET expires_at = now() - interval '1 second'"
                               " WHERE id = $1", uuid.UUID(expired["id"]))  # fmt: skip
        finally:
            await conn.close()
        r = await client.delete(f"/api/v1/invitations/{revoked['id']}", headers=t.headers)
        assert r.status_code == 200 and r.json()["status"] == "revoked", r.text
        again = await client.delete(f"/api/v1/invitations/{revoked['id']}", headers=t.headers)
        assert again.status_code == 200 and again.json()["revoked_at"] == r.json()["revoked_at"]
        assert await statuses(client, t) == {revoked["id"]: "revoked", expired["id"]: "expired"}
        r = await client.get("/api/v1/invitations", params={"status": "expired"},
                             headers=t.headers)  # fmt: skip
        assert [i["id"] for i in r.json()["items"]] == [expired["id"]]

        someone = await person(suite.gateway, dsn, email="rev@example.com")
        answers = []
        for token in (token_of(revoked["link"]), token_of(expired["link"]), "A" * 43, "short"):
            r = await accept(client, someone, token)
            answers.append((r.status_code, r.json()["code"], r.json()["detail"]))
        assert len(set(answers)) == 1 and answers[0][:2] == (400, "invitation_invalid")

        r = await client.delete(f"/api/v1/invitations/{uuid.uuid4()}", headers=t.headers)
        assert r.status_code == 404 and r.json()["code"] == "invitation_not_found"
        other = await make_tenant(dsn)
        r = await client.delete(f"/api/v1/invitations/{expired['id']}", headers=other.headers)
        assert r.status_code == 404

        accepted = await invite(client, t, "acc@example.com")
        acc = await person(suite.gateway, dsn, email="acc@example.com")
        assert (await accept(client, acc, token_of(accepted["link"]))).status_code == 200
        r = await client.delete(f"/api/v1/invitations/{accepted['id']}", headers=t.headers)
        assert r.status_code == 409 and r.json()["code"] == "invitation_accepted"
    trail = await audit_of(dsn, t.tenant_id, "invitation.revoked")
    assert [e["target"] for e in trail] == [f"invitation:{revoked['id']}"]


async def test_inviting_again_replaces_the_pending_link(suite, dsn):
    t = await make_tenant(dsn)
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        first = await invite(client, t, "lin@example.com")
        second = await invite(client, t, "LIN@example.com", "admin")
        assert await statuses(client, t) == {first["id"]: "revoked", second["id"]: "pending"}
        lin = await person(suite.gateway, dsn, email="lin@example.com")
        r = await accept(client, lin, token_of(first["link"]))
        assert r.status_code == 400
        r = await accept(client, lin, token_of(second["link"]))
        assert r.status_code == 200 and r.json()["role"] == "admin"
        # a member with that verified address is not invited again
        r = await client.post("/api/v1/invitations", json={"email": "lin@example.com"},
                              headers=t.headers)  # fmt: skip
        assert r.status_code == 409 and r.json()["code"] == "already_member"
    superseded = await audit_of(dsn, t.tenant_id, "invitation.revoked")
    assert superseded[0]["payload"] == {
        "invitation_id": first["id"], "reason": "superseded"}  # fmt: skip


async def test_a_member_accepting_gets_409_and_the_invitation_stays(suite, dsn):
    t = await make_tenant(dsn)
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        created = await invite(client, t, "member@example.com", "editor")
        member = await person(suite.gateway, dsn, t, "viewer", email="member@example.com")
        r = await accept(client, member, token_of(created["link"]))
        assert r.status_code == 409 and r.json()["code"] == "already_member", r.text
        assert await statuses(client, t) == {created["id"]: "pending"}
        assert (await membership(dsn, t.tenant_id, member.user_id))["role"] == "viewer"


async def test_who_may_invite_and_what(suite, dsn):
    t = await make_tenant(dsn)
    editor = await add_key(dsn, t, Role.editor)
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        for method, path in (("GET", ""), ("POST", ""), ("DELETE", f"/{uuid.uuid4()}")):
            r = await client.request(
                method,
                f"/api/v1/invitations{path}",
                json={"email": "x@example.com"},
                headers=editor.headers,
            )
            assert r.status_code == 403 and r.json()["code"] == "forbidden", (method, path)
        r = await client.post("/api/v1/invitations", json={"email": "p@example.com",
                              "role": "publisher"}, headers=t.headers)  # fmt: skip
        assert r.status_code == 403 and r.json()["code"] == "role_not_grantable"
        for body in ({"email": "not-an-email"}, {"email": "a@b"}, {"email": "a b@example.com"},
                     {"email": "x@example.com", "role": "owner"}, {"email": "a@" + "b" * 320},
                     {"email": "x@example.com", "tenant": "other"}, {}):  # fmt: skip
            r = await client.post("/api/v1/invitations", json=body, headers=t.headers)
            assert r.status_code == 422 and r.json()["code"] == "validation_failed", body
        # accepting takes a person signed in: a key has nobody to make a member
        r = await client.post("/api/v1/invitations/accept", json={"token": "A" * 43},
                              headers=t.headers)  # fmt: skip
        assert r.status_code == 403 and r.json()["code"] == "session_required"
        r = await client.post("/api/v1/invitations/accept", json={"token": "A" * 43})
        assert r.status_code == 401
        assert await statuses(client, t) == {}


async def test_the_service_accepts_once_under_concurrency_and_tells_the_sign_in_page(suite, dsn):
    """As the sign-in calls it: two users asserting the same verified email (two providers)
    accept one invitation at the same moment; one becomes a member."""
    t = await make_tenant(dsn)
    conns = [await db.connect(dsn) for _ in range(3)]
    first, second, watcher = conns
    try:
        async with first.transaction():
            created = await invitations.create(
                first, tenant_id=t.tenant_id, email="twin@example.com", role=Role.editor,
                invited_by="test", inviter_role=None, valid_days=1, public_url="https://x.test",
            )  # fmt: skip
        token = token_of(created.link)
        assert await invitations.invitation_for(first, token) == (t.slug, "twin@example.com")
        by_hash = await invitations.invitation_for(first, token_hash=invitations.digest(token))
        assert by_hash == invitations.Invited(tenant_slug=t.slug, email="twin@example.com")
        assert await invitations.invitation_for(first, "A" * 43) is None
        assert await invitations.invitation_for(first, "not a token") is None

        one = await make_person(first, origin=suite.gateway, email="twin@example.com",
                                issuer="https://one.test.invalid")  # fmt: skip
        two = await make_person(first, origin=suite.gateway, email="Twin@Example.com",
                                issuer="https://two.test.invalid")  # fmt: skip
        async with first.transaction():
            won = await invitations.accept(
                first, token=token, user_id=one.user_id, email="twin@example.com",
                email_verified=True, request_id="r1",
            )  # fmt: skip

            async def racing() -> None:
                async with second.transaction():
                    await invitations.accept(
                        second, token_hash=invitations.digest(token), user_id=two.user_id,
                        email="Twin@Example.com", email_verified=True, request_id="r2",
                    )  # fmt: skip

            task = asyncio.create_task(racing())
            await until_blocked(
                watcher,
                second.get_server_pid(),
                failure="the second acceptance never waited for the first",
            )
        with pytest.raises(invitations.InvitationInvalid):
            await task
        assert won["role"] == "editor" and won["tenant_slug"] == t.slug
        assert won["tenant_id"] == t.tenant_id and won["user_id"] == one.user_id
        rows = await watcher.fetch(
            "SELECT user_id FROM memberships WHERE tenant_id = $1", t.tenant_id
        )
        assert [r["user_id"] for r in rows] == [one.user_id]
        assert await invitations.invitation_for(watcher, token) is None
    finally:
        for conn in conns:
            await conn.close()


# --- emails, through a real SMTP server on loopback -------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []
        self.refuse = False  # answer every message with a permanent failure

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.refuse:
            return "554 5.7.1 Message refused"
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"

    async def wait(self, count: int) -> None:
        deadline = time.monotonic() + 10
        while len(self.messages) < count:
            assert time.monotonic() < deadline, "the invitation email never arrived"
            await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
async def mail_suite(dsn, tmp_path_factory) -> AsyncIterator[tuple[Suite, Inbox]]:
    """The services with SEEDOS_GATEWAY_SMTP pointing at an SMTP server on loopback."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    smtp = {"host": "127.0.0.1", "port": controller.port, "sender": "seedos@example.com",
            "starttls": False, "timeout_seconds": 5}  # fmt: skip
    log = tmp_path_factory.mktemp("mail") / "services.log"
    running = await asyncio.to_thread(start_suite, dsn, log, SEEDOS_GATEWAY_SMTP=json.dumps(smtp))
    try:
        yield running, inbox
    finally:
        running.supervisor.stop()
        controller.stop()


async def test_the_invitation_is_emailed_and_its_link_accepts(mail_suite, dsn):
    suite, inbox = mail_suite
    t = await make_tenant(dsn)
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        created = await invite(client, t, "Hedy@Example.com", "editor")
        assert created["emailed"] is True
        await inbox.wait(1)
        recipients, mail = inbox.messages[-1]
        assert recipients == ["hedy@example.com"] and mail["To"] == "hedy@example.com"
        assert mail["From"] == "seedos@example.com" and f"Tenant {t.slug}" in mail["Subject"]
        body = mail.get_payload(decode=True).decode()
        assert created["link"] in body
        hedy = await person(suite.gateway, dsn, email="hedy@example.com")
        r = await accept(client, hedy, token_of(body))
        assert r.status_code == 200 and r.json()["role"] == "editor", r.text


async def test_a_failed_email_loses_nothing(mail_suite, dsn):
    suite, inbox = mail_suite
    t = await make_tenant(dsn)
    inbox.refuse = True
    try:
        async with httpx.AsyncClient(base_url=suite.gateway) as client:
            created = await invite(client, t, "katherine@example.com")
            assert created["emailed"] is False
            token = token_of(created["link"])
            assert await statuses(client, t) == {created["id"]: "pending"}
            katherine = await person(suite.gateway, dsn, email="katherine@example.com")
            assert (await accept(client, katherine, token)).status_code == 200
    finally:
        inbox.refuse = False
    logs = suite.logs()
    assert "invitation_email_failed" in logs and created["id"] in logs
    assert token not in logs


async def test_only_a_provider_that_vouches_for_the_tenant_counts_in_the_accept_route(suite, dsn):
    """The same rule as at sign-in: the address must be verified by a provider trusted for
    the inviting tenant (a tenant's own SSO only for its tenants; one no longer configured,
    for none)."""
    t = await make_tenant(dsn)
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        created = await invite(client, t, "zoe@example.com", role="admin")
        token = token_of(created["link"])
        planted = await person(suite.gateway, dsn, email="zoe@example.com",
                               provider="acme-sso", issuer="https://acme.okta.invalid")  # fmt: skip
        r = await accept(client, planted, token)
        assert r.status_code == 403 and r.json()["code"] == "invitation_email_mismatch", r.text
        assert await membership(dsn, t.tenant_id, planted.user_id) is None
        zoe = await person(suite.gateway, dsn, email="zoe@example.com")  # the platform's
        assert (await accept(client, zoe, token)).status_code == 200
