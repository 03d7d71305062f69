-- Per-install call history rolled up (issue 19), owned by connector_service.
--
-- connector_metrics keeps one row per call (latency_ms) and one per failed call (error) for
-- seven days. A job rolls them up into one row per install and minute (kept 30 days) and per
-- install and hour (kept a year); the dashboard's history, the tenant summary and the anomaly
-- detector read these, never the raw rows.
--
-- Latency is kept as a sparse log-scale histogram (connector_service/metrics/histogram.py):
-- latency_index[i] is a bucket's number, latency_count[i] the calls in it. Bucket 0 holds
-- calls under 1 ms; bucket k >= 1 those in [2^((k-1)/4), 2^(k/4)) ms; the last (69) those of
-- 2^17 ms (131 s) or more. Any percentile over any set of rows is read from their summed
-- counts, within 9% of the true value.
CREATE TABLE IF NOT EXISTS public.connector_metric_minutes (
    connector_id UUID NOT NULL REFERENCES public.integration_connectors (id) ON DELETE CASCADE,
    bucket TIMESTAMPTZ NOT NULL CHECK (date_trunc('minute', bucket) = bucket),
    tenant_id UUID NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
    service_name TEXT NOT NULL,
    calls INTEGER NOT NULL CHECK (calls >= 0),
    errors INTEGER NOT NULL CHECK (errors >= 0),
    records BIGINT NOT NULL DEFAULT 0 CHECK (records >= 0),
    latency_sum_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
    latency_max_ms DOUBLE PRECISION,
    latency_index SMALLINT[] NOT NULL DEFAULT '{}',
    latency_count INTEGER[] NOT NULL DEFAULT '{}',
    CHECK (cardinality(latency_index) = cardinality(latency_count)),
    PRIMARY KEY (connector_id, bucket)
);
CREATE INDEX IF NOT EXISTS idx_connector_metric_minutes_tenant
    ON public.connector_metric_minutes (tenant_id, bucket);
CREATE INDEX IF NOT EXISTS idx_connector_metric_minutes_bucket
    ON public.connector_metric_minutes (bucket);

CREATE TABLE IF NOT EXISTS public.connector_metric_hours (
    connector_id UUID NOT NULL REFERENCES public.integration_connectors (id) ON DELETE CASCADE,
    bucket TIMESTAMPTZ NOT NULL CHECK (date_trunc('hour', bucket) = bucket),
    tenant_id UUID NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
    service_name TEXT NOT NULL,
    calls INTEGER NOT NULL CHECK (calls >= 0),
    errors INTEGER NOT NULL CHECK (errors >= 0),
    records BIGINT NOT NULL DEFAULT 0 CHECK (records >= 0),
    latency_sum_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
    latency_max_ms DOUBLE PRECISION,
    latency_index SMALLINT[] NOT NULL DEFAULT '{}',
    latency_count INTEGER[] NOT NULL DEFAULT '{}',
    CHECK (cardinality(latency_index) = cardinality(latency_count)),
    PRIMARY KEY (connector_id, bucket)
);
CREATE INDEX IF NOT EXISTS idx_connector_metric_hours_tenant
    ON public.connector_metric_hours (tenant_id, bucket);
CREATE INDEX IF NOT EXISTS idx_connector_metric_hours_bucket
    ON public.connector_metric_hours (bucket);

REVOKE ALL ON TABLE public.connector_metric_minutes, public.connector_metric_hours
    FROM anon, authenticated;
ALTER TABLE public.connector_metric_minutes ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.connector_metric_hours ENABLE ROW LEVEL SECURITY;
