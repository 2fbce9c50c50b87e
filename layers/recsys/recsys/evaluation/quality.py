"""The quality gate's verdict: a plain model shared by the gate, publish and the manifest (no heavy imports)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel


class QualityResult(BaseModel):
    """What the gate decided, recorded in the run output and in the manifest version."""

    enabled: bool
    passed: bool
    reason: str
    metric: str | None = None
    day: dt.date | None = None
    users: int = 0
    candidate: float | None = None
    current: float | None = None
    max_drop: float | None = None
    current_manifest_version: str | None = None
