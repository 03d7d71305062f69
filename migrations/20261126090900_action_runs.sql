-- Action calls by Idempotency-Key, owned by connector_service. A key is scoped to its tenant and
-- kept at least 24 hours (expires_at): a repeat with the same request replays the stored answer,
-- the same key with another request is refused, a repeat while the first runs gets 409.
CREATE TABLE IF NOT EXISTS public.action_runs (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id UUID NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
    idempotency_key TEXT NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    integration_id UUID NOT NULL REFERENCES public.integration_connectors (id) ON DELETE CASCADE,
    action TEXT NOT NULL,
    request_hash BYTEA NOT NULL,   -- sha256 of (integration, action, input)
    state TEXT NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'completed')),
    response_status INTEGER,
    response_body JSONB,
    actor TEXT,
    started_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    completed_at TIMESTAMPTZ,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS action_runs_tenant_key
    ON public.action_runs (tenant_id, idempotency_key);
CREATE INDEX IF NOT EXISTS idx_action_runs_expires_at ON public.action_runs (expires_at);
CREATE INDEX IF NOT EXISTS idx_action_runs_integration ON public.action_runs (integration_id);

REVOKE ALL ON TABLE public.action_runs FROM anon, authenticated;
ALTER TABLE public.action_runs ENABLE ROW LEVEL SECURITY;
