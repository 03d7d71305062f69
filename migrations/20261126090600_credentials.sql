-- Credentials of installed connectors, owned by connector_service: one AES-256-GCM envelope per
-- secret field (common/crypto.py). Nothing here is readable without the key ring.
CREATE TABLE IF NOT EXISTS public.credentials (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id UUID NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
    integration_id UUID NOT NULL REFERENCES public.integration_connectors (id) ON DELETE CASCADE,
    field TEXT NOT NULL CHECK (length(field) BETWEEN 1 AND 200),
    key_id TEXT NOT NULL,          -- which key-encryption key wrapped the data key
    wrapped_key BYTEA NOT NULL,    -- nonce + AES-GCM(KEK, data key)
    nonce BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL,     -- AES-GCM(data key, secret), bound to tenant/connector/field
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE UNIQUE INDEX IF NOT EXISTS credentials_integration_field_key
    ON public.credentials (integration_id, field);
CREATE INDEX IF NOT EXISTS idx_credentials_key_id ON public.credentials (key_id);

CREATE OR REPLACE TRIGGER handle_credentials_updated_at
BEFORE UPDATE ON public.credentials
FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();

REVOKE ALL ON TABLE public.credentials FROM anon, authenticated;
ALTER TABLE public.credentials ENABLE ROW LEVEL SECURITY;
