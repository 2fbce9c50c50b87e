"""The freshness check: every target's current manifest age against the SLO, published or not."""

from __future__ import annotations

import datetime as dt

import pytest

from recsys import paths
from recsys.days import Window
from recsys.paths import Scope
from recsys.pipeline import steps
from recsys.pipeline.models import FreshnessRequest
from recsys.publish.freshness import check_freshness
from recsys.publish.service import publish, read_pointer
from recsys.store import FileSystemStore
from tests.conftest import run_steps

JAN = Window(start=dt.date(2026, 1, 1), end=dt.date(2026, 1, 7))
SLO = dt.timedelta(hours=36)


@pytest.fixture
def published(store: FileSystemStore, sample_settings) -> dt.datetime:
    """demo/home published once; returns its manifest's updated_at."""
    publish(store, "demo", "home", JAN, run_steps(sample_settings, "2026-01-01", "2026-01-07"))
    pointer = read_pointer(store, "demo", "home")
    assert pointer is not None
    return dt.datetime.fromisoformat(pointer.manifest.updated_at)


def test_a_fresh_manifest_is_within_the_slo(store: FileSystemStore, published: dt.datetime) -> None:
    result = check_freshness(store, [], SLO, published + dt.timedelta(hours=2))
    (age,) = result.targets
    assert (age.tenant, age.surface, age.age_seconds) == ("demo", "home", 7200.0)
    assert age.manifest_version == read_pointer(store, "demo", "home").manifest.manifest_version
    assert (result.max_age_seconds, result.stale, result.missing, result.slo_seconds) == (7200.0, 0, 0, 129600.0)


def test_a_stale_manifest_and_a_target_never_published_are_counted(
    store: FileSystemStore, published: dt.datetime
) -> None:
    result = check_freshness(store, [Scope("acme", "shop"), Scope("demo", "home")], SLO, published + SLO * 2)
    assert [(a.tenant, a.surface, a.manifest_version is None) for a in result.targets] == [
        ("acme", "shop", True),
        ("demo", "home", False),
    ]
    assert (result.max_age_seconds, result.stale, result.missing) == (2 * SLO.total_seconds(), 1, 1)


def test_nothing_published_and_no_targets_reports_nothing(store: FileSystemStore) -> None:
    result = check_freshness(store, [], SLO, dt.datetime(2026, 1, 8, tzinfo=dt.UTC))
    assert (result.targets, result.max_age_seconds, result.missing, result.stale) == ([], None, 0, 0)


def test_keys_that_are_not_current_pointers_are_ignored() -> None:
    assert paths.scope_of_current_manifest(paths.current_manifest("demo", "home")) == Scope("demo", "home")
    for key in ("registry/current/demo/home/other.json", "registry/current/demo/manifest.json",
                "registry/current/../x/manifest.json", "registry/manifests/demo/home/v.json"):  # fmt: skip
        assert paths.scope_of_current_manifest(key) is None


def test_the_step_reads_targets_from_settings_unless_the_request_names_them(
    store: FileSystemStore, sample_settings, published: dt.datetime
) -> None:
    settings = sample_settings.model_copy(update={"targets": [Scope("acme", "shop")], "freshness_slo_hours": 1})
    later = published + dt.timedelta(hours=2)
    from_settings = steps.freshness(FreshnessRequest(), settings, now=later)
    assert [(a.tenant, a.age_seconds) for a in from_settings.targets] == [("acme", None), ("demo", 7200.0)]
    assert (from_settings.stale, from_settings.missing) == (1, 1)
    named = steps.freshness(FreshnessRequest(targets=["other/home"]), settings, now=later)
    assert [a.tenant for a in named.targets] == ["demo", "other"]


def test_targets_are_parsed_strictly() -> None:
    assert paths.parse_targets(" demo/home, acme/shop ,demo/home,") == [Scope("demo", "home"), Scope("acme", "shop")]
    for bad in ("demo", "demo/", "de mo/home", "../x/home"):
        with pytest.raises(ValueError):
            paths.parse_targets(bad)


def test_the_scheduled_function_publishes_each_age_and_the_oldest_as_metrics(
    aws_credentials, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sample_settings
) -> None:
    """functions/freshness/app.py with events/freshness.json against moto S3: EMF lines CloudWatch turns into the
    metrics FreshnessAlarm and MissingManifestAlarm read (namespace Recsys, dimension service=recsys-freshness)."""
    import importlib.util
    import json

    import boto3
    from moto import mock_aws

    from recsys.store import S3Store
    from tests.conftest import ROOT
    from tests.test_events import Context

    monkeypatch.setenv("RECSYS_STORE", "s3://recsys-artifacts-example")
    monkeypatch.setenv("RECSYS_TARGETS", "demo/home,acme/shop")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "recsys-freshness")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Recsys")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    from aws_lambda_powertools import Metrics

    from recsys.pipeline import lambda_glue

    # On Lambda the function's process imports lambda_glue with its own POWERTOOLS_SERVICE_NAME; here another test
    # may have imported it first.
    monkeypatch.setattr(lambda_glue, "metrics", Metrics(namespace="Recsys", service="recsys-freshness"))
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="recsys-artifacts-example")
        store = S3Store("recsys-artifacts-example")
        local = FileSystemStore(sample_settings.store.removeprefix("file://"))
        publish(local, "demo", "home", JAN, run_steps(sample_settings, "2026-01-01", "2026-01-07"))
        for key in local.list("registry/current/"):  # the served pointer is all the check reads
            store.put(key, local.get(key).data)
        spec = importlib.util.spec_from_file_location("freshness_app", ROOT / "functions" / "freshness" / "app.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        capsys.readouterr()
        result = module.handler(json.loads((ROOT / "events" / "freshness.json").read_text()), Context())
    assert (result["missing"], [t["tenant"] for t in result["targets"]]) == (1, ["acme", "demo"])
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    metrics = {}
    for blob in emitted:
        (directive,) = blob["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Recsys"
        for metric in directive["Metrics"]:
            dimensions = {name: blob[name] for name in directive["Dimensions"][0]}
            value = blob[metric["Name"]]
            metrics[(metric["Name"], tuple(sorted(dimensions.items())))] = (
                value[0] if isinstance(value, list) else value
            )
    service = ("service", "recsys-freshness")
    demo_age = next(t["age_seconds"] for t in result["targets"] if t["tenant"] == "demo") / 3600
    assert metrics[("MaxManifestAgeHours", (service,))] == pytest.approx(demo_age)
    assert metrics[("ManifestAgeHours", (service, ("surface", "home"), ("tenant", "demo")))] == pytest.approx(demo_age)
    assert metrics[("MissingManifests", (service,))] == 1
    assert metrics[("StaleManifests", (service,))] == 0  # published seconds ago
