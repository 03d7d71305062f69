"""Roles and what each may do. Services authorize from the role in the internal token alone."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    viewer = "viewer"
    editor = "editor"
    admin = "admin"
    publisher = "publisher"


class Permission(StrEnum):
    read = "read"  # see the tenant's integrations, records, catalog
    write = "write"  # change integrations and records, run actions
    manage = "manage"  # keys, members, tenant profile
    publish = "publish"  # publish catalog entries


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.viewer: frozenset({Permission.read}),
    Role.editor: frozenset({Permission.read, Permission.write}),
    Role.admin: frozenset({Permission.read, Permission.write, Permission.manage}),
    Role.publisher: frozenset({Permission.read, Permission.publish}),
}


def allows(role: str, permission: Permission) -> bool:
    try:
        return permission in GRANTS[Role(role)]
    except ValueError:
        return False


def within(role: str, limit: str) -> bool:
    """Whether ``role`` grants nothing that ``limit`` lacks (what one may grant another: an
    admin makes no publisher). An unknown ``limit`` grants nothing."""
    try:
        limit_grants = GRANTS[Role(limit)]
    except ValueError:
        limit_grants = frozenset()
    return GRANTS[Role(role)] <= limit_grants
