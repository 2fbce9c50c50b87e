"""Who is calling, and for which tenant: the seed's auth and tenant rules as pure functions over the request.

Sources of identity (seed-service.md §1.9), one per request:
  jwt      the claims API Gateway's JWT authorizer verified, at requestContext.authorizer.jwt.claims of the event
           (signature, issuer, audience and expiry are checked by the gateway before the function runs)
  api_key  the API_KEY_HEADER header, looked up by its hash (only when API_KEY_ENABLED)
  dev      DEV_AUTH_TENANT_HEADER / DEV_AUTH_USER_ID_HEADER (only when DEV_AUTH_ENABLED; never together with a JWT)
With AUTH_REQUIRED=false a request without any of them is an "anonymous" caller.

A JWT's roles come only from the claims AUTH_ROLE_CLAIMS names (none by default): a claim such as the OAuth `scope`
is free text an identity provider grants for any API, so reading roles from it unasked would make "openid admin"
an admin. API keys carry their own roles; dev callers those of DEV_AUTH_ROLES_HEADER (local use, as the other dev
headers); anonymous callers none.

The TENANT_HEADER_NAME header may accompany any source and must then agree with it. It never grants a tenant to a
JWT or an API key: those must carry their own (a JWT without a tenant claim is 403 RECSYS_TENANT_SCOPE_REQUIRED).
Dev and anonymous callers take their tenant from the header when they have none of their own.

No FastAPI here: `resolve_caller` takes any case-insensitive header mapping (Starlette's Headers, or a dict) and
the raw API Gateway event (Mangum puts it at `request.scope["aws.event"]`; None under uvicorn).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from recsys.paths import safe_segment
from recsys.serve.problems import Problem

if TYPE_CHECKING:
    from recsys.serve.tenant_store import ApiKeyRecord

Source = Literal["jwt", "api_key", "dev", "anonymous"]

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class AuthSettings(BaseSettings):
    """Auth configuration from the seed service's environment variables (no prefix)."""

    model_config = SettingsConfigDict(extra="ignore")

    auth_required: bool = Field(True, description="protected routes need an identity (else 401)")
    dev_auth_enabled: bool = Field(False, description="trust the dev headers (local use only)")
    dev_auth_tenant_header: str = "X-Dev-Org-Id"
    dev_auth_user_id_header: str = "X-Dev-User-Id"
    dev_auth_roles_header: str = Field(
        "X-Dev-Roles", description="a dev caller's roles, comma-separated (only with DEV_AUTH_ENABLED; the console)"
    )
    tenant_header_name: str = Field("X-Org-Id", description="optional tenant header; must agree with the identity")
    # NoDecode: comma-separated lists in the environment, as the seed's variables are.
    auth_tenant_claims: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["tenant_id", "org_id", "orgId", "organization_id"],
        description="claims tried in order for the tenant; dotted paths reach into objects (app_metadata.tenant_id)",
    )
    auth_role_claims: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="claims whose values (lists, or strings split on whitespace/commas) are the caller's roles; "
        "none by default, so a JWT has no roles until the operator names its identity provider's role claim",
    )
    auth_viewer_role: str = "viewer"
    auth_operator_role: str = "operator"
    auth_admin_role: str = "admin"
    auth_platform_admin_role: str = Field(
        "", description="role whose holders act on every tenant's shared caches; empty = nobody (the default)"
    )
    api_key_enabled: bool = False
    api_key_header: str = "X-API-Key"
    api_key_hash_secret: SecretStr = Field(
        SecretStr(""), description="HMAC-SHA256 key for API key hashes; empty = plain SHA-256"
    )

    @field_validator("auth_tenant_claims", "auth_role_claims", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator(
        "auth_viewer_role", "auth_operator_role", "auth_admin_role", "auth_platform_admin_role", mode="after"
    )
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @property
    def rbac_enabled(self) -> bool:
        """The seed's rule: role checks apply when any of the three role names is set."""
        return bool(self.auth_viewer_role or self.auth_operator_role or self.auth_admin_role)


@dataclass(frozen=True)
class Caller:
    """The resolved identity of a request. `tenant` scopes everything the request may read or write."""

    tenant: str
    roles: frozenset[str]
    user_id: str | None
    source: Source
    # Admin role held, or role checks disabled (all role names blank): gates explain=full and traces.
    is_admin: bool = False
    # AUTH_PLATFORM_ADMIN_ROLE held (never implied by disabled role checks): may flush every tenant's artifacts.
    is_platform_admin: bool = False


class ApiKeysLike(Protocol):
    """Finds an API key's record by the key; None for unknown, revoked or expired keys."""

    def lookup(self, key: str, secret: str) -> ApiKeyRecord | None: ...


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-cased names; repeated headers joined with "," as HTTP (and API Gateway) do."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


def _header(headers: dict[str, str], name: str) -> str | None:
    """A header's value, None if absent, empty or the header name is unset."""
    if not name:
        return None
    value = headers.get(name.lower())
    return value if value and value.strip() else None


# --- claims ----------------------------------------------------------------------------------------------------

_GO_MAP = re.compile(r"^map\[(.*)\]$", re.DOTALL)


def jwt_claims(aws_event: Mapping[str, Any] | None) -> dict[str, Any]:
    """The claims API Gateway's JWT authorizer verified (payload format 2.0); {} without one."""
    if not isinstance(aws_event, Mapping):
        return {}
    node: Any = aws_event
    for step in ("requestContext", "authorizer", "jwt", "claims"):
        node = node.get(step) if isinstance(node, Mapping) else None
    return dict(node) if isinstance(node, Mapping) else {}


def _as_object(value: Any) -> Mapping[str, Any] | None:
    """A claim value as an object: a dict, a JSON object string, or API Gateway's flattened "map[k:v ...]"."""
    if isinstance(value, Mapping):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.startswith("{"):
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError:
            return None
        return decoded if isinstance(decoded, dict) else None
    match = _GO_MAP.match(text)
    if match:
        # Go's fmt of a map: "map[k1:v1 k2:v2]" (scalar values only; nested maps are not recoverable).
        pairs = (part.partition(":") for part in match.group(1).split())
        return {k: v for k, sep, v in pairs if sep and k}
    return None


def claim(claims: Mapping[str, Any], path: str) -> Any:
    """The value at `path`: an exact claim name first (namespaced claims contain dots, e.g.
    "https://example.com/tenant"), else a dotted path into objects; None if absent."""
    if path in claims:
        return claims[path]
    # Longest prefix first, so "a.b.c" prefers a claim named "a.b" over "a".
    for cut in range(len(path) - 1, 0, -1):
        if path[cut] != "." or path[:cut] not in claims:
            continue
        inner = _as_object(claims[path[:cut]])
        if inner is not None:
            found = claim(inner, path[cut + 1 :])
            if found is not None:
                return found
    return None


def claim_values(value: Any) -> list[str]:
    """A claim's values: lists as they are; strings split on whitespace and commas, after unwrapping API Gateway's
    "[a b c]" (how its JWT authorizer renders array claims) or a JSON list."""
    if value is None:
        return []
    if isinstance(value, list | tuple | set | frozenset):
        return [text for item in value for text in claim_values(item)]
    if isinstance(value, bool | int | float):
        return [str(value).lower() if isinstance(value, bool) else str(value)]
    if not isinstance(value, str):
        return []
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError:
            text = text[1:-1]
        else:
            if isinstance(decoded, list):
                return claim_values(decoded)
    return [part for part in re.split(r"[\s,]+", text) if part]


def _tenant_from_claims(claims: Mapping[str, Any], names: list[str]) -> str | None:
    for name in names:
        values = claim_values(claim(claims, name))
        if len(values) > 1:
            raise Problem(403, "RECSYS_TENANT_SCOPE_INVALID", f"tenant claim {name} has more than one value")
        if values:
            return values[0]
    return None


def _roles_from_claims(claims: Mapping[str, Any], names: list[str]) -> frozenset[str]:
    return frozenset(role for name in names for role in claim_values(claim(claims, name)))


# --- resolution ------------------------------------------------------------------------------------------------


def _valid_tenant(value: str) -> str:
    try:
        return safe_segment(value, "tenant")
    except ValueError:
        raise Problem(400, "RECSYS_INVALID_TENANT", f"invalid tenant {value!r}") from None


def resolve_caller(
    headers: Mapping[str, str],
    aws_event: Mapping[str, Any] | None,
    settings: AuthSettings,
    api_keys: ApiKeysLike | None,
) -> Caller:
    """The request's caller, or a `Problem`:
    401 RECSYS_AUTH_INVALID (bad API key, dev headers alongside a JWT), 401 RECSYS_AUTH_REQUIRED (no identity),
    403 RECSYS_TENANT_SCOPE_INVALID (tenant header with a comma/space/tab, multi-valued tenant claim),
    400 RECSYS_INVALID_TENANT, 403 RECSYS_TENANT_SCOPE_MISMATCH (sources disagree),
    403 RECSYS_TENANT_SCOPE_REQUIRED (no tenant, or a JWT/API key without one)."""
    lowered = _lower_headers(headers)
    claims = jwt_claims(aws_event)

    source: Source
    tenant: str | None = None
    roles: frozenset[str] = frozenset()
    user_id: str | None = None
    jwt_tenant: str | None = None

    dev_tenant = dev_user = dev_roles = None
    if settings.dev_auth_enabled:
        dev_tenant = _header(lowered, settings.dev_auth_tenant_header)
        dev_user = _header(lowered, settings.dev_auth_user_id_header)
        dev_roles = _header(lowered, settings.dev_auth_roles_header)
    if claims and (dev_tenant or dev_user):
        raise Problem(401, "RECSYS_AUTH_INVALID", "dev auth headers cannot be combined with a jwt")

    key = _header(lowered, settings.api_key_header) if settings.api_key_enabled else None
    if claims:
        source = "jwt"
        jwt_tenant = tenant = _tenant_from_claims(claims, settings.auth_tenant_claims)
        roles = _roles_from_claims(claims, settings.auth_role_claims)
        sub = claims.get("sub")
        user_id = str(sub) if sub not in (None, "") else None
    if key is not None:
        record = api_keys.lookup(key.strip(), settings.api_key_hash_secret.get_secret_value()) if api_keys else None
        if record is None or not record.active(dt.datetime.now(dt.UTC)):
            raise Problem(401, "RECSYS_AUTH_INVALID", "invalid api key")
        if jwt_tenant is not None and _valid_tenant(jwt_tenant) != record.tenant:
            raise Problem(403, "RECSYS_TENANT_SCOPE_MISMATCH", "api key tenant does not match the token's tenant")
        # A key presented with a JWT acts with the key's roles: it is the more specific credential.
        source, tenant, roles, user_id = "api_key", record.tenant, record.roles, f"api-key:{record.key_hash[:12]}"
    elif not claims:
        if dev_tenant or dev_user:
            source, tenant, user_id = "dev", dev_tenant, dev_user
            roles = frozenset(claim_values(dev_roles)) if dev_roles else frozenset()
        elif settings.auth_required:
            raise Problem(401, "RECSYS_AUTH_REQUIRED", "authentication required")
        else:
            source = "anonymous"

    header_tenant = _header(lowered, settings.tenant_header_name)
    if header_tenant is not None:
        if any(ch in header_tenant for ch in ", \t"):
            raise Problem(403, "RECSYS_TENANT_SCOPE_INVALID", f"{settings.tenant_header_name} must be one tenant")
        header_tenant = _valid_tenant(header_tenant)
    if tenant is not None:
        tenant = _valid_tenant(tenant.strip())
        if header_tenant is not None and header_tenant != tenant:
            raise Problem(403, "RECSYS_TENANT_SCOPE_MISMATCH", "tenant header does not match the caller's tenant")
    elif source in ("dev", "anonymous"):
        tenant = header_tenant
    if tenant is None:
        raise Problem(403, "RECSYS_TENANT_SCOPE_REQUIRED", "tenant scope required")

    is_admin = not settings.rbac_enabled or bool(settings.auth_admin_role and settings.auth_admin_role in roles)
    is_platform_admin = bool(settings.auth_platform_admin_role and settings.auth_platform_admin_role in roles)
    return Caller(
        tenant=tenant,
        roles=roles,
        user_id=user_id,
        source=source,
        is_admin=is_admin,
        is_platform_admin=is_platform_admin,
    )


def check_path_tenant(caller: Caller, tenant_id: str) -> None:
    """A `{tenant_id}` in the URL must be the caller's tenant (the seed never compared them)."""
    _valid_tenant(tenant_id)
    if tenant_id != caller.tenant:
        raise Problem(403, "RECSYS_TENANT_SCOPE_MISMATCH", "path tenant does not match the caller's tenant")


def require_role(caller: Caller, method: str, settings: AuthSettings) -> None:
    """Admin RBAC: reads need viewer|operator|admin, writes operator|admin; off when all role names are blank."""
    if not settings.rbac_enabled:
        return
    names = [settings.auth_operator_role, settings.auth_admin_role]
    if method.upper() in READ_METHODS:
        names.append(settings.auth_viewer_role)
    if not caller.roles & {name for name in names if name}:
        raise Problem(403, "RECSYS_FORBIDDEN", "insufficient scope")
