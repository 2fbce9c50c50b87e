"""The object store port: the one interface every stage reads and writes through.

Two adapters implement it with the same semantics (S3 and the local filesystem). Conditional writes are the
only concurrency control the product relies on:
  put(..., if_none_match=True)   create-exclusive: fails with PreconditionFailed if the key exists
  put(..., if_match=etag)        compare-and-swap: fails with PreconditionFailed if the key's ETag differs,
                                 NotFound if the key does not exist
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Iterator
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


@dataclass(frozen=True)
class Blob:
    data: bytes
    etag: str


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
    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under `prefix` (a plain string prefix, as S3 ListObjectsV2), in lexicographic order."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error."""

    def url(self, key: str) -> str:
        """The absolute URI of `key` (what manifests record)."""
        return f"{self.uri.rstrip('/')}/{check_key(key)}"

    def key_of(self, url: str) -> str:
        """Inverse of `url`: the key of an absolute URI inside this store; ValueError if it is elsewhere."""
        root = self.uri.rstrip("/") + "/"
        if not url.startswith(root):
            raise ValueError(f"{url} is not inside store {self.uri}")
        return check_key(url[len(root) :])

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def create(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> bool:
        """Create-exclusive write of immutable content: True if written, False if the key already existed."""
        try:
            self.put(key, data, content_type=content_type, if_none_match=True)
        except PreconditionFailed:
            return False
        return True

    def put_if_changed(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> bool:
        """Write unless the same bytes are already stored (reruns rewrite nothing). True if written."""
        if self.head(key) == content_etag(data):
            return False
        self.put(key, data, content_type=content_type)
        return True


def content_etag(data: bytes) -> str:
    """The ETag both adapters give `data` (S3's single-part form: the quoted MD5)."""
    return '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'
