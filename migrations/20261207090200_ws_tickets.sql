-- Single-use tickets for WebSockets, owned by the gateway: browsers cannot set headers on a
-- WebSocket, so they first POST .../sync/ticket (authenticated) and then connect with ?ticket=.
-- A ticket stands for the credential that asked for it: `credential` is the gateway's cache key
-- of that credential, b'k' || SHA-256 of the API key or b's' || SHA-256 of the session cookie
-- (the hashes api_keys.key_hash and sessions.token_hash hold already), so a socket opened with
-- the ticket is checked again by that credential and closes when it is revoked, ended or
-- rotated, when the member is removed or the tenant suspended. A ticket is bound to its tenant
-- and integration, lives 60 seconds and is consumed (deleted) by the connection that presents
-- it. Only its SHA-256 hash is stored.
CREATE TABLE IF NOT EXISTS public.ws_tickets (
    ticket_hash BYTEA PRIMARY KEY CHECK (length(ticket_hash) = 32),
    tenant_id UUID NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
    integration_id UUID NOT NULL REFERENCES public.integration_connectors (id) ON DELETE CASCADE,
    credential BYTEA NOT NULL CHECK (length(credential) = 33),
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_ws_tickets_expires_at ON public.ws_tickets (expires_at);
CREATE INDEX IF NOT EXISTS idx_ws_tickets_integration ON public.ws_tickets (integration_id);

REVOKE ALL ON TABLE public.ws_tickets FROM anon, authenticated;
ALTER TABLE public.ws_tickets ENABLE ROW LEVEL SECURITY;

-- connector_service's tickets (20261126091100_sync_tickets.sql) stood for a subject and role
-- alone; nothing reads them any more, and any still unused would open nothing.
DROP TABLE IF EXISTS public.sync_tickets;
