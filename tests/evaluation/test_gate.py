"""The quality gate blocks a deliberately degraded candidate and lets a healthy one through."""

from __future__ import annotations

import datetime as dt

import pytest

from recsys.days import Window
from recsys.evaluation.gate import quality_gate
from recsys.publish.service import Decision, publish, read_manifest, read_pointer
from recsys.settings import ComputeParams, QualityGate, Settings
from recsys.store import FileSystemStore
from recsys_tools.local.runner import LocalPipeline
from tests.conftest import SAMPLE_CATALOG, SAMPLE_RAW, run_steps

KINDS = ["popularity", "cooc", "implicit", "session_seq", "item_knn"]
WINDOW = Window(start=dt.date(2026, 1, 1), end=dt.date(2026, 1, 7))
# Keep one neighbour per item and almost no popular items: a broken candidate, by construction.
DEGRADED = ComputeParams(popularity_top_n=2, cooc_top_k=1, session_seq_top_k=1, item_knn_top_k=1)


def settings_for(store: FileSystemStore, compute: ComputeParams | None = None, metric: str | None = "ndcg@10"):
    return Settings(
        store=store.uri,
        raw_uri=str(SAMPLE_RAW),
        catalog_uri=str(SAMPLE_CATALOG),
        kinds=KINDS,
        compute=compute or ComputeParams(),
        quality=QualityGate(metric=metric, min_users=5),
    )


@pytest.fixture
def current(store: FileSystemStore) -> str:
    """A healthy manifest over Jan 1-6 is what is served now."""
    refs = run_steps(settings_for(store), "2026-01-01", "2026-01-06")
    return publish(
        store, "demo", "home", Window(start=dt.date(2026, 1, 1), end=dt.date(2026, 1, 6)), refs
    ).manifest_version


def test_the_gate_is_off_unless_a_metric_is_configured(store: FileSystemStore, current: str) -> None:
    result = quality_gate(store, "demo", "home", WINDOW, KINDS, settings_for(store, metric=None))
    assert (result.enabled, result.passed) == (False, True)


def test_a_healthy_candidate_passes(store: FileSystemStore, current: str) -> None:
    run_steps(settings_for(store), "2026-01-07", "2026-01-07", kinds=[])  # ingest the held-out day
    result = quality_gate(store, "demo", "home", WINDOW, KINDS, settings_for(store))
    assert result.enabled and result.passed and result.users >= 5
    assert result.candidate is not None and result.candidate >= result.current - 0.02
    assert result.current_manifest_version == current


def test_a_degraded_candidate_is_refused_and_the_pointer_stays(store: FileSystemStore, current: str) -> None:
    degraded = settings_for(store, DEGRADED)
    refs = run_steps(degraded, "2026-01-01", "2026-01-07")
    result = quality_gate(store, "demo", "home", WINDOW, KINDS, degraded)
    assert result.enabled and not result.passed, result.reason
    assert result.candidate < result.current - 0.02 and "dropped more than" in result.reason
    published = publish(store, "demo", "home", WINDOW, refs, quality=result)
    assert published.decision == Decision.REFUSED_QUALITY and published.pointer_after == current
    assert read_pointer(store, "demo", "home").manifest.manifest_version == current
    stored = read_manifest(store, "demo", "home", published.manifest_version)
    assert stored.quality == result  # the refusal is recorded with the version an operator could still ship


def test_the_state_machine_output_shows_the_refusal(store: FileSystemStore, current: str, monkeypatch) -> None:
    for name, value in {
        "RECSYS_QUALITY__METRIC": "ndcg@10",
        "RECSYS_QUALITY__MIN_USERS": "5",
        "RECSYS_COMPUTE__COOC_TOP_K": "1",
        "RECSYS_COMPUTE__ITEM_KNN_TOP_K": "1",
        "RECSYS_COMPUTE__SESSION_SEQ_TOP_K": "1",
        "RECSYS_COMPUTE__POPULARITY_TOP_N": "2",
    }.items():
        monkeypatch.setenv(name, value)
    with LocalPipeline({"RECSYS_STORE": store.uri}) as pipeline:
        run = pipeline.run(
            {
                "tenant": "demo",
                "surface": "home",
                "start": "2026-01-01",
                "end": "2026-01-07",
                "raw": str(SAMPLE_RAW),
                "kinds": KINDS,
            }
        )
    assert run.status == "SUCCEEDED", run.message
    assert run.output["quality"]["passed"] is False
    assert run.output["published"]["decision"] == "refused_quality"
    assert read_pointer(store, "demo", "home").manifest.manifest_version == current


def test_a_worse_rerun_of_the_served_window_is_judged_against_its_recorded_score(store: FileSystemStore) -> None:
    healthy = settings_for(store)
    refs = run_steps(healthy, "2026-01-01", "2026-01-07")
    first = quality_gate(store, "demo", "home", WINDOW, KINDS, healthy)
    assert first.passed and first.candidate is not None and "recorded for later reruns" in first.reason
    served = publish(store, "demo", "home", WINDOW, refs, quality=first).manifest_version

    degraded = settings_for(store, DEGRADED)
    refs = run_steps(degraded, "2026-01-01", "2026-01-07")
    rerun = quality_gate(store, "demo", "home", WINDOW, KINDS, degraded)
    assert not rerun.passed and rerun.compared_with == "recorded", rerun.reason
    assert rerun.current == first.candidate and rerun.current_manifest_version == served
    assert publish(store, "demo", "home", WINDOW, refs, quality=rerun).decision == Decision.REFUSED_QUALITY
    assert read_pointer(store, "demo", "home").manifest.manifest_version == served


def test_without_a_recorded_score_a_rerun_is_judged_against_the_manifest_served_before(
    store: FileSystemStore, current: str
) -> None:
    ungated = settings_for(store, metric=None)
    served = publish(store, "demo", "home", WINDOW, run_steps(ungated, "2026-01-01", "2026-01-07")).manifest_version
    degraded = settings_for(store, DEGRADED)
    run_steps(degraded, "2026-01-01", "2026-01-07")
    rerun = quality_gate(store, "demo", "home", WINDOW, KINDS, degraded)
    assert not rerun.passed and rerun.compared_with == "baseline", rerun.reason
    assert rerun.current_manifest_version == current != served
    assert "the newest that has not seen it" in rerun.reason


def test_a_rerun_with_nothing_comparable_passes_and_says_so(store: FileSystemStore) -> None:
    ungated = settings_for(store, metric=None)
    publish(store, "demo", "home", WINDOW, run_steps(ungated, "2026-01-01", "2026-01-07"))
    result = quality_gate(store, "demo", "home", WINDOW, KINDS, settings_for(store, DEGRADED))
    assert result.passed and result.compared_with is None and result.candidate is not None
    assert "no stored manifest that has not seen it to compare with" in result.reason
