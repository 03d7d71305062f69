from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from common import credential_keys
from common.settings import CommonSettings, check_public_url


class OAuthClientSettings(BaseModel):
    """The platform's OAuth app at one provider: what connect and refresh authenticate with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(min_length=1)
    client_secret: SecretStr


class ConnectorServiceSettings(CommonSettings):
    """connector_service settings, environment prefix ``SEEDOS_CONNECTOR_``, plus the credential
    key ring (``SEEDOS_CREDENTIAL_KEYS`` or ``SEEDOS_CREDENTIAL_KEY_FILE``), required outside
    development mode, and the suite's public URL (``SEEDOS_PUBLIC_URL``)."""

    model_config = SettingsConfigDict(
        env_prefix="SEEDOS_CONNECTOR_", extra="ignore", populate_by_name=True, frozen=True
    )
    service: ClassVar[str | None] = "connector_service"

    credential_keys: SecretStr | None = Field(None, validation_alias="SEEDOS_CREDENTIAL_KEYS")
    credential_key_file: Path | None = Field(None, validation_alias="SEEDOS_CREDENTIAL_KEY_FILE")
    # Where browsers reach the gateway: OAuth providers redirect to <public_url>/api/v1/...
    public_url: str = Field("http://127.0.0.1:8000", validation_alias="SEEDOS_PUBLIC_URL")
    # {"<catalog slug>": {"client_id": "...", "client_secret": "..."}}, as JSON
    oauth_clients: dict[str, OAuthClientSettings] = Field(default_factory=dict)
    oauth_timeout_seconds: float = Field(10.0, gt=0, le=60)
    oauth_revoke_timeout_seconds: float = Field(3.0, gt=0, le=30)
    # An access token expiring within this many seconds is refreshed before a call.
    oauth_refresh_margin_seconds: float = Field(60.0, ge=0, le=3600)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        return check_public_url(value)

    # Calls to connectors (connector_service/manager/).
    call_connect_timeout_seconds: float = Field(2.0, gt=0, le=30)
    # Whole-call budgets, retries included. Checks and actions answer API requests: keep them
    # under the gateway's upstream timeout (10 s by default). Reads and writes run in sync.
    check_timeout_seconds: float = Field(5.0, gt=0, le=120)
    call_timeout_seconds: float = Field(8.0, gt=0, le=300)
    sync_call_timeout_seconds: float = Field(30.0, gt=0, le=600)
    call_max_attempts: int = Field(3, ge=1, le=10)
    breaker_failure_threshold: int = Field(5, ge=1, le=1000)
    breaker_open_seconds: float = Field(30.0, gt=0, le=3600)
    metrics_flush_seconds: float = Field(1.0, gt=0, le=60)
    metrics_batch_size: int = Field(500, ge=1, le=10_000)
    metrics_max_queued: int = Field(50_000, ge=100)
    # Sync documents held in memory (connector_service/sync/store.py): the least recently used
    # ones without live clients are dropped past this estimate, and loaded again on demand.
    sync_memory_mb: int = Field(512, ge=1, le=1_048_576, validation_alias="SEEDOS_SYNC_MEMORY_MB")
    # A shard holding more records than this splits (connector_service/sync/layout.py); new
    # shards are built with half as many at most, on average.
    sync_shard_max_records: int = Field(
        512, ge=8, le=1_000_000, validation_alias="SEEDOS_SYNC_SHARD_MAX_RECORDS"
    )
    # A shard's log is folded into its snapshot after this many updates (or 32 MB).
    sync_compact_rows: int = Field(
        500, ge=1, le=1_000_000, validation_alias="SEEDOS_SYNC_COMPACT_ROWS"
    )
    # Action calls: how long an Idempotency-Key is kept (at least the promised 24 hours).
    idempotency_ttl_hours: float = Field(24.0, ge=24)

    # Outbound webhooks and email (issue 19, part 4: connector_service/outbound/). Deliveries
    # retry after these delays (each with +-10% jitter), then give up: 8 attempts over ~28 h.
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=60)
    webhook_retry_schedule_seconds: tuple[float, ...] = Field(
        (5, 300, 1800, 7200, 18000, 36000, 36000), min_length=1, max_length=20
    )
    # An endpoint failing every attempt this long is disabled and the tenant told.
    webhook_disable_after_days: float = Field(5.0, gt=0, le=365)
    # A rotated signing secret keeps signing beside the new one this long.
    webhook_secret_grace_hours: float = Field(24.0, ge=0, le=24 * 30)
    # Whether this process runs the delivery loop (and the outbound sweep). Every process may:
    # they share the queue. Off: deliveries are left to the processes that have it on, e.g.
    # dedicated delivery replicas.
    outbound_deliver: bool = True
    outbound_poll_seconds: float = Field(0.5, gt=0, le=60)
    outbound_batch_size: int = Field(200, ge=1, le=5000)
    outbound_retention_days: float = Field(30.0, gt=0)
    # Email to tenant admins (alert.opened, webhook.endpoint_disabled); off without a host.
    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_from: str = "SEED-OS <seedos@localhost>"
    smtp_starttls: bool = True
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = Field(10.0, gt=0, le=120)

    # Prometheus gauges read from the database (issue 19, part 1: connector_service/monitoring/):
    # outbox, dead letters and sync lag, refreshed this often by every process.
    monitoring_gauge_seconds: float = Field(15.0, gt=0, le=3600)

    # Per-install call history (issue 19, part 2: connector_service/metrics/). The rollup job
    # runs this often and recomputes at least the trailing lookback: a raw row written up to
    # that late after its call still counts. Retention (days) of raw rows, minute and hour
    # rollups, deleted in batches of retention_batch_rows every retention_seconds.
    rollup_seconds: float = Field(60.0, gt=0, le=3600)
    rollup_lookback_minutes: int = Field(15, ge=1, le=24 * 60)
    metrics_raw_retention_days: float = Field(7.0, ge=1)
    metrics_minute_retention_days: float = Field(30.0, ge=1)
    metrics_hour_retention_days: float = Field(365.0, ge=1)
    retention_seconds: float = Field(600.0, gt=0, le=86_400)
    retention_batch_rows: int = Field(5000, ge=1, le=100_000)

    # Anomaly alerts (issue 19, part 3: connector_service/alerts/). Every evaluate_seconds one
    # process judges each install's latest windows of window_minutes (those that ended at least
    # settle_seconds ago, so the rollups have them) against its baseline: an alert opens after
    # open_after breaching windows in a row and resolves after resolve_after normal ones; a
    # window with fewer than min_calls calls says nothing about latency or errors.
    alerts_evaluate_seconds: float = Field(60.0, ge=1, le=3600)
    alerts_window_minutes: int = Field(5, ge=1, le=60)
    alerts_min_calls: int = Field(10, ge=1, le=100_000)
    alerts_open_after: int = Field(3, ge=1, le=60)
    alerts_resolve_after: int = Field(3, ge=1, le=60)
    alerts_settle_seconds: float = Field(120.0, ge=0, le=3600)

    @model_validator(mode="after")
    def _key_ring(self) -> Self:
        try:
            self.key_source()
        except credential_keys.KeySourceError as exc:
            raise ValueError(str(exc)) from None
        return self

    def key_source(self) -> credential_keys.KeySource:
        return credential_keys.load(
            self, keys=self.credential_keys, key_file=self.credential_key_file
        )
