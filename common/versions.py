"""Which of two connector versions is newer: one rule for the catalog's "update available",
publishing a new version and upgrading an install."""

from __future__ import annotations

import semver


def newer(candidate: str | None, than: str | None) -> bool:
    """Whether ``candidate`` replaces ``than``: a higher semantic version, or any semantic
    version where ``than`` is missing or not one (an install made before versions were kept).
    A candidate that is not a semantic version replaces nothing."""
    try:
        new = semver.Version.parse(candidate or "")
    except (ValueError, TypeError):
        return False
    try:
        return new > semver.Version.parse(than or "")
    except (ValueError, TypeError):
        return True
