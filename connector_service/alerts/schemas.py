from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class StateFilter(StrEnum):
    open = "open"
    resolved = "resolved"
    all = "all"


class AlertOut(BaseModel):
    id: uuid.UUID
    integration_id: uuid.UUID
    connector_name: str | None
    service_name: str | None
    metric: str = Field(description="latency_p95 (ms), error_ratio (0..1) or throughput"
                                    " (calls a minute)")  # fmt: skip
    severity: str = Field(description="warning or critical")
    state: str = Field(description="open or resolved")
    opened_at: datetime
    resolved_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    evidence: dict[str, Any] = Field(
        description="What it opened on: baseline (median of the reference windows) and spread"
        " (scaled MAD), baseline_kind (seasonal: same time on earlier days; trailing: the last"
        " hours), observed (last window) and observed_windows, calls per window, threshold,"
        " critical_threshold, normal_threshold (resolves within it), window_start, window_end"
    )
    resolution: dict[str, Any] | None = Field(
        description="The same, read when it resolved by itself"
    )


class AlertPage(BaseModel):
    items: list[AlertOut]
    next_cursor: str | None = None


class AlertSummary(BaseModel):
    open: int
    critical: int
    warning: int
