-- Sync documents become shards (issue 14). A shard is one Yjs document: a snapshot (a full
-- state update, covering the log through log_through) plus the updates appended since
-- (sync_updates, now keyed by shard). Every install starts with one root shard, whose id is the
-- install's: it holds every stream, as the single document of earlier versions did, and those
-- documents become root shards here, their snapshot and log kept as they are.
--
-- Only root shards exist so far. stream, bits, slot and retired_at are for splitting (issue 14,
-- still open): a stream's live shards would then cover its keys by a hash's bits, each record
-- in exactly one of them.
CREATE TABLE IF NOT EXISTS public.sync_shards (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    integration_id UUID NOT NULL REFERENCES public.integration_connectors (id) ON DELETE CASCADE,
    stream TEXT,                   -- NULL: the root shard, every stream
    bits SMALLINT NOT NULL DEFAULT 0 CHECK (bits BETWEEN 0 AND 24),
    slot INTEGER NOT NULL DEFAULT 0 CHECK (slot >= 0 AND slot < (1 << bits)),
    snapshot BYTEA,                -- a full Yjs state update (v1), covering the log through:
    log_through BIGINT NOT NULL DEFAULT 0,
    records INTEGER NOT NULL DEFAULT 0 CHECK (records >= 0),   -- at the last compaction
    bytes BIGINT NOT NULL DEFAULT 0 CHECK (bytes >= 0),        -- the snapshot's size
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    retired_at TIMESTAMPTZ,        -- split: its records moved to its successors
    CHECK (stream IS NOT NULL OR (bits = 0 AND slot = 0))
);
-- one live shard per place; the root has no stream
CREATE UNIQUE INDEX IF NOT EXISTS sync_shards_live
    ON public.sync_shards (integration_id, COALESCE(stream, ''), bits, slot)
    WHERE retired_at IS NULL;
CREATE INDEX IF NOT EXISTS idx_sync_shards_integration ON public.sync_shards (integration_id);

-- Every install, existing or new, has its root shard, with the install's own id.
INSERT INTO public.sync_shards (id, integration_id, snapshot, log_through, bytes)
SELECT id, id, sync_version, sync_log_through, COALESCE(length(sync_version), 0)
FROM public.integration_connectors
ON CONFLICT (id) DO NOTHING;

CREATE OR REPLACE FUNCTION public.integration_connectors_root_shard() RETURNS trigger
LANGUAGE plpgsql SET search_path = public AS $$
BEGIN
    INSERT INTO sync_shards (id, integration_id) VALUES (NEW.id, NEW.id)
    ON CONFLICT (id) DO NOTHING;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS integration_connectors_root_shard ON public.integration_connectors;
CREATE TRIGGER integration_connectors_root_shard
    AFTER INSERT ON public.integration_connectors
    FOR EACH ROW EXECUTE FUNCTION public.integration_connectors_root_shard();

-- The log is the shards': its rows so far belong to root shards, whose ids are the installs'.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'public'
               AND table_name = 'sync_updates' AND column_name = 'integration_id') THEN
        ALTER TABLE public.sync_updates DROP CONSTRAINT IF EXISTS sync_updates_integration_id_fkey;
        ALTER TABLE public.sync_updates RENAME COLUMN integration_id TO shard_id;
        ALTER TABLE public.sync_updates ADD CONSTRAINT sync_updates_shard_id_fkey
            FOREIGN KEY (shard_id) REFERENCES public.sync_shards (id) ON DELETE CASCADE;
        ALTER INDEX IF EXISTS public.idx_sync_updates_integration RENAME TO idx_sync_updates_shard;
    END IF;
END $$;

ALTER TABLE public.integration_connectors
    DROP COLUMN IF EXISTS sync_version,
    DROP COLUMN IF EXISTS sync_log_through;

REVOKE ALL ON TABLE public.sync_shards FROM anon, authenticated;
ALTER TABLE public.sync_shards ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON FUNCTION public.integration_connectors_root_shard() FROM PUBLIC, anon, authenticated;
