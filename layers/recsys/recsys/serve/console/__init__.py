"""The operator console: server-rendered pages under /console, served by the API app when RECSYS_CONSOLE is on.

Same identity, tenant scope and roles as the admin API (recsys.serve.auth): a viewer sees, an operator (or admin)
acts, and every page is of the caller's own tenant. A browser cannot send the dev headers on a link, so with
DEV_AUTH_ENABLED the console offers a sign-in form that keeps a dev identity (tenant, user, roles) in a cookie and
turns it into those headers; any other caller (an API key, a JWT through the gateway, the dev headers themselves)
is resolved from the request as the API resolves it. Forms that change something carry the cookie's CSRF token.

Pages: the tenant's surfaces; a surface's overview (the current manifest and its age, the stored versions and
what each changed, the window's ingest reports); two versions compared; a rollback (confirmed, then a conditional
write of the pointer, audited); and a playground that ranks with the API's own service (reasons and explain).
No script and no CDN: plain HTML forms and one stylesheet, served by the app.
"""

from __future__ import annotations

import base64
import datetime as dt
import difflib
import json
import secrets
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from recsys.publish.service import read_pointer
from recsys.serve.audit import RequestInfo
from recsys.serve.auth import AuthSettings, Caller, check_path_tenant, require_role, resolve_caller
from recsys.serve.console import overview as views
from recsys.serve.models import RecommendRequest
from recsys.serve.problems import Problem
from recsys.store import NotFound

HERE = Path(__file__).resolve().parent
COOKIE = "recsys_console"
NO_STORE = {"Cache-Control": "no-store"}


class DevIdentity(BaseModel):
    """The console's dev sign-in, kept in its cookie (trusted only while DEV_AUTH_ENABLED, as the dev headers are)."""

    tenant: str = Field(min_length=1)
    user: str = Field(min_length=1)
    roles: list[str] = []
    csrf: str = Field(default_factory=lambda: secrets.token_urlsafe(24))

    def cookie(self) -> str:
        return base64.urlsafe_b64encode(self.model_dump_json().encode()).decode()

    @classmethod
    def from_cookie(cls, value: str | None) -> DevIdentity | None:
        if not value:
            return None
        try:
            return cls.model_validate_json(base64.urlsafe_b64decode(value.encode()))
        except (ValueError, ValidationError):
            return None


TEMPLATES = Jinja2Templates(directory=HERE / "templates")  # autoescaped (.html)


def error_page(request: Request, problem: Problem) -> HTMLResponse:
    """A problem on a console page, as a page (the API's problem+json, readable): its status, code and detail."""
    signed_in = DevIdentity.from_cookie(request.cookies.get(COOKIE))
    return TEMPLATES.TemplateResponse(
        request,
        "error.html",
        {"identity": signed_in, "csrf": "", "problem": problem},
        status_code=problem.status,
        headers={**NO_STORE, **(problem.headers or {})},
    )


def console_router(
    service: Any, auth: AuthSettings, slo: dt.timedelta, request_info: Callable[[Request], RequestInfo]
) -> APIRouter:
    """The console's routes over the API's `service` (recsys.serve.service.RecommendService); `request_info` is
    the app's (request id, client address, user agent: what the audit log records)."""
    router = APIRouter(prefix="/console", include_in_schema=False)
    templates = TEMPLATES
    # The dev sign-in's roles: the deployment's role names (AUTH_VIEWER_ROLE, ...), those that are set.
    roles = [name for name in (auth.auth_viewer_role, auth.auth_operator_role, auth.auth_admin_role) if name]
    stylesheet = (HERE / "console.css").read_text()

    def identity(request: Request) -> DevIdentity | None:
        return DevIdentity.from_cookie(request.cookies.get(COOKIE)) if auth.dev_auth_enabled else None

    def caller_of(request: Request) -> Caller:
        signed_in = identity(request)
        headers: Any = request.headers
        if signed_in is not None:
            headers = {
                auth.dev_auth_tenant_header: signed_in.tenant,
                auth.dev_auth_user_id_header: signed_in.user,
                auth.dev_auth_roles_header: ",".join(signed_in.roles),
            }
        caller = resolve_caller(headers, request.scope.get("aws.event"), auth, service.api_keys)
        service.admit(caller)
        return caller

    def scoped(request: Request, tenant: str, method: str = "GET") -> Caller:
        caller = caller_of(request)
        check_path_tenant(caller, tenant)
        require_role(caller, method, auth)
        return caller

    def may_act(caller: Caller) -> bool:
        try:
            require_role(caller, "POST", auth)
        except Problem:
            return False
        return True

    def check_csrf(request: Request, form: Any) -> None:
        signed_in = identity(request)
        if signed_in is not None and not secrets.compare_digest(str(form.get("csrf", "")), signed_in.csrf):
            raise Problem(403, "RECSYS_CONSOLE_CSRF", "the form is stale or not the console's: reload the page")

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        signed_in = identity(request)
        return templates.TemplateResponse(
            request,
            name,
            {"identity": signed_in, "csrf": signed_in.csrf if signed_in else "", **context},
            status_code=status,
            headers=NO_STORE,
        )

    @router.get("/console.css")
    def css() -> Response:
        return Response(stylesheet, media_type="text/css", headers={"Cache-Control": "max-age=300"})

    @router.get("/login")
    def login_form(request: Request) -> HTMLResponse:
        return page(request, "login.html", dev=auth.dev_auth_enabled, roles=roles)

    @router.post("/login")
    async def login(request: Request) -> Response:
        if not auth.dev_auth_enabled:
            raise Problem(404, "RECSYS_NOT_FOUND", "dev sign-in is off (DEV_AUTH_ENABLED)")
        form = await form_of(request)
        role = str(form.get("role", ""))
        try:
            signed_in = DevIdentity(
                tenant=str(form.get("tenant", "")).strip(),
                user=str(form.get("user", "")).strip(),
                roles=[role] if role in roles else [],
            )
        except ValidationError:
            return page(request, "login.html", 400, dev=True, roles=roles, error="tenant and user are required")
        response = RedirectResponse("/console/", status_code=303)
        response.set_cookie(COOKIE, signed_in.cookie(), httponly=True, samesite="strict", path="/console")
        return response

    @router.post("/logout")
    def logout() -> Response:
        response = RedirectResponse("/console/login", status_code=303)
        response.delete_cookie(COOKIE, path="/console")
        return response

    @router.get("/")
    def home(request: Request) -> Response:
        if auth.dev_auth_enabled and identity(request) is None and not _has_credentials(request, auth):
            return RedirectResponse("/console/login", status_code=303)
        caller = caller_of(request)
        require_role(caller, "GET", auth)
        found = views.surfaces(service.store, caller.tenant)
        return page(request, "home.html", caller=caller, surfaces=found)

    @router.get("/{tenant}/{surface}")
    def surface_overview(request: Request, tenant: str, surface: str) -> HTMLResponse:
        caller = scoped(request, tenant)
        now = dt.datetime.now(dt.UTC)
        shown = views.overview(service.store, tenant, surface, slo, now)
        return page(
            request,
            "overview.html",
            caller=caller,
            view=shown,
            may_act=may_act(caller),
            done=request.query_params.get("done"),
        )

    @router.get("/{tenant}/{surface}/compare")
    def compare(request: Request, tenant: str, surface: str, before: str, after: str) -> HTMLResponse:
        caller = scoped(request, tenant)
        try:
            comparison = views.compare(service.store, tenant, surface, before, after)
        except (NotFound, ValueError):
            raise Problem(404, "RECSYS_MANIFEST_NOT_FOUND", "no such manifest version") from None
        return page(request, "compare.html", caller=caller, tenant=tenant, surface=surface, comparison=comparison)

    @router.get("/{tenant}/{surface}/rollback")
    def rollback_confirm(request: Request, tenant: str, surface: str, to: str) -> HTMLResponse:
        caller = scoped(request, tenant, "POST")  # only those who may roll back are asked to confirm
        try:
            comparison = views.compare(service.store, tenant, surface, _current_version(tenant, surface), to)
        except (NotFound, ValueError):
            raise Problem(404, "RECSYS_MANIFEST_NOT_FOUND", "no such manifest version") from None
        return page(request, "rollback.html", caller=caller, tenant=tenant, surface=surface, comparison=comparison)

    @router.post("/{tenant}/{surface}/rollback")
    async def rollback(request: Request, tenant: str, surface: str) -> Response:
        caller = scoped(request, tenant, "POST")
        form = await form_of(request)
        check_csrf(request, form)
        to, expected = str(form.get("to", "")), str(form.get("from", ""))
        result = await run_in_threadpool(
            service.rollback_manifest, caller, tenant, surface, to, expected, request_info(request)
        )
        return RedirectResponse(
            f"/console/{tenant}/{surface}?done=rolled+back+to+{result.rolled_back_to[:12]}", status_code=303
        )

    @router.get("/{tenant}/{surface}/try")
    def try_it(request: Request, tenant: str, surface: str) -> HTMLResponse:
        caller = scoped(request, tenant)
        query = request.query_params
        fields = ("user_id", "session_id", "anchors", "k", "weights", "weights_b", "version_b")
        form = {name: query.get(name, "") for name in fields}
        versions = views.versions(service.store, tenant, surface)
        answer = answer_b = None
        error = None
        if any(form.values()):
            try:
                answer = rank(caller, surface, form, None, request)
                if form["weights_b"].strip() or form["version_b"]:
                    manifest_b = None
                    if form["version_b"]:
                        manifest_b = views.manifest_version(service.store, tenant, surface, form["version_b"])
                    form_b = {**form, "weights": form["weights_b"] or form["weights"]}
                    answer_b = rank(caller, surface, form_b, manifest_b, request)
            except ValidationError as exc:
                error = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            except NotFound:
                error = "no such manifest version"
            except ValueError:
                error = "k must be a whole number, and weights name=number pairs"
            except Problem as problem:
                error = problem.detail
        was = {item["item_id"]: item["rank"] for item in answer["items"]} if answer else {}
        return page(request, "try.html", caller=caller, tenant=tenant, surface=surface, form=form, answer=answer,
                    answer_b=answer_b, was=was, versions=versions, error=error)  # fmt: skip

    def rank(caller: Caller, surface: str, form: dict[str, str], manifest: Any, request: Request) -> dict:
        """The API service's answer to the playground's fields, with `manifest` (a stored version) or the current."""
        ranked = RecommendRequest.model_validate(_recommend_body(surface, form))
        return service.recommend(caller, ranked, request.state.request_id, manifest=manifest).model_dump(mode="json")

    @router.get("/{tenant}/{surface}/reports")
    def report_list(request: Request, tenant: str, surface: str) -> HTMLResponse:
        caller = scoped(request, tenant)
        names = views.reports(service.store, tenant, surface)
        return page(request, "reports.html", caller=caller, tenant=tenant, surface=surface, names=names)

    @router.get("/{tenant}/{surface}/reports/{name}")
    def report_page(request: Request, tenant: str, surface: str, name: str) -> HTMLResponse:
        caller = scoped(request, tenant)
        try:
            shown = views.report(service.store, tenant, surface, name)
        except (NotFound, ValueError):
            raise Problem(404, "RECSYS_REPORT_NOT_FOUND", "no such evaluation report") from None
        segments = shown.segments()
        metrics = sorted({metric for result in shown.results.values() for metric in result.get(segments[0], {})})
        chosen = request.query_params.get("metric") or _default_metric(shown.columns or metrics, shown.ks)
        values = [
            (recommender, float(result[segments[0]][chosen]))
            for recommender, result in shown.results.items()
            if isinstance(result.get(segments[0], {}).get(chosen), int | float)
        ]
        # The report's own columns, else its metrics at one K (10 when evaluated) and those without a K, as
        # report.md's tables; every metric stays in the chart's list.
        at_k = f"@{shown.beyond_k()}"
        columns = [c for c in shown.columns if not c.endswith(("_low", "_high"))] or [
            metric for metric in metrics if "@" not in metric or metric.endswith(at_k)
        ]
        return page(request, "report.html", caller=caller, tenant=tenant, surface=surface, report_name=name,
                    report=shown, segments=segments, metrics=metrics, chosen=chosen, columns=columns,
                    chart=views.bar_chart(values))  # fmt: skip

    @router.post("/{tenant}/{surface}/invalidate")
    async def invalidate(request: Request, tenant: str, surface: str) -> Response:
        caller = scoped(request, tenant, "POST")
        form = await form_of(request, multi=True)
        check_csrf(request, form)
        targets = form.get("target", [])
        counts = await run_in_threadpool(
            lambda: service.invalidate(tenant, targets, surface, caller=caller, request=request_info(request))
        )
        dropped = ", ".join(f"{target} {counts[target]}" for target in targets) or "nothing chosen"
        return RedirectResponse(
            f"/console/{tenant}/{surface}?done={urllib.parse.quote_plus('caches dropped: ' + dropped)}",
            status_code=303,
        )

    @router.get("/{tenant}/documents/{kind}")
    def document(request: Request, tenant: str, kind: str) -> HTMLResponse:
        caller = scoped(request, tenant)
        current = _document(tenant, kind)
        text = _pretty(current.data) if current else ("{}" if kind == "config" else "[]")
        return page(request, "document.html", caller=caller, tenant=tenant, kind=kind, current=current, text=text,
                    may_act=may_act(caller))  # fmt: skip

    @router.post("/{tenant}/documents/{kind}/preview")
    async def preview(request: Request, tenant: str, kind: str) -> HTMLResponse:
        caller = scoped(request, tenant, "POST")
        form = await form_of(request)
        check_csrf(request, form)
        current = _document(tenant, kind)
        text, version = form.get("text", ""), form.get("version", "")
        try:
            proposed = json.loads(text)
        except ValueError as exc:
            return page(request, "document.html", 400, caller=caller, tenant=tenant, kind=kind, current=current,
                        text=text, may_act=True, error=f"not JSON: {exc}")  # fmt: skip
        before = _pretty(current.data).splitlines() if current else []
        diff = list(difflib.unified_diff(before, _pretty(proposed).splitlines(), "stored", "yours", lineterm=""))
        moved = (current.version if current else "") != version
        return page(request, "preview.html", caller=caller, tenant=tenant, kind=kind, current=current,
                    text=_pretty(proposed), version=version, diff=diff, moved=moved)  # fmt: skip

    @router.post("/{tenant}/documents/{kind}")
    async def save(request: Request, tenant: str, kind: str) -> Response:
        caller = scoped(request, tenant, "POST")
        form = await form_of(request)
        check_csrf(request, form)
        try:
            data = json.loads(form.get("text", ""))
        except ValueError:
            code = "RECSYS_INVALID_CONFIG" if kind == "config" else "RECSYS_INVALID_RULES"
            raise Problem(400, code, f"{kind} must be valid JSON") from None
        # The version the operator previewed against: a change stored meanwhile makes this a 409, never a silent
        # overwrite (the admin API's If-Match).
        version = form.get("version") or None
        saved = await run_in_threadpool(
            service.put_document, caller, tenant, kind, data, version, request_info(request)
        )
        note = f"{kind} saved as {saved.version[:12]}" if saved.changed else f"{kind} unchanged"
        return RedirectResponse(
            f"/console/{tenant}/documents/{kind}?done={urllib.parse.quote_plus(note)}", status_code=303
        )

    def _document(tenant: str, kind: str) -> Any:
        """The tenant's stored config or rules; None when it has none yet."""
        if kind not in ("config", "rules"):
            raise Problem(404, "RECSYS_NOT_FOUND", "documents are config and rules")
        try:
            return service.get_document(tenant, kind)
        except Problem as problem:
            if problem.status == 404:
                return None
            raise

    def _current_version(tenant: str, surface: str) -> str:
        pointer = read_pointer(service.store, tenant, surface)  # the pointer alone, not the whole overview
        if pointer is None:
            raise Problem(409, "RECSYS_NO_CURRENT_MANIFEST", f"{tenant}/{surface} has no current manifest")
        return pointer.manifest.manifest_version

    return router


async def form_of(request: Request, *, multi: bool = False) -> dict[str, Any]:
    """An HTML form's fields (application/x-www-form-urlencoded, the only kind the console posts: the app refuses
    other bodies): each field's last value, or with `multi` the list of its values (checkboxes)."""
    fields = urllib.parse.parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    if not multi:
        return dict(fields)
    grouped: dict[str, Any] = {}
    for name, value in fields:
        grouped.setdefault(name, []).append(value)
    grouped["csrf"] = grouped.get("csrf", [""])[-1]
    return grouped


def _pretty(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)


def _default_metric(metrics: list[str], ks: list[int]) -> str:
    """ndcg@10 when the report has it (ctr for a log report), else its first metric."""
    for wanted in ("ndcg@10", f"ndcg@{max(ks)}" if ks else "", "ctr"):
        if wanted in metrics:
            return wanted
    return metrics[0] if metrics else ""


def _has_credentials(request: Request, auth: AuthSettings) -> bool:
    """Whether the request names an identity itself (a JWT through the gateway, an API key or the dev headers)."""
    names = (auth.api_key_header, auth.dev_auth_tenant_header, auth.dev_auth_user_id_header)
    return bool(request.scope.get("aws.event")) or any(request.headers.get(name) for name in names)


def _recommend_body(surface: str, form: dict[str, str]) -> dict[str, Any]:
    """The playground's fields as a recommend request, with reasons and a summary explanation."""
    body: dict[str, Any] = {"surface": surface, "options": {"include_reasons": True, "explain": "summary"}}
    user = {name: form[name].strip() for name in ("user_id", "session_id") if form[name].strip()}
    if user:
        body["user"] = user
    anchors = [item.strip() for item in form["anchors"].split(",") if item.strip()]
    if anchors:
        body["anchors"] = {"item_ids": anchors}
    if form["k"].strip():
        body["k"] = int(form["k"])
    weights = {}
    for pair in filter(None, (part.strip() for part in form["weights"].split(","))):
        name, _, value = pair.partition("=")
        weights[name.strip()] = float(value)
    if weights:
        body["weights"] = weights
    return body
