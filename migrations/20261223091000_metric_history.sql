-- Per-install history (issue 19, part 2), owned by connector_service.
--
-- faults: the failed calls that are the connector's own (transport, timeout, retryable,
-- invalid_response), not a tenant's refused credentials or bad input nor calls the platform
-- refused itself; the marketplace's health signal reads them from the hour rollups.
ALTER TABLE public.connector_metric_minutes
    ADD COLUMN IF NOT EXISTS faults INTEGER NOT NULL DEFAULT 0 CHECK (faults >= 0);
ALTER TABLE public.connector_metric_hours
    ADD COLUMN IF NOT EXISTS faults INTEGER NOT NULL DEFAULT 0 CHECK (faults >= 0);

-- How far the rollup job has gone: every minute before rolled_until is in
-- connector_metric_minutes (and its hour in connector_metric_hours); readers take what is
-- newer from connector_metrics. One row.
CREATE TABLE IF NOT EXISTS public.connector_metric_rollup_state (
    id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    rolled_until TIMESTAMPTZ NOT NULL
);
REVOKE ALL ON TABLE public.connector_metric_rollup_state FROM anon, authenticated;
ALTER TABLE public.connector_metric_rollup_state ENABLE ROW LEVEL SECURITY;

-- connector_metrics is written at tens of thousands of rows a second and read only by time
-- (the rollup job, retention, the newest minutes of a history) and by install and time: every
-- other index only slowed the writes. connector_id alone is the leading column of
-- idx_connector_metrics_install_time (which ON DELETE SET NULL uses); the recommendations read
-- the hour rollups now, not service_name and time.
DROP INDEX IF EXISTS public.idx_connector_metrics_connector_id;
DROP INDEX IF EXISTS public.idx_connector_metrics_metric_type;
DROP INDEX IF EXISTS public.idx_connector_metrics_service_time;
