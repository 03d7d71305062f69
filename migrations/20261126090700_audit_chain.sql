-- What an audit entry is about (`integration:<uuid>`, `api_key:<uuid>`, `tenant:<uuid>`), and a
-- head per chain so that removing the last entries shows too. The entry hash covers `target`
-- only when it is set, so the entries written before this migration keep verifying.
ALTER TABLE public.audit_logs ADD COLUMN IF NOT EXISTS target TEXT;

-- One row per chain (tenant_id NULL: the system chain): the last sequence number and hash the
-- audit writer appended, updated in the same transaction as the entry. An entry missing at the
-- end of a chain is a chain shorter than its head.
CREATE TABLE IF NOT EXISTS public.audit_chain_heads (
    tenant_id UUID,  -- no foreign key, like audit_logs: the trail outlives a deleted tenant
    last_seq BIGINT NOT NULL CHECK (last_seq >= 0),
    last_hash BYTEA,  -- NULL only while the chain's first entry is being written
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT audit_chain_heads_tenant_key UNIQUE NULLS NOT DISTINCT (tenant_id),
    CONSTRAINT audit_chain_heads_hash_set CHECK ((last_seq = 0) = (last_hash IS NULL))
);

-- Existing chains start from their current last entry. (Entries removed from the end before
-- this migration cannot be detected: there was nothing recording how long a chain was.)
-- ADD COLUMN above holds an exclusive lock on audit_logs, so no entry is appended meanwhile.
INSERT INTO public.audit_chain_heads (tenant_id, last_seq, last_hash)
SELECT DISTINCT ON (tenant_id) tenant_id, seq, hash
FROM public.audit_logs
ORDER BY tenant_id, seq DESC
ON CONFLICT (tenant_id) DO NOTHING;

-- A head only moves forward and is never removed.
CREATE OR REPLACE FUNCTION public.audit_chain_heads_forward_only()
RETURNS TRIGGER
LANGUAGE plpgsql
AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'audit chain heads cannot be deleted';
  END IF;
  IF NEW.tenant_id IS DISTINCT FROM OLD.tenant_id OR NEW.last_seq < OLD.last_seq THEN
    RAISE EXCEPTION 'an audit chain head only moves forward';
  END IF;
  RETURN NEW;
END;
$$;

CREATE OR REPLACE TRIGGER audit_chain_heads_forward
BEFORE UPDATE OR DELETE ON public.audit_chain_heads
FOR EACH ROW EXECUTE FUNCTION public.audit_chain_heads_forward_only();

REVOKE ALL ON TABLE public.audit_chain_heads FROM anon, authenticated;
ALTER TABLE public.audit_chain_heads ENABLE ROW LEVEL SECURITY;
