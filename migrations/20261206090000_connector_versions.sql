-- Every published version of a catalog entry, owned by marketplace_service, read by
-- connector_service: an install runs the version it installed (integration_connectors.version
-- of its entry) and every call, token refresh and revocation uses that version's manifest
-- (config schema, auth with the OAuth URLs and scopes, streams, actions) and endpoint, until the
-- tenant upgrades. marketplace_connectors keeps the newest published version for the catalog.
CREATE TABLE IF NOT EXISTS public.marketplace_connector_versions (
    id BIGSERIAL PRIMARY KEY,                -- publish order
    connector_id UUID NOT NULL REFERENCES public.marketplace_connectors (id) ON DELETE CASCADE,
    version TEXT NOT NULL,
    manifest JSONB NOT NULL,
    endpoint_url TEXT,
    published_by_tenant UUID,                -- NULL: the platform's own catalog
    published_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    withdrawn_at TIMESTAMPTZ,                -- set by the publisher; installs on it must upgrade
    withdrawn_reason TEXT,
    CONSTRAINT marketplace_connector_versions_key UNIQUE (connector_id, version),
    CONSTRAINT marketplace_connector_versions_withdrawn
        CHECK ((withdrawn_at IS NULL) = (withdrawn_reason IS NULL))
);

-- A version is recorded by the statement that writes its entry, whoever writes it (publishing,
-- the platform's catalog, a deployed example): one place, so no writer can forget it.
-- A tenant's published version never changes afterwards. The platform's own entries (no
-- publishing tenant) are the operator's deployment: re-registering one at the same version
-- (seedos up with another port) moves that version, as the operator could with the database.
CREATE OR REPLACE FUNCTION public.marketplace_connectors_record_version()
RETURNS TRIGGER
LANGUAGE plpgsql
AS $$
DECLARE
  existing public.marketplace_connector_versions%ROWTYPE;
BEGIN
  SELECT * INTO existing FROM public.marketplace_connector_versions
   WHERE connector_id = NEW.id AND version = NEW.version;
  IF NOT FOUND THEN
    INSERT INTO public.marketplace_connector_versions
        (connector_id, version, manifest, endpoint_url, published_by_tenant)
    VALUES (NEW.id, NEW.version, NEW.manifest, NEW.endpoint_url, NEW.published_by_tenant);
  ELSIF existing.manifest IS DISTINCT FROM NEW.manifest
        OR existing.endpoint_url IS DISTINCT FROM NEW.endpoint_url THEN
    UPDATE public.marketplace_connector_versions
       SET manifest = NEW.manifest, endpoint_url = NEW.endpoint_url
     WHERE id = existing.id;
  END IF;
  RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER marketplace_connectors_version
AFTER INSERT OR UPDATE OF version, manifest, endpoint_url ON public.marketplace_connectors
FOR EACH ROW EXECUTE FUNCTION public.marketplace_connectors_record_version();

-- Immutability, whatever the writer: a tenant's published version keeps its manifest and
-- endpoint; only its withdrawal may be recorded (once).
CREATE OR REPLACE FUNCTION public.marketplace_connector_versions_immutable()
RETURNS TRIGGER
LANGUAGE plpgsql
AS $$
BEGIN
  IF NEW.connector_id IS DISTINCT FROM OLD.connector_id
     OR NEW.version IS DISTINCT FROM OLD.version
     OR NEW.published_by_tenant IS DISTINCT FROM OLD.published_by_tenant
     OR NEW.published_at IS DISTINCT FROM OLD.published_at
     OR (OLD.published_by_tenant IS NOT NULL
         AND (NEW.manifest IS DISTINCT FROM OLD.manifest
              OR NEW.endpoint_url IS DISTINCT FROM OLD.endpoint_url))
     OR (OLD.withdrawn_at IS NOT NULL
         AND (NEW.withdrawn_at IS DISTINCT FROM OLD.withdrawn_at
              OR NEW.withdrawn_reason IS DISTINCT FROM OLD.withdrawn_reason)) THEN
    RAISE EXCEPTION 'published connector version % is immutable', OLD.version
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END;
$$;

CREATE OR REPLACE TRIGGER marketplace_connector_versions_immutable
BEFORE UPDATE ON public.marketplace_connector_versions
FOR EACH ROW EXECUTE FUNCTION public.marketplace_connector_versions_immutable();

-- The versions there are now: each entry's current one. Until this migration every install
-- called its entry's current endpoint and manifest whatever version it recorded, so that is
-- the version each one really runs, and the one it is pinned to from now on.
INSERT INTO public.marketplace_connector_versions
    (connector_id, version, manifest, endpoint_url, published_by_tenant, published_at)
SELECT id, version, manifest, endpoint_url, published_by_tenant,
       COALESCE(published_at, updated_at)
FROM public.marketplace_connectors
ON CONFLICT (connector_id, version) DO NOTHING;

UPDATE public.integration_connectors ic SET version = mc.version
FROM public.marketplace_connectors mc
WHERE mc.id = ic.marketplace_connector_id AND ic.version IS DISTINCT FROM mc.version;

-- An install names a version that exists (an entry removed from the catalog leaves its installs
-- with no entry, as before: marketplace_connector_id becomes NULL and the key is not checked).
ALTER TABLE public.integration_connectors
    DROP CONSTRAINT IF EXISTS integration_connectors_version_fk;
ALTER TABLE public.integration_connectors
    ADD CONSTRAINT integration_connectors_version_fk
    FOREIGN KEY (marketplace_connector_id, version)
    REFERENCES public.marketplace_connector_versions (connector_id, version);

-- An install as the API shows it, one definition for every service that reads installs: on a
-- version its publisher withdrew (and not disabled), its status is update_required and its
-- reason the publisher's.
CREATE OR REPLACE VIEW public.integration_connectors_shown AS
SELECT ic.id, ic.tenant_id, ic.connector_name, ic.service_name, ic.marketplace_connector_id,
       ic.version, ic.config, ic.last_error, ic.last_sync_at, ic.sync_interval_seconds,
       ic.created_at, ic.updated_at,
       CASE WHEN v.withdrawn_at IS NOT NULL AND ic.status <> 'disabled' THEN 'update_required'
            ELSE ic.status END AS status,
       CASE WHEN v.withdrawn_at IS NOT NULL AND ic.status <> 'disabled'
            THEN 'version ' || ic.version || ' was withdrawn by its publisher: '
                 || v.withdrawn_reason || ' (upgrade: GET, then POST .../upgrade)'
            ELSE ic.status_reason END AS status_reason
FROM public.integration_connectors ic
LEFT JOIN public.marketplace_connector_versions v
       ON v.connector_id = ic.marketplace_connector_id AND v.version = ic.version;
REVOKE ALL ON public.integration_connectors_shown FROM PUBLIC, anon, authenticated;

ALTER TABLE public.marketplace_connector_versions ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.marketplace_connector_versions FROM anon, authenticated;
REVOKE ALL ON SEQUENCE public.marketplace_connector_versions_id_seq FROM anon, authenticated;
REVOKE ALL ON FUNCTION public.marketplace_connectors_record_version() FROM PUBLIC, anon, authenticated;
REVOKE ALL ON FUNCTION public.marketplace_connector_versions_immutable() FROM PUBLIC, anon, authenticated;
