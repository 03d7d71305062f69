"""The reads behind the database-derived gauges: two aggregate queries, one row per catalog
service name. Each reads every install (and the outbox) once, with no lock taken."""

from __future__ import annotations

from typing import Any

import asyncpg

# One row per service name with installs (0s when its outbox is empty, so a dashboard shows 0
# rather than nothing). Pending changes count only where the push loop works (installs not
# disabled, tenants not suspended): elsewhere they wait by design, and would look stuck. Dead
# letters count wherever they are held.
_OUTBOX = """
SELECT ic.service_name,
       count(o.id) FILTER (WHERE o.state = 'pending' AND p.pushed) AS pending,
       COALESCE(EXTRACT(EPOCH FROM now() - min(o.created_at)
                FILTER (WHERE o.state = 'pending' AND p.pushed)), 0)::float8 AS oldest_seconds,
       count(o.id) FILTER (WHERE o.state = 'dead') AS dead
FROM integration_connectors ic
JOIN tenants t ON t.id = ic.tenant_id
CROSS JOIN LATERAL (SELECT ic.status <> 'disabled' AND t.suspended_at IS NULL AS pushed) p
LEFT JOIN sync_outbox o ON o.integration_id = ic.id
GROUP BY ic.service_name
"""

# The installs the scheduler runs (connector_service/sync/repository.py, scheduled_due): active,
# scheduled, of a tenant not suspended, on a version with streams that is not withdrawn. An
# install's lag: how long past its interval it is since its last successful sync (or since it
# was installed, before its first), 0 while within its interval.
_LAG = """
SELECT ic.service_name,
       max(GREATEST(0, EXTRACT(EPOCH FROM now() - COALESCE(ic.last_sync_at, ic.created_at))
                       - ic.sync_interval_seconds))::float8 AS lag_seconds
FROM integration_connectors ic
JOIN tenants t ON t.id = ic.tenant_id
JOIN marketplace_connector_versions v
  ON v.connector_id = ic.marketplace_connector_id AND v.version = ic.version
WHERE ic.status = 'active' AND ic.sync_interval_seconds > 0
  AND t.suspended_at IS NULL AND v.withdrawn_at IS NULL
  AND jsonb_array_length(COALESCE(v.manifest -> 'streams', '[]'::jsonb)) > 0
GROUP BY ic.service_name
"""


async def outbox_by_service(conn: asyncpg.Connection) -> list[Any]:
    """``service_name, pending, oldest_seconds, dead`` per service with installs."""
    return await conn.fetch(_OUTBOX)


async def lag_by_service(conn: asyncpg.Connection) -> list[Any]:
    """``service_name, lag_seconds`` per service with scheduled installs."""
    return await conn.fetch(_LAG)
