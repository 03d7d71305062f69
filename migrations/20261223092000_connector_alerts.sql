-- Anomaly alerts on installs' calls (issue 19, part 3), owned by connector_service.
--
-- The detector (connector_service/alerts/) opens one when an install's p95 latency, error ratio
-- or throughput leaves its baseline for a few windows in a row, and resolves it when the metric
-- is back. At most one open alert per install and metric; resolved ones are kept as history.
-- evidence: what the opening was based on (baseline, spread, observed, thresholds, the metric
-- window's start and end); resolution: the same, read when it resolved.
CREATE TABLE IF NOT EXISTS public.connector_alerts (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id UUID NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
    connector_id UUID NOT NULL
        REFERENCES public.integration_connectors (id) ON DELETE CASCADE,
    metric TEXT NOT NULL CHECK (metric IN ('latency_p95', 'error_ratio', 'throughput')),
    severity TEXT NOT NULL CHECK (severity IN ('warning', 'critical')),
    state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'resolved')),
    opened_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at TIMESTAMPTZ,
    acknowledged_at TIMESTAMPTZ,
    acknowledged_by TEXT CHECK (length(acknowledged_by) <= 300),
    evidence JSONB NOT NULL,
    resolution JSONB,
    CHECK ((state = 'resolved') = (resolved_at IS NOT NULL)),
    CHECK ((acknowledged_at IS NULL) = (acknowledged_by IS NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_connector_alerts_one_open
    ON public.connector_alerts (connector_id, metric) WHERE state = 'open';
CREATE INDEX IF NOT EXISTS idx_connector_alerts_tenant
    ON public.connector_alerts (tenant_id, opened_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS idx_connector_alerts_open
    ON public.connector_alerts (severity) WHERE state = 'open';

REVOKE ALL ON TABLE public.connector_alerts FROM anon, authenticated;
ALTER TABLE public.connector_alerts ENABLE ROW LEVEL SECURITY;
