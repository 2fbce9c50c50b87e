"""The S3 adapter of the object store port.

Conditional writes are S3's own: PutObject with If-None-Match: * (create-exclusive) or If-Match: <etag>
(compare-and-swap). Errors are mapped onto the port's exceptions so callers never see botocore types.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, IncompleteReadError
from botocore.exceptions import ConnectionError as BotoConnectionError

from recsys.store.base import (
    Blob,
    NotFound,
    ObjectInfo,
    ObjectStore,
    PreconditionFailed,
    StoreError,
    TransientStoreError,
    check_key,
    check_range,
)

ENDPOINT_ENV = "RECSYS_S3_ENDPOINT_URL"

_PRECONDITION_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_TRANSIENT_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError", "ServiceUnavailable"}
)
# Connection refused/reset, timeouts and bodies cut short: the request may be retried as is.
_TRANSIENT_BOTOCORE = (BotoConnectionError, HTTPClientError, IncompleteReadError)


class S3Store(ObjectStore):
    """Objects under `s3://bucket/prefix/`. Keys are relative to the prefix.

    Without `client`, one is created on first use with `endpoint_url`, else $RECSYS_S3_ENDPOINT_URL, else
    boto3's own resolution (which honours $AWS_ENDPOINT_URL_S3).
    """

    def __init__(self, bucket: str, prefix: str = "", *, client: Any = None, endpoint_url: str | None = None) -> None:
        if not bucket or "/" in bucket:
            raise ValueError(f"invalid S3 bucket name {bucket!r}")
        prefix = prefix.strip("/")
        if prefix:
            check_key(prefix)
        self.bucket = bucket
        self.prefix = prefix
        self.uri = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self._client = client
        self._endpoint_url = endpoint_url
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Store({self.uri!r})"

    @property
    def client(self) -> Any:
        """The boto3 S3 client (thread-safe once created)."""
        if self._client is None:
            # boto3's default session is not thread-safe while creating clients; build one session, once.
            with self._client_lock:
                if self._client is None:
                    endpoint = self._endpoint_url or os.environ.get(ENDPOINT_ENV) or None
                    self._client = boto3.session.Session().client("s3", endpoint_url=endpoint)
        return self._client

    def _full_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, err: Exception, action: str, key: str | None) -> StoreError:
        """The port exception for a botocore failure of `action` on `key` (None: the whole store)."""
        where = f"{self.uri}/{key}" if key is not None else self.uri
        if isinstance(err, ClientError):
            code = str(err.response.get("Error", {}).get("Code", ""))
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            message = " ".join(str(err.response.get("Error", {}).get("Message", "")).split())
            detail = f"{code or 'error'} (HTTP {status}){': ' + message if message else ''}"
            if code == "NoSuchBucket":
                return StoreError(f"{where}: {action} failed: bucket {self.bucket!r} does not exist (NoSuchBucket)")
            if code in _PRECONDITION_CODES or status in (409, 412):
                return PreconditionFailed(f"{where}: {action} lost a conditional write: {detail}")
            if code in _NOT_FOUND_CODES:
                return NotFound(f"{where} does not exist")
            if code in _TRANSIENT_CODES or (isinstance(status, int) and status >= 500):
                return TransientStoreError(f"{where}: {action} failed, retryable: {detail}")
            return StoreError(f"{where}: {action} failed: {detail}")
        summary = " ".join(str(err).split())
        if isinstance(err, _TRANSIENT_BOTOCORE):
            return TransientStoreError(f"{where}: {action} failed, retryable: {type(err).__name__}: {summary}")
        return StoreError(f"{where}: {action} failed: {type(err).__name__}: {summary}")

    def get(self, key: str) -> Blob:
        full = self._full_key(key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=full)
            data = response["Body"].read()
        except (ClientError, BotoCoreError) as err:
            raise self._error(err, "get", key) from err
        return Blob(data=data, etag=response["ETag"])

    def size(self, key: str) -> int:
        full = self._full_key(key)
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=full)["ContentLength"])
        except (ClientError, BotoCoreError) as err:
            raise self._error(err, "size", key) from err

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """One GetObject with `Range: bytes=start-(start+length-1)`; a range past the end (416) is b""."""
        check_range(start, length)
        if length == 0:
            self.size(key)  # an empty range cannot be requested; still report a missing key
            return b""
        full = self._full_key(key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=full, Range=f"bytes={start}-{start + length - 1}")
            data = response["Body"].read()
        except ClientError as err:
            error = err.response.get("Error", {})
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if error.get("Code") == "InvalidRange" or status == 416:
                return b""  # the object exists (else NoSuchKey) and `start` is at or past its end
            raise self._error(err, "read_range", key) from err
        except BotoCoreError as err:
            raise self._error(err, "read_range", key) from err
        # A server that ignores Range answers 200 with the whole object.
        if response.get("ContentRange") is None and len(data) > length:
            data = data[start : start + length]
        return data

    def head(self, key: str) -> str | None:
        full = self._full_key(key)
        try:
            return self.client.head_object(Bucket=self.bucket, Key=full)["ETag"]
        except (ClientError, BotoCoreError) as err:
            error = self._error(err, "head", key)
            if isinstance(error, NotFound):
                return None
            raise error from err

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> str:
        if if_none_match and if_match is not None:
            raise ValueError("put: if_none_match and if_match are mutually exclusive")
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self._full_key(key),
            "Body": data,
            "ContentType": content_type,
        }
        if if_none_match:
            params["IfNoneMatch"] = "*"
        if if_match is not None:
            params["IfMatch"] = if_match
        try:
            return self.client.put_object(**params)["ETag"]
        except (ClientError, BotoCoreError) as err:
            raise self._error(err, "put", key) from err

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with `prefix`, sorted; objects whose names are not valid keys (e.g. "dir/" markers)
        are skipped. The listing is complete before this returns, so errors surface here."""
        return iter([info.key for info in self._listing(prefix)])

    def list_info(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """As `list`, with each object's Size and LastModified from the same ListObjectsV2 pages."""
        return iter(self._listing(prefix))

    def _listing(self, prefix: str) -> list[ObjectInfo]:
        root = f"{self.prefix}/" if self.prefix else ""
        infos = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=root + prefix):
                for item in page.get("Contents", ()):
                    key = item["Key"][len(root) :]
                    try:
                        check_key(key)
                    except ValueError:
                        continue
                    infos.append(ObjectInfo(key=key, size=item["Size"], last_modified=item["LastModified"]))
        except (ClientError, BotoCoreError) as err:
            raise self._error(err, "list", prefix or None) from err
        return sorted(infos, key=lambda info: info.key)

    def delete(self, key: str) -> None:
        full = self._full_key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=full)
        except (ClientError, BotoCoreError) as err:
            error = self._error(err, "delete", key)
            if not isinstance(error, NotFound):
                raise error from err
