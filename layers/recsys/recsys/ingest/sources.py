"""Finding the raw files of a day under a local directory, an s3:// prefix, or a single file, and reading them; a
postgresql:// raw URI is a table instead (recsys.ingest.postgres).

A raw location that does not exist is an error (`NotFound`), so that a typo in it cannot pass for a quiet day; one
that exists but holds no file of a day gives that day no files.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from recsys.database.settings import DatabaseSettings, is_database_uri
from recsys.errors import ConfigError
from recsys.events.parse import DayScope, ParsedEvents, parse_stream
from recsys.store import FileSystemStore, NotFound, ObjectStore, open_store, split_uri
from recsys.store.base import StoreFile

RAW_SUFFIXES = (".jsonl", ".jsonl.gz")
# Kinesis Data Firehose's default object name, `{stream}-{stream version}-{YYYY-MM-DD-HH-MM-SS}-{random}`, with
# `.gz` under GZIP compression; the time is when Firehose delivered the buffer (UTC), not when its events happened.
_FIREHOSE_NAME = re.compile(
    r"^[A-Za-z0-9_.-]{1,64}-\d{1,5}-(\d{4})-(\d{2})-(\d{2})-\d{2}-\d{2}-\d{2}-"
    r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(?:\.gz)?$"
)
# A Firehose object holds the events delivered in its buffer interval (at most 15 minutes), so those of a day are
# in the objects delivered that day or the next one; later arrivals are not looked for.
FIREHOSE_LATE_DAYS = 1
RAW_PIECE_BYTES = 32 << 20  # one ranged read; bounds what a file holds in memory at a time
_DATED = (
    re.compile(r"(?:^|/)dt=(\d{4})-(\d{2})-(\d{2})(?:/|$)"),
    re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})(?:/|$)"),
)


class RawFileDamaged(Exception):
    """A compressed raw file that cannot be read to its end: truncated, corrupt, or failing its CRC check."""

    def __init__(self, source: str, error: str) -> None:
        super().__init__(f"{source}: {error}")
        self.source = source
        self.error = error


@dataclass(frozen=True)
class RawFile:
    store: ObjectStore
    key: str
    dated: bool  # the path names the day, so every line in it should belong to that day

    @property
    def source(self) -> str:
        return self.store.url(self.key)

    def parse(self, scope: DayScope) -> ParsedEvents:
        """The file's events of `scope` and its rejected lines (RawFileDamaged for a damaged .gz file)."""
        return parse_stream(self.pieces(), source=self.source, scope=scope, dated=self.dated)

    def pieces(self, size: int | None = None) -> Iterator[bytes]:
        """The file's bytes (gunzipped for .gz) in order, in pieces of at most `size` (default RAW_PIECE_BYTES)
        bytes that may cut lines. Streams by ranged reads, so a file is never held whole; NotFound if it is missing.
        RawFileDamaged, once the pieces before the damage are given, if a .gz file is not a whole gzip stream.
        """
        size = size or RAW_PIECE_BYTES
        file = StoreFile(self.store, self.key)
        if self.key.endswith(".gz"):
            try:
                with gzip.GzipFile(fileobj=io.BufferedReader(file, buffer_size=size)) as unzipped:
                    while piece := unzipped.read(size):
                        yield piece
            except (gzip.BadGzipFile, EOFError, zlib.error) as exc:  # not gzip, cut short, corrupt, CRC mismatch
                raise RawFileDamaged(self.source, str(exc)) from exc
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


def firehose_day(key: str) -> dt.date | None:
    """The delivery day in a Kinesis Data Firehose default object name (the key's last segment), or None if the
    name is not one."""
    match = _FIREHOSE_NAME.match(key.rpartition("/")[2])
    if not match:
        return None
    try:
        return dt.date(*(int(part) for part in match.groups()))
    except ValueError:
        return None


def _raw_file(store: ObjectStore, key: str, day: dt.date) -> RawFile | None:
    """`key` as a raw file that may hold events of `day`, or None (not a raw file, or pruned by its day)."""
    delivered = firehose_day(key)
    if delivered is not None:
        # Undated: a buffer delivered just after midnight holds the day before's last events.
        if day <= delivered <= day + dt.timedelta(days=FIREHOSE_LATE_DAYS):
            return RawFile(store, key, dated=False)
        return None
    if not key.endswith(RAW_SUFFIXES):
        return None
    named = day_in_path(key)
    if named is None or named == day:  # pruning: a dated folder of another day cannot hold this day
        return RawFile(store, key, dated=named is not None)
    return None


class RawSource(Protocol):
    """What ingest reads a day from: a raw file, or a day of a Postgres table."""

    @property
    def source(self) -> str: ...

    def parse(self, scope: DayScope) -> ParsedEvents: ...


def raw_sources(raw_uri: str, scope: DayScope, database: DatabaseSettings) -> list[RawSource]:
    """What may hold the events of `scope`'s day: raw files, or the day of a postgresql:// table when it has rows."""
    if is_database_uri(raw_uri):
        from recsys.ingest.postgres import PostgresDay  # the driver is imported only where a database is used

        day = PostgresDay(raw_uri, scope.tenant, scope.surface, scope.day, database)
        return [day] if day.has_events() else []
    return list(raw_files(raw_uri, scope.day))


def raw_files(raw_uri: str, day: dt.date) -> list[RawFile]:
    """The raw files that may hold events of `day`, in key order (which fixes dedup's "first seen").

    NotFound if `raw_uri` does not exist: a file that is not there, a directory that is not there, or an s3://
    prefix with no object under it (S3 has no folders; a bucket that does not exist fails the listing itself).
    """
    if raw_uri.endswith(RAW_SUFFIXES) or firehose_day(raw_uri) is not None:
        store, key = split_uri(raw_uri)
        try:
            store.size(key)  # checked on every day, also those a dated file is skipped on
        except NotFound:
            raise NotFound(f"raw file {raw_uri} does not exist") from None
        # The day a dated folder names applies to the whole path, so judge the URI, not only the file name.
        if firehose_day(raw_uri) is None:
            named = day_in_path(raw_uri)
            return [] if named not in (None, day) else [RawFile(store, key, dated=named is not None)]
        return [raw] if (raw := _raw_file(store, key, day)) else []
    store = open_store(raw_uri)
    keys = list(store.list(""))
    if not keys:
        _check_location(store, raw_uri)
    return [raw for key in keys if (raw := _raw_file(store, key, day))]


def _check_location(store: ObjectStore, raw_uri: str) -> None:
    """For a location that lists nothing: NotFound unless it exists (an empty directory does)."""
    if isinstance(store, FileSystemStore):
        if store.root.is_dir():
            return
        if store.root.exists():
            raise ConfigError(f"raw location {raw_uri} is a file, but only .jsonl and .jsonl.gz files are read")
        raise NotFound(f"raw location {raw_uri} does not exist")
    raise NotFound(f"raw location {raw_uri} does not exist: no object under it")
