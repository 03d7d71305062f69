-- OAuth connects in progress, owned by connector_service: one row per authorization request,
-- consumed (deleted) by the provider's redirect to the callback, which it alone authorizes.
-- Only a SHA-256 hash of the state is stored, and the PKCE verifier is an AES-256-GCM envelope
-- (common/crypto.py), so a copy of this table cannot complete anyone's connect.
CREATE TABLE IF NOT EXISTS public.oauth_states (
    state_hash BYTEA PRIMARY KEY CHECK (length(state_hash) = 32),
    tenant_id UUID NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
    integration_id UUID NOT NULL REFERENCES public.integration_connectors (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,              -- who started the connect (the audit actor)
    redirect_uri TEXT NOT NULL,         -- sent again with the code, as RFC 6749 requires
    return_to TEXT,                     -- where the browser goes afterwards (checked on connect)
    scopes TEXT[] NOT NULL DEFAULT '{}',
    key_id TEXT NOT NULL,               -- the PKCE verifier's envelope
    wrapped_key BYTEA NOT NULL,
    nonce BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_oauth_states_expires_at ON public.oauth_states (expires_at);
CREATE INDEX IF NOT EXISTS idx_oauth_states_integration ON public.oauth_states (integration_id);

REVOKE ALL ON TABLE public.oauth_states FROM anon, authenticated;
ALTER TABLE public.oauth_states ENABLE ROW LEVEL SECURITY;
