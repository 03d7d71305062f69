-- People: identities from OpenID providers, sessions, invitations, email domains, platform
-- operators and suspended tenants. Owned by the gateway.

-- A user is one person as a provider knows them: unique by (issuer, subject), never by email.
-- Two providers asserting the same email are two users until an operator links them
-- (`seedos users link`), and an unverified email never links or matches anything.
DROP INDEX IF EXISTS public.users_email_key;
ALTER TABLE public.users ALTER COLUMN email DROP NOT NULL;
ALTER TABLE public.users ADD COLUMN IF NOT EXISTS email_verified BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE public.users ADD COLUMN IF NOT EXISTS last_sign_in_at TIMESTAMPTZ;
CREATE INDEX IF NOT EXISTS idx_users_verified_email
    ON public.users (lower(email)) WHERE email_verified;

CREATE TABLE IF NOT EXISTS public.user_identities (
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id UUID NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
    provider TEXT NOT NULL,              -- the configured provider's name when first seen
    email TEXT,
    email_verified BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    last_sign_in_at TIMESTAMPTZ,
    PRIMARY KEY (issuer, subject),
    CONSTRAINT user_identities_issuer_length CHECK (length(issuer) BETWEEN 1 AND 2000),
    CONSTRAINT user_identities_subject_length CHECK (length(subject) BETWEEN 1 AND 255)
);
CREATE INDEX IF NOT EXISTS idx_user_identities_user_id ON public.user_identities (user_id);

ALTER TABLE public.memberships ADD COLUMN IF NOT EXISTS updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW();
ALTER TABLE public.memberships ADD COLUMN IF NOT EXISTS created_by TEXT;

-- Platform operators: outside any tenant; create, suspend and resume tenants.
CREATE TABLE IF NOT EXISTS public.platform_operators (
    user_id UUID PRIMARY KEY REFERENCES public.users (id) ON DELETE CASCADE,
    added_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

ALTER TABLE public.tenants ADD COLUMN IF NOT EXISTS suspended_at TIMESTAMPTZ;
ALTER TABLE public.tenants ADD COLUMN IF NOT EXISTS suspended_reason TEXT;
ALTER TABLE public.tenants DROP CONSTRAINT IF EXISTS tenants_suspended_reason_length;
ALTER TABLE public.tenants ADD CONSTRAINT tenants_suspended_reason_length
    CHECK (suspended_reason IS NULL OR length(suspended_reason) <= 500);

-- Sessions: server-side, behind an opaque cookie of 256 random bits of which only the SHA-256
-- is stored. `id` is the public handle (GET/DELETE /api/v1/me/sessions). A rotation keeps the
-- previous hash valid for a few seconds, so requests already on their way are not refused.
CREATE TABLE IF NOT EXISTS public.sessions (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash BYTEA NOT NULL CHECK (length(token_hash) = 32),
    previous_token_hash BYTEA CHECK (length(previous_token_hash) = 32),
    rotated_at TIMESTAMPTZ,
    user_id UUID NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
    tenant_id UUID REFERENCES public.tenants (id) ON DELETE SET NULL,  -- the current tenant
    role TEXT,                           -- the role the session was last issued for
    provider TEXT NOT NULL,              -- configured provider name, or 'development'
    issuer TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    last_seen_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    idle_expires_at TIMESTAMPTZ NOT NULL,
    absolute_expires_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ,
    end_reason TEXT,
    user_agent TEXT CHECK (user_agent IS NULL OR length(user_agent) <= 512),
    client_address TEXT CHECK (client_address IS NULL OR length(client_address) <= 64)
);
CREATE UNIQUE INDEX IF NOT EXISTS sessions_token_hash_key ON public.sessions (token_hash);
CREATE INDEX IF NOT EXISTS idx_sessions_previous_token_hash
    ON public.sessions (previous_token_hash) WHERE previous_token_hash IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_sessions_user_id ON public.sessions (user_id, created_at DESC);
CREATE INDEX IF NOT EXISTS idx_sessions_tenant_live
    ON public.sessions (tenant_id, user_id) WHERE ended_at IS NULL;

-- Sign-ins in progress: one row per browser that started one, consumed by the callback. The
-- browser's cookie holds a 256-bit secret; only its SHA-256 is stored, and state, nonce and
-- the PKCE verifier are derived from the secret, so a copy of this table completes nothing.
CREATE TABLE IF NOT EXISTS public.login_flows (
    flow_hash BYTEA PRIMARY KEY CHECK (length(flow_hash) = 32),
    provider TEXT NOT NULL,
    tenant_slug TEXT,
    return_to TEXT CHECK (return_to IS NULL OR length(return_to) <= 2000),
    invitation_hash BYTEA CHECK (invitation_hash IS NULL OR length(invitation_hash) = 32),
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_login_flows_expires_at ON public.login_flows (expires_at);

-- Invitations: single use, expiring, only the token's SHA-256 stored.
CREATE TABLE IF NOT EXISTS public.invitations (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id UUID NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
    email TEXT NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    role TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'admin', 'publisher')),
    token_hash BYTEA NOT NULL CHECK (length(token_hash) = 32),
    invited_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    expires_at TIMESTAMPTZ NOT NULL,
    accepted_at TIMESTAMPTZ,
    accepted_by UUID REFERENCES public.users (id) ON DELETE SET NULL,
    revoked_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX IF NOT EXISTS invitations_token_hash_key ON public.invitations (token_hash);
CREATE INDEX IF NOT EXISTS idx_invitations_tenant ON public.invitations (tenant_id, created_at DESC);

-- Email domains a tenant registered: verified users of the domain join it as viewers. No DNS
-- proof is asked (README), so a domain belongs to one tenant at most.
CREATE TABLE IF NOT EXISTS public.tenant_domains (
    domain TEXT PRIMARY KEY CHECK (domain = lower(domain) AND length(domain) BETWEEN 3 AND 253),
    tenant_id UUID NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
    role TEXT NOT NULL DEFAULT 'viewer' CHECK (role = 'viewer'),
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_tenant_domains_tenant ON public.tenant_domains (tenant_id);

REVOKE ALL ON TABLE public.user_identities, public.platform_operators, public.sessions,
    public.login_flows, public.invitations, public.tenant_domains FROM anon, authenticated;
ALTER TABLE public.user_identities ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.platform_operators ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.login_flows ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.tenant_domains ENABLE ROW LEVEL SECURITY;
