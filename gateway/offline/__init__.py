"""Work queued offline, replayed in order and once: ``POST /api/v1/integrations/sync-offline``."""
