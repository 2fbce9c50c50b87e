"""step_handler's metrics: one EMF line per invocation on Lambda; nothing at all where metrics are disabled, however
many invocations one process runs (a local backfill makes hundreds: Powertools would flush at 100 on its own)."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from recsys.pipeline import lambda_glue
from tests.test_events import Context


class Request(BaseModel):
    tenant: str
    surface: str


class Result(BaseModel):
    built: bool


def _handler():
    def partial(request: Request, settings) -> Result:
        return Result(built=True)

    return lambda_glue.step_handler(partial, Request, lambda result: {"PartialsBuilt": int(result.built)})


def test_disabled_metrics_print_nothing_after_hundreds_of_invocations(monkeypatch, capsys) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    handler = _handler()
    capsys.readouterr()
    for _ in range(150):
        assert handler({"tenant": "demo", "surface": "home"}, Context()) == {"built": True}
    assert capsys.readouterr().out == ""


def test_enabled_metrics_print_one_emf_line_per_invocation(monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    handler = _handler()
    capsys.readouterr()
    for _ in range(3):
        handler({"tenant": "demo", "surface": "home"}, Context())
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert len(lines) == 3
    assert all(line["PartialsBuilt"] == [1.0] and line["tenant"] == "demo" for line in lines)
