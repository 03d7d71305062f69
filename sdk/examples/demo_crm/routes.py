"""The ``/v1`` API: list, read, create, replace, update and delete contacts and companies."""

# No ``from __future__ import annotations``: FastAPI reads the body models, which are chosen per
# resource inside :func:`resource_router`, from the live annotations.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import JSONResponse

from . import service
from .deps import Db, require_auth
from .errors import InvalidRequest
from .schemas import Body, CompanyIn, CompanyPatch, ContactIn, ContactPatch
from .store import COMPANIES, CONTACTS, Kind

IdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


def resource_router(kind: Kind, full: type[Body], partial: type[Body]) -> APIRouter:
    """The routes of one record type under ``/v1/<table>``."""
    router = APIRouter(
        prefix=f"/v1/{kind.table}", tags=[kind.table], dependencies=[Depends(require_auth)]
    )

    @router.get("")
    async def list_records(
        db: Db,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
        updated_after: str | None = None,
        include_deleted: bool | None = None,
    ) -> JSONResponse:
        records, next_cursor = await service.list_records(
            db,
            kind,
            limit=limit,
            cursor=cursor,
            updated_after=updated_after,
            include_deleted=include_deleted,
        )
        return JSONResponse({"results": records, "next_cursor": next_cursor})

    @router.get("/{record_id}")
    async def get_record(db: Db, record_id: str) -> JSONResponse:
        return JSONResponse(await service.get_record(db, kind, record_id))

    @router.post("", status_code=201)
    async def create_record(db: Db, body: full) -> JSONResponse:  # type: ignore[valid-type]
        record, created = await service.create_record(db, kind, body.values(), record_id=body.id)
        return _written(kind, record, created)

    @router.put("/{record_id}")
    async def replace_record(db: Db, record_id: IdPath, body: full) -> JSONResponse:  # type: ignore[valid-type]
        _check_body_id(body, record_id)
        record, created = await service.replace_record(db, kind, record_id, body.values())
        return _written(kind, record, created)

    @router.patch("/{record_id}")
    async def update_record(db: Db, record_id: str, body: partial) -> JSONResponse:  # type: ignore[valid-type]
        _check_body_id(body, record_id)
        return JSONResponse(await service.update_record(db, kind, record_id, body.values()))

    @router.delete("/{record_id}", status_code=204)
    async def delete_record(db: Db, record_id: str) -> Response:
        await service.delete_record(db, kind, record_id)
        return Response(status_code=204)

    return router


def _check_body_id(body: Body, record_id: str) -> None:
    if body.id is not None and body.id != record_id:
        raise InvalidRequest(f"the body's id {body.id!r} differs from the path's {record_id!r}")


def _written(kind: Kind, record: dict[str, Any], created: bool) -> JSONResponse:
    headers = {"Location": f"/v1/{kind.table}/{record['id']}"} if created else None
    return JSONResponse(record, status_code=201 if created else 200, headers=headers)


contacts = resource_router(CONTACTS, ContactIn, ContactPatch)
companies = resource_router(COMPANIES, CompanyIn, CompanyPatch)
