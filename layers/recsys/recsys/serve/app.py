"""The recommend API: FastAPI routes over `RecommendService`, behind Mangum on Lambda or uvicorn locally.

Routes follow the seed service's contract (docs/reference/api.md): errors are application/problem+json with a
stable `code` and the `request_id`, and `X-Request-Id` is echoed or generated on every response.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic.json_schema import models_json_schema
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recsys import __version__
from recsys.serve import openapi as contract
from recsys.serve.audit import DEFAULT_LIMIT, MAX_LIMIT, AuditLogResponse, RequestInfo
from recsys.serve.auth import AuthSettings, Caller, check_path_tenant, require_role, resolve_caller
from recsys.serve.models import (
    BodyError,
    RecommendRequest,
    RecommendResponse,
    SimilarRequest,
    ValidateResponse,
    load_json,
    parse_body,
)
from recsys.serve.observability import logger, set_tenant, start_request
from recsys.serve.problems import Problem, invalid, rate_limited
from recsys.serve.rate_limit import Limit, RateLimiter, retry_after
from recsys.serve.service import RecommendService
from recsys.serve.settings import ServeSettings
from recsys.serve.tenant_store import ApiKeys

PROBLEM_JSON = "application/problem+json"
NO_STORE = {"Cache-Control": "no-store"}


def _request_id(request: Request) -> str:
    return getattr(request.state, "request_id", None) or request.headers.get("x-request-id") or uuid.uuid4().hex


def _problem_response(request: Request, problem: Problem) -> JSONResponse:
    request_id = _request_id(request)
    return JSONResponse(
        problem.body(request.url.path, request_id),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers={**problem.headers, "X-Request-Id": request_id},
    )


def client_ip(scope: Scope) -> str:
    """The peer's address: API Gateway's sourceIp under Mangum, the socket's peer under uvicorn. X-Forwarded-For is
    not read: any client can write it."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


# The operator console's pages (recsys.serve.console), when it is on.
CONSOLE_PREFIX = "/console/"


def _body_problem(headers: Headers, max_body_bytes: int, forms: bool = False) -> Problem | None:
    """400 for a Content-Length that is not a length, 413 for a declared body over the limit, 415 for a body that is
    not JSON (nor, with `forms`, an HTML form: the console's pages post them); None if the body may be read."""
    length = headers.get("content-length")
    if length is not None and not (length.isascii() and length.isdigit()):
        return invalid("Content-Length must be a non-negative integer")
    if length and int(length) > max_body_bytes:
        return payload_too_large()
    has_body = (length not in (None, "0")) or "transfer-encoding" in headers
    if has_body and not (_is_json(headers) or (forms and _is_form(headers))):
        return unsupported_media_type()
    return None


def _is_json(headers: Headers) -> bool:
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


def _is_form(headers: Headers) -> bool:
    return headers.get("content-type", "").split(";")[0].strip().lower() == "application/x-www-form-urlencoded"


def unsupported_media_type() -> Problem:
    return Problem(415, "RECSYS_UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json")


def payload_too_large() -> Problem:
    return Problem(413, "RECSYS_PAYLOAD_TOO_LARGE", "request body too large")


class RequestContext:
    """ASGI middleware: the request id (X-Request-Id, echoed or generated) in request.state, on every response and
    on every log line; the per-client rate limit of the paths outside /v1; and the body checks (413/415) before
    routing. Plain ASGI rather than @app.middleware("http"), which runs the rest of the app in another task and
    copies the response through a stream on every request."""

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, limiter: RateLimiter | None = None, client_limit: Limit | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.limiter = limiter
        self.client_limit = client_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        request.state.request_id = request_id
        start_request(request_id)
        if self.client_limit is not None and self.limiter is not None and not scope["path"].startswith("/v1/"):
            # Unauthenticated paths (health, version, docs, unknown ones): the seed's per-IP bucket.
            wait = self.limiter.acquire(("client", client_ip(scope)), self.client_limit)
            if wait:
                problem = rate_limited("rate limit exceeded", retry_after(wait))
                await _problem_response(request, problem)(scope, receive, send)
                return
        # A body without Content-Length or Transfer-Encoding (an API Gateway event may carry neither): its content
        # type is checked when its first bytes arrive.
        unannounced = False
        if request.method in ("POST", "PUT", "PATCH"):
            forms = scope["path"].startswith(CONSOLE_PREFIX)
            problem = _body_problem(request.headers, self.max_body_bytes, forms)
            if problem is not None:
                await _problem_response(request, problem)(scope, receive, send)
                return
            headers = request.headers
            unannounced = (
                "content-length" not in headers
                and "transfer-encoding" not in headers
                and not (_is_json(headers) or (forms and _is_form(headers)))
            )

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-Id"] = request_id
            await send(message)

        received = 0

        async def receive_within_limit() -> Message:
            # A chunked body declares no length: count what arrives, and stop reading past the limit (the route's
            # Problem handler answers 413), so no body is held whole beyond max_body_bytes.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received and unannounced:
                    raise unsupported_media_type()
                if received > self.max_body_bytes:
                    raise payload_too_large()
            return message

        await self.app(scope, receive_within_limit, send_with_request_id)


def create_app(
    settings: ServeSettings | None = None,
    auth: AuthSettings | None = None,
    service: RecommendService | None = None,
    *,
    inline: bool = False,
) -> FastAPI:
    """The application; `service` may be injected (tests, CLI), otherwise it is built from the environment.

    `inline` runs the serving operations on the event loop's thread instead of the thread pool: right behind Mangum,
    where an invocation is one request at a time and a worker thread only adds a thread start and two handoffs per
    request (anyio stops the pool's threads when each invocation's task ends). Not under uvicorn: a request that
    loads an artifact would hold up every other connection.
    """
    settings = settings or ServeSettings()
    auth = auth or AuthSettings()
    service = service or RecommendService.from_settings(settings)
    if auth.api_key_enabled and service.api_keys is None:
        service.api_keys = ApiKeys(service.store)
    app = FastAPI(
        title="recsys-serverless recommend API",
        version=__version__,
        description="Recommendations from the current manifest of each tenant and surface (seed-compatible).",
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.service = service

    client_limit = (
        Limit(rate=settings.client_rate_limit_refill_rate, burst=settings.client_rate_limit_capacity)
        if settings.client_rate_limit_enabled
        else None
    )
    app.add_middleware(
        RequestContext, max_body_bytes=settings.max_body_bytes, limiter=service.limiter, client_limit=client_limit
    )

    console_errors = None  # the console's error page, when it is on: its pages answer problems in HTML

    @app.exception_handler(Problem)
    async def on_problem(request: Request, problem: Problem) -> Response:
        if console_errors is not None and request.url.path.startswith(CONSOLE_PREFIX):
            return console_errors(request, problem)
        return _problem_response(request, problem)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _problem_response(request, invalid(str(exc.errors()[0].get("msg", "invalid request"))))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "RECSYS_NOT_FOUND", 405: "RECSYS_METHOD_NOT_ALLOWED"}.get(exc.status_code, "RECSYS_HTTP_ERROR")
        headers = None
        if exc.status_code == 405:  # RFC 9110: Allow lists every method of the path, across its routes
            methods = {
                method
                for route in request.app.router.routes
                if isinstance(route, APIRoute) and route.matches(request.scope)[0] is not Match.NONE
                for method in route.methods
            }
            headers = {"Allow": ", ".join(sorted(methods))} if methods else None
        return _problem_response(request, Problem(exc.status_code, code, str(exc.detail).lower(), headers))

    @app.exception_handler(Exception)
    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", extra={"path": request.url.path})
        return _problem_response(request, Problem(500, "RECSYS_INTERNAL", "internal error"))

    def caller_of(request: Request) -> Caller:
        """The resolved caller (its tenant then on the request's log lines), after its tenant's rate limit."""
        caller = resolve_caller(request.headers, request.scope.get("aws.event"), auth, service.api_keys)
        set_tenant(caller.tenant)
        service.admit(caller)
        return caller

    def request_info(request: Request) -> RequestInfo:
        return RequestInfo(
            request_id=request.state.request_id,
            ip=client_ip(request.scope),
            user_agent=request.headers.get("user-agent"),
        )

    async def body_of(request: Request, model: type):
        return parse_body(await request.body(), model)

    # --- serving -------------------------------------------------------------------------------------------------

    def serving_route(
        path: str, request_model: type, response_model: type, operation, summary: str, example: dict
    ) -> None:
        async def endpoint(request: Request) -> Response:
            caller = caller_of(request)
            body = await body_of(request, request_model)
            if inline:
                result = operation(caller, body, request.state.request_id)
            else:
                result = await run_in_threadpool(operation, caller, body, request.state.request_id)
            return JSONResponse(result.model_dump(mode="json", exclude_none=True), headers=NO_STORE)

        app.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            response_model=response_model,
            response_model_exclude_none=True,
            openapi_extra=contract.body({"$ref": f"#/components/schemas/{request_model.__name__}"}, example),
            responses=contract.SERVING,
            tags=["serving"],
            name=operation.__name__,
            summary=summary,
        )

    serving_route(
        "/v1/recommend",
        RecommendRequest,
        RecommendResponse,
        service.recommend,
        "Top-k items for a user (and anchors), ranked from the current manifest",
        contract.RECOMMEND_EXAMPLE,
    )
    serving_route(
        "/v1/recommend/validate",
        RecommendRequest,
        ValidateResponse,
        service.validate,
        "The normalized request and its warnings, without ranking",
        contract.RECOMMEND_EXAMPLE,
    )
    serving_route(
        "/v1/similar",
        SimilarRequest,
        RecommendResponse,
        service.similar,
        "Items similar to one item (co-visitation and tag similarity)",
        contract.SIMILAR_EXAMPLE,
    )

    # --- health --------------------------------------------------------------------------------------------------

    # None of these reads the store more than once per HEALTH_CACHE_DURATION, nor names the bucket.

    @app.get("/healthz", tags=["health"], summary="Liveness: the process answers (no I/O)", responses=contract.OPEN)
    async def healthz() -> dict:
        return {"status": "healthy"}

    @app.get("/livez", tags=["health"], summary="Liveness: the process answers (no I/O)", responses=contract.OPEN)
    async def livez() -> dict:
        return {"status": "alive", "timestamp": _now()}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Readiness: the store answered (checked at most once per HEALTH_CACHE_DURATION)",
        responses={**contract.OPEN, 503: {"description": "Not ready"}},
    )
    async def readyz() -> JSONResponse:
        readiness = service.readiness() if inline else await run_in_threadpool(service.readiness)
        body = {
            "status": "ready" if readiness.ready else "unavailable",
            "timestamp": _iso(readiness.checked_at),
            "message": "store reachable" if readiness.ready else "store unreachable",
        }
        return JSONResponse(body, status_code=200 if readiness.ready else 503, headers=NO_STORE)

    @app.get(
        "/health",
        tags=["health"],
        summary="Overall health: liveness and the cached store check",
        responses={**contract.OPEN, 503: {"description": "Unhealthy"}},
    )
    async def health() -> JSONResponse:
        readiness = service.readiness() if inline else await run_in_threadpool(service.readiness)
        body = {
            "status": "healthy" if readiness.ready else "unhealthy",
            "timestamp": _now(),
            "checks": {"store": {"status": "ready" if readiness.ready else "unavailable",
                                 "checked_at": _iso(readiness.checked_at)}},
        }  # fmt: skip
        return JSONResponse(body, status_code=200 if readiness.ready else 503, headers=NO_STORE)

    license_body = contract.license_status(__version__)

    @app.get(
        "/v1/license",
        tags=["health"],
        summary="Licence status in the seed's shape: this product's licence and version (no identity needed)",
        response_model=contract.LicenseResponse,
        responses=contract.OPEN,
    )
    async def license_status() -> JSONResponse:
        return JSONResponse(license_body, headers=NO_STORE)

    @app.get("/version", tags=["health"], responses=contract.OPEN)
    async def version() -> dict:
        return {"version": __version__, "commit": settings.build_commit, "date": settings.build_date}

    # --- admin ---------------------------------------------------------------------------------------------------

    def admin_caller(request: Request, tenant_id: str) -> Caller:
        caller = caller_of(request)
        check_path_tenant(caller, tenant_id)
        require_role(caller, request.method, auth)
        return caller

    def document_response(tenant_id: str, kind: str, document) -> JSONResponse:
        version_field = "config_version" if kind == "config" else "rules_version"
        return JSONResponse(
            {"tenant_id": tenant_id, version_field: document.version, kind: document.data},
            headers={"ETag": f'"{document.version}"', **NO_STORE},
        )

    def document_routes(kind: str) -> None:
        """GET and PUT of one tenant document; `kind` is bound here, so the routes take no parameter for it."""
        invalid_code = "RECSYS_INVALID_CONFIG" if kind == "config" else "RECSYS_INVALID_RULES"

        def get_document(request: Request, tenant_id: str) -> JSONResponse:
            admin_caller(request, tenant_id)
            return document_response(tenant_id, kind, service.get_document(tenant_id, kind))

        async def put_document(request: Request, tenant_id: str) -> JSONResponse:
            caller = admin_caller(request, tenant_id)
            try:
                data = load_json(await request.body())
            except BodyError:
                raise Problem(400, invalid_code, f"{kind} must be valid JSON") from None
            document = await run_in_threadpool(
                service.put_document,
                caller,
                tenant_id,
                kind,
                data,
                request.headers.get("if-match"),
                request_info(request),
            )
            return document_response(tenant_id, kind, document)

        config = kind == "config"
        app.add_api_route(
            f"/v1/admin/tenants/{{tenant_id}}/{kind}",
            get_document,
            methods=["GET"],
            tags=["admin"],
            summary=f"Current tenant {kind} (ETag = version)",
            response_model=contract.ConfigResponse if config else contract.RulesResponse,
            responses=contract.CONFIG_READ if config else contract.RULES_READ,
        )
        app.add_api_route(
            f"/v1/admin/tenants/{{tenant_id}}/{kind}",
            put_document,
            methods=["PUT"],
            tags=["admin"],
            summary=f"Replace tenant {kind} (If-Match for optimistic concurrency; 409 on mismatch)",
            response_model=contract.ConfigResponse if config else contract.RulesResponse,
            responses=contract.CONFIG_WRITE if config else contract.RULES_WRITE,
            openapi_extra=contract.body(contract.CONFIG_SCHEMA, contract.CONFIG_EXAMPLE)
            if config
            else contract.body(contract.RULES_SCHEMA, contract.RULES_EXAMPLE),
        )

    document_routes("config")
    document_routes("rules")

    @app.post(
        "/v1/admin/tenants/{tenant_id}/cache/invalidate",
        tags=["admin"],
        summary="Drop this process's cached config, rules, manifests or artifacts of the tenant",
        response_model=contract.InvalidateResponse,
        responses=contract.INVALIDATE,
        openapi_extra=contract.body(contract.INVALIDATE_SCHEMA, contract.INVALIDATE_EXAMPLE),
    )
    async def invalidate(request: Request, tenant_id: str) -> JSONResponse:
        caller = admin_caller(request, tenant_id)
        try:
            body = load_json(await request.body() or b"{}")
        except BodyError:
            raise Problem(400, "RECSYS_INVALID_TARGETS", "body must be JSON") from None
        targets = body.get("targets") if isinstance(body, dict) else None
        if not targets or not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise Problem(400, "RECSYS_INVALID_TARGETS", "targets is required")
        surface = body.get("surface")
        if surface is not None and not isinstance(surface, str):
            raise Problem(400, "RECSYS_INVALID_TARGETS", "surface must be a string")
        # Loaded artifacts are shared by the whole process: only a platform admin may drop other tenants'.
        counts = await run_in_threadpool(
            lambda: service.invalidate(
                tenant_id,
                targets,
                surface,
                all_tenants_artifacts=caller.is_platform_admin,
                caller=caller,
                request=request_info(request),
            )
        )
        return JSONResponse(
            {  # without a surface, none is echoed: the seed's schema has `surface` as a string
                "tenant_id": tenant_id,
                "targets": targets,
                **({"surface": surface} if surface is not None else {}),
                "status": "applied",
                "invalidated": counts,
            },
            headers=NO_STORE,
        )

    @app.get(
        "/v1/admin/tenants/{tenant_id}/audit",
        tags=["admin"],
        summary="Audit log of the tenant's admin changes, newest first (keyset paging: before, before_id)",
        response_model=AuditLogResponse,
        response_model_exclude_none=True,
        responses=contract.AUDIT,
        openapi_extra={"parameters": AUDIT_PARAMETERS},
    )
    def audit(request: Request, tenant_id: str) -> JSONResponse:
        caller = admin_caller(request, tenant_id)
        limit, before, before_id = _audit_query(request)
        page = service.audit.list(tenant_id, limit=limit, before=before, before_id=before_id)
        # The seed shows the states and extra to operators and admins only.
        if auth.rbac_enabled and not caller.roles & {r for r in (auth.auth_operator_role, auth.auth_admin_role) if r}:
            page.entries = [entry.redacted() for entry in page.entries]
        return JSONResponse(page.model_dump(mode="json", exclude_none=True), headers=NO_STORE)

    if settings.console:  # imported only then: the recommend path never loads the console's templates
        from recsys.serve.console import console_router, error_page

        console_errors = error_page
        app.include_router(
            console_router(service, auth, dt.timedelta(hours=settings.freshness_slo_hours), request_info)
        )

    def openapi() -> dict[str, Any]:
        """FastAPI's schema plus the request models the raw-body routes reference (they parse bodies themselves)."""
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            _, definitions = models_json_schema(
                [(RecommendRequest, "validation"), (SimilarRequest, "validation")],
                ref_template="#/components/schemas/{model}",
            )
            app.openapi_schema = contract.finish(spec, definitions.get("$defs", {}))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


# The seed's query parameters of GET .../audit, documented as it documents them (the route parses them itself to
# answer the seed's error details).
AUDIT_PARAMETERS = [
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "format": "int32", "default": DEFAULT_LIMIT, "maximum": MAX_LIMIT},
    },
    {"name": "before", "in": "query", "required": False, "schema": {"type": "string", "format": "date-time"}},
    {"name": "before_id", "in": "query", "required": False, "schema": {"type": "integer", "format": "int64"}},
]


def _audit_query(request: Request) -> tuple[int, dt.datetime | None, int | None]:
    """limit (default 100, over 200 clamped), before (RFC3339) and before_id (>= 0), with the seed's 400 details."""
    query = request.query_params
    limit, before, before_id = DEFAULT_LIMIT, None, None
    if (raw := query.get("limit", "").strip()) != "":
        try:
            limit = int(raw)
        except ValueError:
            raise invalid("limit must be an integer") from None
        if limit <= 0:
            raise invalid("limit must be positive")
        limit = min(limit, MAX_LIMIT)
    if (raw := query.get("before", "").strip()) != "":
        try:
            before = dt.datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise invalid("before must be RFC3339 timestamp") from None
        if before.tzinfo is None or "T" not in raw.upper():
            raise invalid("before must be RFC3339 timestamp")
    if (raw := query.get("before_id", "").strip()) != "":
        try:
            before_id = int(raw)
        except ValueError:
            raise invalid("before_id must be an integer") from None
        if before_id < 0:
            raise invalid("before_id must be non-negative")
    return limit, before, before_id


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _now() -> str:
    return _iso(dt.datetime.now(dt.UTC))
