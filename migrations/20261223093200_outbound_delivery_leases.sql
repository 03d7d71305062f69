-- Outbound deliveries carry the token of the claim that leases them (issue 19, part 4, review).
-- A claim sets lease_id; recording an attempt or releasing an unsent row requires the same
-- token, so a late result cannot overwrite a row another worker has claimed since. attempts
-- now counts the attempts made (recorded), not the claims.
ALTER TABLE public.outbound_deliveries ADD COLUMN IF NOT EXISTS lease_id UUID;
