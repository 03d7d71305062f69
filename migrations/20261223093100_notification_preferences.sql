-- Per-user notification preferences (issue 19, part 4), owned by the gateway (identity). No
-- row: the defaults. connector_service reads email_enabled before mailing a tenant admin about
-- an alert opened or a webhook endpoint disabled.
CREATE TABLE IF NOT EXISTS public.notification_preferences (
    user_id UUID PRIMARY KEY REFERENCES public.users (id) ON DELETE CASCADE,
    email_enabled BOOLEAN NOT NULL DEFAULT true,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

REVOKE ALL ON TABLE public.notification_preferences FROM anon, authenticated;
ALTER TABLE public.notification_preferences ENABLE ROW LEVEL SECURITY;
