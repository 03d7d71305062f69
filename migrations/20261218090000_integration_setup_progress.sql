-- The setup guide's progress per install (the dashboard's connector page): which of the
-- catalog entry's setup_steps a person ticked done, as their indices (0 = the first step),
-- kept with the install so it is the same on every device; written by
-- PUT /api/v1/integrations/{id}/setup-progress. At most 20 steps (what publishing allows).
ALTER TABLE public.integration_connectors
    ADD COLUMN IF NOT EXISTS setup_done SMALLINT[] NOT NULL DEFAULT '{}'
        CHECK (cardinality(setup_done) <= 20 AND 0 <= ALL (setup_done) AND 20 > ALL (setup_done));

-- Shown with the install (appended: a view keeps its columns' order).
CREATE OR REPLACE VIEW public.integration_connectors_shown AS
SELECT ic.id, ic.tenant_id, ic.connector_name, ic.service_name, ic.marketplace_connector_id,
       ic.version, ic.config, ic.last_error, ic.last_sync_at, ic.sync_interval_seconds,
       ic.created_at, ic.updated_at,
       CASE WHEN v.withdrawn_at IS NOT NULL AND ic.status <> 'disabled' THEN 'update_required'
            ELSE ic.status END AS status,
       CASE WHEN v.withdrawn_at IS NOT NULL AND ic.status <> 'disabled'
            THEN 'version ' || ic.version || ' was withdrawn by its publisher: '
                 || v.withdrawn_reason || ' (upgrade: GET, then POST .../upgrade)'
            ELSE ic.status_reason END AS status_reason,
       ic.setup_done
FROM public.integration_connectors ic
LEFT JOIN public.marketplace_connector_versions v
       ON v.connector_id = ic.marketplace_connector_id AND v.version = ic.version;
REVOKE ALL ON public.integration_connectors_shown FROM PUBLIC, anon, authenticated;
