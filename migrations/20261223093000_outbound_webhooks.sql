-- Outbound webhooks and email (issue 19, part 4), owned by connector_service.
--
-- outbound_endpoints: where a tenant wants to hear about events (Standard Webhooks). Its signing
-- secrets live in outbound_endpoint_secrets, encrypted with the credential key ring like any
-- credential; a rotation keeps the old secret signing beside the new one until expires_at.
CREATE TABLE IF NOT EXISTS public.outbound_endpoints (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id UUID NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
    url TEXT NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
    description TEXT NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    event_types TEXT[] NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT true,
    -- the first failed attempt since the last success; disabled once this is old enough
    failing_since TIMESTAMPTZ,
    disabled_reason TEXT CHECK (length(disabled_reason) <= 300),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_outbound_endpoints_tenant
    ON public.outbound_endpoints (tenant_id, created_at);

CREATE TABLE IF NOT EXISTS public.outbound_endpoint_secrets (
    id BIGSERIAL PRIMARY KEY,
    endpoint_id UUID NOT NULL REFERENCES public.outbound_endpoints (id) ON DELETE CASCADE,
    key_id TEXT NOT NULL,
    wrapped_key BYTEA NOT NULL,
    nonce BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ  -- NULL: the current secret
);
CREATE INDEX IF NOT EXISTS idx_outbound_endpoint_secrets_endpoint
    ON public.outbound_endpoint_secrets (endpoint_id, id);

-- Events, stored when at least one endpoint or admin is to hear of them. The id is the
-- message id every delivery of it carries in `webhook-id`, replays included.
CREATE TABLE IF NOT EXISTS public.outbound_events (
    id UUID PRIMARY KEY,
    tenant_id UUID NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
    type TEXT NOT NULL CHECK (type ~ '^[a-z_]+\.[a-z_]+$'),
    integration_id UUID,  -- no foreign key: the event outlives an uninstall
    data JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_outbound_events_created ON public.outbound_events (created_at);

-- One event to one endpoint (webhook) or one admin (email). A worker claims due rows with
-- FOR UPDATE SKIP LOCKED and moves next_at past the attempt's timeout (a lease): a worker that
-- dies mid-attempt leaves the row to be claimed again, so delivery is at least once.
CREATE TABLE IF NOT EXISTS public.outbound_deliveries (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id UUID NOT NULL REFERENCES public.outbound_events (id) ON DELETE CASCADE,
    tenant_id UUID NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
    endpoint_id UUID REFERENCES public.outbound_endpoints (id) ON DELETE CASCADE,
    user_id UUID REFERENCES public.users (id) ON DELETE CASCADE,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'failed', 'cancelled', 'skipped')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    replay_of UUID,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ,
    CHECK ((endpoint_id IS NULL) <> (user_id IS NULL))
);
CREATE INDEX IF NOT EXISTS idx_outbound_deliveries_due
    ON public.outbound_deliveries (next_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS idx_outbound_deliveries_endpoint
    ON public.outbound_deliveries (endpoint_id, created_at DESC);
CREATE INDEX IF NOT EXISTS idx_outbound_deliveries_event ON public.outbound_deliveries (event_id);

-- Every attempt: its HTTP status (none for a timeout or a refused address), how long it took,
-- at most 1 KiB of the answer, and the class of the error.
CREATE TABLE IF NOT EXISTS public.outbound_attempts (
    id BIGSERIAL PRIMARY KEY,
    delivery_id UUID NOT NULL REFERENCES public.outbound_deliveries (id) ON DELETE CASCADE,
    at TIMESTAMPTZ NOT NULL DEFAULT now(),
    ok BOOLEAN NOT NULL,
    status INTEGER,
    duration_ms REAL NOT NULL,
    response TEXT CHECK (octet_length(response) <= 1024),
    error TEXT CHECK (length(error) <= 200)
);
CREATE INDEX IF NOT EXISTS idx_outbound_attempts_delivery
    ON public.outbound_attempts (delivery_id, id);

REVOKE ALL ON TABLE public.outbound_endpoints, public.outbound_endpoint_secrets,
    public.outbound_events, public.outbound_deliveries, public.outbound_attempts
    FROM anon, authenticated;
REVOKE ALL ON SEQUENCE public.outbound_endpoint_secrets_id_seq, public.outbound_attempts_id_seq
    FROM anon, authenticated;
ALTER TABLE public.outbound_endpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.outbound_endpoint_secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.outbound_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.outbound_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.outbound_attempts ENABLE ROW LEVEL SECURITY;
