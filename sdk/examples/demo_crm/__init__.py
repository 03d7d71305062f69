"""Demo CRM: a small real HTTP service standing in for a third-party SaaS CRM in tests.

Contacts and companies live in SQLite (``$DEMO_CRM_DATA_DIR/demo_crm.sqlite3``, WAL mode), so
stopping and restarting the process loses nothing. Run it with::

    cd sdk && python -m uvicorn examples.demo_crm.app:create_app --factory --port 8011

Settings (environment): ``DEMO_CRM_DATA_DIR`` (default ``.seedos/demo_crm``),
``DEMO_CRM_API_KEYS`` (comma-separated, default ``demo-crm-key``), ``DEMO_CRM_INTROSPECTION_URL``,
``DEMO_CRM_INTROSPECTION_CLIENT_ID``, ``DEMO_CRM_INTROSPECTION_CLIENT_SECRET`` and
``DEMO_CRM_REQUIRED_SCOPE``.

Authentication is required everywhere except ``GET /healthz``, on ``/admin`` as well as on
``/v1``: ``X-API-Key: <key>`` or ``Authorization: Bearer <key or OAuth access token>``; tokens
that are not keys are checked by RFC 7662 introspection (:mod:`.auth`). Failures answer 401
``{"error": "unauthorized"}`` with ``WWW-Authenticate: Bearer error="invalid_token"``.

API (JSON; errors are ``{"error": "<code>", "message": "..."}``), the same for ``companies``:

* ``GET /v1/contacts?limit=1..1000&cursor=&updated_after=ISO8601&include_deleted=`` →
  ``{"results": [...], "next_cursor": str | null}`` ordered by ``(updated_at, id)``.
  ``updated_after`` is exclusive and includes tombstones (``"deleted": true``) unless
  ``include_deleted=false``; without it tombstones are left out unless ``include_deleted=true``.
* ``GET /v1/contacts/{id}`` (404 if unknown or deleted), ``POST /v1/contacts`` (201; a
  client-chosen ``id`` makes a retried create return the same record with 200),
  ``PUT /v1/contacts/{id}`` (create 201 or replace 200, undeleting a tombstone),
  ``PATCH /v1/contacts/{id}`` (partial), ``DELETE /v1/contacts/{id}`` (204, keeps a tombstone;
  404 only for ids never seen). A write that changes nothing keeps ``updated_at``.
  Contacts need a valid ``email``, unique among live contacts (409 ``duplicate_email``);
  companies need a ``name``.
* ``/admin/faults`` (GET, POST, DELETE), ``/admin/stats`` (GET, DELETE), ``POST /admin/seed``
  ``{"contacts": N, "companies": M}`` and ``POST /admin/reset`` (wipe data, faults and stats):
  see :mod:`.faults` and :mod:`.admin`.
* ``GET /healthz`` → ``{"status": "ok"}``.
"""
