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
