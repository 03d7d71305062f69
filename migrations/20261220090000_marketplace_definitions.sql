-- Connector definitions published to the catalog (issue 17), owned by marketplace_service: the
-- text of each, by the SHA-256 of that text. A definition's catalog entry points at the generic
-- connector under /definitions/{name}/{version}/{digest}, and the generic connector fetches the
-- text by its digest (GET /definitions/{digest} on marketplace_service) and checks it, so an
-- install keeps running the very text it was installed with. Content-addressed: a row never
-- changes once written.
CREATE TABLE IF NOT EXISTS public.marketplace_definitions (
    digest TEXT PRIMARY KEY CHECK (digest ~ '^[0-9a-f]{64}$'),
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    body TEXT NOT NULL CHECK (octet_length(body) <= 1048576),
    published_by_tenant UUID,                -- NULL: the platform's own
    published_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS marketplace_definitions_name ON public.marketplace_definitions (name, version);

CREATE OR REPLACE FUNCTION public.marketplace_definitions_immutable()
RETURNS TRIGGER
LANGUAGE plpgsql
AS $$
BEGIN
  RAISE EXCEPTION 'a published definition never changes (digest %)', OLD.digest
    USING ERRCODE = 'check_violation';
END;
$$;

CREATE OR REPLACE TRIGGER marketplace_definitions_immutable
BEFORE UPDATE ON public.marketplace_definitions
FOR EACH ROW EXECUTE FUNCTION public.marketplace_definitions_immutable();

ALTER TABLE public.marketplace_definitions ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.marketplace_definitions FROM anon, authenticated;
