"""`recsys eval` end to end on the bundled sample: split, the real pipeline and ranking, baselines, report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsys.serve.tenant_store import TenantDocuments
from recsys.settings import Settings
from recsys.store import open_store
from recsys_tools.evaluation.run import OURS, EvalOptions, choose, make_split, run_eval, tune_candidates, write
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
    # exclude-seen: no list holds an item its user had already seen (the baselines exclude them too)
    (share,) = [note for note in report.notes if note.startswith("share of recommended slots")]
    assert share.endswith(f"{OURS} 0.0000, popularity 0.0000, item-kNN 0.0000")
    written = write(report, tmp_path / "out")
    assert [p.name for p in written] == ["report.json", "report.md", "report.png"]
    again = run_eval(options(tmp_path), Settings())  # rerun over the same store: same numbers
    assert json.loads(again.model_dump_json()) == json.loads(report.model_dump_json())


def test_tune_reports_its_choice_and_writes_only_a_setting_that_beats_the_defaults(tmp_path: Path) -> None:
    report = run_eval(options(tmp_path, tune=True, tune_trials=2, seed=0), Settings())
    (note,) = [note for note in report.notes if note.startswith("tuned settings")]
    assert "validation ndcg@10 on 2026-01-05..2026-01-06" in note  # the last two train days, never the test day
    # one step per knob, each taken only when better by more than one standard error
    assert "history_decay: best" in note and "anchor_decay: best" in note and "weights: best" in note
    config = TenantDocuments(open_store(f"file://{tmp_path / 'store'}")).get("demo", "config")
    if note.startswith("tuned settings: kept the defaults"):
        assert config is None and not any(n.startswith("wrote") for n in report.notes)
    else:
        assert config is not None and set(config.data) & {"weights", "history_decay", "anchor_decay"}
        assert any(n.startswith("wrote") for n in report.notes)


def test_a_given_tenant_config_is_what_gets_evaluated(tmp_path: Path) -> None:
    flat = run_eval(options(tmp_path / "a", config={"history_decay": 1.0}), Settings())
    config = TenantDocuments(open_store(f"file://{tmp_path / 'a' / 'store'}")).get("demo", "config")
    assert config is not None and config.data == {"history_decay": 1.0}
    assert "tenant config {'history_decay': 1.0}" in flat.notes
    steep = run_eval(options(tmp_path / "b", config={"history_decay": 0.1}), Settings())
    assert flat.results[OURS]["overall"]["ndcg@10"] != steep.results[OURS]["overall"]["ndcg@10"]


def test_tune_refuses_too_few_validation_users(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fewer than the minimum 100000"):
        run_eval(options(tmp_path, tune=True, tune_trials=1, tune_min_users=100_000), Settings())


def test_choose_picks_on_half_the_users_and_confirms_on_the_other_half() -> None:
    # users 0, 2, 4, 6 pick; users 1, 3, 5, 7 confirm (paired differences, one standard error)
    default = [0.0, 0.5, 1.0, 0.5, 0.0, 0.5, 1.0, 0.5]
    lucky = [1.0, 0.5, 1.0, 0.5, 1.0, 0.5, 1.0, 0.5]  # better where it was picked only: nothing to confirm
    clear = [0.2, 0.7, 1.0, 0.7, 0.2, 0.8, 1.0, 0.6]  # confirming differences +0.2 +0.2 +0.3 +0.1: mean 0.2, SE 0.04
    assert choose(default, [({"a": 1}, lucky)]) == ({}, 0, 0.0, 0.0)
    chosen, best, difference, error = choose(default, [({"b": 2}, clear)])
    assert (chosen, best) == ({"b": 2}, 0)
    assert difference == pytest.approx(0.2) and error == pytest.approx(0.0408248)
    worse = [0.0, 0.4, 1.0, 0.5, 0.0, 0.5, 1.0, 0.5]
    assert choose(default, [({"c": 3}, worse)])[0] == {}  # not better on the picking half: never taken
    assert choose(default, []) == ({}, -1, 0.0, 0.0)


def test_tune_candidates_are_deterministic_and_never_all_zero() -> None:
    first = tune_candidates(50, seed=3)
    assert first == tune_candidates(50, seed=3) and len(first) == 50
    assert all(set(c) == {"weights"} and any(c["weights"].values()) for c in first)


def test_a_window_without_train_days_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no train days"):
        make_split(options(tmp_path, test_days=7))
