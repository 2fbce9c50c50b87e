"""Builds small canonical event tables (one UTC day, CANONICAL_SCHEMA, canonical order) for the compute tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest

from recsys.events.contract import CANONICAL_SCHEMA, CANONICAL_SORT

DAY = dt.date(2026, 1, 1)

EventsFactory = Callable[..., pa.Table]


def canonical_events(rows: list[dict[str, Any]], day: dt.date = DAY) -> pa.Table:
    """`rows` give item_id and session_id; `ts` is seconds after midnight UTC of `day` (default 0); other
    columns default to tenant "t", surface "s", event_type "exposure" and null."""
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    records = [
        {
            "ts": midnight + dt.timedelta(seconds=row.get("ts", 0)),
            "tenant": row.get("tenant", "t"),
            "surface": row.get("surface", "s"),
            "user_id": row.get("user_id"),
            "session_id": row["session_id"],
            "request_id": row.get("request_id"),
            "item_id": row["item_id"],
            "rank": row.get("rank"),
            "event_type": row.get("event_type", "exposure"),
            "event_id": row.get("event_id"),
        }
        for row in rows
    ]
    return pa.Table.from_pylist(records, schema=CANONICAL_SCHEMA).sort_by(CANONICAL_SORT)


@pytest.fixture
def events() -> EventsFactory:
    return canonical_events
