"""The object store port: the one interface every stage reads and writes through.

Two adapters implement it with the same semantics (S3 and the local filesystem). Conditional writes are the
only concurrency control the product relies on:
  put(..., if_none_match=True)   create-exclusive: fails with PreconditionFailed if the key exists
  put(..., if_match=etag)        compare-and-swap: fails with PreconditionFailed if the key's ETag differs,
                                 NotFound if the key does not exist

Partial reads (`size`, `read_range`, and `StoreFile` over them) let the serving side read a Parquet footer and
single row groups without downloading whole objects.
"""

from __future__ import annotations

import abc
import datetime as dt
import hashlib
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass


class StoreError(Exception):
    """Base class of store failures."""


class NotFound(StoreError):
    """The key does not exist."""


class PreconditionFailed(StoreError):
    """A conditional write lost: the key exists (create-exclusive) or changed (compare-and-swap).

    S3's 409 ConditionalRequestConflict is reported as this too: the caller re-reads and decides.
    """


class TransientStoreError(StoreError):
    """A retryable failure (throttling, 5xx, connection reset). The state machine retries on it."""


class Blob:
    """An object's bytes and its ETag. A store that derives the ETag from the bytes (the filesystem's md5) passes
    `etag_of` instead, so it is computed only when asked for: most reads (artifacts, partials) never need it."""

    __slots__ = ("data", "_etag", "_etag_of")

    def __init__(self, data: bytes, etag: str | None = None, *, etag_of: Callable[[bytes], str] | None = None):
        if (etag is None) == (etag_of is None):
            raise ValueError("a Blob needs exactly one of etag and etag_of")
        self.data = data
        self._etag = etag
        self._etag_of = etag_of

    @property
    def etag(self) -> str:
        if self._etag is None:
            self._etag = self._etag_of(self.data)
        return self._etag

    def __repr__(self) -> str:
        return f"Blob({len(self.data)} bytes)"


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object: its key, size and when it was last written (UTC). Retention judges ages by it."""

    key: str
    size: int
    last_modified: dt.datetime


def check_key(key: str) -> str:
    """Reject keys that could escape the store root or are not portable between S3 and a filesystem."""
    if (
        not key
        or key.startswith("/")
        or key.endswith("/")
        or "\\" in key
        or "\x00" in key
        or any(part in ("", ".", "..") for part in key.split("/"))
    ):
        raise ValueError(f"invalid object key {key!r}")
    return key


class ObjectStore(abc.ABC):
    """Keys are '/'-separated paths relative to the store root (`uri`)."""

    uri: str

    @abc.abstractmethod
    def get(self, key: str) -> Blob:
        """The object's bytes and ETag; NotFound if missing."""

    @abc.abstractmethod
    def head(self, key: str) -> str | None:
        """The object's ETag, or None if it does not exist."""

    @abc.abstractmethod
    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> str:
        """Write the object atomically and return its new ETag (see the module docstring for conditions)."""

    @abc.abstractmethod
    def size(self, key: str) -> int:
        """The object's length in bytes; NotFound if missing."""

    @abc.abstractmethod
    def read_range(self, key: str, start: int, length: int) -> bytes:
        """Up to `length` bytes of the object from offset `start`: fewer at its end, b"" from or past its end.

        NotFound if missing; ValueError if `start` or `length` is negative (see `check_range`).
        """

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under `prefix` (a plain string prefix, as S3 ListObjectsV2), in lexicographic order."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error."""

    @abc.abstractmethod
    def list_info(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """As `list`, with each object's size and last-modified time (S3's LastModified, a file's mtime)."""

    def url(self, key: str) -> str:
        """The absolute URI of `key` (what manifests record)."""
        return f"{self.uri.rstrip('/')}/{check_key(key)}"

    def key_of(self, url: str) -> str:
        """Inverse of `url`: the key of an absolute URI inside this store; ValueError if it is elsewhere."""
        root = self.uri.rstrip("/") + "/"
        if not url.startswith(root):
            raise ValueError(f"{url} is not inside store {self.uri}")
        return check_key(url[len(root) :])

    def ping(self) -> None:
        """Raise StoreError unless the store can be read (readiness checks)."""
        next(iter(self.list("registry/current/")), None)

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def create(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> bool:
        """Create-exclusive write of immutable content: True if written, False if the key already existed."""
        try:
            self.put(key, data, content_type=content_type, if_none_match=True)
        except PreconditionFailed:
            return False
        return True

    def put_if_changed(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> str:
        """Write unless the same bytes are already stored (reruns rewrite nothing). The stored object's ETag."""
        stored = self.head(key)
        if stored == content_etag(data):
            return stored
        return self.put(key, data, content_type=content_type)


def check_range(start: int, length: int) -> None:
    """Reject byte ranges a `read_range` cannot mean."""
    if not isinstance(start, int) or not isinstance(length, int) or start < 0 or length < 0:
        raise ValueError(f"invalid byte range: start={start!r} length={length!r} (both must be integers >= 0)")


class StoreFile(io.RawIOBase):
    """A read-only, seekable binary file over one object, reading through `read_range` only.

    The size is fetched once (NotFound here if the object is missing), or taken from `size`. Every `read` is one
    ranged request and nothing is read ahead, so `pyarrow.parquet.ParquetFile(StoreFile(store, key))` fetches the
    footer and then only the column chunks of the row groups it is asked for. Not thread-safe (one position): open
    one per reader. The object is assumed immutable while it is open.
    """

    def __init__(self, store: ObjectStore, key: str, *, size: int | None = None) -> None:
        super().__init__()
        self.store = store
        self.key = key
        self._size = store.size(key) if size is None else size
        self._position = 0

    def __repr__(self) -> str:
        return f"StoreFile({self.store!r}, {self.key!r})"

    @property
    def name(self) -> str:
        return self.store.url(self.key)

    @property
    def size(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._checkClosed()
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._checkClosed()
        if whence == os.SEEK_SET:
            position = offset
        elif whence == os.SEEK_CUR:
            position = self._position + offset
        elif whence == os.SEEK_END:
            position = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence!r}")
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._position = position
        return position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        self._checkClosed()
        view = memoryview(buffer).cast("B")
        wanted = min(len(view), self._size - self._position)
        if wanted <= 0:
            return 0
        data = self.store.read_range(self.key, self._position, wanted)
        view[: len(data)] = data
        self._position += len(data)
        return len(data)

    def readall(self) -> bytes:
        """The rest of the object in one request."""
        self._checkClosed()
        wanted = self._size - self._position
        if wanted <= 0:
            return b""
        data = self.store.read_range(self.key, self._position, wanted)
        self._position += len(data)
        return data


def content_etag(data: bytes) -> str:
    """The ETag both adapters give `data` (S3's single-part form: the quoted MD5)."""
    return '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'
