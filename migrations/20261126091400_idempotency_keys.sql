-- Idempotency-Keys of services other than connector_service's actions (which keep theirs in
-- action_runs, next to the install they run on): the marketplace's install and uninstall. A
-- key is scoped to its tenant and operation, kept at least 24 hours; the first answer is
-- stored and replayed.
CREATE TABLE IF NOT EXISTS public.idempotency_keys (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id UUID NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
    scope TEXT NOT NULL,           -- the operation, e.g. 'marketplace.install'
    idempotency_key TEXT NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_hash BYTEA NOT NULL,
    state TEXT NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'completed')),
    response_status INTEGER,
    response_body JSONB,
    started_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS idempotency_keys_tenant_scope_key
    ON public.idempotency_keys (tenant_id, scope, idempotency_key);
CREATE INDEX IF NOT EXISTS idx_idempotency_keys_expires_at ON public.idempotency_keys (expires_at);

REVOKE ALL ON TABLE public.idempotency_keys FROM anon, authenticated;
ALTER TABLE public.idempotency_keys ENABLE ROW LEVEL SECURITY;
