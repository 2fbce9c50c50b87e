"""The recommend API as clients see it: every endpoint and documented error, caches, tenant isolation, Mangum."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from recsys import paths
from recsys.days import Window
from recsys.paths import Scope
from recsys.publish.service import publish
from recsys.serve.app import create_app
from recsys.serve.auth import AuthSettings
from recsys.serve.reader import ArtifactReader
from recsys.serve.service import RecommendService
from recsys.serve.settings import ServeSettings
from recsys.serve.tenant_store import TenantDocuments
from recsys.settings import Settings
from recsys.store import FileSystemStore, StoreError
from tests.conftest import ROOT, SAMPLE_CATALOG, SAMPLE_RAW, run_steps

DEMO = {"X-Dev-Org-Id": "demo"}
ACME = {"X-Dev-Org-Id": "acme"}
JAN = Window.model_validate({"start": "2026-01-01", "end": "2026-01-07"})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> FileSystemStore:
    """The bundled sample published for tenant demo, surface home (the pipeline's real output)."""
    store = FileSystemStore(tmp_path_factory.mktemp("api") / "store")
    settings = Settings(store=store.uri, raw_uri=str(SAMPLE_RAW), catalog_uri=str(SAMPLE_CATALOG))
    publish(store, "demo", "home", JAN, run_steps(settings, "2026-01-01", "2026-01-07"))
    return store


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(demo_store: FileSystemStore, clock: Clock) -> RecommendService:
    settings = ServeSettings(RECSYS_STORE=demo_store.uri, RECSYS_ARTIFACT_MANIFEST_TTL=60)
    reader = ArtifactReader(demo_store, template=settings.manifest_template, manifest_ttl=60, clock=clock)
    return RecommendService(
        settings=settings, store=demo_store, reader=reader, documents=TenantDocuments(demo_store), clock=clock
    )


@pytest.fixture
def client(service: RecommendService) -> TestClient:
    auth = AuthSettings(DEV_AUTH_ENABLED=True, AUTH_VIEWER_ROLE="", AUTH_OPERATOR_ROLE="", AUTH_ADMIN_ROLE="")
    return TestClient(create_app(service.settings, auth, service))


def recommend(client: TestClient, headers=DEMO, **body) -> dict:
    response = client.post("/v1/recommend", json={"surface": "home", **body}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def ids(result: dict) -> list[str]:
    return [item["item_id"] for item in result["items"]]


# --- contract -------------------------------------------------------------------------------------------------------


def test_recommend_response_shape_headers_and_defaults(client: TestClient) -> None:
    response = client.post(
        "/v1/recommend",
        json={"surface": "home", "user": {"user_id": "u00008"}},
        headers={**DEMO, "X-Request-Id": "req-1"},
    )
    body = response.json()
    assert response.status_code == 200 and response.headers["X-Request-Id"] == "req-1"
    assert response.headers["Cache-Control"] == "no-store"
    assert len(body["items"]) == 20 and [i["rank"] for i in body["items"]] == list(range(1, 21))
    assert all(set(item) == {"item_id", "rank", "score"} for item in body["items"])
    assert body["meta"] == {
        "tenant_id": "demo",
        "surface": "home",
        "segment": "default",
        "algo_version": "recsys-serverless@0.1.0",
        "manifest_version": body["meta"]["manifest_version"],
        "request_id": "req-1",
        "counts": {"returned": 20},
    }
    assert [w["detail"] for w in body["warnings"]] == [
        "segment defaulted to 'default'",
        "k defaulted to 20",
        "options defaulted",
    ]
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)


def test_request_id_is_generated_when_absent(client: TestClient) -> None:
    response = client.post("/v1/recommend", json={"surface": "home", "user": {"user_id": "x"}}, headers=DEMO)
    assert len(response.headers["X-Request-Id"]) >= 16
    assert response.json()["meta"]["request_id"] == response.headers["X-Request-Id"]


def test_reasons_and_explain(client: TestClient) -> None:
    body = recommend(client, k=5, user={"user_id": "u00008"}, options={"include_reasons": True, "explain": "summary"})
    top = body["items"][0]
    signal_keys = {"pop", "cooc", "implicit", "session", "content", "knn"}
    assert "reasons" in top and set(top["explain"]["signals"]) == signal_keys
    contributing = {
        "recent_popularity": "pop",
        "co_visitation": "cooc",
        "session_sequence": "session",
        "content_similarity": "content",
        "collaborative": "implicit",
        "collaborative_similarity": "knn",
    }
    assert {contributing[r] for r in top["reasons"]} == {s for s, v in top["explain"]["signals"].items() if v > 0}


def test_a_user_with_history_gets_personal_items_and_no_seen_ones(client: TestClient, demo_store) -> None:
    warm = recommend(client, k=10, user={"user_id": "u00008"})
    cold = recommend(client, k=10, user={"user_id": "never-seen"})
    assert ids(warm) != ids(cold)
    signals = client.app.state.service.reader.signals(Scope("demo", "home")).signals
    popularity = signals.popular(10)
    assert ids(cold) == [s.item_id for s in popularity]  # no history, no anchors: popularity
    seen = {i.item_id for i in signals.user_items("u00008")}
    assert seen and not seen & set(ids(warm))


def test_anchors_and_candidate_lists(client: TestClient) -> None:
    anchored = recommend(client, k=5, user={"session_id": "s"}, anchors={"item_ids": ["i00042"]})
    assert "i00042" not in ids(anchored)
    excluded = recommend(
        client,
        k=5,
        user={"session_id": "s"},
        anchors={"item_ids": ["i00042"]},
        candidates={"exclude_ids": [ids(anchored)[0]]},
    )
    assert ids(anchored)[0] not in ids(excluded)
    allow = recommend(client, k=5, user={"session_id": "s"}, candidates={"include_ids": ["i00003", "i00004"]})
    assert set(ids(allow)) <= {"i00003", "i00004"}


@pytest.mark.parametrize(
    ("explain", "normalized"), [(" Summary ", "summary"), ("FULL", "full"), ("", "none"), (" ", "none")]
)
def test_explain_is_trimmed_and_lower_cased_and_blank_is_none(
    client: TestClient, explain: str, normalized: str
) -> None:
    body = {"surface": "home", **U, "options": {"explain": explain}, "context": {"now": ""}}
    response = client.post("/v1/recommend/validate", json=body, headers=DEMO)
    assert response.status_code == 200, response.text
    assert response.json()["normalized_request"]["options"]["explain"] == normalized
    served = recommend(client, k=2, **{**U, "options": {"explain": explain}, "context": {"now": ""}})
    assert all(("explain" in item) == (normalized != "none") for item in served["items"])


def test_validate_normalizes_without_ranking(client: TestClient) -> None:
    response = client.post(
        "/v1/recommend/validate",
        headers={**DEMO, "X-Request-Id": "req-1"},
        json={
            "surface": " home ",
            "user": {"user_id": " u_1 "},
            "constraints": {"required_tags": [" Brand:Nike ", "brand:nike", ""]},
        },
    )
    body = response.json()
    assert response.status_code == 200 and response.headers["X-Request-Id"] == "req-1"
    assert body["normalized_request"] == {
        "surface": "home",
        "segment": "default",
        "k": 20,
        "user": {"user_id": "u_1"},
        "constraints": {"required_tags": ["brand:nike"], "forbidden_tags": [], "max_per_tag": {}},
        "options": {"include_reasons": False, "explain": "none", "include_trace": False, "seed": 0},
    }
    assert body["meta"]["segment"] == "default" and len(body["warnings"]) == 3


def test_similar_known_and_unknown_items(client: TestClient) -> None:
    known = client.post("/v1/similar", json={"surface": "home", "item_id": "i00042", "k": 5}, headers=DEMO).json()
    assert len(known["items"]) == 5 and "i00042" not in ids(known)
    unknown = client.post("/v1/similar", json={"surface": "home", "item_id": "nope", "k": 5}, headers=DEMO)
    assert unknown.status_code == 200 and unknown.json()["items"] == []


def test_license_in_the_seeds_shape_needs_no_identity(client: TestClient) -> None:
    response = client.get("/v1/license")
    body = response.json()
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    assert body["status"] == "unknown" and body["commercial"] is False  # no signed licence gates this product
    assert (body["product"], body["version"]) == ("recsys-serverless", client.app.version)
    assert "security" not in client.app.openapi()["paths"]["/v1/license"]["get"]


def test_health_ready_version_and_openapi(client: TestClient, tmp_path: Path) -> None:
    assert client.get("/healthz").json() == {"status": "healthy"}
    assert client.get("/readyz").status_code == 200
    assert set(client.get("/version").json()) == {"version", "commit", "date"}
    spec = client.get("/openapi.json").json()
    assert {
        "/v1/recommend",
        "/v1/recommend/validate",
        "/v1/similar",
        "/v1/admin/tenants/{tenant_id}/config",
        "/v1/admin/tenants/{tenant_id}/rules",
        "/v1/admin/tenants/{tenant_id}/cache/invalidate",
        "/v1/admin/tenants/{tenant_id}/audit",
        "/livez",
        "/health",
    } <= set(spec["paths"])
    audit_parameters = spec["paths"]["/v1/admin/tenants/{tenant_id}/audit"]["get"]["parameters"]
    assert [p["name"] for p in audit_parameters] == ["tenant_id", "limit", "before", "before_id"]
    assert client.get("/docs").status_code == 200
    (tmp_path / "file").write_text("not a directory")
    broken = ServeSettings(RECSYS_STORE=f"file://{tmp_path / 'file'}")
    unready = TestClient(create_app(broken, AuthSettings(DEV_AUTH_ENABLED=True)))
    assert unready.get("/readyz").status_code == 503


# --- every documented error -----------------------------------------------------------------------------------------

U = {"user": {"user_id": "u"}}
ERRORS = [
    (b'{"surface": "home"', 400, "RECSYS_INVALID_REQUEST", None),
    (b'{"surface": "home", "user": {"user_id": "u"}} {}', 400, "RECSYS_INVALID_REQUEST", "unexpected trailing data"),
    ({"surface": "home", "foo": 1, **U}, 400, "RECSYS_INVALID_REQUEST", 'unknown field "foo"'),
    # bodies json.loads cannot decode at all (each was a 500): not UTF-8, a 4,301-digit number, deep nesting
    (b'{"surface": "h\xffome"}', 400, "RECSYS_INVALID_REQUEST", "invalid JSON: the body is not UTF-8"),
    (
        b'{"surface": "home", "k": ' + b"9" * 4301 + b"}",
        400,
        "RECSYS_INVALID_REQUEST",
        "invalid JSON: a number is too long to parse",
    ),
    (
        b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        400,
        "RECSYS_INVALID_REQUEST",
        "invalid JSON: nested too deeply to parse",
    ),
    # numbers JSON cannot carry (each passed validation and was a 500 once it reached the blend): NaN, infinities,
    # a literal beyond a double's range; and a \\u escape that is half a surrogate pair (a 500 when echoed)
    *(
        (
            b'{"surface": "home", "user": {"user_id": "u"}, "weights": {"pop": %s}}' % number,
            400,
            "RECSYS_INVALID_REQUEST",
            detail,
        )
        for number, detail in (
            (b"NaN", "invalid JSON: NaN is not a JSON number"),
            (b"Infinity", "invalid JSON: Infinity is not a JSON number"),
            (b"-Infinity", "invalid JSON: -Infinity is not a JSON number"),
            (b"1e400", "invalid JSON: the number 1e400 is out of a double's range"),
            (b"-1E+999", "invalid JSON: the number -1E+999 is out of a double's range"),
        )
    ),
    *(  # the same numbers as strings, which the models' lenient floats accept: refused by the schema
        (
            {"surface": "home", "weights": {"session": number}, **U},
            400,
            "RECSYS_INVALID_REQUEST",
            "weights.session: Input should be a finite number",
        )
        for number in ("NaN", "Infinity", "-inf", "1e400")
    ),
    (
        b'{"surface": "home", "user": {"user_id": "\\ud800"}}',
        400,
        "RECSYS_INVALID_REQUEST",
        "invalid JSON: a \\u escape is an unpaired surrogate",
    ),
    (
        b'{"surface": "home", "user": {"user_id": "\xed\xa0\x80"}}',
        400,
        "RECSYS_INVALID_REQUEST",
        "invalid JSON: the body is not UTF-8",
    ),
    ({**U}, 400, "RECSYS_INVALID_REQUEST", "surface is required"),
    ({"surface": "../x", **U}, 400, "RECSYS_INVALID_REQUEST", "surface contains invalid path segment"),
    (
        {"surface": "home", "segment": "a/b", **U},
        400,
        "RECSYS_INVALID_REQUEST",
        "segment contains invalid path segment",
    ),
    ({"surface": "home", "k": 0, **U}, 400, "RECSYS_INVALID_REQUEST", "k must be between 1 and 200"),
    ({"surface": "home", "k": 201, **U}, 400, "RECSYS_INVALID_REQUEST", "k must be between 1 and 200"),
    ({"surface": "home"}, 422, "RECSYS_UNPROCESSABLE_ENTITY", "user_id or anonymous_id or session_id is required"),
    (
        {"surface": "home", "context": {"now": "yesterday"}, **U},
        400,
        "RECSYS_INVALID_REQUEST",
        "context.now must be RFC3339",
    ),
    (  # the calendar's edge: before year 1 once converted to UTC (was a 500)
        {"surface": "home", "context": {"now": "0001-01-01T00:00:00+01:00"}, **U},
        400,
        "RECSYS_INVALID_REQUEST",
        "context.now must be RFC3339",
    ),
    (
        {"surface": "home", "anchors": {"item_ids": [f"i{n}" for n in range(51)]}, **U},
        400,
        "RECSYS_INVALID_REQUEST",
        "anchors.item_ids exceeds limit",
    ),
    (
        {"surface": "home", "anchors": {"item_ids": ["a", "b"], "max_anchors": 1}, **U},
        422,
        "RECSYS_UNPROCESSABLE_ENTITY",
        "anchors.max_anchors must be >= number of anchor items",
    ),
    (
        {"surface": "home", "anchors": {"item_ids": [], "max_anchors": 0}, **U},
        400,
        "RECSYS_INVALID_REQUEST",
        "anchors.max_anchors must be positive",
    ),
    (
        {"surface": "home", "candidates": {"include_ids": [f"i{n}" for n in range(5001)]}, **U},
        400,
        "RECSYS_INVALID_REQUEST",
        "candidates.include_ids exceeds limit",
    ),
    (
        {"surface": "home", "candidates": {"exclude_ids": [f"i{n}" for n in range(5001)]}, **U},
        400,
        "RECSYS_INVALID_REQUEST",
        "candidates.exclude_ids exceeds limit",
    ),
    (
        {"surface": "home", "constraints": {"required_tags": [f"t{n}" for n in range(201)]}, **U},
        400,
        "RECSYS_INVALID_REQUEST",
        "constraints tags exceed limit",
    ),
    (
        {"surface": "home", "constraints": {"max_per_tag": {"a": -1}}, **U},
        422,
        "RECSYS_UNPROCESSABLE_ENTITY",
        "constraints.max_per_tag values must be non-negative",
    ),
    (
        {"surface": "home", "weights": {"pop": -1}, **U},
        422,
        "RECSYS_UNPROCESSABLE_ENTITY",
        "weights must be non-negative",
    ),
    *(
        (
            {"surface": "home", "constraints": {"max_per_tag": {"x": cap}}, **U},
            400,
            "RECSYS_INVALID_REQUEST",
            "constraints.max_per_tag.x: Input should be a valid integer",
        )
        for cap in (False, "2", 2.5, None)  # the seed's map[string]int refuses each (false was stored as 0)
    ),
    (
        {"surface": "home", "options": {"explain": "all"}, **U},
        422,
        "RECSYS_UNPROCESSABLE_ENTITY",
        "options.explain must be one of none, summary, full",
    ),
    (
        {"surface": "home", "k": 51, "options": {"explain": "summary"}, **U},
        422,
        "RECSYS_EXPLAIN_TOO_LARGE",
        "explain payload too large",
    ),
]


@pytest.mark.parametrize(("body", "status", "code", "detail"), ERRORS)
def test_every_documented_recommend_error(client: TestClient, body, status: int, code: str, detail) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(
        "/v1/recommend", content=content, headers={**DEMO, "Content-Type": "application/json", "X-Request-Id": "r-9"}
    )
    problem = response.json()
    assert (response.status_code, problem["code"], problem["status"]) == (status, code, status)
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["request_id"] == "r-9" and problem["instance"] == "/v1/recommend"
    assert problem["type"] == "https://errors.recsys.example/problem/" + code.lower().replace("_", "-")
    if detail:
        assert problem["detail"] == detail


def test_transport_errors(client: TestClient) -> None:
    wrong_type = client.post("/v1/recommend", content=b"{}", headers={**DEMO, "Content-Type": "text/plain"})
    assert (wrong_type.status_code, wrong_type.json()["code"]) == (415, "RECSYS_UNSUPPORTED_MEDIA_TYPE")
    too_big = client.post(
        "/v1/recommend", content=b" " * (1 << 20 + 1), headers={**DEMO, "Content-Type": "application/json"}
    )
    assert (too_big.status_code, too_big.json()["code"]) == (413, "RECSYS_PAYLOAD_TOO_LARGE")

    def chunks(total: int):  # no Content-Length: sent with Transfer-Encoding: chunked
        for _ in range(total // 65536):
            yield b" " * 65536

    chunked = client.post(
        "/v1/recommend", content=chunks(2 << 20), headers={**DEMO, "Content-Type": "application/json"}
    )
    assert (chunked.status_code, chunked.json()["code"]) == (413, "RECSYS_PAYLOAD_TOO_LARGE")
    assert chunked.headers["content-type"] == "application/problem+json" and chunked.headers["x-request-id"]
    small = client.post(
        "/v1/recommend",
        content=iter([b'{"surface": "home", "k": 3, ', b'"user": {"user_id": "u00008"}}']),
        headers={**DEMO, "Content-Type": "application/json"},
    )
    assert small.status_code == 200, small.text  # a chunked body within the limit is read as usual
    missing = client.get("/v1/nothing", headers=DEMO)
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    similar = client.post("/v1/similar", json={"surface": "home"}, headers=DEMO)
    assert (similar.status_code, similar.json()["detail"]) == (400, "item_id is required")


@pytest.mark.parametrize("length", [b"abc", b"1e3", b"-1", b"\xff"])
def test_a_content_length_that_is_not_a_length_is_400(client: TestClient, length: bytes) -> None:
    """Sent to the app directly: HTTP clients refuse to send such a header, a hand-made Lambda event need not."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/recommend",
        "raw_path": b"/v1/recommend",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-length", length), (b"content-type", b"application/json"), (b"x-dev-org-id", b"demo")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(client.app(scope, receive, send))  # was a ValueError out of the middleware: a 500
    problem = json.loads(sent[1]["body"])
    assert (sent[0]["status"], problem["code"]) == (400, "RECSYS_INVALID_REQUEST")
    assert problem["detail"] == "Content-Length must be a non-negative integer"


def test_explain_full_needs_the_admin_role(service: RecommendService) -> None:
    client = TestClient(create_app(service.settings, AuthSettings(DEV_AUTH_ENABLED=True), service))
    response = client.post("/v1/recommend", json={"surface": "home", **U, "options": {"explain": "full"}}, headers=DEMO)
    assert (response.status_code, response.json()["code"], response.json()["detail"]) == (
        403,
        "RECSYS_FORBIDDEN",
        "insufficient scope",
    )


def test_auth_errors(service: RecommendService) -> None:
    client = TestClient(create_app(service.settings, AuthSettings(DEV_AUTH_ENABLED=True), service))
    none = client.post("/v1/recommend", json={"surface": "home", **U})
    assert (none.status_code, none.json()["code"]) == (401, "RECSYS_AUTH_REQUIRED")
    mismatch = client.post("/v1/recommend", json={"surface": "home", **U}, headers={**DEMO, "X-Org-Id": "acme"})
    assert (mismatch.status_code, mismatch.json()["code"]) == (403, "RECSYS_TENANT_SCOPE_MISMATCH")
    no_dev = TestClient(create_app(service.settings, AuthSettings(), service))
    assert no_dev.post("/v1/recommend", json={"surface": "home", **U}, headers=DEMO).status_code == 401
    viewer_put = client.put("/v1/admin/tenants/demo/config", json={}, headers=DEMO)  # dev callers have no roles
    assert (viewer_put.status_code, viewer_put.json()["code"]) == (403, "RECSYS_FORBIDDEN")


# --- admin: config, rules, cache --------------------------------------------------------------------------------


def test_config_get_put_with_etag_and_if_match(client: TestClient) -> None:
    base = "/v1/admin/tenants/demo/config"
    missing = client.get(base, headers=DEMO)
    assert (missing.status_code, missing.json()["code"]) == (404, "RECSYS_CONFIG_NOT_FOUND")
    created = client.put(
        base, json={"weights": {"pop": 1.0, "cooc": 0, "implicit": 0, "session": 0, "content": 0}}, headers=DEMO
    )
    etag = created.headers["ETag"]
    assert created.status_code == 200 and created.json()["config_version"] == etag.strip('"')
    assert client.get(base, headers=DEMO).headers["ETag"] == etag
    stale = client.put(base, json={"weights": {"pop": 2}}, headers={**DEMO, "If-Match": '"0000"'})
    assert (stale.status_code, stale.json()["code"]) == (409, "RECSYS_VERSION_MISMATCH")
    ok = client.put(base, json={"weights": {"pop": 2}}, headers={**DEMO, "If-Match": etag})
    assert ok.status_code == 200 and ok.headers["ETag"] != etag
    invalid = client.put(base, json={"weights": {"pop": -1}}, headers=DEMO)
    assert (invalid.status_code, invalid.json()["code"]) == (422, "RECSYS_INVALID_CONFIG")
    not_json = client.put(base, content=b"{", headers={**DEMO, "Content-Type": "application/json"})
    assert (not_json.status_code, not_json.json()["code"]) == (400, "RECSYS_INVALID_CONFIG")
    for undecodable in (b'{"a": "\xff"}', b'{"a": ' + b"9" * 4301 + b"}", b"[" * 5000 + b"]" * 5000):
        refused = client.put(base, content=undecodable, headers={**DEMO, "Content-Type": "application/json"})
        assert (refused.status_code, refused.json()["code"]) == (400, "RECSYS_INVALID_CONFIG")


def test_config_weights_change_the_ranking(client: TestClient) -> None:
    before = recommend(client, k=10, user={"user_id": "u00008"})
    client.put(
        "/v1/admin/tenants/demo/config",
        headers=DEMO,
        json={"weights": {"pop": 1.0, "cooc": 0, "implicit": 0, "session": 0, "content": 0, "knn": 0}},
    )
    after = recommend(client, k=10, user={"user_id": "u00008"})
    assert ids(after) != ids(before) and after["meta"]["config_version"]
    signals = client.app.state.service.reader.signals(Scope("demo", "home")).signals
    popular = signals.popular(60)
    seen = {i.item_id for i in signals.user_items("u00008")}
    assert ids(after) == [s.item_id for s in popular if s.item_id not in seen][:10]


def test_rules_pin_boost_block(client: TestClient) -> None:
    base = "/v1/admin/tenants/demo/rules"
    before = ids(recommend(client, k=5, user={"user_id": "never-seen"}))
    rules = [
        {"rule_id": "pin-1", "action": "pin", "target_type": "item", "item_ids": ["i00099"], "surface": "home"},
        {"rule_id": "block-1", "action": "block", "target_type": "item", "item_ids": [before[0]]},
    ]
    put = client.put(base, json=rules, headers=DEMO)
    assert put.status_code == 200 and put.json()["rules"] == rules
    after = recommend(client, k=5, user={"user_id": "never-seen"}, options={"include_reasons": True})
    assert ids(after)[0] == "i00099" and before[0] not in ids(after)
    assert "rule.pin[pin-1]" in after["items"][0]["reasons"] and after["meta"]["rules_version"]
    invalid = client.put(base, json="pin everything", headers=DEMO)
    assert (invalid.status_code, invalid.json()["code"]) == (422, "RECSYS_INVALID_RULES")
    # the seed's AdminRulesPayload: an array of objects; other items are refused, so GET always answers one
    for items in ([rules[0], 1], [None], ["pin"], [[]]):
        refused = client.put(base, json=items, headers=DEMO)
        assert (refused.status_code, refused.json()["detail"]) == (422, "rules array items must be JSON objects")
    assert client.get(base, headers=DEMO).json()["rules"] == rules


def test_cache_invalidate(client: TestClient) -> None:
    url = "/v1/admin/tenants/demo/cache/invalidate"
    done = client.post(url, json={"targets": ["config", "rules", "manifest"], "surface": "home"}, headers=DEMO)
    assert done.status_code == 200 and done.json()["status"] == "applied"
    assert set(done.json()["invalidated"]) == {"config", "rules", "manifest"}
    missing = client.post(url, json={}, headers=DEMO)
    assert (missing.status_code, missing.json()["code"]) == (400, "RECSYS_INVALID_TARGETS")
    unknown = client.post(url, json={"targets": ["everything"]}, headers=DEMO)
    assert (unknown.status_code, unknown.json()["code"]) == (422, "RECSYS_INVALID_TARGETS")
    not_utf8 = client.post(url, content=b'{"targets": ["\xff"]}', headers={**DEMO, "Content-Type": "application/json"})
    assert (not_utf8.status_code, not_utf8.json()["code"]) == (400, "RECSYS_INVALID_TARGETS")
    odd = client.post(url, json={"targets": ["config"], "surface": {}}, headers=DEMO)  # was 200, echoing {}
    assert (odd.status_code, odd.json()["detail"]) == (400, "surface must be a string")


def test_admin_routes_take_no_kind_parameter(client: TestClient) -> None:
    base = "/v1/admin/tenants/demo"
    assert client.put(f"{base}/config?kind=rules", json={"weights": {"pop": 0.5}}, headers=DEMO).status_code == 200
    assert (
        client.put(f"{base}/rules?kind=config", json=[{"action": "pin", "item_ids": ["i1"]}], headers=DEMO).status_code
        == 200
    )
    config, rules = client.get(f"{base}/config", headers=DEMO).json(), client.get(f"{base}/rules", headers=DEMO).json()
    assert config["config"] == {"weights": {"pop": 0.5}} and rules["rules"] == [{"action": "pin", "item_ids": ["i1"]}]
    for kind in ("config", "rules"):  # an unknown query parameter, ignored like on every route (was a 500 or a swap)
        for query in ("?kind=x", "?kind=config", "?kind=rules"):
            assert client.get(f"{base}/{kind}{query}", headers=DEMO).json() == (config if kind == "config" else rules)
    spec = client.get("/openapi.json").json()
    for kind in ("config", "rules"):
        for method in ("get", "put"):
            assert [
                p["name"] for p in spec["paths"][f"/v1/admin/tenants/{{tenant_id}}/{kind}"][method]["parameters"]
            ] == ["tenant_id"]
    client.put(f"{base}/config", json={}, headers=DEMO)
    client.put(f"{base}/rules", json=[], headers=DEMO)


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_admin_documents_with_numbers_json_cannot_carry_are_400(client: TestClient, number: bytes) -> None:
    for kind, body, code in (
        ("config", b'{"weights": {"pop": %s}}', "RECSYS_INVALID_CONFIG"),
        ("config", b'{"flags": {"ratio": %s}}', "RECSYS_INVALID_CONFIG"),  # free-form: was stored, then a 500
        ("rules", b'[{"action": "boost", "item_ids": ["i1"], "boost_value": %s}]', "RECSYS_INVALID_RULES"),
    ):
        response = client.put(
            f"/v1/admin/tenants/demo/{kind}",
            content=body % number,
            headers={**DEMO, "Content-Type": "application/json"},
        )
        assert (response.status_code, response.json()["code"]) == (400, code), response.text
    invalidate = client.post(
        "/v1/admin/tenants/demo/cache/invalidate",
        content=b'{"targets": ["manifest"], "surface": %s}' % number,
        headers={**DEMO, "Content-Type": "application/json"},
    )
    assert (invalidate.status_code, invalidate.json()["code"]) == (400, "RECSYS_INVALID_TARGETS")


def test_scores_past_a_doubles_range_saturate(client: TestClient) -> None:
    huge = 1e308  # finite weights and boosts whose blend or compounding overflows (was an infinite score: a 500)
    base = "/v1/admin/tenants/demo"
    try:
        assert (
            client.put(
                f"{base}/config", json={"weights": dict.fromkeys(("cooc", "knn", "content"), huge)}, headers=DEMO
            ).status_code
            == 200
        )
        boosts = [{"action": "boost", "item_ids": ["i00001"], "boost_value": huge}] * 2
        assert (
            client.put(
                f"{base}/rules",
                json=boosts + [{"action": "boost", "tags": ["brand:b1"], "boost_value": -huge}],
                headers=DEMO,
            ).status_code
            == 200
        )
        weights = dict.fromkeys(("pop", "cooc", "implicit", "session", "content", "knn"), huge)
        for result in (
            recommend(client, user={"user_id": "u00017"}, weights=weights, options={"explain": "full"}),
            client.post("/v1/similar", json={"surface": "home", "item_id": "i00042"}, headers=DEMO).json(),
        ):
            scores = [item["score"] for item in result["items"]]
            assert scores and all(abs(score) <= sys.float_info.max for score in scores)
    finally:
        client.put(f"{base}/config", json={}, headers=DEMO)
        client.put(f"{base}/rules", json=[], headers=DEMO)


# --- manifests and caches ---------------------------------------------------------------------------------------


def test_missing_and_incompatible_manifests(client: TestClient, demo_store: FileSystemStore) -> None:
    empty = recommend(client, headers=ACME, user={"user_id": "u"})
    assert empty["items"] == [] and empty["warnings"][-1]["code"] == "SIGNAL_UNAVAILABLE"
    demo_store.put(paths.current_manifest("broken", "home"), b'{"v": 2}')
    broken = client.post("/v1/recommend", json={"surface": "home", **U}, headers={"X-Dev-Org-Id": "broken"})
    assert (broken.status_code, broken.json()["code"]) == (422, "RECSYS_ARTIFACT_INCOMPATIBLE")


def test_manifest_ttl_invalidate_and_stale_if_error(
    client: TestClient, demo_store: FileSystemStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = recommend(client, user={"user_id": "u00008"})["meta"]["manifest_version"]
    pointer = paths.current_manifest("demo", "home")
    original = demo_store.get(pointer).data
    manifest = json.loads(original)
    manifest["manifest_version"] = "f" * 64
    demo_store.put(pointer, json.dumps(manifest).encode())
    try:
        assert recommend(client, user={"user_id": "u00008"})["meta"]["manifest_version"] == first  # within the TTL
        clock.now += 61
        assert recommend(client, user={"user_id": "u00008"})["meta"]["manifest_version"] == "f" * 64  # TTL expired
        demo_store.put(pointer, original)
        client.post("/v1/admin/tenants/demo/cache/invalidate", json={"targets": ["manifest"]}, headers=DEMO)
        assert recommend(client, user={"user_id": "u00008"})["meta"]["manifest_version"] == first  # invalidated

        def unreachable(self, key):
            raise StoreError("connection reset")

        clock.now += 61
        monkeypatch.setattr(FileSystemStore, "get", unreachable)
        stale = recommend(client, user={"user_id": "u00008"})
        assert stale["meta"]["manifest_version"] == first and stale["items"]
        assert "MANIFEST_STALE" in [w["code"] for w in stale["warnings"]]
    finally:
        monkeypatch.undo()
        demo_store.put(pointer, original)


def _serve_with_broken(store: FileSystemStore, surface: str, broken: dict[str, bytes | None]) -> None:
    """Publish demo/home's manifest again as demo/`surface`, with each kind of `broken` pointing at a damaged copy of
    its real artifact: the file truncated to half (None) or the given bytes."""
    manifest = json.loads(store.get(paths.current_manifest("demo", "home")).data)
    for kind, body in broken.items():
        real = store.get(store.key_of(manifest["current"][kind])).data
        key = f"artifacts/demo/{surface}/{kind}/damaged.parquet"
        store.put(key, real[: len(real) // 2] if body is None else body)
        manifest["current"][kind] = store.url(key)
    manifest["surface"] = surface
    store.put(paths.current_manifest("demo", surface), json.dumps(manifest).encode())


def test_a_corrupt_artifact_is_skipped_with_a_warning_and_read_once(
    client: TestClient, demo_store: FileSystemStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    home = json.loads(demo_store.get(paths.current_manifest("demo", "home")).data)
    popularity = demo_store.get(demo_store.key_of(home["current"]["popularity"])).data  # valid Parquet, wrong schema
    _serve_with_broken(demo_store, "broken-cooc", {"cooc": None, "session_seq": popularity})
    reads: list[str] = []
    real_get = FileSystemStore.get
    monkeypatch.setattr(FileSystemStore, "get", lambda self, key: reads.append(key) or real_get(self, key))
    body = {"user": {"user_id": "u00017"}, "anchors": {"item_ids": ["i00042"]}, "segment": "default", "k": 20}
    with caplog.at_level("WARNING", logger="recsys.serve.reader"):
        first = recommend(client, surface="broken-cooc", **body)
    second = recommend(client, surface="broken-cooc", **body)
    for result in (first, second):  # served from the other kinds, the broken ones named
        assert len(result["items"]) == 20 and result["meta"]["manifest_version"]
        assert [(w["code"], w["detail"]) for w in result["warnings"]] == [
            ("DEFAULT_APPLIED", "anchors.max_anchors defaulted to 50"),
            ("DEFAULT_APPLIED", "options defaulted"),
            ("SIGNAL_UNAVAILABLE", "cooc unavailable: artifact unreadable"),
            ("SIGNAL_UNAVAILABLE", "session unavailable: artifact unreadable"),
        ]
    assert ids(first) == ids(second)
    damaged = [key for key in reads if key.endswith("damaged.parquet")]
    assert sorted(damaged) == [
        "artifacts/demo/broken-cooc/cooc/damaged.parquet",
        "artifacts/demo/broken-cooc/session_seq/damaged.parquet",
    ]
    assert sorted(record.kind for record in caplog.records if "unreadable" in record.getMessage()) == [  # type: ignore[attr-defined]
        "cooc",
        "session_seq",
    ]
    similar = client.post("/v1/similar", json={"surface": "broken-cooc", "item_id": "i00042"}, headers=DEMO).json()
    assert similar["items"] and ("SIGNAL_UNAVAILABLE", "cooc unavailable: artifact unreadable") in [
        (w["code"], w["detail"]) for w in similar["warnings"]
    ]


def test_a_request_only_a_corrupt_artifact_could_serve_gets_no_items_and_a_warning(
    client: TestClient, demo_store: FileSystemStore
) -> None:
    _serve_with_broken(
        demo_store, "broken-all", {"popularity": None, "cooc": None, "item_knn": None, "content_sim": None}
    )
    for attempt in range(2):  # the failure, then its memo: the same answer
        cold = recommend(client, surface="broken-all", segment="default", k=5, options={}, user={"user_id": "nobody"})
        assert cold["items"] == [] and cold["warnings"] == [
            {"code": "SIGNAL_UNAVAILABLE", "detail": "popularity unavailable: artifact unreadable"}
        ], attempt
        similar = client.post(
            "/v1/similar",
            json={"surface": "broken-all", "segment": "default", "k": 5, "item_id": "i00042", "options": {}},
            headers=DEMO,
        )
        assert similar.status_code == 200 and similar.json()["items"] == []
        assert similar.json()["warnings"] == [
            {"code": "SIGNAL_UNAVAILABLE", "detail": "similarity signals unavailable"}
        ]


# --- tenant isolation -------------------------------------------------------------------------------------------


def test_no_route_reads_another_tenants_data(client: TestClient) -> None:
    client.put("/v1/admin/tenants/demo/config", json={"weights": {"pop": 1}}, headers=DEMO)
    client.put("/v1/admin/tenants/demo/rules", json=[{"action": "pin", "item_ids": ["i00001"]}], headers=DEMO)
    # acme has no manifest, config or rules of its own: it must see none of demo's
    assert recommend(client, headers=ACME, user={"user_id": "u00008"})["items"] == []
    similar = client.post("/v1/similar", json={"surface": "home", "item_id": "i00042"}, headers=ACME).json()
    assert similar["items"] == [] and similar["meta"]["tenant_id"] == "acme"
    for kind in ("config", "rules"):
        assert client.get(f"/v1/admin/tenants/acme/{kind}", headers=ACME).status_code == 404
        for method in ("get", "put"):
            kwargs = {"json": {}} if method == "put" else {}
            crossed = getattr(client, method)(f"/v1/admin/tenants/demo/{kind}", headers=ACME, **kwargs)
            assert (crossed.status_code, crossed.json()["code"]) == (403, "RECSYS_TENANT_SCOPE_MISMATCH")
    crossed = client.post("/v1/admin/tenants/demo/cache/invalidate", json={"targets": ["config"]}, headers=ACME)
    assert crossed.status_code == 403
    # the manifest template only ever names the caller's own tenant
    assert client.app.state.service.reader.signals(Scope("acme", "home")) is None


# --- Mangum: API Gateway HTTP API v2.0 events through the real handler -----------------------------------------------


def test_api_gateway_events_through_the_lambda_handler(demo_store: FileSystemStore, monkeypatch) -> None:
    monkeypatch.setenv("RECSYS_STORE", demo_store.uri)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.setenv("AUTH_ROLE_CLAIMS", "roles")  # events/api-admin-config.json carries its roles there
    spec = importlib.util.spec_from_file_location("recommend_app", ROOT / "functions" / "recommend" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def call(name: str) -> dict:
        event = json.loads((ROOT / "events" / name).read_text())
        return module.handler(event, None)

    recommended = call("api-recommend.json")
    body = json.loads(recommended["body"])
    assert recommended["statusCode"] == 200 and len(body["items"]) == 5 and body["meta"]["tenant_id"] == "demo"
    assert recommended["headers"]["x-request-id"] == "req-sample-1"
    assert json.loads(call("api-similar.json")["body"])["items"]
    assert json.loads(call("api-healthz.json")["body"]) == {"status": "healthy"}
    admin = call("api-admin-config.json")
    assert admin["statusCode"] == 200 and json.loads(admin["body"])["config"]["weights"]["pop"] == 0.3
    event = json.loads((ROOT / "events" / "api-recommend.json").read_text())
    event["requestContext"]["authorizer"]["jwt"]["claims"]["tenant_id"] = "acme"
    event["body"] = json.dumps({"surface": "home", "user": {}})
    problem = module.handler(event, None)
    assert problem["statusCode"] == 422 and not problem.get("isBase64Encoded")
    assert json.loads(problem["body"])["code"] == "RECSYS_UNPROCESSABLE_ENTITY"


# --- decode errors: every body-taking route, under the ASGI app and through Mangum -----------------------------------

BODY_ROUTES = [
    ("POST", "/v1/recommend", "RECSYS_INVALID_REQUEST"),
    ("POST", "/v1/recommend/validate", "RECSYS_INVALID_REQUEST"),
    ("POST", "/v1/similar", "RECSYS_INVALID_REQUEST"),
    ("PUT", "/v1/admin/tenants/demo/config", "RECSYS_INVALID_CONFIG"),
    ("PUT", "/v1/admin/tenants/demo/rules", "RECSYS_INVALID_RULES"),
    ("POST", "/v1/admin/tenants/demo/cache/invalidate", "RECSYS_INVALID_TARGETS"),
]
OVER_LIMIT = b'{"k": ' + b" " * (1 << 20) + b"1}"
# (body, content type, status, code; None: the route's own 400 code)
DECODE_ERRORS = [
    (b'{"surface": "h\xffome"}', "application/json", 400, None),
    (b'{"surface": "home"', "application/json", 400, None),
    (b'{"surface": NaN}', "application/json", 400, None),
    (b'{"surface": "home"}', "text/plain", 415, "RECSYS_UNSUPPORTED_MEDIA_TYPE"),
    (b'{"surface": "home"}', "application/x-www-form-urlencoded", 415, "RECSYS_UNSUPPORTED_MEDIA_TYPE"),
    (OVER_LIMIT, "application/json", 413, "RECSYS_PAYLOAD_TOO_LARGE"),
]


def _mangum_handler(demo_store: FileSystemStore, monkeypatch):
    monkeypatch.setenv("RECSYS_STORE", demo_store.uri)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.setenv("AUTH_ROLE_CLAIMS", "roles")
    spec = importlib.util.spec_from_file_location("recommend_app", ROOT / "functions" / "recommend" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


@pytest.mark.parametrize(("method", "path", "route_code"), BODY_ROUTES)
def test_decode_errors_are_problems_on_every_body_route(
    client: TestClient, demo_store: FileSystemStore, monkeypatch, method: str, path: str, route_code: str
) -> None:
    handler = _mangum_handler(demo_store, monkeypatch)
    template = json.loads((ROOT / "events" / "api-admin-config.json").read_text())
    for body, content_type, status, code in DECODE_ERRORS:
        expected = (status, code or route_code)
        asgi = client.request(method, path, content=body, headers={**DEMO, "Content-Type": content_type})
        assert (asgi.status_code, asgi.json()["code"]) == expected, (path, body[:30], asgi.text)
        assert asgi.headers["content-type"] == "application/problem+json"
        # API Gateway's events may carry no Content-Length: the checks must not depend on it
        for length in (None, str(len(body))):
            event = json.loads(json.dumps(template))
            event["rawPath"] = event["requestContext"]["http"]["path"] = path
            event["requestContext"]["http"]["method"] = method
            event["headers"]["content-type"] = content_type
            if length is not None:
                event["headers"]["content-length"] = length
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
            answer = handler(event, None)
            problem = json.loads(answer["body"])
            assert (answer["statusCode"], problem["code"]) == expected, (path, body[:30], length, problem)
            assert answer["headers"]["content-type"] == "application/problem+json"


def test_an_undeclared_method_gets_405_with_allow(client: TestClient) -> None:
    response = client.request("TRACE", "/health")
    assert response.status_code == 405
    assert response.json()["code"] == "RECSYS_METHOD_NOT_ALLOWED"
    assert response.headers["allow"] == "GET"
    assert client.put("/v1/recommend", json={}, headers=DEMO).headers["allow"] == "POST"


def test_allow_names_every_method_of_a_path(client: TestClient) -> None:
    response = client.request("DELETE", "/v1/admin/tenants/demo/config", headers=DEMO)
    assert response.status_code == 405 and response.headers["allow"] == "GET, PUT"
