"""Review: an install queued offline may not carry secrets. The allowlist leaves credentials out
("secrets do not wait in an offline queue"), but POST /api/v1/integrations takes
``credentials`` in its body, so a queued install with them was replayed and stored them."""

from __future__ import annotations

from tests.connector_service.test_sync_offline import URL, Queue, outcomes, world  # noqa: F401


async def test_a_queued_install_with_credentials_is_refused(world, rig) -> None:  # noqa: F811
    client, _, _, _ = world
    before = (await client.get("/api/v1/integrations")).json()["items"]
    slug = before[0]["service_name"]
    q = Queue()
    item = q.item("POST", "/api/v1/integrations", {
        "connector": slug, "config": {"base_url": rig.crm.url},
        "credentials": {"api_key": rig.crm_key}})  # fmt: skip
    r = await client.post(URL, json={"items": [item]})
    assert outcomes(r) == ["rejected"], r.text
    assert r.json()["results"][0]["answer"]["code"] == "offline_operation_not_allowed"
    after = (await client.get("/api/v1/integrations")).json()["items"]
    assert len(after) == len(before)  # nothing installed, no secret stored
    # the queue goes on: the refused item completed its number
    r = await client.post(
        URL,
        json={
            "items": [q.item("POST", "/api/v1/integrations", {"connector": "no-such-connector"})]
        },
    )
    assert outcomes(r) == ["rejected"]
    assert r.json()["results"][0]["status"] in (404, 422)
    # sent again (its first answer lost on the way): refused again, never a bare duplicate
    r = await client.post(URL, json={"items": [item]})
    assert outcomes(r) == ["rejected"], r.text
    assert r.json()["results"][0]["answer"]["code"] == "offline_operation_not_allowed"


async def test_a_refusal_sent_again_says_it_was_refused(world) -> None:  # noqa: F811
    """A client that lost the answer to a refused item sends it again: the answer is
    `duplicate` with the first answer's status and problem, so the client knows it was
    refused (the dashboard keeps it for review rather than counting it applied)."""
    client, _, iid, _ = world
    q = Queue()
    item = q.item("POST", f"/api/v1/integrations/{iid}/actions/no_such_action", {})
    first = await client.post(URL, json={"items": [item]})
    assert outcomes(first) == ["rejected"]
    again = await client.post(URL, json={"items": [item]})
    assert outcomes(again) == ["duplicate"]
    result, original = again.json()["results"][0], first.json()["results"][0]
    assert result["status"] == original["status"] == 404
    assert result["answer"]["code"] == original["answer"]["code"]
