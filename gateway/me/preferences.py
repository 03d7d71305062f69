"""Every line of SQL of notification preferences (the gateway's table)."""

from __future__ import annotations

import uuid

import asyncpg


async def email_enabled(conn: asyncpg.Connection, user_id: uuid.UUID) -> bool:
    """Whether the user takes notification email: yes unless they said no."""
    value = await conn.fetchval(
        "SELECT email_enabled FROM notification_preferences WHERE user_id = $1", user_id
    )
    return True if value is None else bool(value)


async def set_email(conn: asyncpg.Connection, user_id: uuid.UUID, enabled: bool) -> None:
    await conn.execute(
        "INSERT INTO notification_preferences (user_id, email_enabled) VALUES ($1, $2)"
        " ON CONFLICT (user_id) DO UPDATE SET email_enabled = EXCLUDED.email_enabled,"
        " updated_at = now()",
        user_id, enabled,
    )  # fmt: skip
