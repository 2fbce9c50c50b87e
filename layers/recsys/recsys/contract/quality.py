"""The quality gate's verdict: a plain model shared by the gate, publish and the manifest (no heavy imports)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

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
    current_manifest_version: str | None = None  # the manifest the candidate was compared with
    # "current": the served manifest ranked the held-out day; "recorded": the served manifest had seen that day, so
    # its own score from when it was published was used; "baseline": the newest stored manifest that had not.
    compared_with: Literal["current", "recorded", "baseline"] | None = None
