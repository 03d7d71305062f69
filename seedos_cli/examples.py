"""The SDK's example connector and the demo CRM it talks to, and the generic connector running
the example definitions (sdk/examples/definitions: the demo CRM as a definition), run by
``seedos up`` in a checkout (they live in sdk/examples, which an installed wheel does not have)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from common import db
from common.endpoints import DEFAULT_EGRESS, EGRESS_SETTING, LOOPBACK
from marketplace_service.catalog.service import register_deployed
from seedos_cli import demo
from seedos_cli.supervisor import ServiceSpec

SDK_DIR = Path(__file__).resolve().parents[1] / "sdk"
EXAMPLE_PORTS = {"demo_crm": 8011, "crm_connector": 8010, "generic_connector": 8013}
DEFINITIONS_DIR = SDK_DIR / "examples" / "definitions"
DEMO_RECORDS = {"contacts": 250, "companies": 40}
DEMO_CONNECTOR = "demo-crm"  # its name in the catalog
DEMO_DEFINITIONS = frozenset({"demo-crm-declarative"})  # registered by `seedos up`


def available() -> bool:
    return (SDK_DIR / "examples" / "demo_crm").is_dir()


def specs(data_dir: Path, crm_key: str, urls: dict[str, str]) -> list[ServiceSpec]:
    """The example apps; the generic connector runs the example definitions, and any other
    definition an install names, fetched from this run's marketplace (published ones)."""
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
        ServiceSpec(
            "generic_connector",
            "seedos_sdk.declarative.server:app_factory",
            factory=True,
            cwd=SDK_DIR,
            # the definitions' APIs go through the egress rule (public addresses only unless
            # listed): loopback is listed because the demo CRM runs on this machine
            env={
                "SEEDOS_DEFINITIONS": str(DEFINITIONS_DIR),
                "SEEDOS_DEFINITIONS_SOURCE": urls["marketplace_service"],
                EGRESS_SETTING: f"{DEFAULT_EGRESS},{LOOPBACK}",
            },
        ),
    ]


async def register(dsn: str, urls: dict[str, str], crm_key: str) -> None:
    """Seed the demo CRM once, and put the example connector in the catalog as demo-crm and
    the demo CRM's definition, served by the generic connector, as demo-crm-declarative, at its
    version's and digest's own URL."""
    async with httpx.AsyncClient(timeout=30) as client:
        crm = urls["demo_crm"]
        headers = {"X-API-Key": crm_key}
        existing = await client.get(f"{crm}/v1/contacts", params={"limit": 1}, headers=headers)
        existing.raise_for_status()
        if not existing.json()["results"]:
            seeded = await client.post(f"{crm}/admin/seed", json=DEMO_RECORDS, headers=headers)
            seeded.raise_for_status()
        endpoints = [urls["crm_connector"]]
        served = await client.get(urls["generic_connector"] + "/definitions")
        served.raise_for_status()
        # the demo CRM's definition; the other examples (Stripe, GitHub) call real SaaS APIs
        # and belong to the catalog's own entries
        endpoints += [urls["generic_connector"] + d["path"] for d in served.json()["items"]
                      if d["name"] in DEMO_DEFINITIONS]  # fmt: skip
        manifests = []
        for endpoint in endpoints:
            manifest = await client.get(endpoint + "/manifest")
            manifest.raise_for_status()
            manifests.append((endpoint, manifest.json()))
    conn = await db.connect(dsn)
    try:
        for endpoint, manifest in manifests:
            skipped = await register_deployed(
                conn, manifest=manifest, endpoint_url=endpoint, category="crm",
                vendor="SEED-OS (example)",
            )  # fmt: skip
            if skipped:
                demo.warn_skipped({manifest["name"]: skipped})
    finally:
        await conn.close()


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
