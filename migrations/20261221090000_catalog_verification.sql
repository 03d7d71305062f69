-- How far each catalog entry is known to work (issue 18), owned by marketplace_service.
--
-- verification: for an entry run from a connector definition, how it was checked:
--   'verified'  - passes the conformance suite in `make test` against a stand-in of the
--                 provider no one here wrote (localstripe; Prism serving GitHub's description);
--   'checked'   - its requests, parameters and answers' fields checked against the provider's
--                 own machine-readable description of its API (OpenAPI, Google Discovery);
--   'described' - written from the provider's documentation only.
-- NULL: not rated (a tenant's published connector, a hand-written one, a brochure entry).
-- verification_note: against what it was verified or checked, or why an entry cannot run from a
-- definition (no HTTP API of that kind); shown beside the level.
ALTER TABLE public.marketplace_connectors
    ADD COLUMN IF NOT EXISTS verification TEXT
        CHECK (verification IN ('verified', 'checked', 'described')),
    ADD COLUMN IF NOT EXISTS verification_note TEXT CHECK (length(verification_note) <= 1000);

CREATE INDEX IF NOT EXISTS idx_marketplace_connectors_verification
    ON public.marketplace_connectors (verification, name) WHERE verification IS NOT NULL;
