"""Finding the raw files of a day under a local directory, an s3:// prefix, or a single file."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass

from recsys.store import ObjectStore, open_store, split_uri
from recsys.store.base import StoreFile

RAW_SUFFIXES = (".jsonl", ".jsonl.gz")
RAW_PIECE_BYTES = 32 << 20  # one ranged read; bounds what a file holds in memory at a time
_DATED = (
    re.compile(r"(?:^|/)dt=(\d{4})-(\d{2})-(\d{2})(?:/|$)"),
    re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})(?:/|$)"),
)


@dataclass(frozen=True)
class RawFile:
    store: ObjectStore
    key: str
    dated: bool  # the path names the day, so every line in it should belong to that day

    @property
    def source(self) -> str:
        return self.store.url(self.key)

    def pieces(self, size: int | None = None) -> Iterator[bytes]:
        """The file's bytes (gunzipped for .gz) in order, in pieces of at most `size` (default RAW_PIECE_BYTES)
        bytes that may cut lines. Streams by ranged reads, so a file is never held whole; NotFound if it is missing.
        """
        size = size or RAW_PIECE_BYTES
        file = StoreFile(self.store, self.key)
        if self.key.endswith(".gz"):
            with gzip.GzipFile(fileobj=io.BufferedReader(file, buffer_size=size)) as unzipped:
                while piece := unzipped.read(size):
                    yield piece
            return
        for offset in range(0, file.size, size):
            yield self.store.read_range(self.key, offset, size)


def day_in_path(key: str) -> dt.date | None:
    """The day a dt=YYYY-MM-DD/ or YYYY/MM/DD/ folder names, if any."""
    for pattern in _DATED:
        match = pattern.search(key)
        if match:
            try:
                return dt.date(*(int(part) for part in match.groups()))
            except ValueError:
                return None
    return None


def raw_files(raw_uri: str, day: dt.date) -> list[RawFile]:
    """The raw files that may hold events of `day`, in key order (which fixes dedup's "first seen")."""
    if raw_uri.endswith(RAW_SUFFIXES):
        store, key = split_uri(raw_uri)
        named = day_in_path(raw_uri)
        return [] if named not in (None, day) else [RawFile(store, key, dated=named is not None)]
    store = open_store(raw_uri)
    files = []
    for key in store.list(""):
        if not key.endswith(RAW_SUFFIXES):
            continue
        named = day_in_path(key)
        if named is None or named == day:  # pruning: a dated folder of another day cannot hold this day
            files.append(RawFile(store, key, dated=named is not None))
    return files
