"""The demo CRM as a real process: auth, records, pagination, sync feed, restart, faults, scale."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from conftest import CrmServer


async def create_contact(http: httpx.AsyncClient, email: str, **fields: Any) -> dict[str, Any]:
    response = await http.post("/v1/contacts", json={"email": email, **fields})
    assert response.status_code == 201, response.text
    return response.json()


async def read_all(http: httpx.AsyncClient, path: str, **params: Any) -> list[list[dict]]:
    """Every page of a listing, following next_cursor to the end."""
    pages, cursor = [], None
    while True:
        response = await http.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["results"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


# --- auth -----------------------------------------------------------------------------------


async def test_healthz_needs_no_credentials(crm: CrmServer) -> None:
    async with crm.client({}) as http:
        response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_requests_without_valid_credentials_are_refused(crm: CrmServer) -> None:
    attempts = [
        {},
        {"X-API-Key": "wrong"},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {crm.api_key}"},
    ]
    for headers in attempts:
        async with crm.client(headers) as http:
            for path in ("/v1/contacts", "/v1/companies", "/admin/stats"):
                response = await http.get(path)
                assert response.status_code == 401, (headers, path)
                assert response.json()["error"] == "unauthorized"
                assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


async def test_api_key_is_accepted_as_header_and_as_bearer_token(crm: CrmServer) -> None:
    for headers in ({"X-API-Key": crm.api_key}, {"Authorization": f"Bearer {crm.api_key}"}):
        async with crm.client(headers) as http:
            response = await http.get("/v1/contacts")
        assert response.status_code == 200
        assert response.json() == {"results": [], "next_cursor": None}


# --- records --------------------------------------------------------------------------------


async def test_contact_lifecycle(crm: CrmServer) -> None:
    async with crm.client() as http:
        created = await create_contact(http, "ada@example.com", first_name="Ada")
        assert created["id"].startswith("c_")
        assert created["last_name"] is None
        assert created["deleted"] is False
        assert created["created_at"] == created["updated_at"]
        contact_url = f"/v1/contacts/{created['id']}"
        assert (await http.get(contact_url)).json() == created

        patched = (await http.patch(contact_url, json={"last_name": "Lovelace"})).json()
        assert (patched["first_name"], patched["last_name"]) == ("Ada", "Lovelace")
        assert patched["updated_at"] > created["updated_at"]

        replaced = await http.put(contact_url, json={"email": "ada@example.org", "phone": "+44"})
        assert replaced.status_code == 200
        assert replaced.json()["first_name"] is None  # PUT replaces the whole record
        assert replaced.json()["created_at"] == created["created_at"]

        put_new = await http.put("/v1/contacts/crm-42", json={"email": "grace@example.com"})
        assert put_new.status_code == 201
        assert put_new.json()["id"] == "crm-42"

        assert (await http.delete(contact_url)).status_code == 204
        assert (await http.get(contact_url)).status_code == 404
        assert (await http.patch(contact_url, json={"phone": "1"})).status_code == 404
        assert (await http.delete(contact_url)).status_code == 204  # deleting again is harmless
        assert (await http.delete("/v1/contacts/unknown")).status_code == 404
        missing = await http.get("/v1/contacts/unknown")
        assert missing.status_code == 404
        assert missing.json()["error"] == "not_found"

        undeleted = await http.put(contact_url, json={"email": "ada@example.com"})
        assert undeleted.status_code == 200
        assert undeleted.json()["deleted"] is False


async def test_company_lifecycle(crm: CrmServer) -> None:
    async with crm.client() as http:
        response = await http.post("/v1/companies", json={"name": "Acme", "domain": "acme.test"})
        assert response.status_code == 201
        company = response.json()
        assert company["id"].startswith("co_")
        url = f"/v1/companies/{company['id']}"
        patched = await http.patch(url, json={"industry": "Software"})
        assert patched.json()["industry"] == "Software"
        assert (await http.post("/v1/companies", json={"domain": "x.test"})).status_code == 400
        assert (await http.patch(url, json={"name": None})).status_code == 400
        contact = await create_contact(http, "a@acme.test", company_id=company["id"])
        assert contact["company_id"] == company["id"]
        assert (await http.delete(url)).status_code == 204
        assert (await http.get(url)).status_code == 404
        listed = (await http.get("/v1/companies", params={"include_deleted": "true"})).json()
        assert [c["deleted"] for c in listed["results"]] == [True]


async def test_invalid_requests_are_400_and_change_nothing(crm: CrmServer) -> None:
    async with crm.client() as http:
        existing = await create_contact(http, "kept@example.com")
        bad_writes = [
            ("POST", "/v1/contacts", {"first_name": "No email"}),
            ("POST", "/v1/contacts", {"email": "not-an-email"}),
            ("POST", "/v1/contacts", {"email": "a@b.co", "unknown": 1}),
            ("POST", "/v1/contacts", {"email": "a@b.co", "id": "has spaces"}),
            ("POST", "/v1/contacts", {"email": "a@b.co", "first_name": 12}),
            ("POST", "/v1/contacts", ["not", "an", "object"]),
            ("PUT", "/v1/contacts/bad id!", {"email": "a@b.co"}),
            ("PUT", "/v1/contacts/one", {"email": "a@b.co", "id": "other"}),
            ("PATCH", f"/v1/contacts/{existing['id']}", {"email": None}),
            ("PATCH", f"/v1/contacts/{existing['id']}", {"email": "broken@"}),
            ("PATCH", f"/v1/contacts/{existing['id']}", {"id": "another-id"}),
        ]
        for method, path, body in bad_writes:
            response = await http.request(method, path, json=body)
            assert response.status_code == 400, (method, path, body, response.text)
            assert response.json()["error"] == "invalid_request"
            assert response.json()["message"]
        malformed = await http.post(
            "/v1/contacts", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert malformed.status_code == 400
        assert malformed.json()["message"] == "the body is not valid JSON"
        bad_queries = [
            {"limit": 0},
            {"limit": 1001},
            {"limit": "ten"},
            {"cursor": "not-a-cursor"},
            {"updated_after": "yesterday"},
            {"include_deleted": "maybe"},
        ]
        for params in bad_queries:
            response = await http.get("/v1/contacts", params=params)
            assert response.status_code == 400, params
            assert response.json()["error"] in {"invalid_request", "invalid_cursor"}
        listed = (await http.get("/v1/contacts")).json()["results"]
        assert listed == [existing]


async def test_duplicate_email_among_live_contacts_is_409(crm: CrmServer) -> None:
    async with crm.client() as http:
        first = await create_contact(http, "dup@example.com")
        other = await create_contact(http, "other@example.com")
        for method, path in [
            ("POST", "/v1/contacts"),
            ("PUT", "/v1/contacts/fresh-id"),
            ("PATCH", f"/v1/contacts/{other['id']}"),
        ]:
            response = await http.request(method, path, json={"email": "DUP@example.com"})
            assert response.status_code == 409, (method, response.text)
            assert response.json()["error"] == "duplicate_email"
        await http.delete(f"/v1/contacts/{first['id']}")
        await create_contact(http, "dup@example.com")  # free again once the holder is deleted


async def test_client_chosen_id_makes_create_idempotent(crm: CrmServer) -> None:
    async with crm.client() as http:
        body = {"id": "ext-1", "email": "once@example.com", "first_name": "Once"}
        first = await http.post("/v1/contacts", json=body)
        retry = await http.post("/v1/contacts", json=body)
        assert (first.status_code, retry.status_code) == (201, 200)
        assert retry.json() == first.json()
        changed = await http.post("/v1/contacts", json={**body, "first_name": "Twice"})
        assert changed.status_code == 409
        assert changed.json()["error"] == "id_exists"


async def test_writes_that_change_nothing_keep_updated_at(crm: CrmServer) -> None:
    async with crm.client() as http:
        contact = await create_contact(http, "same@example.com", first_name="Sam")
        url = f"/v1/contacts/{contact['id']}"
        # A record as read can be written back as it is (read-only fields are ignored).
        assert (await http.put(url, json=contact)).json() == contact
        assert (await http.patch(url, json={"first_name": "Sam"})).json() == contact


# --- listing and the sync feed --------------------------------------------------------------


async def test_pagination_returns_every_record_exactly_once_in_order(crm: CrmServer) -> None:
    crm.admin("POST", "/admin/seed", body={"contacts": 2_345, "companies": 10})
    async with crm.client() as http:
        pages = await read_all(http, "/v1/contacts", limit=500)
        companies = await read_all(http, "/v1/companies", limit=3)
    assert [len(page) for page in pages] == [500, 500, 500, 500, 345]
    records = [record for page in pages for record in page]
    assert len({record["id"] for record in records}) == 2_345
    keys = [(record["updated_at"], record["id"]) for record in records]
    assert keys == sorted(keys)
    assert len({record["updated_at"] for record in records}) == 2_345  # strictly increasing
    assert sum(len(page) for page in companies) == 10
    assert {r["company_id"] for r in records} <= {c["id"] for page in companies for c in page}


async def test_updated_after_reports_changes_and_tombstones(crm: CrmServer) -> None:
    async with crm.client() as http:
        a = await create_contact(http, "a@example.com")
        b = await create_contact(http, "b@example.com")
        checkpoint = b["updated_at"]
        c = await create_contact(http, "c@example.com")
        await http.patch(f"/v1/contacts/{a['id']}", json={"first_name": "Changed"})
        await http.delete(f"/v1/contacts/{b['id']}")

        changes = (await http.get("/v1/contacts", params={"updated_after": checkpoint})).json()
        assert [r["id"] for r in changes["results"]] == [c["id"], a["id"], b["id"]]
        assert changes["next_cursor"] is None
        tombstone = changes["results"][-1]
        assert tombstone["deleted"] is True
        assert tombstone["deleted_at"] == tombstone["updated_at"] > checkpoint
        assert changes["results"][1]["first_name"] == "Changed"

        live_only = await http.get(
            "/v1/contacts", params={"updated_after": checkpoint, "include_deleted": "false"}
        )
        assert [r["id"] for r in live_only.json()["results"]] == [c["id"], a["id"]]
        listing = (await http.get("/v1/contacts")).json()["results"]
        assert [r["id"] for r in listing] == [c["id"], a["id"]]
        everything = (await http.get("/v1/contacts", params={"include_deleted": "true"})).json()
        assert len(everything["results"]) == 3
        last = changes["results"][-1]["updated_at"]
        nothing_new = (await http.get("/v1/contacts", params={"updated_after": last})).json()
        assert nothing_new == {"results": [], "next_cursor": None}


async def test_updated_after_with_cursor_pages_through_changes(crm: CrmServer) -> None:
    async with crm.client() as http:
        before = await create_contact(http, "before@example.com")
        crm.admin("POST", "/admin/seed", body={"contacts": 25})
        pages = await read_all(http, "/v1/contacts", updated_after=before["updated_at"], limit=10)
    assert [len(page) for page in pages] == [10, 10, 5]
    assert before["id"] not in {r["id"] for page in pages for r in page}


async def test_restart_keeps_every_record_and_tombstone(start_crm, tmp_path) -> None:
    server: CrmServer = start_crm(data_dir=tmp_path / "crm")
    async with server.client() as http:
        kept = await create_contact(http, "kept@example.com")
        gone = await create_contact(http, "gone@example.com")
        await http.delete(f"/v1/contacts/{gone['id']}")
        before = (await http.get("/v1/contacts", params={"include_deleted": "true"})).json()
    server.stop()
    server.start()
    async with server.client() as http:
        after = (await http.get("/v1/contacts", params={"include_deleted": "true"})).json()
        assert after == before
        assert (await http.get(f"/v1/contacts/{kept['id']}")).json() == kept
        newer = await create_contact(http, "newer@example.com")
    assert newer["updated_at"] > before["results"][-1]["updated_at"]


# --- fault injection ------------------------------------------------------------------------


async def test_fault_429_carries_retry_after_then_recovers(crm: CrmServer) -> None:
    async with crm.client() as http:
        added = await http.post(
            "/admin/faults",
            json={"status": 429, "count": 1, "retry_after": 2, "paths": "/v1/contacts"},
        )
        assert added.status_code == 201
        limited = await http.get("/v1/contacts")
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "2"
        assert limited.json()["error"] == "rate_limited"
        assert (await http.get("/v1/contacts")).status_code == 200


async def test_fault_500_for_n_requests_then_normal(crm: CrmServer) -> None:
    async with crm.client() as http:
        await http.post("/admin/faults", json={"status": 500, "count": 3, "paths": "/v1/contacts"})
        assert (await http.get("/admin/faults")).json()["remaining"] == 3
        assert (await http.get("/v1/companies")).status_code == 200  # other paths unaffected
        statuses = [(await http.get("/v1/contacts")).status_code for _ in range(4)]
        assert statuses == [500, 500, 500, 200]
        assert (await http.get("/admin/faults")).json() == {"faults": [], "remaining": 0}
        stats = (await http.get("/admin/stats")).json()
    assert stats["requests"] == {"/v1/companies": 1, "/v1/contacts": 4}
    assert stats["faults_fired"] == 3
    assert stats["faults_fired_by_path"] == {"/v1/contacts": 3}


async def test_fault_latency_delays_matching_requests(crm: CrmServer) -> None:
    async with crm.client() as http:
        await http.post("/admin/faults", json={"latency_ms": 400, "count": 1, "paths": "/v1/"})
        started = time.monotonic()
        slow = await http.get("/v1/contacts")
        slow_elapsed = time.monotonic() - started
        started = time.monotonic()
        await http.get("/v1/contacts")
        fast_elapsed = time.monotonic() - started
    assert slow.status_code == 200
    assert slow_elapsed >= 0.4
    assert fast_elapsed < slow_elapsed


async def test_faults_match_methods_and_can_be_cleared(crm: CrmServer) -> None:
    async with crm.client() as http:
        fault = {"status": 503, "count": 5, "paths": ["/v1/contacts"], "methods": ["post"]}
        await http.post("/admin/faults", json=fault)
        assert (await http.get("/v1/contacts")).status_code == 200
        assert (await http.post("/v1/contacts", json={"email": "x@y.co"})).status_code == 503
        listed = (await http.get("/admin/faults")).json()
        assert listed["remaining"] == 4
        assert listed["faults"][0]["methods"] == ["POST"]
        assert (await http.delete("/admin/faults")).status_code == 204
        assert (await http.post("/v1/contacts", json={"email": "x@y.co"})).status_code == 201
        bad = await http.post("/admin/faults", json={"status": 418})
        assert bad.status_code == 400


# --- scale ----------------------------------------------------------------------------------


async def test_seed_100k_contacts_and_read_them_all_in_pages_of_1000(crm: CrmServer) -> None:
    async with crm.client() as http:
        started = time.perf_counter()
        seeded = await http.post("/admin/seed", json={"contacts": 100_000, "companies": 1_000})
        seed_seconds = time.perf_counter() - started
        assert seeded.json()["inserted"] == {"contacts": 100_000, "companies": 1_000}
        started = time.perf_counter()
        pages = await read_all(http, "/v1/contacts", limit=1000)
        read_seconds = time.perf_counter() - started
    assert len(pages) == 100
    assert len({record["id"] for page in pages for record in page}) == 100_000
    print(f"\nseeded 100k contacts in {seed_seconds:.2f} s, read them in {read_seconds:.2f} s")
