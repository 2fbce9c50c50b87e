"""UTC days and windows. A window is a closed range of whole UTC days [start, end]."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from pydantic import BaseModel, model_validator

UTC = dt.UTC


def parse_day(text: str) -> dt.date:
    """Parse YYYY-MM-DD strictly (no times, no other formats)."""
    try:
        if len(text) != 10:
            raise ValueError
        return dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"invalid day {text!r}: expected YYYY-MM-DD") from None


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)


def yesterday(now: dt.datetime | None = None) -> dt.date:
    now = now or dt.datetime.now(UTC)
    return now.astimezone(UTC).date() - dt.timedelta(days=1)


class Window(BaseModel):
    """Whole UTC days from `start` to `end`, both inclusive."""

    model_config = {"frozen": True}

    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end < self.start:
            raise ValueError(f"window end {self.end} is before start {self.start}")
        return self

    @property
    def days(self) -> list[dt.date]:
        return list(iter_days(self.start, self.end))

    def __str__(self) -> str:
        return f"{self.start}..{self.end}"


def iter_days(start: dt.date, end: dt.date) -> Iterator[dt.date]:
    day = start
    while day <= end:
        yield day
        day += dt.timedelta(days=1)
