-- The CRDT sync framework, owned by connector_service. Each installed connector has one Yjs
-- document: a snapshot (integration_connectors.sync_version, a full state update, covering the
-- log through sync_log_through) plus the updates appended since (sync_updates). Appends to one
-- document are serialized (an advisory lock), so ids grow in commit order per document.
ALTER TABLE public.integration_connectors
    ADD COLUMN IF NOT EXISTS sync_log_through BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS sync_interval_seconds INTEGER NOT NULL DEFAULT 300
        CHECK (sync_interval_seconds = 0 OR sync_interval_seconds >= 10);

CREATE TABLE IF NOT EXISTS public.sync_updates (
    id BIGSERIAL PRIMARY KEY,
    integration_id UUID NOT NULL REFERENCES public.integration_connectors (id) ON DELETE CASCADE,
    origin TEXT NOT NULL CHECK (origin IN ('external', 'platform', 'client')),
    "update" BYTEA NOT NULL,       -- Yjs update, format v1
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_sync_updates_integration ON public.sync_updates (integration_id, id);

-- Where each stream's pull stands; written in the transaction that makes the merge durable.
CREATE TABLE IF NOT EXISTS public.sync_cursors (
    integration_id UUID NOT NULL REFERENCES public.integration_connectors (id) ON DELETE CASCADE,
    stream TEXT NOT NULL,
    "cursor" TEXT,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (integration_id, stream)
);

-- Platform-side changes waiting to be written to the external system: one row per record (its
-- latest state is what is sent), with the fields changed since the last successful push.
CREATE TABLE IF NOT EXISTS public.sync_outbox (
    id BIGSERIAL PRIMARY KEY,
    integration_id UUID NOT NULL REFERENCES public.integration_connectors (id) ON DELETE CASCADE,
    stream TEXT NOT NULL,
    record_key TEXT NOT NULL,
    fields TEXT[] NOT NULL DEFAULT '{}',
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dead')),
    version BIGINT NOT NULL DEFAULT 1,        -- bumped by every new change to the record
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    first_failed_at TIMESTAMPTZ,
    last_error TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE UNIQUE INDEX IF NOT EXISTS sync_outbox_record
    ON public.sync_outbox (integration_id, stream, record_key);
CREATE INDEX IF NOT EXISTS idx_sync_outbox_due
    ON public.sync_outbox (integration_id, next_attempt_at) WHERE state = 'pending';

CREATE TABLE IF NOT EXISTS public.sync_runs (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    integration_id UUID NOT NULL REFERENCES public.integration_connectors (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('scheduled', 'manual', 'resync')),
    outcome TEXT NOT NULL DEFAULT 'running'
        CHECK (outcome IN ('running', 'succeeded', 'failed', 'interrupted')),
    records_pulled INTEGER NOT NULL DEFAULT 0,
    records_deleted INTEGER NOT NULL DEFAULT 0,
    records_pushed INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    backend_pid INTEGER,           -- the database session holding the run's lock
    started_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    finished_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS idx_sync_runs_integration ON public.sync_runs (integration_id, started_at DESC);

REVOKE ALL ON TABLE public.sync_updates, public.sync_cursors, public.sync_outbox, public.sync_runs
    FROM anon, authenticated;
REVOKE ALL ON SEQUENCE public.sync_updates_id_seq, public.sync_outbox_id_seq FROM anon, authenticated;
ALTER TABLE public.sync_updates ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.sync_cursors ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.sync_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.sync_runs ENABLE ROW LEVEL SECURITY;
