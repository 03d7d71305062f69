-- An install's call history (GET /api/v1/integrations/{id}/metrics) reads its rows in a time
-- window: one index on (install, time), carrying the kind and value of each row, answers it
-- from the index alone (no visit to the table's pages, once vacuum has marked them visible).
CREATE INDEX IF NOT EXISTS idx_connector_metrics_install_time
    ON public.connector_metrics (connector_id, timestamp) INCLUDE (metric_type, value);
