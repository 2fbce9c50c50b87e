"""Object storage: the `ObjectStore` port, its S3 and filesystem adapters, and URI parsing.

Store URIs: `s3://bucket[/prefix]`, `file:///absolute/path`, `file://relative/path` (relative to the current
directory, e.g. `file://.out`) or a plain local path. URIs are taken literally (no percent-decoding).
"""

from __future__ import annotations

from recsys.store.base import (
    Blob,
    NotFound,
    ObjectInfo,
    ObjectStore,
    PreconditionFailed,
    StoreError,
    TransientStoreError,
    check_key,
)
from recsys.store.filesystem import FileSystemStore
from recsys.store.s3 import S3Store

__all__ = [
    "Blob",
    "FileSystemStore",
    "NotFound",
    "ObjectInfo",
    "ObjectStore",
    "PreconditionFailed",
    "S3Store",
    "StoreError",
    "TransientStoreError",
    "check_key",
    "open_store",
    "split_uri",
]


def _local_path(uri: str) -> str | None:
    """The local path a `file://` URI or plain path names; None if `uri` has another scheme."""
    if uri.startswith("file://"):
        return uri[len("file://") :]
    if "://" in uri:
        return None
    return uri


def open_store(uri: str) -> ObjectStore:
    """The store rooted at `uri`; ValueError if the URI is empty or of an unsupported scheme."""
    if uri.startswith("s3://"):
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"unsupported store URI {uri!r}: no bucket")
        return S3Store(bucket, prefix)
    path = _local_path(uri)
    if not path:
        raise ValueError(f"unsupported store URI {uri!r}: use s3://bucket[/prefix], file://path or a local path")
    return FileSystemStore(path)


def split_uri(uri: str) -> tuple[ObjectStore, str]:
    """For a URI naming one object, a store rooted at its parent and the object's key (its file name)."""
    if uri.startswith("s3://"):
        bucket, _, path = uri[len("s3://") :].partition("/")
        parent, _, name = path.rpartition("/")
        if not bucket or not name:
            raise ValueError(f"unsupported object URI {uri!r}: expected s3://bucket/[prefix/]name")
        return S3Store(bucket, parent), check_key(name)
    path = _local_path(uri)
    if not path:
        raise ValueError(f"unsupported object URI {uri!r}: use s3://bucket/key, file://path or a local path")
    parent, _, name = path.rpartition("/")
    if not name:
        raise ValueError(f"unsupported object URI {uri!r}: it names a directory, not a file")
    if not parent and path.startswith("/"):
        parent = "/"
    return FileSystemStore(parent or "."), check_key(name)
