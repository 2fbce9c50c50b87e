"""Shared by the retention tests: manifests over one-row popularity artifacts, and ageing files of a file store."""

from __future__ import annotations

import datetime as dt
import os

from recsys import paths
from recsys.contract.manifest import ArtifactRef
from recsys.days import Window
from recsys.publish.service import publish
from recsys.store import FileSystemStore, ObjectStore
from tests.publish.test_publish_race import popularity_artifact

TENANT, SURFACE = "demo", "home"
WINDOW = Window(start=dt.date(2026, 1, 1), end=dt.date(2026, 1, 7))


def artifact(store: ObjectStore, item: str) -> ArtifactRef:
    return popularity_artifact(store, item)  # type: ignore[arg-type]


def key_of(ref: ArtifactRef) -> str:
    return paths.artifact(TENANT, SURFACE, ref.kind, ref.version)


def published(store: ObjectStore, items: list[str], start: dt.datetime) -> list[ArtifactRef]:
    """One publish per item, an hour apart from `start` (so `manifest history` orders them), each moving the pointer."""
    refs = []
    for n, item in enumerate(items):
        ref = artifact(store, item)
        publish(store, TENANT, SURFACE, WINDOW, [ref], now=start + dt.timedelta(hours=n))
        refs.append(ref)
    return refs


def age(store: FileSystemStore, key: str, when: dt.datetime) -> None:
    """Make `key` look last written at `when` (its mtime)."""
    stamp = when.timestamp()
    os.utime(store.root / key, (stamp, stamp))
