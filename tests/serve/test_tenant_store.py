"""Tenant config/rules versioning by conditional writes, and API keys stored by hash."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from moto import mock_aws

from recsys.serve.tenant_store import (
    MAX_CAS_ATTEMPTS,
    ApiKeys,
    TenantDocuments,
    VersionMismatch,
    canonical_json,
    normalize_if_match,
)
from recsys.store import FileSystemStore, ObjectStore, S3Store, TransientStoreError

CONFIG = {"weights": {"pop": 1.0, "cooc": 0.0, "emb": 0.0}, "flags": {"enable_rules": True}}
RULES = [{"action": "pin", "target_type": "item", "item_ids": ["item_3"], "surface": "home", "priority": 10}]


def version_of(data: Any) -> str:
    return hashlib.sha256(canonical_json(data)).hexdigest()


class Spy:
    """Instruments one store instance (whatever the adapter): counts reads, runs `before_put(key)` before writes."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.gets: list[str] = []
        self.before_put: Callable[[str], None] | None = None
        get, put = store.get, store.put

        def spied_get(key: str) -> Any:
            self.gets.append(key)
            return get(key)

        def spied_put(key: str, data: bytes, **kwargs: Any) -> str:
            if self.before_put is not None:
                self.before_put(key)
            return put(key, data, **kwargs)

        store.get = spied_get  # type: ignore[method-assign]
        store.put = spied_put  # type: ignore[method-assign]


def interfere_once(spy: Spy, rival: TenantDocuments, data: Any) -> None:
    """Let `rival` move the config pointer just before the next pointer write through `spy` (a lost CAS race)."""

    def hook(key: str) -> None:
        if key.endswith("/current.json"):
            spy.before_put = None
            rival.put("acme", "config", data, if_match=None, actor="rival")

    spy.before_put = hook


@pytest.fixture
def docs(store: FileSystemStore) -> TenantDocuments:
    return TenantDocuments(store, clock=lambda: dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC))


# --- documents -------------------------------------------------------------------------------------------------


def test_get_before_any_put_is_none(docs: TenantDocuments) -> None:
    assert docs.get("acme", "config") is None
    assert docs.get("acme", "rules") is None


def test_put_writes_an_immutable_version_and_moves_the_pointer(docs: TenantDocuments, store: FileSystemStore) -> None:
    written = docs.put("acme", "config", CONFIG, if_match=None, actor="alice")
    version = version_of(CONFIG)
    assert written.version == version
    assert written.etag == f'"{version}"'
    assert json.loads(store.get(f"tenants/acme/config/versions/{version}.json").data) == CONFIG
    pointer = json.loads(store.get("tenants/acme/config/current.json").data)
    assert pointer == {
        "version": version,
        "previous": None,
        "updated_at": "2026-01-02T03:04:05Z",
        "updated_by": "alice",
    }
    assert docs.get("acme", "config") == written
    assert docs.get("acme", "rules") is None  # kinds are separate
    assert docs.get("other", "config") is None  # so are tenants


def test_rules_may_be_a_list(docs: TenantDocuments) -> None:
    assert docs.put("acme", "rules", RULES, if_match=None, actor=None).data == RULES
    assert docs.get("acme", "rules").data == RULES


def test_version_is_the_content_not_the_key_order(docs: TenantDocuments) -> None:
    a = docs.put("acme", "config", {"b": 1, "a": {"y": 2, "x": 1}}, if_match=None, actor=None)
    b = docs.put("acme", "config", {"a": {"x": 1, "y": 2}, "b": 1}, if_match=None, actor=None)
    assert a.version == b.version


def test_identical_put_is_a_no_op(docs: TenantDocuments, store: FileSystemStore) -> None:
    first = docs.put("acme", "config", CONFIG, if_match=None, actor="alice")
    etag = store.head("tenants/acme/config/current.json")
    again = TenantDocuments(store).put("acme", "config", CONFIG, if_match=first.etag, actor="bob")
    assert again == first  # same version, same updated_at/by: nothing was written
    assert store.head("tenants/acme/config/current.json") == etag


def test_putting_an_older_version_repoints_current(docs: TenantDocuments, store: FileSystemStore) -> None:
    v1 = docs.put("acme", "config", CONFIG, if_match=None, actor=None)
    v2 = docs.put("acme", "config", {"weights": {"pop": 2.0}}, if_match=v1.version, actor=None)
    back = docs.put("acme", "config", CONFIG, if_match=v2.version, actor="ops")
    assert back.version == v1.version
    assert docs.get("acme", "config").data == CONFIG
    assert json.loads(store.get("tenants/acme/config/current.json").data)["previous"] == v2.version
    assert len(list(store.list("tenants/acme/config/versions/"))) == 2
    assert docs.get_version("acme", "config", v2.version).data == {"weights": {"pop": 2.0}}
    assert docs.get_version("acme", "config", "0" * 64) is None


@pytest.mark.parametrize("form", ["{v}", '"{v}"', ' "{v}" ', "  {v}\t", "*"])
def test_if_match_accepts_the_current_version(docs: TenantDocuments, form: str) -> None:
    v1 = docs.put("acme", "config", CONFIG, if_match=None, actor=None)
    moved = docs.put("acme", "config", {"n": 2}, if_match=form.format(v=v1.version), actor=None)
    assert docs.get("acme", "config").version == moved.version != v1.version


@pytest.mark.parametrize("form", ['W/"{v}"', "{v}x", "", '"stale"'])
def test_if_match_mismatch(docs: TenantDocuments, form: str) -> None:
    v1 = docs.put("acme", "config", CONFIG, if_match=None, actor=None)
    with pytest.raises(VersionMismatch) as info:
        docs.put("acme", "config", {"n": 2}, if_match=form.format(v=v1.version), actor=None)
    assert info.value.current == v1.version
    assert v1.version in str(info.value)
    assert docs.get("acme", "config").version == v1.version


def test_if_match_mismatch_wins_over_the_no_op(docs: TenantDocuments) -> None:
    docs.put("acme", "config", CONFIG, if_match=None, actor=None)
    with pytest.raises(VersionMismatch):
        docs.put("acme", "config", CONFIG, if_match='"not-it"', actor=None)


@pytest.mark.parametrize("if_match", ["*", '"abc"'])
def test_if_match_without_a_current_document(docs: TenantDocuments, if_match: str) -> None:
    with pytest.raises(VersionMismatch) as info:
        docs.put("acme", "config", CONFIG, if_match=if_match, actor=None)
    assert info.value.current is None


def test_normalize_if_match() -> None:
    assert normalize_if_match(' "abc" ') == "abc"
    assert normalize_if_match('W/"abc"') == 'W/"abc'  # weak: never equals a version


@pytest.mark.parametrize(("tenant", "kind"), [("../x", "config"), ("acme", "secrets"), ("a/b", "rules")])
def test_unusable_tenant_or_kind(docs: TenantDocuments, tenant: str, kind: str) -> None:
    with pytest.raises(ValueError):
        docs.put(tenant, kind, CONFIG, if_match=None, actor=None)
    with pytest.raises(ValueError):
        docs.get(tenant, kind)


# --- races -----------------------------------------------------------------------------------------------------


def test_lost_race_rechecks_if_match(store: FileSystemStore) -> None:
    spy = Spy(FileSystemStore(store.root))
    docs, rival = TenantDocuments(spy.store), TenantDocuments(store)
    v1 = docs.put("acme", "config", CONFIG, if_match=None, actor=None)
    interfere_once(spy, rival, {"rival": True})
    with pytest.raises(VersionMismatch) as info:
        docs.put("acme", "config", {"mine": True}, if_match=v1.etag, actor=None)
    assert info.value.current == version_of({"rival": True})
    assert docs.get("acme", "config").data == {"rival": True}  # the rival's write stands


def test_lost_race_without_if_match_retries_on_top_of_the_winner(store: FileSystemStore) -> None:
    spy = Spy(FileSystemStore(store.root))
    docs, rival = TenantDocuments(spy.store), TenantDocuments(store)
    docs.put("acme", "config", CONFIG, if_match=None, actor=None)
    interfere_once(spy, rival, {"rival": True})
    mine = docs.put("acme", "config", {"mine": True}, if_match=None, actor="me")
    assert docs.get("acme", "config") == mine
    pointer = json.loads(store.get("tenants/acme/config/current.json").data)
    assert pointer["previous"] == version_of({"rival": True})  # re-read, not a blind overwrite


def test_lost_race_to_the_same_document(store: FileSystemStore) -> None:
    spy = Spy(FileSystemStore(store.root))
    docs, rival = TenantDocuments(spy.store), TenantDocuments(store)
    v1 = docs.put("acme", "config", CONFIG, if_match=None, actor=None)
    interfere_once(spy, rival, {"same": True})
    # As if the rival had written first: If-Match is checked before the no-op, so it still fails...
    with pytest.raises(VersionMismatch):
        docs.put("acme", "config", {"same": True}, if_match=v1.etag, actor="me")
    # ...and without If-Match the re-read finds the document already current: nothing more is written.
    interfere_once(spy, rival, {"same": 2})
    assert docs.put("acme", "config", {"same": 2}, if_match=None, actor="me").updated_by == "rival"


def test_first_write_race_uses_if_none_match(store: FileSystemStore) -> None:
    spy = Spy(FileSystemStore(store.root))
    docs, rival = TenantDocuments(spy.store), TenantDocuments(store)
    interfere_once(spy, rival, {"rival": True})
    mine = docs.put("acme", "config", {"mine": True}, if_match=None, actor=None)
    pointer = json.loads(store.get("tenants/acme/config/current.json").data)
    assert (pointer["version"], pointer["previous"]) == (mine.version, version_of({"rival": True}))


def test_endless_contention_gives_up(store: FileSystemStore) -> None:
    spy = Spy(FileSystemStore(store.root))
    docs, rival = TenantDocuments(spy.store), TenantDocuments(store)
    docs.put("acme", "config", CONFIG, if_match=None, actor=None)
    rounds = iter(range(100))

    def always(key: str) -> None:
        if key.endswith("/current.json"):
            rival.put("acme", "config", {"round": next(rounds)}, if_match=None, actor=None)

    spy.before_put = always
    with pytest.raises(TransientStoreError):
        docs.put("acme", "config", {"mine": True}, if_match=None, actor=None)
    assert next(rounds) == MAX_CAS_ATTEMPTS


def test_concurrent_if_match_writers_exactly_one_wins(store: FileSystemStore) -> None:
    docs = TenantDocuments(store)
    v1 = docs.put("acme", "config", CONFIG, if_match=None, actor=None)
    writers = 8
    barrier = threading.Barrier(writers)
    outcomes: list[str] = []

    def write(n: int) -> None:
        barrier.wait()
        try:
            TenantDocuments(store).put("acme", "config", {"writer": n}, if_match=v1.etag, actor=str(n))
            outcomes.append("won")
        except VersionMismatch:
            outcomes.append("409")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["409"] * (writers - 1) + ["won"]
    winner = docs.get("acme", "config")
    assert winner.updated_by == str(winner.data["writer"])


def test_if_match_race_on_s3(aws_credentials: None) -> None:
    """Against moto's S3: the pointer CAS is a real PutObject If-Match, and losing it (412) means re-read."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="artifacts")
        s3 = S3Store("artifacts", client=client)
        spy = Spy(S3Store("artifacts", client=client))
        docs, rival = TenantDocuments(spy.store), TenantDocuments(s3)
        v1 = docs.put("acme", "config", CONFIG, if_match=None, actor=None)
        interfere_once(spy, rival, {"rival": True})
        with pytest.raises(VersionMismatch):
            docs.put("acme", "config", {"mine": True}, if_match=v1.etag, actor=None)
        assert docs.get("acme", "config").data == {"rival": True}
        interfere_once(spy, rival, {"rival": 2})
        mine = docs.put("acme", "config", {"mine": True}, if_match=None, actor=None)
        assert TenantDocuments(s3).get("acme", "config") == mine
        keys = {o["Key"] for o in client.list_objects_v2(Bucket="artifacts")["Contents"]}
        assert keys == {
            "tenants/acme/config/current.json",
            *(f"tenants/acme/config/versions/{version_of(d)}.json" for d in (CONFIG, {"rival": True}, {"rival": 2})),
            f"tenants/acme/config/versions/{mine.version}.json",
        }


# --- API keys --------------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_create_stores_only_the_hash(store: FileSystemStore) -> None:
    keys = ApiKeys(store, now=lambda: dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    expires = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    key, record = keys.create("acme", ["viewer", " operator ", ""], "ci", expires_at=expires)
    assert key.startswith("rsk_") and len(key) > 40
    assert record.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert list(store.list("api-keys/")) == [f"api-keys/{record.key_hash}.json"]
    raw = store.get(f"api-keys/{record.key_hash}.json").data
    assert key.encode() not in raw
    assert json.loads(raw) == {
        "tenant": "acme",
        "roles": ["operator", "viewer"],
        "name": "ci",
        "created_at": "2026-01-01T00:00:00Z",
        "expires_at": "2027-01-01T00:00:00Z",
        "revoked_at": None,
    }
    assert keys.lookup(key) == record


def test_keys_are_unique(store: FileSystemStore) -> None:
    keys = ApiKeys(store)
    assert len({keys.create("acme", [], f"k{n}")[0] for n in range(20)}) == 20


def test_create_rejects_a_naive_expiry_or_bad_tenant(store: FileSystemStore) -> None:
    with pytest.raises(ValueError):
        ApiKeys(store).create("acme", [], "ci", expires_at=dt.datetime(2027, 1, 1))
    with pytest.raises(ValueError):
        ApiKeys(store).create("a/b", [], "ci")


def test_lookup_unknown_and_garbage(store: FileSystemStore) -> None:
    keys = ApiKeys(store)
    assert keys.lookup("rsk_nope") is None
    assert keys.lookup("") is None
    assert keys.lookup("x" * 1000) is None


def test_lookup_with_a_secret(store: FileSystemStore) -> None:
    keys = ApiKeys(store)
    key, record = keys.create("acme", ["viewer"], "ci", secret="pepper")
    assert keys.lookup(key, "pepper") == record
    assert keys.lookup(key) is None


def test_expired_key(store: FileSystemStore) -> None:
    now = [dt.datetime(2026, 1, 1, tzinfo=dt.UTC)]
    keys = ApiKeys(store, now=lambda: now[0])
    key, _ = keys.create("acme", ["viewer"], "ci", expires_at=dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
    assert keys.lookup(key) is not None
    now[0] = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    assert keys.lookup(key) is None  # expiry is checked on every lookup, cached or not


def test_lookup_caches_for_the_ttl(store: FileSystemStore) -> None:
    spy, clock = Spy(FileSystemStore(store.root)), Clock()
    keys = ApiKeys(spy.store, ttl=60, clock=clock)
    key, _ = keys.create("acme", ["viewer"], "ci")
    for _ in range(5):
        assert keys.lookup(key) is not None
        assert keys.lookup("rsk_unknown") is None  # unknown keys are cached too
    assert len(spy.gets) == 2
    clock.t += 60
    keys.lookup(key)
    assert len(spy.gets) == 3


def test_revoke(store: FileSystemStore) -> None:
    clock = Clock()
    keys, other_process = ApiKeys(store, clock=clock), ApiKeys(store, clock=clock)
    key, record = keys.create("acme", ["viewer"], "ci")
    assert other_process.lookup(key) is not None
    revoked = keys.revoke(record.key_hash)
    assert revoked is not None and revoked.revoked_at is not None
    assert keys.lookup(key) is None  # this process forgets the key at once
    assert other_process.lookup(key) is not None  # others within their TTL...
    clock.t += 60
    assert other_process.lookup(key) is None  # ...then no longer
    assert keys.revoke(record.key_hash) == revoked  # idempotent: the first revocation time stays
    assert json.loads(store.get(f"api-keys/{record.key_hash}.json").data)["revoked_at"] is not None


def test_revoke_unknown_or_malformed_hash(store: FileSystemStore) -> None:
    assert ApiKeys(store).revoke("0" * 64) is None
    with pytest.raises(ValueError):
        ApiKeys(store).revoke("../x")
