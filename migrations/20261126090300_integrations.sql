-- Installed connectors, owned by connector_service. Secrets never live here: config holds
-- non-secret fields only (the encrypted credential store arrives with the connector service).
CREATE TABLE IF NOT EXISTS public.integration_connectors (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id UUID NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
    marketplace_connector_id UUID REFERENCES public.marketplace_connectors (id) ON DELETE SET NULL,
    connector_name TEXT NOT NULL,  -- the tenant's name for this install
    service_name TEXT NOT NULL,    -- the catalog's service_identifier
    version TEXT,
    config JSONB NOT NULL DEFAULT '{}'::jsonb,
    api_spec JSONB NOT NULL DEFAULT '{}'::jsonb,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'active', 'error', 'disabled')),
    status_reason TEXT,
    last_error TEXT,
    sync_version BYTEA,            -- compacted Yjs state (full update)
    last_sync_at TIMESTAMPTZ,
    created_by TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_integration_connectors_tenant_created
    ON public.integration_connectors (tenant_id, created_at, id);
CREATE INDEX IF NOT EXISTS idx_integration_connectors_tenant_service
    ON public.integration_connectors (tenant_id, service_name);
CREATE INDEX IF NOT EXISTS idx_integration_connectors_tenant_status
    ON public.integration_connectors (tenant_id, status);
CREATE INDEX IF NOT EXISTS idx_integration_connectors_marketplace
    ON public.integration_connectors (marketplace_connector_id);

CREATE OR REPLACE TRIGGER handle_integration_connectors_updated_at
BEFORE UPDATE ON public.integration_connectors
FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();

-- Per-call connector metrics kept for history and recommendations (Prometheus holds the live view).
CREATE TABLE IF NOT EXISTS public.connector_metrics (
    id BIGSERIAL PRIMARY KEY,
    tenant_id UUID REFERENCES public.tenants (id) ON DELETE CASCADE,
    connector_id UUID,
    connector_name TEXT,
    service_name TEXT,
    metric_type TEXT NOT NULL, -- e.g. 'latency_ms', 'error_count', 'throughput_rpm'
    value DOUBLE PRECISION,
    labels JSONB NOT NULL DEFAULT '{}'::jsonb,
    timestamp TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT fk_metrics_connector FOREIGN KEY (connector_id)
        REFERENCES public.integration_connectors (id) ON DELETE SET NULL
);
CREATE INDEX IF NOT EXISTS idx_connector_metrics_timestamp ON public.connector_metrics (timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_connector_metrics_connector_id ON public.connector_metrics (connector_id);
CREATE INDEX IF NOT EXISTS idx_connector_metrics_metric_type ON public.connector_metrics (metric_type);
CREATE INDEX IF NOT EXISTS idx_connector_metrics_service_time
    ON public.connector_metrics (service_name, timestamp DESC);
