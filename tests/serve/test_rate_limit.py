"""Rate limits: the token buckets, the tenant limit from the tenant config over ServeSettings' default, the per-client
limit of the unauthenticated paths, 429 problem+json with Retry-After, and what the limiter costs a request."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from recsys.serve.app import create_app
from recsys.serve.auth import AuthSettings
from recsys.serve.rate_limit import Limit, RateLimiter, retry_after
from recsys.serve.reader import ArtifactReader
from recsys.serve.service import RecommendService
from recsys.serve.settings import ServeSettings
from recsys.serve.tenant_config import TenantConfig
from recsys.serve.tenant_store import TenantDocuments
from recsys.store import FileSystemStore
from tests.serve.test_api import ACME, DEMO, Clock, demo_store  # noqa: F401  (demo_store is a fixture)

ROLE_CHECKS_OFF = AuthSettings(DEV_AUTH_ENABLED=True, AUTH_VIEWER_ROLE="", AUTH_OPERATOR_ROLE="", AUTH_ADMIN_ROLE="")
BODY = {"surface": "home", "user": {"user_id": "u00008"}, "k": 3}


# --- the buckets --------------------------------------------------------------------------------------------------


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    limit = Limit(rate=2.0, burst=3)
    assert [limiter.acquire("k", limit) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("k", limit) == pytest.approx(0.5)  # one token takes 1/rate seconds
    clock.now += 0.5
    assert limiter.acquire("k", limit) == 0.0
    clock.now += 100  # refills to the burst, not beyond
    assert [limiter.acquire("k", limit) for _ in range(4)][-1] > 0
    assert limiter.acquire("other", limit) == 0.0  # buckets are per key


def test_a_refused_request_takes_no_token_and_retry_after_is_whole_seconds() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    limit = Limit(rate=0.25, burst=1)
    limiter.acquire("k", limit)
    assert limiter.acquire("k", limit) == pytest.approx(4.0)
    assert limiter.acquire("k", limit) == pytest.approx(4.0)  # refusals do not dig the bucket deeper
    assert (retry_after(0.01), retry_after(1.0), retry_after(1.2)) == (1, 1, 2)


def test_a_bucket_follows_a_changed_limit() -> None:
    limiter = RateLimiter(clock=Clock())
    limiter.acquire("k", Limit(rate=1, burst=100))
    assert limiter.acquire("k", Limit(rate=1, burst=1)) == 0.0  # 99 tokens capped at the new burst of 1
    assert limiter.acquire("k", Limit(rate=1, burst=1)) > 0


def test_invalid_limits_are_refused() -> None:
    for rate, burst in ((0, 1), (-1, 1), (1, 0), (float("nan"), 1)):
        with pytest.raises(ValueError):
            Limit(rate=rate, burst=burst)


def test_the_limiter_keeps_at_most_max_keys_buckets_refilled_ones_first() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock, max_keys=100)
    slow, limit = Limit(rate=0.001, burst=2), Limit(rate=1, burst=2)
    limiter.acquire("busy", slow)
    limiter.acquire("busy", slow)  # drained, and the least recently used: forgetting it would hand out a new burst
    for n in range(99):
        limiter.acquire(n, limit)
    clock.now += 10  # the 99 have refilled: forgetting them changes nothing
    for n in range(100, 150):  # room made from the refilled ones alone
        limiter.acquire(n, limit)
    assert len(limiter) <= 100
    assert limiter.acquire("busy", slow) > 0  # kept while full ones went


def test_the_limiter_is_thread_safe() -> None:
    limiter = RateLimiter(clock=lambda: 0.0)  # no refill: exactly `burst` acquisitions succeed
    limit = Limit(rate=1, burst=1000)
    granted = []

    def worker() -> None:
        granted.append(sum(limiter.acquire("k", limit) == 0.0 for _ in range(500)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 1000


# --- the tenant limit through the API ------------------------------------------------------------------------------


def _client(store: FileSystemStore, clock: Clock, **settings: object) -> TestClient:
    serve = ServeSettings(RECSYS_STORE=store.uri, **settings)
    reader = ArtifactReader(store, template=serve.manifest_template, manifest_ttl=60, clock=clock)
    service = RecommendService(
        settings=serve,
        store=store,
        reader=reader,
        documents=TenantDocuments(store),
        clock=clock,
        limiter=RateLimiter(clock=clock),
    )
    return TestClient(create_app(serve, ROLE_CHECKS_OFF, service))


def test_the_tenant_limit_answers_429_with_retry_after(demo_store: FileSystemStore) -> None:  # noqa: F811
    clock = Clock()
    client = _client(
        demo_store,
        clock,
        TENANT_RATE_LIMIT_ENABLED=True,
        TENANT_RATE_LIMIT_CAPACITY=2,
        TENANT_RATE_LIMIT_REFILL_RATE=0.5,
    )
    assert [client.post("/v1/recommend", json=BODY, headers=DEMO).status_code for _ in range(2)] == [200, 200]
    limited = client.post("/v1/recommend/validate", json=BODY, headers={**DEMO, "X-Request-Id": "r-429"})
    problem = limited.json()
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.headers["X-Request-Id"] == "r-429"
    assert problem == {
        "type": "https://errors.recsys.example/problem/recsys-rate-limit-exceeded",
        "title": "Too Many Requests",
        "status": 429,
        "detail": "tenant rate limit exceeded",
        "instance": "/v1/recommend/validate",
        "code": "RECSYS_RATE_LIMIT_EXCEEDED",
        "request_id": "r-429",
    }
    assert client.post("/v1/recommend", json=BODY, headers=ACME).status_code == 200  # another tenant's bucket
    clock.now += 2
    assert client.post("/v1/recommend", json=BODY, headers=DEMO).status_code == 200


def test_a_tenant_config_sets_or_lifts_its_own_limit(tmp_path, demo_store: FileSystemStore) -> None:  # noqa: F811
    clock = Clock()
    client = _client(demo_store, clock)  # no default limit
    try:
        put = client.put("/v1/admin/tenants/acme/config", json={"rate_limit": {"rate": 1, "burst": 1}}, headers=ACME)
        assert put.status_code == 200
        assert client.post("/v1/recommend", json=BODY, headers=ACME).status_code == 200
        limited = client.post("/v1/recommend", json=BODY, headers=ACME)
        assert (limited.status_code, limited.headers["Retry-After"]) == (429, "1")
        admin = client.get("/v1/admin/tenants/acme/config", headers=ACME)  # admin routes count too
        assert admin.status_code == 429
        clock.now += 1
        lifted = client.put("/v1/admin/tenants/acme/config", json={"rate_limit": {"enabled": False}}, headers=ACME)
        assert lifted.status_code == 200
        assert all(client.post("/v1/recommend", json=BODY, headers=ACME).status_code == 200 for _ in range(50))
        for invalid in ({"rate": 0}, {"burst": 0}, {"rps": 5}, "fast"):
            refused = client.put("/v1/admin/tenants/acme/config", json={"rate_limit": invalid}, headers=ACME)
            assert (refused.status_code, refused.json()["code"]) == (422, "RECSYS_INVALID_CONFIG"), invalid
    finally:
        client.put("/v1/admin/tenants/acme/config", json={}, headers=ACME)


def test_the_tenant_config_overrides_the_default_field_by_field(demo_store: FileSystemStore) -> None:  # noqa: F811
    settings = ServeSettings(
        RECSYS_STORE=demo_store.uri,
        TENANT_RATE_LIMIT_ENABLED=True,
        TENANT_RATE_LIMIT_CAPACITY=60,
        TENANT_RATE_LIMIT_REFILL_RATE=30,
    )
    service = RecommendService.from_settings(settings)
    rate_limit = service._rate_limit
    assert rate_limit(None) == Limit(rate=30, burst=60)
    assert rate_limit(TenantConfig.parse({})) == Limit(rate=30, burst=60)
    assert rate_limit(TenantConfig.parse({"rate_limit": {"rate": 5}})) == Limit(rate=5, burst=60)
    assert rate_limit(TenantConfig.parse({"rate_limit": {"enabled": False, "rate": 5}})) is None
    off = RecommendService.from_settings(ServeSettings(RECSYS_STORE=demo_store.uri))
    assert off._rate_limit(TenantConfig.parse({})) is None
    assert off._rate_limit(TenantConfig.parse({"rate_limit": {"burst": 7}})) == Limit(rate=30, burst=7)


# --- the per-client limit ------------------------------------------------------------------------------------------


def test_unauthenticated_paths_are_limited_per_client(demo_store: FileSystemStore) -> None:  # noqa: F811
    clock = Clock()
    client = _client(demo_store, clock, RECSYS_CLIENT_RATE_LIMIT_CAPACITY=3, RECSYS_CLIENT_RATE_LIMIT_REFILL_RATE=1)
    assert [client.get(path).status_code for path in ("/livez", "/healthz", "/version")] == [200, 200, 200]
    limited = client.get("/readyz")
    assert (limited.status_code, limited.headers["Retry-After"], limited.json()["code"]) == (
        429,
        "1",
        "RECSYS_RATE_LIMIT_EXCEEDED",
    )
    assert limited.json()["detail"] == "rate limit exceeded"
    # /v1 routes are the tenant's, not the client's: the empty client bucket does not stop them
    assert client.post("/v1/recommend", json=BODY, headers=DEMO).status_code == 200
    other = TestClient(client.app, client=("203.0.113.9", 50000))  # another source address, its own bucket
    assert other.get("/livez").status_code == 200
    clock.now += 1
    assert client.get("/livez").status_code == 200
    unlimited = _client(demo_store, clock, RECSYS_CLIENT_RATE_LIMIT_ENABLED=False)
    assert all(unlimited.get("/livez").status_code == 200 for _ in range(100))


# --- cost ------------------------------------------------------------------------------------------------------------


def test_the_limiter_costs_microseconds() -> None:
    """The happy path's price: an acquire on a warm bucket, against the API's ~1 ms median (docs/benchmarks.md)."""
    limiter = RateLimiter()
    limit = Limit(rate=1e9, burst=10**9)
    limiter.acquire(("tenant", "demo"), limit)
    n = 20_000
    started = time.perf_counter()
    for _ in range(n):
        limiter.acquire(("tenant", "demo"), limit)
    per_call = (time.perf_counter() - started) / n
    assert per_call < 50e-6, f"{per_call * 1e6:.1f} µs per acquire"
