-- OAuth connects bound to the browser that starts them. A connect answers a gateway start URL
-- carrying a single-use start token; opening it sets a random binding cookie in that browser and
-- redirects to the provider, and the callback is refused in any browser without that cookie.
-- Only SHA-256 hashes of the start token and of the binding are stored, and the provider's
-- authorization URL (it holds the state) is an AES-256-GCM envelope like the PKCE verifier, so
-- a copy of this table can neither start nor complete anyone's connect.
ALTER TABLE public.oauth_states
    ADD COLUMN IF NOT EXISTS start_hash BYTEA CHECK (length(start_hash) = 32),
    ADD COLUMN IF NOT EXISTS binding_hash BYTEA CHECK (length(binding_hash) = 32),
    ADD COLUMN IF NOT EXISTS started_at TIMESTAMPTZ,       -- when the start URL was opened
    ADD COLUMN IF NOT EXISTS url_key_id TEXT,              -- the authorization URL's envelope
    ADD COLUMN IF NOT EXISTS url_wrapped_key BYTEA,
    ADD COLUMN IF NOT EXISTS url_nonce BYTEA,
    ADD COLUMN IF NOT EXISTS url_ciphertext BYTEA;
-- the start token is used up (set to NULL) when its URL is opened
CREATE UNIQUE INDEX IF NOT EXISTS idx_oauth_states_start_hash
    ON public.oauth_states (start_hash) WHERE start_hash IS NOT NULL;
