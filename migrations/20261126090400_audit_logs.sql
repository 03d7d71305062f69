-- Append-only audit trail written by every service. Each tenant's entries form a sequence and
-- a hash chain (hash = sha256(prev_hash || canonical entry)), so a removed or edited row shows.
CREATE TABLE IF NOT EXISTS public.audit_logs (
    id BIGSERIAL PRIMARY KEY,
    tenant_id UUID,
    seq BIGINT NOT NULL,
    user_id TEXT, -- the acting subject: a user id, an API key id, or a system actor
    action TEXT NOT NULL,
    payload JSONB NOT NULL DEFAULT '{}'::jsonb,
    request_id TEXT,
    prev_hash BYTEA,
    hash BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
-- No foreign key to tenants: the trail outlives a deleted tenant, unchanged.
CREATE UNIQUE INDEX IF NOT EXISTS audit_logs_tenant_seq_key
    ON public.audit_logs (tenant_id, seq) NULLS NOT DISTINCT;
CREATE INDEX IF NOT EXISTS idx_audit_logs_tenant_id ON public.audit_logs (tenant_id);
CREATE INDEX IF NOT EXISTS idx_audit_logs_action ON public.audit_logs (action);
CREATE INDEX IF NOT EXISTS idx_audit_logs_created_at ON public.audit_logs (created_at);

-- Append-only: refuse updates and deletes of audit entries.
CREATE OR REPLACE FUNCTION public.audit_logs_append_only()
RETURNS TRIGGER
LANGUAGE plpgsql
AS $$
BEGIN
  RAISE EXCEPTION 'audit_logs is append-only';
END;
$$;

CREATE OR REPLACE TRIGGER audit_logs_no_update
BEFORE UPDATE OR DELETE ON public.audit_logs
FOR EACH ROW EXECUTE FUNCTION public.audit_logs_append_only();
