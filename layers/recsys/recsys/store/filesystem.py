"""The local-filesystem adapter of the object store port, with the same semantics as S3.

Each key is a file under the root. Writes go to a temp file in the store's `<root>/.tmp/` directory, are fsynced
and then renamed into place, so readers see the old or the new bytes, never a mix. Conditional writes are atomic
across threads and processes on one host: create-exclusive hard-links the temp file to the final name (which fails
if it exists), and every other write holds an exclusive `flock` on `<dir>/.<name>.lock` while it checks and renames.
A writer killed mid-write leaves its temp file in `.tmp/`, where no key can be, and every write first removes the
temp files there older than `stale_temp_seconds` (older than any write in flight can be).
Path segments starting with "." are reserved for the temp directory and lock files: such keys are rejected and
never listed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import os
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from recsys.store.base import (
    Blob,
    NotFound,
    ObjectInfo,
    ObjectStore,
    PreconditionFailed,
    StoreError,
    check_key,
    check_range,
)

# A key that names a directory, or runs through a file, is simply absent (S3 has no directories).
_ABSENT = (FileNotFoundError, IsADirectoryError, NotADirectoryError)
TEMP_DIRECTORY = ".tmp"
# A temp file is written, fsynced and renamed within seconds; one untouched for an hour belongs to a dead writer.
STALE_TEMP_SECONDS = 3600.0


def _etag(data: bytes) -> str:
    return f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'


def _unreadable(error: OSError) -> None:
    """os.walk's error handler: a folder that is missing lists nothing (as an S3 prefix without objects); one that
    exists but cannot be read is an error, or a run would take an unreadable day folder for an empty day."""
    if not isinstance(error, _ABSENT):
        raise StoreError(f"cannot list {error.filename}: {error.strerror or error}") from error


def _fsync_dir(directory: Path) -> None:
    # Makes the rename or link itself durable, not only the file contents.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileSystemStore(ObjectStore):
    """Objects as files under `root`; `uri` is `file://<absolute root>`. The root is created on first write.

    `stale_temp_seconds`: how old (since last modified) a temp file must be for a write to remove it as a dead
    writer's. It must exceed the longest write in flight, or a write could lose its temp file before the rename.
    """

    def __init__(self, root: str | Path, *, stale_temp_seconds: float = STALE_TEMP_SECONDS) -> None:
        self.root = Path(os.path.abspath(os.fspath(root)))
        self.uri = f"file://{self.root.as_posix().rstrip('/')}"
        self.stale_temp_seconds = stale_temp_seconds
        self._temp_directory = self.root / TEMP_DIRECTORY

    def __repr__(self) -> str:
        return f"FileSystemStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        check_key(key)
        parts = key.split("/")
        if any(part.startswith(".") for part in parts):
            raise ValueError(f"invalid object key {key!r}: names starting with '.' are reserved by {self.uri}")
        return self.root.joinpath(*parts)

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
            self._temp_directory.mkdir(exist_ok=True)
            self._sweep_stale_temps()
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

    def _sweep_stale_temps(self) -> None:
        cutoff = time.time() - self.stale_temp_seconds
        with os.scandir(self._temp_directory) as entries:
            for entry in entries:
                # Best effort: it may be gone already (another writer swept it) or not ours to remove, and a write
                # must not fail over someone else's leftovers.
                with contextlib.suppress(OSError):
                    if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime <= cutoff:
                        os.unlink(entry.path)

    def _write_temp(self, path: Path, data: bytes) -> Path:
        # Named after the target for whoever finds one; the same filesystem as the target, so link/rename work.
        temp = self._temp_directory / f".{path.name}.{secrets.token_hex(8)}.tmp"
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
        for dirpath, dirnames, filenames in os.walk(start, onerror=_unreadable):
            dirnames[:] = [name for name in dirnames if not name.startswith(".")]  # the temp directory
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

    def list_info(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """As `list`, with each file's size and mtime; a file removed meanwhile is left out."""
        infos = []
        for key in self.list(prefix):
            try:
                info = self._path(key).stat()
            except _ABSENT:
                continue
            modified = dt.datetime.fromtimestamp(info.st_mtime, dt.UTC)
            infos.append(ObjectInfo(key=key, size=info.st_size, last_modified=modified))
        return iter(infos)

    def delete(self, key: str) -> None:
        path = self._path(key)
        if not path.parent.is_dir():
            return
        with self._os_errors(key, "delete"), self._locked(path), contextlib.suppress(*_ABSENT):
            path.unlink()
