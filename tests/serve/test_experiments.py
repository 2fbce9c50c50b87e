"""Experiments: the seed's HMAC assignment on fixed vectors, stickiness, traffic / surface / window rules, a given
variant kept; the variant applied, echoed in the meta and carried by the exposure record; config validation."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json

import pytest
from fastapi.testclient import TestClient

from recsys.serve.app import create_app
from recsys.serve.auth import AuthSettings
from recsys.serve.experiments import assign, in_traffic, pick
from recsys.serve.exposure import ExposureLog
from recsys.serve.reader import ArtifactReader
from recsys.serve.service import RecommendService
from recsys.serve.settings import ServeSettings
from recsys.serve.tenant_config import ExperimentConfig, TenantConfig
from recsys.serve.tenant_store import TenantDocuments
from recsys.store import FileSystemStore
from tests.serve.test_api import DEMO, demo_store  # noqa: F401 - the published sample store fixture

SALT = b"test-salt"
NOW = dt.datetime(2026, 5, 23, 12, 0, tzinfo=dt.UTC)
AUTH = AuthSettings(DEV_AUTH_ENABLED=True, AUTH_VIEWER_ROLE="", AUTH_OPERATOR_ROLE="", AUTH_ADMIN_ROLE="")


def seed_be64(salt: bytes, message: str) -> int:
    """Computed here independently: BE64(HMAC-SHA256(salt, message)[:8])."""
    digest = hmac.new(salt, message.encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], byteorder="big", signed=False)


def experiment(**fields) -> ExperimentConfig:
    return TenantConfig.parse({"experiments": [{"id": "home-ranker-v2", **fields}]}).experiments[0]


def test_assignment_matches_the_seeds_formula_on_fixed_vectors():
    exp = experiment(variants=["A", "B", "C"], traffic_percent=50)
    for subject in ("u_1", "u00017", "sess-456", "anon-123", "ü-ß"):
        traffic = seed_be64(SALT, f"traffic:home-ranker-v2:{subject}") % 10000 < 50 * 100
        variant = ["A", "B", "C"][seed_be64(SALT, f"home-ranker-v2:{subject}") % 3]
        assert in_traffic(SALT, "home-ranker-v2", subject, 50) is traffic
        assert pick(SALT, "home-ranker-v2", subject, exp.variants).name == variant
        got = assign(exp, "home-ranker-v2", None, subject, "home", NOW, SALT)
        assert got.variant == (variant if traffic else None)
    # one pinned vector, so that a change of the formula cannot hide behind the same change in both places
    assert seed_be64(b"", "e1:u1") == int.from_bytes(hmac.new(b"", b"e1:u1", hashlib.sha256).digest()[:8], "big")
    default = experiment()  # no variants: the seed's default A, B
    assert [v.name for v in default.variants] == ["A", "B"]
    assert (
        assign(default, "home-ranker-v2", "", "u_1", "home", NOW, SALT).variant
        == "AB"[seed_be64(SALT, "home-ranker-v2:u_1") % 2]
    )


def test_assignment_is_sticky_and_spreads_subjects():
    exp = experiment(variants=["A", "B"])
    first = {f"u{n}": assign(exp, exp.id, None, f"u{n}", "home", NOW, SALT).variant for n in range(400)}
    again = {f"u{n}": assign(exp, exp.id, None, f"u{n}", "home", NOW, SALT).variant for n in range(400)}
    assert first == again
    assert 150 < sum(v == "A" for v in first.values()) < 250


def test_unequal_weights_choose_by_weight_over_the_same_hash():
    exp = experiment(variants=[{"name": "control", "weight": 9}, {"name": "treatment", "weight": 1}])
    for n in range(200):
        bucket = seed_be64(SALT, f"home-ranker-v2:u{n}") % 10000
        expected = "control" if bucket < 9000 else "treatment"
        assert pick(SALT, exp.id, f"u{n}", exp.variants).name == expected
    zero = experiment(variants=[{"name": "off", "weight": 0}, {"name": "on", "weight": 2}])
    assert {pick(SALT, zero.id, f"u{n}", zero.variants).name for n in range(100)} == {"on"}


def test_traffic_surface_window_and_enabled_rules():
    subject = "u1"
    out = assign(experiment(traffic_percent=0), "home-ranker-v2", None, subject, "home", NOW, SALT)
    assert out.variant is None and out.applied is None
    assert assign(experiment(traffic_percent=100), "x", None, subject, "home", NOW, SALT).variant in ("A", "B")
    assert assign(experiment(enabled=False), "x", None, subject, "home", NOW, SALT).variant is None
    assert assign(experiment(surface="PDP"), "x", None, subject, "home", NOW, SALT).variant is None
    assert assign(experiment(surface="HOME"), "x", None, subject, "home", NOW, SALT).variant is not None
    later = experiment(starts_at="2026-05-23T12:00:01Z")
    ended = experiment(ends_at="2026-05-23T12:00:00Z")  # ends_at is exclusive
    within = experiment(starts_at="2026-05-23T12:00:00Z", ends_at="2026-05-24T00:00:00+00:00")
    assert assign(later, "x", None, subject, "home", NOW, SALT).variant is None
    assert assign(ended, "x", None, subject, "home", NOW, SALT).variant is None
    assert assign(within, "x", None, subject, "home", NOW, SALT).variant is not None
    assert assign(None, "unknown", None, subject, "home", NOW, SALT).variant is None  # not in the config
    assert assign(experiment(), "x", None, None, "home", NOW, SALT).variant is None  # no subject


def test_a_given_variant_is_kept_and_applied_only_while_active():
    exp = experiment(variants=["A", {"name": "B", "algo": "popularity"}])
    kept = assign(exp, exp.id, "B", "u1", "home", NOW, SALT)
    assert kept.variant == "B" and kept.applied is not None and kept.applied.algo == "popularity"
    unknown = assign(exp, exp.id, "Z", "u1", "home", NOW, SALT)
    assert unknown.variant == "Z" and unknown.applied is None
    stopped = assign(experiment(enabled=False, variants=["A", "B"]), exp.id, "B", "u1", "home", NOW, SALT)
    assert stopped.variant == "B" and stopped.applied is None  # rolled back: echoed, not applied


# ------------------------------------------------------------------------------------------------ through the API


class ListSink:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def deliver(self, lists, now) -> None:  # a batch: each served list's partition and lines
        for _, lines in lists:
            self.lines.extend(lines)


@pytest.fixture
def api(demo_store: FileSystemStore):  # noqa: F811
    sink = ListSink()
    log = ExposureLog(sink, flush_seconds=30)
    settings = ServeSettings(RECSYS_STORE=demo_store.uri, EXPERIMENT_ASSIGNMENT_SALT="test-salt")
    reader = ArtifactReader(demo_store, template=settings.manifest_template, manifest_ttl=60)
    service = RecommendService(
        settings=settings, store=demo_store, reader=reader, documents=TenantDocuments(demo_store), exposures=log
    )
    client = TestClient(create_app(settings, AUTH, service))
    yield client, log, sink
    client.put("/v1/admin/tenants/demo/config", json={}, headers=DEMO)
    log.close()


CONFIG = {
    "experiments": [
        {"id": "home-ranker-v2", "variants": ["control", {"name": "pop", "algo": "popularity"}]},
        {"id": "mmr", "variants": [{"name": "on", "diversity": {"mmr_lambda": 0.3}}, {"name": "off", "weight": 0}]},
    ]
}


def _recommend(client: TestClient, user: str, experiment: dict | None, request_id: str) -> dict:
    body = {"surface": "home", "k": 5, "user": {"user_id": user}}
    if experiment is not None:
        body["experiment"] = experiment
    response = client.post("/v1/recommend", json=body, headers={**DEMO, "X-Request-Id": request_id})
    assert response.status_code == 200, response.text
    return response.json()


def test_the_assigned_variant_is_applied_echoed_and_logged(api) -> None:
    client, log, sink = api
    assert client.put("/v1/admin/tenants/demo/config", json=CONFIG, headers=DEMO).status_code == 200
    users = [f"u{n:05d}" for n in range(1, 40)]
    expected = {u: ["control", "pop"][seed_be64(SALT, f"home-ranker-v2:{u}") % 2] for u in users}
    user_pop = next(u for u in users if expected[u] == "pop")
    user_control = next(u for u in users if expected[u] == "control")
    popular = _recommend(client, user_pop, {"id": "home-ranker-v2"}, "req-pop")
    control = _recommend(client, user_control, {"id": "home-ranker-v2"}, "req-control")
    plain = _recommend(client, user_control, None, "req-plain")
    assert popular["meta"]["experiment"] == {"id": "home-ranker-v2", "variant": "pop"}
    assert popular["meta"]["algo_version"].endswith(":popularity")
    assert [i["item_id"] for i in popular["items"]][:3] == ["i00001", "i00087", "i00019"]  # the popularity order
    assert control["meta"]["experiment"] == {"id": "home-ranker-v2", "variant": "control"}
    assert [i["item_id"] for i in control["items"]] == [i["item_id"] for i in plain["items"]]
    assert "experiment" not in plain["meta"]
    given = _recommend(client, user_control, {"id": "home-ranker-v2", "variant": "pop"}, "req-given")
    assert given["meta"]["experiment"]["variant"] == "pop" and given["meta"]["algo_version"].endswith(":popularity")
    assert log.flush()
    lines = [json.loads(line) for line in sink.lines]
    by_request = {}
    for line in lines:
        by_request.setdefault(line["request_id"], set()).add(
            (line.get("experiment_id"), line.get("experiment_variant"))
        )
    assert by_request["req-pop"] == {("home-ranker-v2", "pop")}
    assert by_request["req-control"] == {("home-ranker-v2", "control")}
    assert by_request["req-given"] == {("home-ranker-v2", "pop")}
    assert by_request["req-plain"] == {(None, None)}
    assert all("propensity" not in line for line in lines)  # no exploration: nothing recorded


def test_exploration_propensities_are_recorded_in_the_exposure_lines(api) -> None:
    client, log, sink = api
    config = {"exploration": {"epsilon": 0.5, "pool": 10}}
    assert client.put("/v1/admin/tenants/demo/config", json=config, headers=DEMO).status_code == 200
    first = _recommend(client, "u00017", None, "req-explore")
    again = _recommend(client, "u00017", None, "req-explore")
    assert first["items"] == again["items"]  # seeded by the request id
    assert log.flush()
    lines = [json.loads(line) for line in sink.lines if '"req-explore"' in line][:5]
    assert [line["rank"] for line in lines] == [0, 1, 2, 3, 4]
    propensities = [line["propensity"] for line in lines]
    allowed = {0.5 + 0.5 / m for m in range(6, 11)} | {0.5 / m for m in range(6, 11)}
    assert all(any(abs(p - a) < 1e-12 for a in allowed) for p in propensities)


@pytest.mark.parametrize(
    ("config", "detail"),
    [
        ({"algo": "neural"}, "algo must be one of blend, popularity, cooc, implicit"),
        ({"experiments": [{"id": "e"}, {"id": "e"}]}, "experiments has duplicate ids"),
        ({"experiments": [{"id": "e", "variants": ["A", "A"]}]}, "experiment e has duplicate variant names"),
        ({"experiments": [{"id": "e", "variants": []}]}, "experiment e has no variants"),
        ({"experiments": [{"id": "e", "traffic_percent": 150}]}, "experiments.0.traffic_percent must be at most 100"),
        ({"experiments": [{"id": "e", "starts_at": "tomorrow"}]}, "RFC 3339"),
        ({"experiments": [{"id": "e", "variants": [{"name": "A", "weight": -1}]}]}, "must be non-negative"),
        ({"experiments": [{"id": "e", "variants": [{"name": "A", "algo": "x"}]}]}, "algo must be one of"),
        ({"diversity": {"mmr_lambda": 1.5}}, "diversity.mmr_lambda must be at most 1"),
        ({"diversity": {"caps": {"brand:": -1}}}, "must be non-negative"),
        ({"exploration": {"epsilon": 2}}, "exploration.epsilon must be at most 1"),
        ({"exploration": {"epsilon": 0.1, "typo": 1}}, "exploration.typo"),
    ],
)
def test_invalid_experiments_diversity_and_exploration_are_422_problems(api, config, detail) -> None:
    client, _, _ = api
    response = client.put("/v1/admin/tenants/demo/config", json=config, headers=DEMO)
    assert response.status_code == 422 and response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "RECSYS_INVALID_CONFIG" and detail in response.json()["detail"]
