"""SQL of shards: the live layout of an install, new and retired shards, first loads."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from connector_service.sync import splits
from connector_service.sync.layout import Layout, Shard, ShardNotFound, ShardSplit

NOTIFY_CHANNEL = "seedos_sync"  # payload "<shard id>:<log id>" or "<shard id>:split": ids only
SPLIT = "split"
LAYOUT = "layout"
LIVE = "retired_at IS NULL AND activated_at IS NOT NULL"


async def layout(conn: asyncpg.Connection, integration_id: uuid.UUID) -> Layout:
    rows = await conn.fetch(
        f"SELECT id, stream, bits, slot FROM sync_shards WHERE integration_id = $1 AND {LIVE}",
        integration_id,
    )
    return Layout(integration_id, (_shard(integration_id, r) for r in rows))


async def shard_of(
    conn: asyncpg.Connection, integration_id: uuid.UUID, shard_id: uuid.UUID
) -> tuple[Shard, bool] | None:
    """One shard of the install (live or retired: the flag says retired), or None."""
    row = await conn.fetchrow(
        "SELECT id, stream, bits, slot, retired_at IS NOT NULL AS retired FROM sync_shards"
        " WHERE id = $1 AND integration_id = $2 AND activated_at IS NOT NULL",
        shard_id,
        integration_id,
    )
    return None if row is None else (_shard(integration_id, row), row["retired"])


async def named_shard(
    conn: asyncpg.Connection, integration_id: uuid.UUID, shard_id: uuid.UUID | None
) -> Shard:
    """The install's shard ``shard_id`` (its root when None), live: else ShardNotFound, or
    ShardSplit when it was split."""
    found = await shard_of(conn, integration_id, shard_id or integration_id)
    if found is None:
        raise ShardNotFound(f"the integration has no shard {shard_id}")
    shard, retired = found
    if retired:
        raise ShardSplit(shard.id)
    return shard


async def stream_lock(conn: asyncpg.Connection, integration_id: uuid.UUID, stream: str) -> None:
    """The transaction-level lock taken by whoever gives a stream shards where it had none (a
    first write to it, a first load's activation), so that two never both do."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        f"syncstream:{integration_id}:{stream}",
    )


async def stream_shard(conn: asyncpg.Connection, integration_id: uuid.UUID, stream: str) -> None:
    """Give a stream that has no shard (its records would be its first, the root being split)
    the one that covers all of it; another writer may have just done so."""
    async with conn.transaction():
        await stream_lock(conn, integration_id, stream)
        await _create_stream_shard(conn, integration_id, stream)


async def _create_stream_shard(
    conn: asyncpg.Connection, integration_id: uuid.UUID, stream: str
) -> None:
    made = await conn.execute(
        "INSERT INTO sync_shards (integration_id, stream) SELECT $1, $2"
        f" WHERE NOT EXISTS (SELECT 1 FROM sync_shards WHERE integration_id = $1 AND {LIVE}"
        " AND (stream IS NULL OR stream = $2)) ON CONFLICT DO NOTHING",
        integration_id,
        stream,
    )
    if made.endswith(" 1"):
        await layout_changed(conn, integration_id)


async def layout_changed(conn: asyncpg.Connection, integration_id: uuid.UUID) -> None:
    """Tell every replica (once committed) to read the install's layout again: a stream got
    shards where it had none, which no session on a retired shard would reveal."""
    await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, f"{integration_id}:{LAYOUT}")


async def listing(
    conn: asyncpg.Connection, integration_id: uuid.UUID, *, stream: str | None,
    after: tuple[str, int] | None, limit: int,
) -> list[Any]:  # fmt: skip
    """Live shards by stream (the root first), then by the first hash they cover."""
    return await conn.fetch(
        "SELECT id, stream, bits, slot, records, bytes, state_vector, log_through,"
        " (slot::bigint << (32 - bits)) AS start FROM sync_shards"
        f" WHERE integration_id = $1 AND {LIVE} AND ($2::text IS NULL OR stream = $2"
        " OR stream IS NULL) AND ($3::text IS NULL OR (COALESCE(stream, ''),"
        " slot::bigint << (32 - bits)) > ($3, $4::bigint))"
        " ORDER BY COALESCE(stream, ''), start LIMIT $5",
        integration_id, stream, after[0] if after else None, after[1] if after else None, limit,
    )  # fmt: skip


async def replace(
    conn: asyncpg.Connection, integration_id: uuid.UUID, retired: list[uuid.UUID],
    made: list[splits.Child],
) -> list[Shard]:  # fmt: skip
    """In the caller's transaction (holding the locks of ``retired``): the new live shards,
    and those they replace retired, with a notification for the other replicas."""
    rows = await conn.fetch(
        "INSERT INTO sync_shards (integration_id, stream, bits, slot, snapshot, records, bytes,"
        " state_vector) SELECT $1, c.stream, c.bits, c.slot, c.snapshot, c.records,"
        " length(c.snapshot), c.sv FROM unnest($2::text[], $3::smallint[], $4::int[],"
        " $5::bytea[], $6::int[], $7::bytea[]) AS c(stream, bits, slot, snapshot, records, sv)"
        " RETURNING id, stream, bits, slot",
        integration_id,
        [c.stream for c in made], [c.bits for c in made], [c.slot for c in made],
        [c.update for c in made], [c.records for c in made], [c.state_vector for c in made],
    )  # fmt: skip
    await retire_rows(conn, retired)
    return [Shard(r["id"], integration_id, r["stream"], r["bits"], r["slot"]) for r in rows]


async def retire_rows(conn: asyncpg.Connection, retired: list[uuid.UUID]) -> None:
    await conn.execute(
        "UPDATE sync_shards SET retired_at = now(), snapshot = NULL WHERE id = ANY($1::uuid[])",
        retired,
    )
    await conn.execute("DELETE FROM sync_updates WHERE shard_id = ANY($1::uuid[])", retired)
    await conn.execute(
        "SELECT pg_notify($1, n) FROM unnest($2::text[]) AS n", NOTIFY_CHANNEL,
        [f"{shard_id}:{SPLIT}" for shard_id in retired],
    )  # fmt: skip


def _shard(integration_id: uuid.UUID, row: Any) -> Shard:
    return Shard(row["id"], integration_id, row["stream"], row["bits"], row["slot"])


# ---------------------------------------------------------------------- first loads


async def load_progress(
    conn: asyncpg.Connection, integration_id: uuid.UUID, stream: str | None = None
) -> list[Any]:
    """First loads in progress (of one stream, or all): cursor, client, pages, records."""
    return await conn.fetch(
        'SELECT stream, "cursor", client, pages, records, started_at, updated_at'
        " FROM sync_loads WHERE integration_id = $1 AND ($2::text IS NULL OR stream = $2)"
        " ORDER BY stream",
        integration_id,
        stream,
    )


async def stream_records(
    conn: asyncpg.Connection, integration_id: uuid.UUID, stream: str
) -> int | None:
    """How many records the live shards holding the stream hold (None: the root holds it)."""
    rows = await conn.fetch(
        f"SELECT stream, records FROM sync_shards WHERE integration_id = $1 AND {LIVE}"
        " AND (stream IS NULL OR stream = $2)",
        integration_id,
        stream,
    )
    if any(r["stream"] is None for r in rows):
        return None
    return sum(r["records"] for r in rows)


async def start_load(
    conn: asyncpg.Connection, integration_id: uuid.UUID, stream: str, client: int
) -> None:
    await conn.execute(
        "INSERT INTO sync_loads (integration_id, stream, client) VALUES ($1, $2, $3)"
        " ON CONFLICT (integration_id, stream) DO UPDATE SET client = EXCLUDED.client,"
        ' "cursor" = NULL, pages = 0, records = 0, started_at = now(), updated_at = now()',
        integration_id,
        stream,
        client,
    )
    await conn.execute(
        "DELETE FROM sync_load_chunks WHERE integration_id = $1 AND stream = $2",
        integration_id,
        stream,
    )


async def stage(
    conn: asyncpg.Connection, integration_id: uuid.UUID, stream: str, *, page: int,
    chunks: dict[int, bytes], cursor: str | None, records: int,
) -> None:  # fmt: skip
    """One page of a first load, durable with the cursor after it."""
    async with conn.transaction():
        if chunks:
            await conn.copy_records_to_table(
                "sync_load_chunks",
                records=[(integration_id, stream, b, page, blob) for b, blob in chunks.items()],
                columns=("integration_id", "stream", "bucket", "page", "entries"),
            )
        await conn.execute(
            'UPDATE sync_loads SET "cursor" = $3, pages = $4, records = records + $5,'
            " updated_at = now() WHERE integration_id = $1 AND stream = $2",
            integration_id, stream, cursor, page + 1, records,
        )  # fmt: skip


async def bucket_chunks(
    conn: asyncpg.Connection, integration_id: uuid.UUID, stream: str, bucket: int
) -> list[bytes]:
    rows = await conn.fetch(
        "SELECT entries FROM sync_load_chunks WHERE integration_id = $1 AND stream = $2"
        " AND bucket = $3 ORDER BY page",
        integration_id,
        stream,
        bucket,
    )
    return [r["entries"] for r in rows]


async def drop_unactivated(
    conn: asyncpg.Connection, integration_id: uuid.UUID, stream: str
) -> None:
    """Shards a first load built and never activated (it stopped): built again from the stage."""
    await conn.execute(
        "DELETE FROM sync_shards WHERE integration_id = $1 AND stream = $2"
        " AND activated_at IS NULL",
        integration_id,
        stream,
    )


async def add_unactivated(
    conn: asyncpg.Connection, integration_id: uuid.UUID, made: list[splits.Child]
) -> None:
    await conn.copy_records_to_table(
        "sync_shards",
        records=[
            (
                integration_id,
                c.stream,
                c.bits,
                c.slot,
                c.update,
                c.records,
                len(c.update),
                c.state_vector,
                None,
            )
            for c in made
        ],
        columns=(
            "integration_id",
            "stream",
            "bits",
            "slot",
            "snapshot",
            "records",
            "bytes",
            "state_vector",
            "activated_at",
        ),
    )


async def unactivated(
    conn: asyncpg.Connection, integration_id: uuid.UUID, stream: str
) -> list[Shard]:
    rows = await conn.fetch(
        "SELECT id, stream, bits, slot FROM sync_shards WHERE integration_id = $1"
        " AND stream = $2 AND activated_at IS NULL AND retired_at IS NULL",
        integration_id,
        stream,
    )
    return [_shard(integration_id, r) for r in rows]


async def snapshots(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> dict[uuid.UUID, bytes]:
    rows = await conn.fetch("SELECT id, snapshot FROM sync_shards WHERE id = ANY($1::uuid[])", ids)
    return {r["id"]: r["snapshot"] or b"" for r in rows}


async def rewrite(
    conn: asyncpg.Connection, shard_id: uuid.UUID, *, snapshot: bytes, state_vector: bytes,
    records: int,
) -> None:  # fmt: skip
    await conn.execute(
        "UPDATE sync_shards SET snapshot = $2, bytes = $3, state_vector = $4, records = $5"
        " WHERE id = $1",
        shard_id, snapshot, len(snapshot), state_vector, records,
    )  # fmt: skip


async def activate(conn: asyncpg.Connection, integration_id: uuid.UUID, stream: str) -> None:
    """A first load's shards join the live ones, and its stage goes."""
    await conn.execute(
        "UPDATE sync_shards SET activated_at = now() WHERE integration_id = $1 AND stream = $2"
        " AND activated_at IS NULL",
        integration_id,
        stream,
    )
    await conn.execute(
        "DELETE FROM sync_loads WHERE integration_id = $1 AND stream = $2", integration_id, stream
    )
    await layout_changed(conn, integration_id)
