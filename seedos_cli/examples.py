"""The SDK's example connector and the demo CRM it talks to, run by ``seedos up`` in a checkout
(they live in sdk/examples, which an installed wheel does not have)."""

from __future__ import annotations

from pathlib import Path

import httpx

from common import db
from marketplace_service.catalog.service import register_deployed
from seedos_cli import demo
from seedos_cli.supervisor import ServiceSpec

SDK_DIR = Path(__file__).resolve().parents[1] / "sdk"
EXAMPLE_PORTS = {"demo_crm": 8011, "crm_connector": 8010}
DEMO_RECORDS = {"contacts": 250, "companies": 40}


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
