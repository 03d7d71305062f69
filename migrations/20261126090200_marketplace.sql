-- The catalog, owned by marketplace_service.
CREATE TABLE IF NOT EXISTS public.marketplace_connectors (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    slug TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    service_identifier TEXT NOT NULL, -- maps to integration_connectors.service_name
    version TEXT NOT NULL DEFAULT '0.0.0',
    logo_url TEXT,
    category TEXT,
    vendor TEXT,
    auth_scheme TEXT NOT NULL DEFAULT 'none'
        CHECK (auth_scheme IN ('oauth2', 'api_key', 'basic', 'none')),
    default_auth_config JSONB NOT NULL DEFAULT '{}'::jsonb,
    default_api_spec JSONB NOT NULL DEFAULT '{}'::jsonb,
    available_scopes TEXT[] NOT NULL DEFAULT '{}',
    setup_guide_url TEXT,
    is_featured BOOLEAN NOT NULL DEFAULT FALSE,
    manifest JSONB NOT NULL DEFAULT '{}'::jsonb, -- connector contract manifest incl. config_schema
    endpoint_url TEXT,                           -- where the deployed connector listens, if any
    allow_multiple BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT marketplace_connectors_slug_format
        CHECK (slug ~ '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$')
);
CREATE UNIQUE INDEX IF NOT EXISTS marketplace_connectors_slug_key
    ON public.marketplace_connectors (slug);
CREATE UNIQUE INDEX IF NOT EXISTS marketplace_connectors_name_key
    ON public.marketplace_connectors (name);
CREATE UNIQUE INDEX IF NOT EXISTS marketplace_connectors_service_identifier_key
    ON public.marketplace_connectors (service_identifier);
CREATE INDEX IF NOT EXISTS idx_marketplace_connectors_category
    ON public.marketplace_connectors (category, name);
CREATE INDEX IF NOT EXISTS idx_marketplace_connectors_featured
    ON public.marketplace_connectors (name) WHERE is_featured;

CREATE OR REPLACE TRIGGER handle_marketplace_connectors_updated_at
BEFORE UPDATE ON public.marketplace_connectors
FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();
