"""Settings from the environment: nested variables, lists, and the documented special values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from recsys.settings import load_settings


def test_nested_and_list_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_GATES__MAX_ERROR_RATE", "0.1")
    monkeypatch.setenv("RECSYS_COMPUTE__COOC_TOP_K", "7")
    monkeypatch.setenv("RECSYS_COMPUTE__POPULARITY_HALF_LIFE_DAYS", "none")
    monkeypatch.setenv("RECSYS_KINDS", "cooc, popularity")
    monkeypatch.setenv("RECSYS_EVENT_WEIGHTS", '{"exposure": 1, "purchase": 20}')
    settings = load_settings()
    assert settings.gates.max_error_rate == 0.1 and settings.compute.cooc_top_k == 7
    assert settings.compute.popularity_half_life_days is None and settings.compute.implicit_half_life_days == 30
    assert settings.kinds == ["popularity", "cooc"] and settings.event_types == ["exposure", "purchase"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RECSYS_KINDS", "popularity,bogus", "unknown artifact kind"),
        ("RECSYS_EVENT_WEIGHTS", '{"click": 1}', "must define 'exposure'"),
        ("RECSYS_GATES__MAX_ERROR_RATE", "2", "less than or equal to 1"),
        ("RECSYS_RAW_URI", "   ", None),
    ],
)
def test_invalid_values_are_rejected_with_the_reason(monkeypatch, name: str, value: str, message: str | None) -> None:
    monkeypatch.setenv(name, value)
    if message is None:
        assert load_settings().raw_uri is None  # blank means unset
        return
    with pytest.raises(ValidationError, match=message):
        load_settings()


def test_the_template_variables_sam_local_passes_empty_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """`sam local` passes a variable it cannot resolve (an Fn::If on a template condition: the database settings,
    RECSYS_SERVE_FROM, RECSYS_EXPOSURE_LOG) as "": they read as unset, not as invalid values. Elsewhere an empty
    value keeps its documented meaning (an empty half-life: no decay)."""
    from recsys.database.settings import DatabaseEnvironment, DatabaseSettings
    from recsys.serve.settings import DEFAULT_STORE, ServeSettings

    for name in ("URL", "SECRET_ARN", "SIGNALS", "CONNECT_TIMEOUT_S"):
        monkeypatch.setenv(f"RECSYS_DATABASE__{name}", "")
    for name in (
        "RECSYS_SERVE_FROM",
        "RECSYS_EXPOSURE_LOG",
        "RECSYS_STORE",
        "RECSYS_COMPUTE__POPULARITY_HALF_LIFE_DAYS",
    ):
        monkeypatch.setenv(name, "")
    for database in (load_settings().database, DatabaseEnvironment().database):
        assert database == DatabaseSettings() and not database.configured
    serve = ServeSettings()
    assert (serve.serve_from, serve.exposure_log, serve.store) == ("artifacts", "", DEFAULT_STORE)
    assert load_settings().compute.popularity_half_life_days is None
