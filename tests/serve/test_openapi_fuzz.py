"""The API contract as a test: schemathesis, in-process, with our OpenAPI document and with the seed's.

Every operation of our /openapi.json is fuzzed (the examples, coverage and fuzzing phases; valid and invalid data,
unexpected methods and content types) against the app serving a manifest from a real pipeline run, as a caller with
every role. Each answer must be no server error, a status the document declares for the operation, and a body
valid under the declared schema (problems included, with their `code`s). The generated tenant in a path is rarely
the caller's, so each request is also sent with the caller's own tenant, and with its body's bytes made invalid
UTF-8 (schemathesis only generates text).

The seed's document (tests/serve/seed-openapi.yaml, a copy of `../shared/reference/seed-openapi.yaml`, its 12
operations) is fuzzed the same way, checking no server error and the seed's response schemas (its status codes and
content types are the seed's, not ours).

Bounded for `make test`: 40 examples per operation, a fixed seed.

Suppressed: schemathesis's checks that judge behaviour the contract deliberately differs on. `positive_data_acceptance`
(our request schemas are documentation; a schema-valid request can still be refused, e.g. `max_anchors` below the
number of anchors or `explain` with `k` over 50, as in the seed), `negative_data_rejection` (unknown query parameters
are ignored, as the seed ignores them), `ignored_auth`/`use_after_free`/`ensure_resource_availability` (stateful
checks that need real credentials or links), `missing_required_header` (no route requires a header) and
`max_response_time` (timing on a shared CI machine).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
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
CONTRACT = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]

seed_schema = schemathesis.openapi.from_path(Path(__file__).with_name("seed-openapi.yaml"))
seed_schema.config.generation.update(modes=list(GenerationMode), max_examples=MAX_EXAMPLES)
seed_schema.config.seed = SEED
# The seed's own statuses and content types are not ours (it declares 503 backpressure, omits 413/415/429): under
# its document, a server error and a body outside its response schemas are what count.
SEED_CONTRACT = [not_a_server_error, response_schema_conformance]


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


def _exercise(case: Any, served_app: FastAPI, client: TestClient, checks: list) -> None:
    case.call_and_validate(app=served_app, headers=CALLER, checks=checks)
    if _further_in(case):
        case.call_and_validate(app=served_app, headers=CALLER, checks=checks)
    if case.method in ("POST", "PUT") and not isinstance(case.body, NotSet):
        response = client.request(
            case.method,
            case.formatted_path,
            content=_not_utf8(case.body),
            headers={**CALLER, "Content-Type": "application/json"},
        )
        assert response.status_code < 500, (case.method, case.formatted_path, response.text)


@schema.parametrize()
@settings(deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_our_openapi_is_the_contract(case: Any, served_app: FastAPI, client: TestClient) -> None:
    _exercise(case, served_app, client, CONTRACT)


@seed_schema.parametrize()
@settings(deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_the_seeds_openapi_passes(case: Any, served_app: FastAPI, client: TestClient) -> None:
    _exercise(case, served_app, client, SEED_CONTRACT)
