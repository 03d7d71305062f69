-- Single-use tickets for the sync WebSocket, owned by connector_service: browsers cannot set
-- headers on a WebSocket, so they first POST sync/ticket (authenticated) and then connect with
-- ?ticket=. A ticket is bound to tenant, integration, subject and role, lives 60 seconds and is
-- consumed (deleted) by the connection that presents it. Only its SHA-256 hash is stored.
CREATE TABLE IF NOT EXISTS public.sync_tickets (
    token_hash BYTEA PRIMARY KEY CHECK (length(token_hash) = 32),
    tenant_id UUID NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
    integration_id UUID NOT NULL REFERENCES public.integration_connectors (id) ON DELETE CASCADE,
    subject TEXT NOT NULL,
    role TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_sync_tickets_expires_at ON public.sync_tickets (expires_at);
CREATE INDEX IF NOT EXISTS idx_sync_tickets_integration ON public.sync_tickets (integration_id);

REVOKE ALL ON TABLE public.sync_tickets FROM anon, authenticated;
ALTER TABLE public.sync_tickets ENABLE ROW LEVEL SECURITY;
