"""Caller resolution: every auth error, claim parsing as API Gateway delivers claims, header agreement, API keys,
role checks and the path tenant (seed-service.md §1.8-1.11)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from recsys.serve.auth import (
    AuthSettings,
    Caller,
    check_path_tenant,
    claim,
    claim_values,
    jwt_claims,
    require_role,
    resolve_caller,
)
from recsys.serve.problems import Problem
from recsys.serve.tenant_store import ApiKeys, hash_api_key
from recsys.store import FileSystemStore

AUTH_ENV = (
    "AUTH_REQUIRED",
    "DEV_AUTH_ENABLED",
    "DEV_AUTH_TENANT_HEADER",
    "DEV_AUTH_USER_ID_HEADER",
    "TENANT_HEADER_NAME",
    "AUTH_TENANT_CLAIMS",
    "AUTH_ROLE_CLAIMS",
    "AUTH_VIEWER_ROLE",
    "AUTH_OPERATOR_ROLE",
    "AUTH_ADMIN_ROLE",
    "AUTH_PLATFORM_ADMIN_ROLE",
    "API_KEY_ENABLED",
    "API_KEY_HEADER",
    "API_KEY_HASH_SECRET",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in AUTH_ENV:
        monkeypatch.delenv(name, raising=False)


def jwt_event(**claims: Any) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event after the JWT authorizer accepted a token with `claims`."""
    return {"version": "2.0", "requestContext": {"authorizer": {"jwt": {"claims": claims, "scopes": None}}}}


def problem_of(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Problem:
    with pytest.raises(Problem) as info:
        call(*args, **kwargs)
    return info.value


def assert_problem(problem: Problem, status: int, code: str, detail: str | None = None) -> None:
    assert (problem.status, problem.code) == (status, code), problem.detail
    if detail is not None:
        assert problem.detail == detail


def resolve(
    headers: dict[str, str] | None = None,
    event: dict[str, Any] | None = None,
    settings: AuthSettings | None = None,
    api_keys: ApiKeys | None = None,
) -> Caller:
    return resolve_caller(headers or {}, event, settings or AuthSettings(), api_keys)


DEV = AuthSettings(dev_auth_enabled=True)
# Roles come only from the claims an operator names: these tests name the usual ones.
ROLE_CLAIMS = AuthSettings(auth_role_claims="roles,role,scope,scopes")


# --- settings --------------------------------------------------------------------------------------------------


def test_settings_defaults_are_the_seeds_but_name_no_role_claim() -> None:
    s = AuthSettings()
    assert s.auth_required is True
    assert s.dev_auth_enabled is False
    assert (s.dev_auth_tenant_header, s.dev_auth_user_id_header) == ("X-Dev-Org-Id", "X-Dev-User-Id")
    assert s.tenant_header_name == "X-Org-Id"
    assert s.auth_tenant_claims == ["tenant_id", "org_id", "orgId", "organization_id"]
    assert s.auth_role_claims == []  # the seed's default, roles,role,scope,scopes, read roles from OAuth scopes
    assert (s.auth_viewer_role, s.auth_operator_role, s.auth_admin_role) == ("viewer", "operator", "admin")
    assert s.auth_platform_admin_role == ""
    assert (s.api_key_enabled, s.api_key_header) == (False, "X-API-Key")
    assert s.api_key_hash_secret.get_secret_value() == ""


def test_settings_read_the_seeds_variable_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_TENANT_CLAIMS", "app_metadata.tenant_id, org_id")
    monkeypatch.setenv("AUTH_ROLE_CLAIMS", '["cognito:groups"]')
    monkeypatch.setenv("DEV_AUTH_ENABLED", "true")
    monkeypatch.setenv("TENANT_HEADER_NAME", "X-Tenant")
    monkeypatch.setenv("AUTH_ADMIN_ROLE", "")
    monkeypatch.setenv("API_KEY_ENABLED", "true")
    monkeypatch.setenv("API_KEY_HASH_SECRET", "pepper")
    s = AuthSettings()
    assert s.auth_tenant_claims == ["app_metadata.tenant_id", "org_id"]
    assert s.auth_role_claims == ["cognito:groups"]
    assert s.dev_auth_enabled and s.api_key_enabled
    assert s.tenant_header_name == "X-Tenant"
    assert s.auth_admin_role == ""
    assert s.api_key_hash_secret.get_secret_value() == "pepper"
    assert "pepper" not in repr(s)


# --- no identity -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"X-Org-Id": "acme"}, {"X-Dev-Org-Id": "acme", "X-Dev-User-Id": "u1"}])
def test_no_identity_is_401_auth_required(headers: dict[str, str]) -> None:
    # Dev headers count for nothing while DEV_AUTH_ENABLED is off (the default).
    assert_problem(problem_of(resolve, headers), 401, "RECSYS_AUTH_REQUIRED", "authentication required")


def test_an_event_without_an_authorizer_is_no_identity() -> None:
    event = {"version": "2.0", "requestContext": {"http": {"method": "POST"}}}
    assert jwt_claims(event) == {}
    assert_problem(problem_of(resolve, {}, event), 401, "RECSYS_AUTH_REQUIRED")


def test_auth_not_required_gives_an_anonymous_caller_scoped_by_the_header() -> None:
    settings = AuthSettings(auth_required=False)
    caller = resolve({"X-Org-Id": "acme"}, settings=settings)
    assert caller == Caller(tenant="acme", roles=frozenset(), user_id=None, source="anonymous", is_admin=False)
    assert_problem(problem_of(resolve, {}, settings=settings), 403, "RECSYS_TENANT_SCOPE_REQUIRED")


# --- JWT -------------------------------------------------------------------------------------------------------


def test_jwt_caller_from_claims() -> None:
    event = jwt_event(sub="user-1", tenant_id="acme", roles="[viewer operator]", scope="read:recs write:config")
    caller = resolve({}, event, ROLE_CLAIMS)
    assert caller.source == "jwt"
    assert caller.tenant == "acme"
    assert caller.user_id == "user-1"
    assert caller.roles == {"viewer", "operator", "read:recs", "write:config"}
    assert caller.is_admin is False


def test_tenant_claim_is_the_first_non_empty_in_order() -> None:
    assert resolve({}, jwt_event(tenant_id="", org_id="org-b", orgId="org-c")).tenant == "org-b"
    assert resolve({}, jwt_event(organization_id="org-d", orgId="org-c")).tenant == "org-c"


@pytest.mark.parametrize(
    "app_metadata",
    [
        {"tenant_id": "acme", "plan": "pro"},  # a real object (tests, other gateways)
        '{"tenant_id": "acme", "plan": "pro"}',  # JSON-encoded
        "map[plan:pro tenant_id:acme]",  # API Gateway's flattening of an object claim
    ],
)
def test_dotted_tenant_claim_reaches_into_objects(app_metadata: Any) -> None:
    settings = AuthSettings(auth_tenant_claims="app_metadata.tenant_id")
    assert resolve({}, jwt_event(sub="u", app_metadata=app_metadata), settings).tenant == "acme"


def test_namespaced_claim_names_with_dots_match_exactly() -> None:
    settings = AuthSettings(
        auth_tenant_claims="https://example.com/tenant", auth_role_claims="https://example.com/roles"
    )
    event = jwt_event(**{"https://example.com/tenant": "acme", "https://example.com/roles": "[admin]"})
    caller = resolve({}, event, settings)
    assert (caller.tenant, caller.roles, caller.is_admin) == ("acme", {"admin"}, True)


def test_claim_paths() -> None:
    claims = {"a": {"b": {"c": "deep"}}, "a.b": {"c": "literal-prefix"}, "x": "not-an-object"}
    assert claim(claims, "a.b.c") == "literal-prefix"  # the longest existing claim name wins
    assert claim({"a": {"b": {"c": "deep"}}}, "a.b.c") == "deep"
    assert claim(claims, "x.y") is None
    assert claim(claims, "missing") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("[admin viewer]", ["admin", "viewer"]),  # API Gateway's rendering of a JSON array claim
        ("[admin]", ["admin"]),
        ("[]", []),
        ('["admin", "viewer"]', ["admin", "viewer"]),
        ("admin viewer", ["admin", "viewer"]),  # OAuth scope: space-separated
        ("admin,viewer, operator", ["admin", "viewer", "operator"]),
        ("admin\tviewer", ["admin", "viewer"]),
        (["admin", "viewer"], ["admin", "viewer"]),
        ("", []),
        (None, []),
        (7, ["7"]),
    ],
)
def test_claim_values(value: Any, expected: list[str]) -> None:
    assert claim_values(value) == expected


def test_roles_are_the_union_of_all_role_claims() -> None:
    event = jwt_event(tenant_id="acme", roles="[viewer]", role="operator", scopes="[a b]")
    assert resolve({}, event, ROLE_CLAIMS).roles == {"viewer", "operator", "a", "b"}


def test_without_configured_role_claims_a_jwt_has_no_roles() -> None:
    # An OAuth scope is free text the identity provider grants for any API: "openid admin" must not make an admin.
    event = jwt_event(sub="u", tenant_id="acme", scope="openid admin", scopes="[admin]", roles="[admin]", role="admin")
    caller = resolve({}, event)
    assert (caller.roles, caller.is_admin, caller.is_platform_admin) == (frozenset(), False, False)
    assert_problem(problem_of(require_role, caller, "GET", AuthSettings()), 403, "RECSYS_FORBIDDEN")


def test_only_the_configured_role_claims_are_read() -> None:
    settings = AuthSettings(auth_role_claims="cognito:groups")
    event = jwt_event(sub="u", tenant_id="acme", scope="openid admin", **{"cognito:groups": "[operator]"})
    caller = resolve({}, event, settings)
    assert (caller.roles, caller.is_admin) == ({"operator"}, False)


def test_jwt_without_tenant_is_403_even_with_a_tenant_header() -> None:
    # The header may narrow a caller's tenant, never grant one: any token holder could otherwise pick any tenant.
    event = jwt_event(sub="u", roles="[admin]")
    assert_problem(problem_of(resolve, {}, event), 403, "RECSYS_TENANT_SCOPE_REQUIRED")
    assert_problem(problem_of(resolve, {"X-Org-Id": "acme"}, event), 403, "RECSYS_TENANT_SCOPE_REQUIRED")


def test_multi_valued_tenant_claim_is_403_invalid() -> None:
    assert_problem(problem_of(resolve, {}, jwt_event(tenant_id="[acme other]")), 403, "RECSYS_TENANT_SCOPE_INVALID")


def test_jwt_and_dev_headers_never_combine() -> None:
    event = jwt_event(sub="u", tenant_id="acme")
    got = problem_of(resolve, {"X-Dev-Org-Id": "acme"}, event, DEV)
    assert_problem(got, 401, "RECSYS_AUTH_INVALID")
    # With dev auth off the dev headers are simply not read.
    assert resolve({"X-Dev-Org-Id": "other"}, event).source == "jwt"


# --- tenant header ---------------------------------------------------------------------------------------------


class MultiHeaders:
    """A header mapping with repeated names, like Starlette's Headers.items()."""

    def __init__(self, *pairs: tuple[str, str]) -> None:
        self.pairs = pairs

    def items(self) -> Iterator[tuple[str, str]]:
        return iter(self.pairs)


@pytest.mark.parametrize("name", ["X-Org-Id", "x-org-id", "X-ORG-ID"])
def test_tenant_header_agreeing_with_the_identity(name: str) -> None:
    assert resolve({name: "acme"}, jwt_event(sub="u", tenant_id="acme")).tenant == "acme"


def test_tenant_header_disagreeing_is_403_mismatch() -> None:
    got = problem_of(resolve, {"X-Org-Id": "other"}, jwt_event(sub="u", tenant_id="acme"))
    assert_problem(got, 403, "RECSYS_TENANT_SCOPE_MISMATCH")
    got = problem_of(resolve, {"X-Org-Id": "other", "X-Dev-Org-Id": "acme"}, None, DEV)
    assert_problem(got, 403, "RECSYS_TENANT_SCOPE_MISMATCH")


@pytest.mark.parametrize("value", ["acme,other", "acme other", "acme\tother", " acme"])
def test_tenant_header_with_separators_is_403_invalid(value: str) -> None:
    got = problem_of(resolve, {"X-Org-Id": value}, jwt_event(sub="u", tenant_id="acme"))
    assert_problem(got, 403, "RECSYS_TENANT_SCOPE_INVALID")


def test_repeated_tenant_header_is_403_invalid() -> None:
    headers = MultiHeaders(("X-Org-Id", "acme"), ("x-org-id", "acme"))
    got = problem_of(resolve_caller, headers, jwt_event(sub="u", tenant_id="acme"), AuthSettings(), None)
    assert_problem(got, 403, "RECSYS_TENANT_SCOPE_INVALID")


def test_custom_tenant_header_name() -> None:
    settings = AuthSettings(tenant_header_name="X-Tenant")
    event = jwt_event(sub="u", tenant_id="acme")
    assert_problem(problem_of(resolve, {"X-Tenant": "b"}, event, settings), 403, "RECSYS_TENANT_SCOPE_MISMATCH")
    assert resolve({"X-Org-Id": "b"}, event, settings).tenant == "acme"  # not the configured header: ignored


@pytest.mark.parametrize(
    ("headers", "event"),
    [
        ({}, jwt_event(sub="u", tenant_id="../etc")),
        ({"X-Org-Id": "a/b"}, jwt_event(sub="u", tenant_id="acme")),
        ({"X-Dev-Org-Id": "..", "X-Dev-User-Id": "u"}, None),
    ],
)
def test_unusable_tenant_values_are_400_invalid_tenant(headers: dict[str, str], event: Any) -> None:
    assert_problem(problem_of(resolve, headers, event, DEV), 400, "RECSYS_INVALID_TENANT")


# --- dev auth --------------------------------------------------------------------------------------------------


def test_dev_headers_when_enabled() -> None:
    caller = resolve({"X-Dev-Org-Id": "acme", "X-Dev-User-Id": "dev-1"}, None, DEV)
    assert caller == Caller(tenant="acme", roles=frozenset(), user_id="dev-1", source="dev", is_admin=False)


def test_dev_user_takes_the_tenant_header() -> None:
    caller = resolve({"X-Dev-User-Id": "dev-1", "X-Org-Id": "acme"}, None, DEV)
    assert (caller.tenant, caller.source) == ("acme", "dev")
    assert_problem(problem_of(resolve, {"X-Dev-User-Id": "dev-1"}, None, DEV), 403, "RECSYS_TENANT_SCOPE_REQUIRED")


# --- API keys --------------------------------------------------------------------------------------------------


@pytest.fixture
def keys(store: FileSystemStore) -> ApiKeys:
    return ApiKeys(store)


KEYS_ON = AuthSettings(api_key_enabled=True)


def test_api_key_caller(keys: ApiKeys) -> None:
    key, record = keys.create("acme", ["operator"], "ci")
    caller = resolve({"X-API-Key": key}, None, KEYS_ON, keys)
    assert caller.source == "api_key"
    assert (caller.tenant, caller.roles) == ("acme", {"operator"})
    assert caller.user_id == f"api-key:{record.key_hash[:12]}"
    assert key not in (caller.user_id or "")


@pytest.mark.parametrize("state", ["unknown", "revoked", "expired"])
def test_unusable_api_key_is_401_auth_invalid(keys: ApiKeys, state: str) -> None:
    expires = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1) if state == "expired" else None
    key, record = keys.create("acme", ["viewer"], "ci", expires_at=expires)
    if state == "unknown":
        key = key + "x"
    if state == "revoked":
        keys.revoke(record.key_hash)
    got = problem_of(resolve, {"X-API-Key": key}, None, KEYS_ON, keys)
    assert_problem(got, 401, "RECSYS_AUTH_INVALID", "invalid api key")


def test_api_key_hmac_secret(keys: ApiKeys) -> None:
    key, record = keys.create("acme", ["viewer"], "ci", secret="pepper")
    assert record.key_hash == hmac.new(b"pepper", key.encode(), hashlib.sha256).hexdigest()
    with_secret = AuthSettings(api_key_enabled=True, api_key_hash_secret="pepper")
    assert resolve({"X-API-Key": key}, None, with_secret, keys).tenant == "acme"
    # The same key hashed without the secret names no record.
    assert_problem(problem_of(resolve, {"X-API-Key": key}, None, KEYS_ON, keys), 401, "RECSYS_AUTH_INVALID")


def test_api_key_hash_forms() -> None:
    assert hash_api_key("rsk_x") == hashlib.sha256(b"rsk_x").hexdigest()
    assert hash_api_key("rsk_x", "s") == hmac.new(b"s", b"rsk_x", hashlib.sha256).hexdigest()


def test_api_key_header_is_ignored_unless_enabled(keys: ApiKeys) -> None:
    key, _ = keys.create("acme", ["viewer"], "ci")
    assert_problem(problem_of(resolve, {"X-API-Key": key}, None, AuthSettings(), keys), 401, "RECSYS_AUTH_REQUIRED")


def test_api_keys_enabled_without_a_key_store_rejects_keys() -> None:
    assert_problem(problem_of(resolve, {"X-API-Key": "rsk_x"}, None, KEYS_ON, None), 401, "RECSYS_AUTH_INVALID")


def test_api_key_and_tenant_header(keys: ApiKeys) -> None:
    key, _ = keys.create("acme", ["viewer"], "ci")
    assert resolve({"X-API-Key": key, "X-Org-Id": "acme"}, None, KEYS_ON, keys).tenant == "acme"
    got = problem_of(resolve, {"X-API-Key": key, "X-Org-Id": "other"}, None, KEYS_ON, keys)
    assert_problem(got, 403, "RECSYS_TENANT_SCOPE_MISMATCH")


def test_api_key_with_a_jwt_must_share_its_tenant(keys: ApiKeys) -> None:
    key, _ = keys.create("acme", ["operator"], "ci")
    caller = resolve({"X-API-Key": key}, jwt_event(sub="u", tenant_id="acme", roles="[viewer]"), KEYS_ON, keys)
    assert (caller.source, caller.roles) == ("api_key", {"operator"})
    got = problem_of(resolve, {"X-API-Key": key}, jwt_event(sub="u", tenant_id="other"), KEYS_ON, keys)
    assert_problem(got, 403, "RECSYS_TENANT_SCOPE_MISMATCH")


# --- roles -----------------------------------------------------------------------------------------------------


def caller_with(*roles: str, tenant: str = "acme") -> Caller:
    return Caller(tenant=tenant, roles=frozenset(roles), user_id="u", source="jwt")


@pytest.mark.parametrize(
    ("roles", "method", "allowed"),
    [
        (("viewer",), "GET", True),
        (("viewer",), "HEAD", True),
        (("viewer",), "OPTIONS", True),
        (("viewer",), "PUT", False),
        (("viewer",), "POST", False),
        (("operator",), "GET", True),
        (("operator",), "PUT", True),
        (("admin",), "DELETE", True),
        (("admin",), "get", True),
        ((), "GET", False),
        (("read:recs",), "GET", False),
    ],
)
def test_require_role(roles: tuple[str, ...], method: str, allowed: bool) -> None:
    settings = AuthSettings()
    if allowed:
        require_role(caller_with(*roles), method, settings)
    else:
        got = problem_of(require_role, caller_with(*roles), method, settings)
        assert_problem(got, 403, "RECSYS_FORBIDDEN", "insufficient scope")


def test_custom_role_names_and_blank_roles() -> None:
    settings = AuthSettings(auth_viewer_role="", auth_operator_role="recs-ops", auth_admin_role="")
    require_role(caller_with("recs-ops"), "PUT", settings)
    assert_problem(problem_of(require_role, caller_with("viewer"), "GET", settings), 403, "RECSYS_FORBIDDEN")


def test_all_role_names_blank_turns_role_checks_off() -> None:
    # The seed's local-demo mode: dev headers carry no roles.
    settings = AuthSettings(auth_viewer_role="", auth_operator_role="", auth_admin_role="", dev_auth_enabled=True)
    caller = resolve({"X-Dev-Org-Id": "acme"}, None, settings)
    require_role(caller, "PUT", settings)
    assert caller.is_admin is True


def test_is_admin_follows_the_admin_role() -> None:
    assert resolve({}, jwt_event(sub="u", tenant_id="acme", roles="[admin]"), ROLE_CLAIMS).is_admin is True
    assert resolve({}, jwt_event(sub="u", tenant_id="acme", roles="[operator]"), ROLE_CLAIMS).is_admin is False


def test_platform_admin_is_the_configured_role_only() -> None:
    event = jwt_event(sub="u", tenant_id="acme", roles="[admin platform-ops]")
    assert resolve({}, event, ROLE_CLAIMS).is_platform_admin is False  # no platform admin role by default
    settings = AuthSettings(auth_role_claims="roles", auth_platform_admin_role=" platform-ops ")
    assert resolve({}, event, settings).is_platform_admin is True
    assert resolve({}, jwt_event(sub="u", tenant_id="acme", roles="[admin]"), settings).is_platform_admin is False
    # Role checks off (every caller counts as admin) still makes nobody a platform admin.
    blank = AuthSettings(auth_viewer_role="", auth_operator_role="", auth_admin_role="", dev_auth_enabled=True)
    dev = resolve({"X-Dev-Org-Id": "acme"}, None, blank)
    assert (dev.is_admin, dev.is_platform_admin) == (True, False)


# --- path tenant -----------------------------------------------------------------------------------------------


def test_path_tenant_must_be_the_callers() -> None:
    check_path_tenant(caller_with("admin"), "acme")
    assert_problem(problem_of(check_path_tenant, caller_with("admin"), "other"), 403, "RECSYS_TENANT_SCOPE_MISMATCH")
    assert_problem(problem_of(check_path_tenant, caller_with("admin"), "a..b"), 400, "RECSYS_INVALID_TENANT")
