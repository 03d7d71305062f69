-- Catalog search and publishing, owned by marketplace_service.
--
-- search_vector: what a query must match, over name, vendor, category and description, kept by
-- PostgreSQL itself (a stored generated column) with a GIN index. Stripped of positions and
-- weights: matching needs neither, and the smaller vector is what a broad query reads for
-- thousands of rows. title_vector: name (weight A), vendor and category (B), with its own GIN
-- index: relevance ranks the matches in these fields (few, even for a broad query) and
-- orders matches in the description only by featured and name, without ranking them (ranking
-- the full vectors of 5,000 matches took 27 ms here). The english configuration stems words the same way queries are stemmed. Core
-- PostgreSQL only: typo tolerance (no pg_trgm here) is done by the service with rapidfuzz.
--
-- published_by_tenant: the tenant whose publisher published the entry; only that tenant may
-- publish newer versions of it. NULL for the platform's own catalog, which no tenant may
-- replace. published_at: when its current version was published. setup_steps: what a person
-- does to set the connector up, as published (a list of strings).
ALTER TABLE public.marketplace_connectors
    ADD COLUMN IF NOT EXISTS published_by_tenant UUID
        REFERENCES public.tenants (id) ON DELETE SET NULL,
    ADD COLUMN IF NOT EXISTS published_at TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS setup_steps JSONB NOT NULL DEFAULT '[]'::jsonb
        CHECK (jsonb_typeof(setup_steps) = 'array'),
    ADD COLUMN IF NOT EXISTS search_vector tsvector GENERATED ALWAYS AS (
        strip(to_tsvector('english'::regconfig,
            coalesce(name, '') || ' ' || coalesce(vendor, '') || ' '
            || replace(coalesce(category, ''), '-', ' ') || ' ' || coalesce(description, '')))
    ) STORED,
    ADD COLUMN IF NOT EXISTS title_vector tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english'::regconfig, coalesce(name, '')), 'A')
        || setweight(to_tsvector('english'::regconfig, coalesce(vendor, '')), 'B')
        || setweight(to_tsvector('english'::regconfig,
                                 replace(coalesce(category, ''), '-', ' ')), 'B')
    ) STORED;

CREATE INDEX IF NOT EXISTS idx_marketplace_connectors_search
    ON public.marketplace_connectors USING GIN (search_vector);
CREATE INDEX IF NOT EXISTS idx_marketplace_connectors_title
    ON public.marketplace_connectors USING GIN (title_vector);
-- Matches only in the description come featured first, then by name: read in this order, a
-- broad query stops after a page instead of ranking thousands of matches.
CREATE INDEX IF NOT EXISTS idx_marketplace_connectors_featured_first
    ON public.marketplace_connectors (is_featured DESC, name);
CREATE INDEX IF NOT EXISTS idx_marketplace_connectors_auth_scheme
    ON public.marketplace_connectors (auth_scheme, name);
CREATE INDEX IF NOT EXISTS idx_marketplace_connectors_publisher
    ON public.marketplace_connectors (published_by_tenant) WHERE published_by_tenant IS NOT NULL;

-- Installs per entry across all tenants, for sorting by popularity: counted from
-- integration_connectors (connector_service's) by marketplace_service every few seconds
-- (SEEDOS_MARKETPLACE_CATALOG_REFRESH_SECONDS), so a sort does not count every install of
-- every entry on each request and connector_service's writes stay free of catalog triggers.
CREATE TABLE IF NOT EXISTS public.marketplace_install_counts (
    marketplace_connector_id UUID PRIMARY KEY
        REFERENCES public.marketplace_connectors (id) ON DELETE CASCADE,
    installs BIGINT NOT NULL CHECK (installs >= 0),
    counted_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

REVOKE ALL ON TABLE public.marketplace_install_counts FROM anon, authenticated;
ALTER TABLE public.marketplace_install_counts ENABLE ROW LEVEL SECURITY;
-- marketplace_connectors keeps RLS on and no privileges for anon and authenticated
-- (20261126090500_lock_down_public_api.sql); repeated so this file holds on its own.
REVOKE ALL ON TABLE public.marketplace_connectors FROM anon, authenticated;
ALTER TABLE public.marketplace_connectors ENABLE ROW LEVEL SECURITY;
