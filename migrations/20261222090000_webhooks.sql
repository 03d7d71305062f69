-- Webhooks from providers (issue 18), owned by connector_service.
--
-- webhook_endpoints: each install's public webhook URL, by the SHA-256 of its unguessable token
-- (the token itself is shown to the tenant, never stored). The signing secret is a credential of
-- the install (integration_credentials, field 'webhook.secret', encrypted like any).
CREATE TABLE IF NOT EXISTS public.webhook_endpoints (
    integration_id UUID PRIMARY KEY
        REFERENCES public.integration_connectors (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Deliveries taken, by the provider's delivery id: a replay of one is not applied again.
-- Kept for webhook_deliveries_days (7) by the sweep.
CREATE TABLE IF NOT EXISTS public.webhook_deliveries (
    integration_id UUID NOT NULL
        REFERENCES public.integration_connectors (id) ON DELETE CASCADE,
    delivery_id TEXT NOT NULL CHECK (length(delivery_id) BETWEEN 1 AND 200),
    event_type TEXT CHECK (length(event_type) <= 200),
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, delivery_id)
);
CREATE INDEX IF NOT EXISTS idx_webhook_deliveries_received
    ON public.webhook_deliveries (received_at);

-- Deliveries refused (bad signature, stale, replayed, too large, not JSON): what the tenant
-- sees in the integration's webhook detail; the newest 100 per install are kept.
CREATE TABLE IF NOT EXISTS public.webhook_refusals (
    id BIGSERIAL PRIMARY KEY,
    integration_id UUID NOT NULL
        REFERENCES public.integration_connectors (id) ON DELETE CASCADE,
    at TIMESTAMPTZ NOT NULL DEFAULT now(),
    reason TEXT NOT NULL CHECK (reason ~ '^[a-z_]{1,40}$'),
    status INTEGER NOT NULL,
    detail TEXT CHECK (length(detail) <= 300)
);
CREATE INDEX IF NOT EXISTS idx_webhook_refusals_integration
    ON public.webhook_refusals (integration_id, id DESC);

REVOKE ALL ON TABLE public.webhook_endpoints, public.webhook_deliveries, public.webhook_refusals
    FROM anon, authenticated;
REVOKE ALL ON SEQUENCE public.webhook_refusals_id_seq FROM anon, authenticated;
ALTER TABLE public.webhook_endpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.webhook_refusals ENABLE ROW LEVEL SECURITY;

-- A pull a webhook asked for is a sync run of its own kind (of the streams the events named).
ALTER TABLE public.sync_runs DROP CONSTRAINT IF EXISTS sync_runs_kind_check;
ALTER TABLE public.sync_runs ADD CONSTRAINT sync_runs_kind_check
    CHECK (kind IN ('scheduled', 'manual', 'resync', 'webhook'));
