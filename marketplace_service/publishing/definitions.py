"""Publishing a connector *definition* (issue 17): the catalog keeps its text by digest, and its
entry points at the generic connector, which runs it.

``POST /api/v1/marketplace/definitions`` takes the definition's text (YAML or JSON) and what a
catalog entry has beside its manifest. The text is checked by the SDK's own loader (every
problem at once, each with where it is: ``invalid_definition``), every URL the definition calls
that is not a template (a fixed ``base_url``; the OAuth token and revocation URLs) under the
egress rule (``endpoint_not_allowed``), and the manifest the definition makes as any published
manifest. The entry's endpoint is ``{generic connector}/definitions/{name}/{version}/{digest}``:
an install made on it keeps calling that very text, whatever is published later.

``GET /definitions/{digest}`` (no token: content-addressed, the digest is only known to whom an
entry was shown) answers the text, for the generic connector to fetch and check.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from common.endpoints import EndpointNotAllowed, EndpointPolicy
from common.errors import PROBLEM_RESPONSES, InvalidRequest, NotFound
from common.internal_auth import CurrentPrincipal, requires
from common.roles import Permission
from marketplace_service.catalog.schemas import CatalogEntryDetail
from marketplace_service.publishing.routes import store
from marketplace_service.publishing.schemas import PublishIn, Text
from seedos_sdk.declarative import Definition, DefinitionError, build, load

MAX_DEFINITION = 1024 * 1024
DIGEST = r"^[0-9a-f]{64}$"
PUBLIC_PREFIX = "/definitions/"
_TEMPLATE = re.compile(r"\{\{|\{%")

router = APIRouter(tags=["marketplace"], responses=PROBLEM_RESPONSES)


class InvalidDefinition(InvalidRequest):
    code, title = "invalid_definition", "The connector definition has problems"


class DefinitionNotFound(NotFound):
    code, title = "definition_not_found", "No such definition"


class DefinitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    definition: Text = Field(max_length=MAX_DEFINITION, description="connector.yaml's text")
    category: str | None = Field(None, max_length=50, pattern=r"^[a-z0-9-]+$")
    vendor: Text | None = Field(None, min_length=1, max_length=200)
    logo_url: Text | None = Field(None, max_length=2000, pattern=r"^https?://")
    setup_guide_url: Text | None = Field(None, max_length=2000, pattern=r"^https?://")
    setup_steps: list[Annotated[Text, Field(min_length=1, max_length=500)]] | None = Field(
        None, max_length=20
    )


async def checked(text: str, *, egress: EndpointPolicy) -> tuple[Definition, dict[str, Any]]:
    """The definition and the manifest it makes, or the refusal listing every problem."""
    try:
        definition = load(text)
    except DefinitionError as exc:
        errors = [dict(zip(("path", "message"), p.split(": ", 1), strict=False))
                  for p in exc.problems]  # fmt: skip
        raise InvalidDefinition(f"{len(errors)} problem(s) with this definition",
                                errors=errors) from None  # fmt: skip
    raw = definition.raw
    urls = []
    if not _TEMPLATE.search(raw["base_url"]):
        urls.append(("base_url", raw["base_url"]))
    auth = raw["auth"]
    urls += [(f"auth.{key}", auth[key]) for key in ("token_url", "revoke_url") if key in auth]
    refused = []
    for path, url in urls:
        try:
            await egress.check(url, fixed_path=False)
        except EndpointNotAllowed as exc:
            refused.append({"path": path, "message": exc.detail or exc.title})
    if refused:
        raise EndpointNotAllowed(
            "; ".join(f"{e['path']}: {e['message']}" for e in refused), errors=refused
        )
    return definition, build(definition).manifest()


@router.post(
    "/api/v1/marketplace/definitions",
    response_model=CatalogEntryDetail,
    status_code=201,
    dependencies=[requires(Permission.publish)],
    responses={200: {"description": "A newer version of your entry", "model": CatalogEntryDetail},
               409: {"description": "The version is not newer, or the name is taken"}},
)  # fmt: skip
async def publish_definition(
    body: DefinitionIn, request: Request, response: Response, principal: CurrentPrincipal
) -> dict:
    """Publish a connector definition (publisher role): the generic connector runs it. 201 for
    a new entry, 200 for a higher version of your own, 409 for a version that is not higher,
    422 ``invalid_definition`` listing every problem with where it is, or
    ``endpoint_not_allowed`` for a fixed URL outside the egress rule."""
    settings = request.app.state.settings
    definition, manifest = await checked(body.definition, egress=settings.egress_policy())
    endpoint = (f"{settings.generic_connector_url.rstrip('/')}{PUBLIC_PREFIX}"
                f"{definition.name}/{definition.version}/{definition.digest}")  # fmt: skip
    entry_in = PublishIn(manifest=manifest, endpoint_url=endpoint,
                         **body.model_dump(exclude={"definition"}))  # fmt: skip

    async def keep_text(db: Any) -> None:  # content-addressed: the same text is kept once
        await db.execute(
            "INSERT INTO marketplace_definitions (digest, name, version, body,"
            " published_by_tenant) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (digest) DO NOTHING",
            definition.digest, definition.name, definition.version, body.definition,
            principal.tenant_id,
        )  # fmt: skip

    entry, created = await store(request, entry_in, principal, also=keep_text)
    response.status_code = 201 if created else 200
    return entry


@router.get(PUBLIC_PREFIX + "{digest}", include_in_schema=False)
async def definition_text(
    request: Request, digest: Annotated[str, Path(pattern=DIGEST)]
) -> Response:
    """A published definition's text by its digest (for the generic connector)."""
    async with request.app.state.db.connection() as db:
        body = await db.fetchval("SELECT body FROM marketplace_definitions WHERE digest = $1",
                                 digest)  # fmt: skip
    if body is None:
        raise DefinitionNotFound("no published definition has this digest")
    return PlainTextResponse(body, media_type="application/yaml", headers={
        "cache-control": "public, max-age=31536000, immutable", "etag": f'"{digest}"',
    })  # fmt: skip
