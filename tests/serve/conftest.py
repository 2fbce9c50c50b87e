"""Fixtures of the API tests: a store with published manifest versions (the console's tests)."""

from __future__ import annotations

import datetime as dt

import pytest

from recsys.days import Window
from recsys.publish.service import publish
from recsys.store import FileSystemStore
from tests.conftest import run_steps

CONSOLE_KINDS = ["popularity", "cooc", "implicit"]


@pytest.fixture
def published(store: FileSystemStore, sample_settings) -> list[str]:
    """Two manifest versions of demo/home from the sample, an hour apart, the newer current: [older, newer]."""
    versions = []
    for hours, (start, end) in enumerate((("2026-01-01", "2026-01-03"), ("2026-01-02", "2026-01-04"))):
        window = Window(start=dt.date.fromisoformat(start), end=dt.date.fromisoformat(end))
        refs = run_steps(sample_settings, start, end, CONSOLE_KINDS)
        now = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2 - hours)  # history orders versions by time
        versions.append(publish(store, "demo", "home", window, refs, run_id=end, now=now).manifest_version)
    return versions
