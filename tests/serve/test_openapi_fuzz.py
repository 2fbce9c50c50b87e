"""Schemathesis over the app's own OpenAPI document, in-process: no request it generates may get a 5xx.

Every operation of /openapi.json is fuzzed (the examples, coverage and fuzzing phases; valid and invalid data,
unexpected methods and content types) against the app serving a manifest from a real pipeline run, as a caller with
every role. The schema leaves most of what the routes check to the routes (nullable fields, free-form admin
documents, any tenant in the path), so each generated request is also sent in two shapes that get further in:
with the caller's own tenant in the path and a valid surface and user in the body, and with its body's bytes made
invalid UTF-8 (schemathesis only generates text). Bounded for `make test`: 40 examples per operation, a fixed seed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.generation import GenerationMode

from recsys.days import Window
from recsys.publish.service import publish
from recsys.serve.app import create_app
from recsys.serve.auth import AuthSettings
from recsys.serve.settings import ServeSettings
from recsys.settings import Settings
from recsys.store import FileSystemStore
from tests.conftest import SAMPLE_CATALOG, SAMPLE_RAW, run_steps

TENANT = "demo"
CALLER = {"X-Dev-Org-Id": TENANT}
ROLE_CHECKS_OFF = AuthSettings(DEV_AUTH_ENABLED=True, AUTH_VIEWER_ROLE="", AUTH_OPERATOR_ROLE="", AUTH_ADMIN_ROLE="")
MAX_EXAMPLES = 40
SEED = 20260101

# Schemathesis parametrizes at collection, so the document is read here, from an app over no store (serving the
# document reads none); the requests go to `served_app`, the same create_app over a published manifest.
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(ServeSettings(RECSYS_STORE="file:///nonexistent/openapi-only"), ROLE_CHECKS_OFF)
)
schema.config.generation.update(modes=list(GenerationMode), max_examples=MAX_EXAMPLES)
schema.config.seed = SEED


@pytest.fixture(scope="module")
def served_app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    store = FileSystemStore(tmp_path_factory.mktemp("fuzz") / "store")
    pipeline = Settings(store=store.uri, raw_uri=str(SAMPLE_RAW), catalog_uri=str(SAMPLE_CATALOG))
    window = Window.model_validate({"start": "2026-01-01", "end": "2026-01-07"})
    publish(store, TENANT, "home", window, run_steps(pipeline, "2026-01-01", "2026-01-07"))
    # No per-client limit: the health and docs paths would answer 429 to most of their examples.
    settings = ServeSettings(RECSYS_STORE=store.uri, RECSYS_CLIENT_RATE_LIMIT_ENABLED=False)
    return create_app(settings, ROLE_CHECKS_OFF, inline=True)


@pytest.fixture(scope="module")
def client(served_app: FastAPI) -> TestClient:
    return TestClient(served_app, raise_server_exceptions=False)


def _further_in(case: Any) -> bool:
    """Give the case the caller's tenant and, on the serving routes, a valid surface and user; True if it changed."""
    changed = False
    if "tenant_id" in (case.path_parameters or {}) and case.path_parameters["tenant_id"] != TENANT:
        case.path_parameters = {**case.path_parameters, "tenant_id": TENANT}
        changed = True
    if case.path in ("/v1/recommend", "/v1/recommend/validate", "/v1/similar") and isinstance(case.body, dict):
        wanted = {"surface": "home"}
        wanted.update({"item_id": "i00042"} if case.path == "/v1/similar" else {"user": {"user_id": "u00017"}})
        if any(not isinstance(case.body.get(field), type(value)) for field, value in wanted.items()):
            case.body = {**case.body, **wanted}
            changed = True
    return changed


def _not_utf8(body: Any) -> bytes:
    """The body's JSON with a byte that is never UTF-8 inside its first string (or in front of it)."""
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    at = raw.find(b'"') + 1
    return raw[:at] + b"\xff" + raw[at:]


@schema.parametrize()
@settings(deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error(case: Any, served_app: FastAPI, client: TestClient) -> None:
    case.call_and_validate(app=served_app, headers=CALLER, checks=[not_a_server_error])
    if _further_in(case):
        case.call_and_validate(app=served_app, headers=CALLER, checks=[not_a_server_error])
    if case.method in ("POST", "PUT") and not isinstance(case.body, NotSet):
        response = client.request(
            case.method,
            case.formatted_path,
            content=_not_utf8(case.body),
            headers={**CALLER, "Content-Type": "application/json"},
        )
        assert response.status_code < 500, (case.method, case.formatted_path, response.text)
