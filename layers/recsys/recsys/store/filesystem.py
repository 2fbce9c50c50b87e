"""The local-filesystem adapter of the object store port, with the same semantics as S3.

Each key is a file under the root. Writes go to a hidden temp file in the target directory, are fsynced and then
renamed into place, so readers see the old or the new bytes, never a mix. Conditional writes are atomic across
threads and processes on one host: create-exclusive hard-links the temp file to the final name (which fails if it
exists), and every other write holds an exclusive `flock` on `<dir>/.<name>.lock` while it checks and renames.
File names starting with "." are reserved for temp and lock files: such keys are rejected and never listed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from recsys.store.base import (
    Blob,
    NotFound,
    ObjectStore,
    PreconditionFailed,
    StoreError,
    check_key,
    check_range,
)

# A key that names a directory, or runs through a file, is simply absent (S3 has no directories).
_ABSENT = (FileNotFoundError, IsADirectoryError, NotADirectoryError)


def _etag(data: bytes) -> str:
    return f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'


def _fsync_dir(directory: Path) -> None:
    # Makes the rename or link itself durable, not only the file contents.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileSystemStore(ObjectStore):
    """Objects as files under `root`; `uri` is `file://<absolute root>`. The root is created on first write."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(os.path.abspath(os.fspath(root)))
        self.uri = f"file://{self.root.as_posix().rstrip('/')}"

    def __repr__(self) -> str:
        return f"FileSystemStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        check_key(key)
        if key.rsplit("/", 1)[-1].startswith("."):
            raise ValueError(f"invalid object key {key!r}: file names starting with '.' are reserved by {self.uri}")
        return self.root.joinpath(*key.split("/"))

    @contextlib.contextmanager
    def _os_errors(self, key: str, action: str) -> Iterator[None]:
        try:
            yield
        except OSError as err:
            raise StoreError(f"{self.uri}/{key}: {action} failed: {err.strerror or err}") from err

    def get(self, key: str) -> Blob:
        path = self._path(key)
        with self._os_errors(key, "get"):
            try:
                data = path.read_bytes()
            except _ABSENT:
                raise NotFound(f"{self.uri}/{key} does not exist") from None
        return Blob(data, etag_of=_etag)  # hashed only if the caller asks for the ETag

    def size(self, key: str) -> int:
        path = self._path(key)
        with self._os_errors(key, "size"):
            try:
                info = path.stat()
            except _ABSENT:
                raise NotFound(f"{self.uri}/{key} does not exist") from None
        if stat.S_ISDIR(info.st_mode):
            raise NotFound(f"{self.uri}/{key} does not exist")
        return info.st_size

    def read_range(self, key: str, start: int, length: int) -> bytes:
        check_range(start, length)
        path = self._path(key)
        with self._os_errors(key, "read_range"):
            try:
                with open(path, "rb") as file:
                    file.seek(start)
                    return file.read(length)
            except _ABSENT:
                raise NotFound(f"{self.uri}/{key} does not exist") from None

    def head(self, key: str) -> str | None:
        # The ETag is derived from the content (as S3's is), so it stays right even if the file is edited by hand.
        try:
            return self.get(key).etag
        except NotFound:
            return None

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> str:
        """Atomic write; `content_type` is not stored (files carry none). Returns the ETag of `data`."""
        if if_none_match and if_match is not None:
            raise ValueError("put: if_none_match and if_match are mutually exclusive")
        path = self._path(key)
        etag = _etag(data)
        with self._os_errors(key, "put"):
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = self._write_temp(path, data)
            try:
                if if_none_match:
                    try:
                        os.link(temp, path)
                    except FileExistsError:
                        if path.is_dir():
                            raise StoreError(f"{self.uri}/{key}: put failed: it is a directory of other keys") from None
                        raise PreconditionFailed(f"{self.uri}/{key} already exists") from None
                else:
                    with self._locked(path):
                        if if_match is not None:
                            current = self.head(key)
                            if current is None:
                                raise NotFound(f"{self.uri}/{key} does not exist")
                            # S3 accepts the ETag with or without its quotes.
                            if current.strip('"') != if_match.strip('"'):
                                raise PreconditionFailed(f"{self.uri}/{key} changed: ETag {current}, not {if_match}")
                        os.replace(temp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)
            _fsync_dir(path.parent)
        return etag

    def _write_temp(self, path: Path, data: bytes) -> Path:
        temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        # O_EXCL with a random name never clobbers another writer's temp file; mode 0o666 lets the umask decide.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        return temp

    @contextlib.contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        # The lock file is never removed: unlinking it while another writer waits on it would break exclusion.
        # flock locks belong to the open file description, so threads of one process exclude each other too.
        fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def ping(self) -> None:
        if not self.root.is_dir():
            raise StoreError(f"{self.root} is not a directory")

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with `prefix`, sorted; temp/lock files and names that are not valid keys are skipped."""
        directory, _, _ = prefix.rpartition("/")
        if directory:
            try:
                check_key(directory)
            except ValueError:
                return iter(())  # no valid key starts with it
        start = self.root.joinpath(*directory.split("/")) if directory else self.root
        keys = []
        for dirpath, _, filenames in os.walk(start):
            relative = Path(dirpath).relative_to(self.root).as_posix()
            base = "" if relative == "." else f"{relative}/"
            for name in filenames:
                key = base + name
                if name.startswith(".") or not key.startswith(prefix):
                    continue
                if not os.path.isfile(os.path.join(dirpath, name)):
                    continue
                try:
                    keys.append(check_key(key))
                except ValueError:
                    continue
        return iter(sorted(keys))

    def delete(self, key: str) -> None:
        path = self._path(key)
        if not path.parent.is_dir():
            return
        with self._os_errors(key, "delete"), self._locked(path), contextlib.suppress(*_ABSENT):
            path.unlink()
