"""``/admin``: fault injection, request statistics, bulk seeding and reset (API key required)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response

from . import seed, store
from .deps import Db, FaultState, require_auth
from .schemas import FaultIn, SeedIn
from .store import COMPANIES, CONTACTS, Transaction

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_auth)])


@router.get("/faults")
async def list_faults(faults: FaultState) -> dict[str, Any]:
    return faults.as_json()


@router.post("/faults", status_code=201)
async def add_fault(body: FaultIn, faults: FaultState) -> dict[str, Any]:
    fault = faults.add(**body.model_dump())
    return {"added": fault.as_json(), **faults.as_json()}


@router.delete("/faults", status_code=204)
async def clear_faults(faults: FaultState) -> Response:
    faults.clear()
    return Response(status_code=204)


@router.get("/stats")
async def stats(faults: FaultState) -> dict[str, Any]:
    return faults.stats()


@router.delete("/stats", status_code=204)
async def reset_stats(faults: FaultState) -> Response:
    faults.reset_stats()
    return Response(status_code=204)


@router.post("/seed")
async def seed_records(body: SeedIn, db: Db) -> dict[str, Any]:
    inserted = await seed.seed(db, contacts=body.contacts, companies=body.companies)
    totals = {
        "contacts": await db.read(store.count, CONTACTS, live_only=True),
        "companies": await db.read(store.count, COMPANIES, live_only=True),
    }
    return {"inserted": inserted, "totals": totals}


@router.post("/reset", status_code=204)
async def reset(db: Db, faults: FaultState) -> Response:
    """Delete every record (tombstones too), clear the faults and zero the statistics."""

    def run(tx: Transaction) -> None:
        store.delete_everything(tx)

    await db.write(run)
    faults.clear()
    faults.reset_stats()
    return Response(status_code=204)
