"""Limits at the edge (issue 13): request rates per tenant and per credential, token buckets
kept in this process (``local``) or in Redis shared by every replica (``redis``), and the
number of proxied requests and WebSockets a tenant holds open at once in this process.

:mod:`.config` is the ``SEEDOS_GATEWAY_RATE_LIMITS`` setting, :mod:`.buckets` the token buckets
and what a check concludes, :mod:`.redis_policy` the shared budget, :mod:`.headers` the
``RateLimit-Policy`` and ``RateLimit`` fields, :mod:`.limiter` the check every authenticated
``/api/v1/**`` request passes, and :mod:`.concurrency` the per-tenant slots."""
