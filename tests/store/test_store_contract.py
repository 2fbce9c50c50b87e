"""One contract for every ObjectStore adapter, plus the few adapter-specific promises."""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from botocore.response import StreamingBody
from botocore.stub import Stubber
from moto import mock_aws

from recsys.store import (
    FileSystemStore,
    NotFound,
    ObjectStore,
    PreconditionFailed,
    S3Store,
    StoreError,
    TransientStoreError,
    open_store,
    split_uri,
)
from recsys.store.base import Blob, StoreFile

BUCKET = "recsys-contract"
S3_PREFIX = "root/prefix"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "RECSYS_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def s3_client(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture(params=["filesystem", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "filesystem":
        return FileSystemStore(tmp_path / "store")
    client = request.getfixturevalue("s3_client")
    return S3Store(BUCKET, S3_PREFIX, client=client)


def quoted_md5(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


# --- the contract ---------------------------------------------------------------------------------------------


def test_round_trip_and_etag_is_quoted_md5(store: ObjectStore) -> None:
    etag = store.put("a/b/c.json", b'{"x": 1}', content_type="application/json")
    assert etag == quoted_md5(b'{"x": 1}')
    blob = store.get("a/b/c.json")
    assert blob.data == b'{"x": 1}'
    assert blob.etag == etag
    assert store.head("a/b/c.json") == etag
    assert store.exists("a/b/c.json")


def test_overwrite_replaces_content(store: ObjectStore) -> None:
    store.put("k", b"one")
    etag = store.put("k", b"two")
    assert store.get("k").data == b"two"
    assert store.head("k") == etag == quoted_md5(b"two")


def test_empty_object(store: ObjectStore) -> None:
    assert store.put("empty", b"") == quoted_md5(b"")
    assert store.get("empty").data == b""


def test_missing_key(store: ObjectStore) -> None:
    with pytest.raises(NotFound):
        store.get("nope/missing.txt")
    assert store.head("nope/missing.txt") is None
    assert not store.exists("nope/missing.txt")


def test_create_exclusive(store: ObjectStore) -> None:
    assert store.put("once", b"first", if_none_match=True) == quoted_md5(b"first")
    with pytest.raises(PreconditionFailed):
        store.put("once", b"second", if_none_match=True)
    assert store.get("once").data == b"first"


def test_create_helper(store: ObjectStore) -> None:
    assert store.create("immutable/v1", b"v1") is True
    assert store.create("immutable/v1", b"other") is False
    assert store.get("immutable/v1").data == b"v1"


def test_compare_and_swap_with_current_etag(store: ObjectStore) -> None:
    old = store.put("pointer", b"v1")
    new = store.put("pointer", b"v2", if_match=old)
    assert new != old
    assert new == quoted_md5(b"v2")
    assert store.get("pointer").data == b"v2"


def test_compare_and_swap_accepts_an_unquoted_etag(store: ObjectStore) -> None:
    old = store.put("pointer", b"v1")
    store.put("pointer", b"v2", if_match=old.strip('"'))
    assert store.get("pointer").data == b"v2"


def test_compare_and_swap_with_stale_etag(store: ObjectStore) -> None:
    stale = store.put("pointer", b"v1")
    store.put("pointer", b"v2")
    with pytest.raises(PreconditionFailed):
        store.put("pointer", b"v3", if_match=stale)
    assert store.get("pointer").data == b"v2"


def test_compare_and_swap_on_missing_key(store: ObjectStore) -> None:
    with pytest.raises(NotFound):
        store.put("pointer", b"v1", if_match=quoted_md5(b"v0"))
    assert store.head("pointer") is None


def test_two_writers_with_the_same_etag_exactly_one_wins(store: ObjectStore) -> None:
    store.put("pointer", b"base")
    seen_by_a = store.get("pointer").etag
    seen_by_b = store.get("pointer").etag
    store.put("pointer", b"from a", if_match=seen_by_a)
    with pytest.raises(PreconditionFailed):
        store.put("pointer", b"from b", if_match=seen_by_b)
    assert store.get("pointer").data == b"from a"


def test_conditions_are_mutually_exclusive(store: ObjectStore) -> None:
    with pytest.raises(ValueError):
        store.put("k", b"x", if_none_match=True, if_match=quoted_md5(b"x"))


def test_list_is_a_sorted_string_prefix(store: ObjectStore) -> None:
    keys = ["q.txt", "pa/e.txt", "p/b/c.txt", "p-x/d.txt", "p/a.txt"]
    for key in keys:
        store.put(key, key.encode())
    assert list(store.list()) == sorted(keys)
    assert list(store.list("p")) == ["p-x/d.txt", "p/a.txt", "p/b/c.txt", "pa/e.txt"]
    assert list(store.list("p/")) == ["p/a.txt", "p/b/c.txt"]
    assert list(store.list("p/a")) == ["p/a.txt"]
    assert list(store.list("p/b")) == ["p/b/c.txt"]
    assert list(store.list("p/b/c.txt")) == ["p/b/c.txt"]
    assert list(store.list("zzz")) == []
    assert list(store.list("nothing/here/")) == []


def test_list_after_conditional_writes_shows_only_keys(store: ObjectStore) -> None:
    etag = store.put("registry/current", b"v1", if_none_match=True)
    store.put("registry/current", b"v2", if_match=etag)
    store.delete("registry/current")
    store.put("registry/other", b"x")
    assert list(store.list()) == ["registry/other"]


def test_list_info_gives_size_and_last_modified(store: ObjectStore) -> None:
    import datetime as dt

    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    store.put("a/one", b"12345")
    store.put("a/two", b"")
    store.put("b/three", b"x")
    infos = list(store.list_info("a/"))
    assert [(i.key, i.size) for i in infos] == [("a/one", 5), ("a/two", 0)]
    assert all(before <= i.last_modified <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5) for i in infos)
    assert [i.key for i in store.list_info()] == list(store.list())


def test_delete(store: ObjectStore) -> None:
    store.put("gone/soon", b"x")
    store.delete("gone/soon")
    assert store.head("gone/soon") is None
    with pytest.raises(NotFound):
        store.get("gone/soon")
    store.delete("gone/soon")
    store.delete("never/existed")
    assert store.create("gone/soon", b"again") is True


@pytest.mark.parametrize("key", ["../x", "/abs", "a//b", "a\\b", "", "a/", ".", "a/../b", "nul\x00"])
def test_invalid_keys_are_rejected(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError):
        store.put(key, b"x")
    with pytest.raises(ValueError):
        store.get(key)
    with pytest.raises(ValueError):
        store.head(key)
    with pytest.raises(ValueError):
        store.delete(key)


def test_url_and_key_of_round_trip(store: ObjectStore) -> None:
    url = store.url("artifacts/t/s/pop/v1.parquet")
    assert url == f"{store.uri}/artifacts/t/s/pop/v1.parquet"
    assert not store.uri.endswith("/")
    assert store.key_of(url) == "artifacts/t/s/pop/v1.parquet"
    with pytest.raises(ValueError):
        store.key_of("s3://somewhere-else/x")
    with pytest.raises(ValueError):
        store.key_of(f"{store.uri}/../escape")


def test_size(store: ObjectStore) -> None:
    store.put("sized/obj.bin", b"x" * 1234)
    store.put("sized/empty", b"")
    assert store.size("sized/obj.bin") == 1234
    assert store.size("sized/empty") == 0
    with pytest.raises(NotFound):
        store.size("sized/missing")
    with pytest.raises(NotFound):
        store.size("sized")  # a "directory" of other keys is not an object


@pytest.mark.parametrize(
    ("start", "length", "expected"),
    [
        (0, 256, bytes(range(256))),
        (0, 10, bytes(range(10))),
        (100, 5, bytes(range(100, 105))),
        (250, 100, bytes(range(250, 256))),  # cut at the end
        (255, 1, b"\xff"),
        (256, 10, b""),  # at the end
        (1000, 10, b""),  # past the end
        (7, 0, b""),
    ],
)
def test_read_range(store: ObjectStore, start: int, length: int, expected: bytes) -> None:
    store.put("ranged/data.bin", bytes(range(256)))
    assert store.read_range("ranged/data.bin", start, length) == expected


def test_read_range_of_empty_and_missing_objects(store: ObjectStore) -> None:
    store.put("ranged/empty", b"")
    assert store.read_range("ranged/empty", 0, 10) == b""
    assert store.read_range("ranged/empty", 0, 0) == b""
    for start, length in ((0, 10), (5, 0)):
        with pytest.raises(NotFound):
            store.read_range("ranged/missing", start, length)


@pytest.mark.parametrize(("start", "length"), [(-1, 5), (0, -1)])
def test_read_range_rejects_negative_ranges(store: ObjectStore, start: int, length: int) -> None:
    store.put("ranged/data.bin", b"abc")
    with pytest.raises(ValueError):
        store.read_range("ranged/data.bin", start, length)


@pytest.mark.parametrize("key", ["../x", "/abs", "a//b", ""])
def test_partial_reads_reject_invalid_keys(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError):
        store.size(key)
    with pytest.raises(ValueError):
        store.read_range(key, 0, 1)


def test_store_file_is_a_seekable_raw_file(store: ObjectStore) -> None:
    payload = bytes(range(256)) * 4
    store.put("file/data.bin", payload)
    with StoreFile(store, "file/data.bin") as file:
        assert (file.readable(), file.seekable(), file.writable()) == (True, True, False)
        assert file.size == len(payload) and file.name == store.url("file/data.bin")
        assert file.read(10) == payload[:10] and file.tell() == 10
        assert file.seek(-4, io.SEEK_END) == len(payload) - 4
        assert file.read(100) == payload[-4:]
        assert file.read(1) == b""
        assert file.seek(500) == 500 and file.seek(12, io.SEEK_CUR) == 512
        buffer = bytearray(8)
        assert file.readinto(buffer) == 8 and bytes(buffer) == payload[512:520]
        assert file.read() == payload[520:]
        file.seek(2000)
        assert file.read(5) == b"" and file.read() == b""
        with pytest.raises(ValueError):
            file.seek(-1)
        file.seek(0)
        assert io.BufferedReader(file).read() == payload
    with pytest.raises(ValueError):
        file.read(1)


def test_store_file_of_a_missing_object(store: ObjectStore) -> None:
    with pytest.raises(NotFound):
        StoreFile(store, "file/missing.bin")


def test_parquet_file_over_store_file_reads_footer_and_row_groups(store: ObjectStore) -> None:
    table = pa.table({"key": [f"k{i:04d}" for i in range(1000)], "value": list(range(1000))})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=100)
    store.put("file/table.parquet", sink.getvalue().to_pybytes())
    parquet = pq.ParquetFile(StoreFile(store, "file/table.parquet"))
    assert parquet.metadata.num_row_groups == 10
    assert parquet.read_row_group(3).equals(table.slice(300, 100))
    assert parquet.read().equals(table)


# --- filesystem-specific --------------------------------------------------------------------------------------


def test_filesystem_writes_exact_bytes_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    payload = bytes(range(256)) * 17
    store.put("x/data.bin", b"old")
    etag = store.put("x/data.bin", payload, if_match=quoted_md5(b"old"))
    store.create("x/other.bin", b"o")
    store.create("x/other.bin", b"lost")
    with pytest.raises(PreconditionFailed):
        store.put("x/data.bin", b"stale", if_match=quoted_md5(b"old"))
    assert (tmp_path / "x" / "data.bin").read_bytes() == payload
    assert etag == quoted_md5(payload)
    leftovers = [p.name for p in tmp_path.rglob(".*") if p.is_file()]
    assert all(name.endswith(".lock") for name in leftovers), leftovers
    assert list((tmp_path / ".tmp").iterdir()) == []


# A put that stalls once its temp file holds the data (a slow disk's fsync), so the test can kill it mid-write.
_STALLED_PUT = """
import os, sys, time
from recsys.store import FileSystemStore

def stalled_fsync(fd):
    print("writing", flush=True)
    time.sleep(60)

os.fsync = stalled_fsync
FileSystemStore(sys.argv[1]).put("artifacts/big.parquet", os.urandom(16 << 20))
"""


def test_filesystem_sweeps_the_temp_file_of_a_writer_killed_mid_write(tmp_path: Path) -> None:
    root = tmp_path / "store"
    writer = subprocess.Popen([sys.executable, "-c", _STALLED_PUT, str(root)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "writing\n"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    orphans = [path for path in root.rglob("*.tmp") if path.is_file()]
    assert [path.stat().st_size for path in orphans] == [16 << 20]  # the crash left the 16 MB temp file behind ...
    store = FileSystemStore(root)
    assert list(store.list()) == [] and not store.exists("artifacts/big.parquet")  # ... never visible as a key
    store.put("artifacts/small.parquet", b"x")
    assert orphans[0].exists()  # younger than the threshold: it could be another writer's write in flight
    FileSystemStore(root, stale_temp_seconds=0).put("artifacts/small.parquet", b"y")
    assert [path for path in root.rglob("*.tmp") if path.is_file()] == []  # past it, the next write sweeps it
    assert list(store.list()) == ["artifacts/small.parquet"]


def test_filesystem_uri_is_absolute_without_trailing_slash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert FileSystemStore("rel/dir/").uri == f"file://{tmp_path}/rel/dir"
    assert FileSystemStore(tmp_path).uri == f"file://{tmp_path}"


def test_filesystem_reserves_dot_names(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    with pytest.raises(ValueError, match="reserved"):
        store.put("dir/.hidden", b"x")
    with pytest.raises(ValueError, match="reserved"):
        store.put(".tmp/inside-the-temp-directory", b"x")


def test_filesystem_key_that_is_a_directory_is_absent(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    store.put("a/b", b"x")
    assert store.head("a") is None
    with pytest.raises(NotFound):
        store.get("a/b/c")
    store.delete("a")
    # S3 can hold both "a" and "a/b"; a filesystem cannot, and says so as a StoreError, not a raw OSError.
    with pytest.raises(StoreError):
        store.put("a", b"y")
    with pytest.raises(StoreError):
        store.put("a/b/c", b"y")


def test_filesystem_cas_from_many_threads_loses_no_increment(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    store.put("counter", b"0")
    writers = 16
    barrier = threading.Barrier(writers)

    def increment() -> None:
        barrier.wait()
        while True:
            blob = store.get("counter")
            try:
                store.put("counter", str(int(blob.data) + 1).encode(), if_match=blob.etag)
                return
            except PreconditionFailed:
                continue

    threads = [threading.Thread(target=increment) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.get("counter").data == str(writers).encode()


def _increment_in_process(root: str, times: int) -> None:
    store = FileSystemStore(root)
    for _ in range(times):
        while True:
            blob = store.get("counter")
            try:
                store.put("counter", str(int(blob.data) + 1).encode(), if_match=blob.etag)
                break
            except PreconditionFailed:
                continue


def _create_in_process(root: str, label: str, results: multiprocessing.Queue) -> None:
    results.put((label, FileSystemStore(root).create("claim", label.encode())))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_filesystem_conditional_writes_are_atomic_across_processes(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    store = FileSystemStore(tmp_path)
    store.put("counter", b"0")
    processes = [ctx.Process(target=_increment_in_process, args=(str(tmp_path), 10)) for _ in range(4)]
    results: multiprocessing.Queue = ctx.Queue()
    processes += [ctx.Process(target=_create_in_process, args=(str(tmp_path), f"p{i}", results)) for i in range(6)]
    for process in processes:
        process.start()
    # Drain the queue before joining: a child exits only once its queued result has been consumed.
    outcomes = dict(results.get(timeout=60) for _ in range(6))
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert store.get("counter").data == b"40"
    winners = [label for label, won in outcomes.items() if won]
    assert len(winners) == 1
    assert store.get("claim").data == winners[0].encode()


# --- S3-specific ----------------------------------------------------------------------------------------------


def test_s3_list_is_relative_to_the_prefix_and_skips_outside_objects(s3_client: Any) -> None:
    s3_client.put_object(Bucket=BUCKET, Key="outside.txt", Body=b"x")
    s3_client.put_object(Bucket=BUCKET, Key="root/prefixed-sibling.txt", Body=b"x")
    s3_client.put_object(Bucket=BUCKET, Key=f"{S3_PREFIX}/folder/", Body=b"")
    store = S3Store(BUCKET, f"/{S3_PREFIX}/", client=s3_client)
    assert store.uri == f"s3://{BUCKET}/{S3_PREFIX}"
    store.put("folder/inside.txt", b"y")
    assert list(store.list()) == ["folder/inside.txt"]
    assert s3_client.get_object(Bucket=BUCKET, Key=f"{S3_PREFIX}/folder/inside.txt")["Body"].read() == b"y"


def test_s3_list_paginates(s3_client: Any) -> None:
    store = S3Store(BUCKET, client=s3_client)
    keys = [f"many/{i:04d}" for i in range(1005)]
    for key in keys:
        s3_client.put_object(Bucket=BUCKET, Key=key, Body=b"")
    assert list(store.list("many/")) == keys


def test_s3_content_type_is_stored(s3_client: Any) -> None:
    store = S3Store(BUCKET, client=s3_client)
    store.put("doc.json", b"{}", content_type="application/json")
    assert s3_client.head_object(Bucket=BUCKET, Key="doc.json")["ContentType"] == "application/json"


def test_s3_missing_bucket_is_a_store_error_naming_it(s3_client: Any) -> None:
    store = S3Store("no-such-bucket-here", client=s3_client)
    for call in (lambda: store.get("k"), lambda: store.put("k", b"x"), lambda: list(store.list())):
        with pytest.raises(StoreError, match="no-such-bucket-here") as caught:
            call()
        assert type(caught.value) is StoreError
        assert "NoSuchBucket" in str(caught.value)


def test_s3_client_is_created_lazily_with_the_configured_endpoint(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECSYS_S3_ENDPOINT_URL", "http://localhost:4566")
    assert S3Store(BUCKET).client.meta.endpoint_url == "http://localhost:4566"
    assert S3Store(BUCKET, endpoint_url="http://minio:9000").client.meta.endpoint_url == "http://minio:9000"


def test_s3_lazy_client_works_under_moto(s3_client: Any) -> None:
    store = S3Store(BUCKET)
    store.put("k", b"v")
    assert store.get("k").data == b"v"


@pytest.fixture
def stubbed(aws_env: None) -> Iterator[tuple[S3Store, Stubber]]:
    client = boto3.client("s3", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield S3Store(BUCKET, "p", client=client), stubber


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ConditionalRequestConflict", 409, PreconditionFailed),
        ("PreconditionFailed", 412, PreconditionFailed),
        ("SlowDown", 503, TransientStoreError),
        ("InternalError", 500, TransientStoreError),
        ("RequestTimeout", 400, TransientStoreError),
        ("SomethingNew", 502, TransientStoreError),
        ("NoSuchKey", 404, NotFound),
    ],
)
def test_s3_maps_put_errors(
    stubbed: tuple[S3Store, Stubber], code: str, status: int, expected: type[StoreError]
) -> None:
    store, stubber = stubbed
    stubber.add_client_error("put_object", service_error_code=code, http_status_code=status)
    with pytest.raises(expected):
        store.put("pointer", b"x", if_match=quoted_md5(b"old"))


def test_s3_read_range_is_one_ranged_get(stubbed: tuple[S3Store, Stubber]) -> None:
    store, stubber = stubbed
    body = StreamingBody(io.BytesIO(b"0123456789"), 10)
    stubber.add_response(
        "get_object",
        {"Body": body, "ContentRange": "bytes 5-14/100", "ContentLength": 10},
        {"Bucket": BUCKET, "Key": "p/obj", "Range": "bytes=5-14"},
    )
    stubber.add_client_error("get_object", service_error_code="InvalidRange", http_status_code=416)
    stubber.add_client_error("get_object", service_error_code="NoSuchKey", http_status_code=404)
    stubber.add_response("head_object", {"ContentLength": 100}, {"Bucket": BUCKET, "Key": "p/obj"})
    assert store.read_range("obj", 5, 10) == b"0123456789"
    assert store.read_range("obj", 100, 10) == b""
    with pytest.raises(NotFound):
        store.read_range("obj", 0, 10)
    assert store.size("obj") == 100
    stubber.assert_no_pending_responses()


def test_s3_other_errors_are_one_line_store_errors(stubbed: tuple[S3Store, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_client_error(
        "get_object", service_error_code="AccessDenied", service_message="Access\nDenied", http_status_code=403
    )
    with pytest.raises(StoreError) as caught:
        store.get("secret.txt")
    assert type(caught.value) is StoreError
    message = str(caught.value)
    assert "\n" not in message
    assert f"s3://{BUCKET}/p/secret.txt" in message
    assert "AccessDenied" in message
    assert "403" in message


def test_s3_head_missing_is_none_but_other_errors_raise(stubbed: tuple[S3Store, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_client_error("head_object", service_error_code="404", http_status_code=404)
    stubber.add_client_error("head_object", service_error_code="SlowDown", http_status_code=503)
    assert store.head("k") is None
    with pytest.raises(TransientStoreError):
        store.head("k")


class _FailingClient:
    """A client whose every call raises `error` (connection failures never reach the Stubber)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getattr__(self, name: str) -> object:
        def fail(*args: object, **kwargs: object) -> None:
            raise self.error

        return fail


@pytest.mark.parametrize(
    "error",
    [
        EndpointConnectionError(endpoint_url="http://localhost:1"),
        ReadTimeoutError(endpoint_url="http://localhost:1"),
    ],
)
def test_s3_connection_failures_are_transient(error: Exception) -> None:
    store = S3Store(BUCKET, client=_FailingClient(error))
    with pytest.raises(TransientStoreError):
        store.put("k", b"x")
    with pytest.raises(TransientStoreError):
        store.head("k")


def test_s3_hand_built_client_error_is_mapped() -> None:
    error = ClientError(
        {
            "Error": {"Code": "ConditionalRequestConflict", "Message": "retry"},
            "ResponseMetadata": {"HTTPStatusCode": 409},
        },
        "PutObject",
    )
    with pytest.raises(PreconditionFailed):
        S3Store(BUCKET, client=_FailingClient(error)).put("k", b"x", if_none_match=True)


# --- URIs ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket-a", "s3://bucket-a"),
        ("s3://bucket-a/", "s3://bucket-a"),
        ("s3://bucket-a/pre/fix/", "s3://bucket-a/pre/fix"),
        ("file:///tmp/recsys-x", "file:///tmp/recsys-x"),
        ("/tmp/recsys-x/", "file:///tmp/recsys-x"),
    ],
)
def test_open_store(uri: str, expected: str) -> None:
    store = open_store(uri)
    assert store.uri == expected
    assert isinstance(store, S3Store if uri.startswith("s3://") else FileSystemStore)


def test_open_store_relative_paths_use_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert open_store("file://.out").uri == f"file://{tmp_path}/.out"
    assert open_store("file://rel/dir").uri == f"file://{tmp_path}/rel/dir"
    assert open_store("rel/dir").uri == f"file://{tmp_path}/rel/dir"


@pytest.mark.parametrize("uri", ["", "s3://", "s3:///prefix", "gs://bucket/x", "https://example.com/x", "file://"])
def test_open_store_rejects_unsupported_uris(uri: str) -> None:
    with pytest.raises(ValueError, match="unsupported store URI"):
        open_store(uri)


@pytest.mark.parametrize(
    ("uri", "root", "key"),
    [
        ("s3://bucket-a/p/q/catalog.csv", "s3://bucket-a/p/q", "catalog.csv"),
        ("s3://bucket-a/catalog.csv", "s3://bucket-a", "catalog.csv"),
        ("/tmp/x/catalog.csv", "file:///tmp/x", "catalog.csv"),
        ("file:///tmp/x/catalog.csv", "file:///tmp/x", "catalog.csv"),
    ],
)
def test_split_uri(uri: str, root: str, key: str) -> None:
    store, name = split_uri(uri)
    assert (store.uri, name) == (root, key)
    assert store.url(name) == (uri if "://" in uri else f"file://{uri}")


def test_split_uri_reads_a_local_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "catalog.csv").write_bytes(b"item_id\n1\n")
    store, key = split_uri(str(tmp_path / "catalog.csv"))
    assert store.get(key).data == b"item_id\n1\n"
    monkeypatch.chdir(tmp_path)
    store, key = split_uri("catalog.csv")
    assert store.get(key).data == b"item_id\n1\n"
    store, key = split_uri("file://catalog.csv")
    assert store.get(key).data == b"item_id\n1\n"


@pytest.mark.parametrize("uri", ["s3://bucket-a", "s3://bucket-a/", "s3:///x.csv", "/tmp/x/", "gs://b/x.csv", ""])
def test_split_uri_rejects_non_object_uris(uri: str) -> None:
    with pytest.raises(ValueError):
        split_uri(uri)


def test_a_blob_computes_a_derived_etag_once_and_only_when_asked() -> None:
    calls: list[bytes] = []

    def md5_like(data: bytes) -> str:
        calls.append(data)
        return '"derived"'

    blob = Blob(b"abc", etag_of=md5_like)
    assert calls == []  # reading the bytes never hashes them
    assert blob.data == b"abc" and blob.etag == '"derived"' and blob.etag == '"derived"'
    assert calls == [b"abc"]
    assert Blob(b"abc", '"given"').etag == '"given"'
    with pytest.raises(ValueError, match="exactly one"):
        Blob(b"abc")
    with pytest.raises(ValueError, match="exactly one"):
        Blob(b"abc", '"given"', etag_of=md5_like)


def test_a_folder_that_cannot_be_read_is_an_error_not_an_empty_listing(tmp_path: Path, monkeypatch) -> None:
    import os

    from recsys.store import FileSystemStore, StoreError

    store = FileSystemStore(tmp_path / "raw")
    store.put("dt=2026-01-01/events.jsonl", b"{}\n")
    store.put("dt=2026-01-02/events.jsonl", b"{}\n")
    assert list(store.list("missing/")) == []  # a folder that does not exist lists nothing, as on S3
    unreadable = str(store.root / "dt=2026-01-02")
    scandir = os.scandir

    def denied(path=".", *args):  # tests run as root, who can read any folder: deny one the way the kernel does
        if os.fspath(path) == unreadable:
            raise PermissionError(13, "Permission denied", unreadable)
        return scandir(path, *args)

    monkeypatch.setattr(os, "scandir", denied)
    with pytest.raises(StoreError, match="cannot list .*dt=2026-01-02: Permission denied"):
        list(store.list(""))
