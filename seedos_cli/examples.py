"""The SDK's example connector and the demo CRM it talks to, run by ``seedos up`` in a checkout
(they live in sdk/examples, which an installed wheel does not have)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from common import db
from marketplace_service.catalog.service import register_deployed
from seedos_cli import demo
from seedos_cli.supervisor import ServiceSpec

SDK_DIR = Path(__file__).resolve().parents[1] / "sdk"
EXAMPLE_PORTS = {"demo_crm": 8011, "crm_connector": 8010}
DEMO_RECORDS = {"contacts": 250, "companies": 40}
DEMO_CONNECTOR = "demo-crm"  # its name in the catalog


def available() -> bool:
    return (SDK_DIR / "examples" / "demo_crm").is_dir()


def specs(data_dir: Path, crm_key: str) -> list[ServiceSpec]:
    return [
        ServiceSpec(
            "demo_crm",
            "examples.demo_crm.app:create_app",
            cwd=SDK_DIR,
            env={"DEMO_CRM_DATA_DIR": str(data_dir / "demo_crm"), "DEMO_CRM_API_KEYS": crm_key},
        ),
        ServiceSpec(
            "crm_connector",
            "examples.crm_connector.connector:app",
            factory=False,
            cwd=SDK_DIR,
            env={"CRM_CONNECTOR_AUTH": "api_key"},
        ),
    ]


async def register(dsn: str, urls: dict[str, str], crm_key: str) -> None:
    """Seed the demo CRM once, and put the example connector in the catalog as demo-crm."""
    async with httpx.AsyncClient(timeout=30) as client:
        crm = urls["demo_crm"]
        headers = {"X-API-Key": crm_key}
        existing = await client.get(f"{crm}/v1/contacts", params={"limit": 1}, headers=headers)
        existing.raise_for_status()
        if not existing.json()["results"]:
            seeded = await client.post(f"{crm}/admin/seed", json=DEMO_RECORDS, headers=headers)
            seeded.raise_for_status()
        manifest = await client.get(urls["crm_connector"] + "/manifest")
        manifest.raise_for_status()
    conn = await db.connect(dsn)
    try:
        skipped = await register_deployed(
            conn,
            manifest=manifest.json(),
            endpoint_url=urls["crm_connector"],
            category="crm",
            vendor="SEED-OS (example)",
        )
    finally:
        await conn.close()
    if skipped:
        demo.warn_skipped({manifest.json()["name"]: skipped})


async def install_demo(urls: dict[str, str], key: str, crm_key: str, *, verify: Any = True) -> str:
    """The demo tenant's install of demo-crm, made once through the public API with this run's
    dev key and synced, so the dashboard has an integration and records from the first visit.
    An install a person removed is made again at the next start; one they changed is kept.
    Returns what happened, for the banner."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=urls["gateway"], headers=headers, timeout=30,
                                 verify=verify) as client:  # fmt: skip
        listed = await client.get("/api/v1/integrations", params={"service": DEMO_CONNECTOR})
        listed.raise_for_status()
        if listed.json()["items"]:
            return "installed for the demo tenant"
        made = await client.post("/api/v1/integrations", json={
            "connector": DEMO_CONNECTOR, "connector_name": "Demo CRM",
            "config": {"base_url": urls["demo_crm"]}, "credentials": {"api_key": crm_key},
        })  # fmt: skip
        made.raise_for_status()
        install = f"/api/v1/integrations/{made.json()['id']}"
        for _ in range(100):  # its first check, in the background: a few hundred ms here
            status = (await client.get(install)).json()["status"]
            if status != "pending":
                break
            await asyncio.sleep(0.1)
        run = await client.post(install + "/sync/run")
        if run.status_code != 202:  # not active (yet): its scheduled runs will sync it
            return f"installed for the demo tenant ({status})"
        return "installed for the demo tenant, first sync started"
