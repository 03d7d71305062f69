-- An install's settings revision, the source of its ETag (GET /api/v1/integrations/{id}) and
-- what If-Match on PATCH and DELETE compares. It counts changes to the install's settings: what
-- PATCH changes (config, connector_name, sync_interval_seconds) and the version it runs (an
-- upgrade). Status, its reason, last error, last sync and setup progress are not settings: a
-- check, enable/disable or sync does not move it, so a config change queued offline does not
-- conflict merely because a scheduled check ran. Bumped by a trigger in the same UPDATE that
-- changes a setting (whoever writes it), only when a value really changes.
ALTER TABLE public.integration_connectors
    ADD COLUMN IF NOT EXISTS settings_revision BIGINT NOT NULL DEFAULT 1;

CREATE OR REPLACE FUNCTION public.integration_connectors_settings_revision() RETURNS trigger
LANGUAGE plpgsql SET search_path = public AS $$
BEGIN
    IF NEW.config IS DISTINCT FROM OLD.config
       OR NEW.connector_name IS DISTINCT FROM OLD.connector_name
       OR NEW.sync_interval_seconds IS DISTINCT FROM OLD.sync_interval_seconds
       OR NEW.version IS DISTINCT FROM OLD.version THEN
        NEW.settings_revision := OLD.settings_revision + 1;
    ELSE
        NEW.settings_revision := OLD.settings_revision;  -- never set by hand
    END IF;
    RETURN NEW;
END $$;
REVOKE ALL ON FUNCTION public.integration_connectors_settings_revision()
    FROM PUBLIC, anon, authenticated;
DROP TRIGGER IF EXISTS integration_connectors_settings_revision
    ON public.integration_connectors;
CREATE TRIGGER integration_connectors_settings_revision
    BEFORE UPDATE ON public.integration_connectors
    FOR EACH ROW EXECUTE FUNCTION public.integration_connectors_settings_revision();

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
       ic.setup_done, ic.settings_revision
FROM public.integration_connectors ic
LEFT JOIN public.marketplace_connector_versions v
       ON v.connector_id = ic.marketplace_connector_id AND v.version = ic.version;
REVOKE ALL ON public.integration_connectors_shown FROM PUBLIC, anon, authenticated;
