-- Supabase exposes the public schema through PostgREST to the anon and authenticated roles, and
-- its default privileges grant them every new table. The services connect as the database
-- owner; nobody else may read or write these tables (row level security policies for direct
-- client access come with their own migration). RLS without policies denies every non-owner.
REVOKE ALL ON TABLE
    public.tenants, public.users, public.memberships, public.api_keys,
    public.marketplace_connectors, public.integration_connectors, public.connector_metrics,
    public.audit_logs
FROM anon, authenticated;
REVOKE ALL ON SEQUENCE public.connector_metrics_id_seq, public.audit_logs_id_seq
FROM anon, authenticated;

ALTER TABLE public.tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.users ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.marketplace_connectors ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.integration_connectors ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.connector_metrics ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.audit_logs ENABLE ROW LEVEL SECURITY;

-- Tables added by later migrations get the same treatment there; this keeps new ones closed
-- even if a migration forgets.
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM anon, authenticated;
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM anon, authenticated;
