-- Shards that split, and first loads built straight into shards (issue 14).
--
-- A stream's live shards cover the 32-bit CRC-32 of its record keys ("<stream>/<primary key>",
-- UTF-8) by their top `bits`, each key in exactly one: `slot` is those bits' value. While the
-- root shard is live it holds every stream; once it splits, every stream has shards of its own.
-- A shard that outgrows its bound splits into shards with more bits and is retired.
--
-- activated_at is NULL while a stream's first load builds its shards: they join the live ones
-- all at once, in the transaction that retires what they replace. state_vector, records and
-- bytes (snapshot and log) are kept current by every append, so listing shards reads no document.
ALTER TABLE public.sync_shards
    ADD COLUMN IF NOT EXISTS activated_at TIMESTAMPTZ DEFAULT NOW(),
    ADD COLUMN IF NOT EXISTS state_vector BYTEA;
-- the snapshot is already compact binary: stored out of line without compression, which on
-- a large first load costs more CPU than the disk it saves
ALTER TABLE public.sync_shards ALTER COLUMN snapshot SET STORAGE EXTERNAL;

DROP INDEX IF EXISTS public.sync_shards_live;
CREATE UNIQUE INDEX IF NOT EXISTS sync_shards_live
    ON public.sync_shards (integration_id, COALESCE(stream, ''), bits, slot)
    WHERE retired_at IS NULL AND activated_at IS NOT NULL;

-- A stream's first load, staged: its records (already encoded as Yjs content) by page and by a
-- bucket of their hash, and how far it got. UNLOGGED: a crash of PostgreSQL empties both at
-- once, and the load starts again (its progress lives only here, never in sync_cursors).
CREATE UNLOGGED TABLE IF NOT EXISTS public.sync_loads (
    integration_id UUID NOT NULL REFERENCES public.integration_connectors (id) ON DELETE CASCADE,
    stream TEXT NOT NULL,
    "cursor" TEXT,
    client BIGINT NOT NULL,        -- the Yjs client id its records are encoded with
    pages INTEGER NOT NULL DEFAULT 0,
    records BIGINT NOT NULL DEFAULT 0,
    started_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (integration_id, stream)
);
CREATE UNLOGGED TABLE IF NOT EXISTS public.sync_load_chunks (
    integration_id UUID NOT NULL,
    stream TEXT NOT NULL,
    bucket SMALLINT NOT NULL,
    page INTEGER NOT NULL,
    entries BYTEA NOT NULL,
    PRIMARY KEY (integration_id, stream, bucket, page),
    FOREIGN KEY (integration_id, stream) REFERENCES public.sync_loads (integration_id, stream)
        ON DELETE CASCADE
);
ALTER TABLE public.sync_load_chunks ALTER COLUMN entries SET STORAGE EXTERNAL;

REVOKE ALL ON TABLE public.sync_loads, public.sync_load_chunks FROM anon, authenticated;
ALTER TABLE public.sync_loads ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.sync_load_chunks ENABLE ROW LEVEL SECURITY;
