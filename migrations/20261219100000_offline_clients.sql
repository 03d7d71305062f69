-- The clients that replay work queued offline (POST /api/v1/integrations/sync-offline): per
-- tenant and client id, who it belongs to (the first credential that used it: a user's or an
-- API key's subject; another is refused, so a queue is never replayed under another identity)
-- and the last sequence number completed. Items run in sequence order per client; what each
-- answered is kept with its Idempotency-Key in idempotency_keys (scope 'offline').
CREATE TABLE IF NOT EXISTS public.offline_clients (
    tenant_id UUID NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL CHECK (client_id ~ '^[A-Za-z0-9_-]{8,64}$'),
    subject TEXT NOT NULL,
    last_seq BIGINT NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (tenant_id, client_id)
);

REVOKE ALL ON TABLE public.offline_clients FROM anon, authenticated;
ALTER TABLE public.offline_clients ENABLE ROW LEVEL SECURITY;
