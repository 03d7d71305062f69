-- Catalog search and publishing, owned by marketplace_service.
--
-- search_vector: full-text search over name (weight A), vendor and category (B) and description
-- (C), kept by PostgreSQL itself (a stored generated column), with a GIN index. The english
-- configuration stems words the same way queries are stemmed. Core PostgreSQL only: typo
-- tolerance (no pg_trgm here) is done by the service with rapidfuzz.
--
-- published_by_tenant: the tenant whose publisher published the entry; only that tenant may
-- publish newer versions of it. NULL for the platform's own catalog, which no tenant may
-- replace. published_at: when its current version was published.
--
-- setup_steps: what a person does to set the connector up, as published (a list of strings).
--
-- Install counts are not stored: popularity is counted from integration_connectors (owned by
-- connector_service) through its index on marketplace_connector_id, so the catalog never
-- holds a second, drifting copy of what connector_service writes.
ALTER TABLE public.marketplace_connectors
    ADD COLUMN IF NOT EXISTS published_by_tenant UUID
        REFERENCES public.tenants (id) ON DELETE SET NULL,
    ADD COLUMN IF NOT EXISTS published_at TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS setup_steps JSONB NOT NULL DEFAULT '[]'::jsonb
        CHECK (jsonb_typeof(setup_steps) = 'array'),
    ADD COLUMN IF NOT EXISTS search_vector tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english'::regconfig, coalesce(name, '')), 'A')
        || setweight(to_tsvector('english'::regconfig, coalesce(vendor, '')), 'B')
        || setweight(to_tsvector('english'::regconfig,
                                 replace(coalesce(category, ''), '-', ' ')), 'B')
        || setweight(to_tsvector('english'::regconfig, coalesce(description, '')), 'C')
    ) STORED;

CREATE INDEX IF NOT EXISTS idx_marketplace_connectors_search
    ON public.marketplace_connectors USING GIN (search_vector);
CREATE INDEX IF NOT EXISTS idx_marketplace_connectors_auth_scheme
    ON public.marketplace_connectors (auth_scheme, name);
CREATE INDEX IF NOT EXISTS idx_marketplace_connectors_publisher
    ON public.marketplace_connectors (published_by_tenant) WHERE published_by_tenant IS NOT NULL;

-- No new table: marketplace_connectors keeps row level security on and no privileges for anon
-- and authenticated (20261126090500_lock_down_public_api.sql); repeated here so this file holds
-- on its own on a Supabase project whose grants were changed by hand.
REVOKE ALL ON TABLE public.marketplace_connectors FROM anon, authenticated;
ALTER TABLE public.marketplace_connectors ENABLE ROW LEVEL SECURITY;
