-- The tenant profile recommendations read (industry, size and now a free-text description of
-- what the company does, matched against connector descriptions). Edited through the gateway's
-- PATCH /api/v1/tenant by the tenant's admins. tenants keeps row level security (enabled in
-- 20261126090500); no new table, so no new grants.
ALTER TABLE public.tenants ADD COLUMN IF NOT EXISTS description TEXT;

-- Industries written before they were checked: blank ones become none, long ones are cut, so
-- the check below cannot refuse existing rows.
UPDATE public.tenants SET industry = NULLIF(left(btrim(industry), 60), '')
WHERE industry IS NOT NULL AND (btrim(industry) = '' OR length(industry) > 60);

DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint WHERE conname = 'tenants_description_length'
    ) THEN
        ALTER TABLE public.tenants ADD CONSTRAINT tenants_description_length
            CHECK (description IS NULL OR length(description) <= 2000);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'tenants_industry_length') THEN
        ALTER TABLE public.tenants ADD CONSTRAINT tenants_industry_length
            CHECK (industry IS NULL OR length(industry) BETWEEN 1 AND 60);
    END IF;
END
$$;
