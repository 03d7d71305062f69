"""An install's ``ETag`` and the ``If-Match`` precondition on changing it (RFC 9110 13.1.1).

The ETag is a strong validator of the install's *settings*: what ``PATCH`` changes (config,
connector_name, sync_interval_seconds) and the version it runs (an upgrade). It is made of the
install's ``settings_revision``, which the database bumps in the same UPDATE that changes one of
them (migrations/20261219090000_integration_settings_revision.sql). Status, its reason, the
last error, the last sync, the circuit and the setup progress are not settings: a check, a
sync, enable or disable leaves the ETag as it was, so a config change made against what a
person saw (queued offline, say) does not conflict merely because a scheduled check ran.

Because the ETag does not follow the status, GET never answers ``304 Not Modified`` to
``If-None-Match``: a cached copy would hide a status change.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request

from common.errors import SeedosError

# entity-tag = [ W/ ] DQUOTE *etagc DQUOTE; etagc = %x21 / %x23-7E / obs-text
_TAG = re.compile(r'(W/)?("[\x21\x23-\x7e\x80-\xff]*")')
_SEPARATOR = re.compile(r"[ \t]*(?:,|$)")
_SPACE_AND_COMMAS = re.compile(r"[ \t,]*")


def etag(integration_id: uuid.UUID, settings_revision: int) -> str:
    """The install's strong ETag, quoted: its settings revision and a part of its id (so that
    one install's ETag never matches another's)."""
    return f'"{settings_revision}.{integration_id.hex[:12]}"'


def etag_of(row: dict[str, Any]) -> str:
    return etag(row["id"], row["settings_revision"])


class InvalidIfMatch(SeedosError):
    status, code, title = 400, "invalid_if_match", "The If-Match header is malformed"


class PreconditionFailed(SeedosError):
    """The install's settings changed since the ETag given in If-Match: nothing was done. The
    route puts the install as it is now in the problem's ``current``; its ETag is the answer's
    ``ETag`` header."""

    status, code, title = 412, "precondition_failed", "The install changed since it was read"

    def __init__(self, current: dict[str, Any]) -> None:
        now = etag_of(current)
        super().__init__(
            f"If-Match does not match the install's ETag {now}: its settings changed since;"
            " read `current`, then send the change again with its ETag",
            headers={"ETag": now},
        )
        self.current = current


@dataclass(frozen=True)
class IfMatch:
    """A parsed If-Match: ``*`` (any current install), or the listed ETags."""

    any: bool = False
    tags: tuple[str, ...] = ()  # strong ones, quoted; weak ones never match (strong comparison)

    def matches(self, current: dict[str, Any]) -> bool:
        return self.any or etag_of(current) in self.tags

    def require(self, current: dict[str, Any]) -> None:
        """Raise :class:`PreconditionFailed` unless ``current`` (read with its row locked in
        the transaction that changes it) still has one of the ETags."""
        if not self.matches(current):
            raise PreconditionFailed(current)


def parse_if_match(value: str) -> IfMatch:
    """``*`` or a comma-separated list of entity-tags (RFC 9110 13.1.1); anything else is
    refused with 400 ``invalid_if_match``."""
    text = value.strip(" \t")
    if text == "*":
        return IfMatch(any=True)
    strong: list[str] = []
    count, pos = 0, 0
    while True:
        pos = _SPACE_AND_COMMAS.match(text, pos).end()  # type: ignore[union-attr]
        if pos >= len(text):
            break
        tag = _TAG.match(text, pos)
        end = _SEPARATOR.match(text, tag.end()) if tag else None
        if tag is None or end is None:
            raise InvalidIfMatch(
                'If-Match must be "*" or one or more quoted ETags separated by commas, as the'
                ' ETag header gives them (e.g. If-Match: "3.0123456789ab")',
                header="If-Match",
            )
        count += 1
        if not tag.group(1):
            strong.append(tag.group(2))
        pos = end.end()
    if count == 0:
        raise InvalidIfMatch("If-Match is empty: give an ETag or *", header="If-Match")
    return IfMatch(tags=tuple(strong))


async def _if_match(
    request: Request,
    if_match: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description="Apply only if the install's ETag is one of these (or `*`); otherwise"
            " 412 `precondition_failed` with the install as it is now",
        ),
    ] = None,
) -> IfMatch | None:
    values = request.headers.getlist("if-match")  # every If-Match line counts, not the first
    return parse_if_match(", ".join(values)) if values else None


# The header as routes take it: None when absent (the change simply applies)
IfMatchHeader = Annotated[IfMatch | None, Depends(_if_match)]
