"""`recsys eval` end to end on the bundled sample: split, the real pipeline and ranking, baselines, report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsys.evaluation.run import OURS, EvalOptions, make_split, run_eval, write
from recsys.serve.tenant_store import TenantDocuments
from recsys.settings import Settings
from recsys.store import open_store
from tests.conftest import SAMPLE_CATALOG, SAMPLE_RAW


def options(tmp_path: Path, **changes) -> EvalOptions:
    return EvalOptions(
        raw=str(SAMPLE_RAW), catalog=str(SAMPLE_CATALOG), store=f"file://{tmp_path / 'store'}", **changes
    )


def test_the_split_holds_out_the_last_days(tmp_path: Path) -> None:
    split = make_split(options(tmp_path, test_days=2, train_days=3))
    assert (str(split.train.start), str(split.train.end)) == ("2026-01-03", "2026-01-05")
    assert (str(split.test.start), str(split.test.end)) == ("2026-01-06", "2026-01-07")
    whole = make_split(options(tmp_path))
    assert (str(whole.train.start), str(whole.test.end)) == ("2026-01-01", "2026-01-07")


def test_eval_reports_ours_and_the_baselines_deterministically(tmp_path: Path) -> None:
    report = run_eval(options(tmp_path), Settings())
    results = report.results
    assert set(results) == {OURS, "popularity", "item-kNN"}
    assert set(results[OURS]) == {"overall", "warm", "cold"}
    overall = {name: r["overall"] for name, r in results.items()}
    assert overall[OURS]["users"] == overall["popularity"]["users"] > 20
    for k in (5, 10, 20):
        assert {f"recall@{k}", f"precision@{k}", f"ndcg@{k}", f"map@{k}", f"hit_rate@{k}"} <= set(overall[OURS])
    assert {"mrr", "coverage@10", "novelty@10"} <= set(overall[OURS])
    # the planted structure is learnable: the blend beats popularity by a wide margin
    assert overall[OURS]["ndcg@10"] > 3 * overall["popularity"]["ndcg@10"]
    # ours against each baseline, per user, with an interval: clearly ahead of popularity
    differences = {c["second"]: c for c in report.comparisons}
    assert set(differences) == {"popularity", "item-kNN"}
    assert differences["popularity"]["verdict"] == "ahead" and differences["popularity"]["metric"] == "ndcg@10"
    assert differences["item-kNN"]["difference"] == pytest.approx(
        overall[OURS]["ndcg@10"] - overall["item-kNN"]["ndcg@10"]
    )
    written = write(report, tmp_path / "out")
    assert [p.name for p in written] == ["report.json", "report.md", "report.png"]
    again = run_eval(options(tmp_path), Settings())  # rerun over the same store: same numbers
    assert json.loads(again.model_dump_json()) == json.loads(report.model_dump_json())


def test_tune_writes_the_chosen_weights_to_the_tenant_config(tmp_path: Path) -> None:
    # seed 0: one of the four random settings beats the defaults on the sample's validation day
    report = run_eval(options(tmp_path, tune=True, tune_trials=4, seed=0), Settings())
    config = TenantDocuments(open_store(f"file://{tmp_path / 'store'}")).get("demo", "config")
    assert config is not None and set(config.data["weights"]) >= {"pop", "cooc", "session", "content", "knn"}
    assert any(note.startswith("tuned weights {") for note in report.notes)
    assert any("wrote the tuned weights" in note for note in report.notes)


def test_tune_keeps_the_defaults_when_no_setting_beats_them(tmp_path: Path) -> None:
    # seed 3: none of the four random settings beats the defaults on the validation day
    report = run_eval(options(tmp_path, tune=True, tune_trials=4, seed=3), Settings())
    assert TenantDocuments(open_store(f"file://{tmp_path / 'store'}")).get("demo", "config") is None
    assert any(note.startswith("tuned weights defaults") for note in report.notes)
    assert not any("wrote the tuned weights" in note for note in report.notes)


def test_a_window_without_train_days_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no train days"):
        make_split(options(tmp_path, test_days=7))
