"""The OpenAPI document as a contract: each route's possible statuses with their problem `code`s, request bodies
with what the routes require and realistic examples, and the security schemes as deployed.

The routes parse their bodies themselves (to answer the seed's exact details), so the request schemas here are
documentation, checked by tests/serve/test_openapi_fuzz.py, and never run per request.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from recsys.serve.problems import ProblemBody

PROBLEM_JSON = "application/problem+json"

# What any /v1 route can answer before it runs: identity, tenant and the tenant's rate limit.
_IDENTITY = {
    400: ["RECSYS_INVALID_TENANT"],
    401: ["RECSYS_AUTH_REQUIRED", "RECSYS_AUTH_INVALID"],
    403: ["RECSYS_TENANT_SCOPE_REQUIRED", "RECSYS_TENANT_SCOPE_INVALID", "RECSYS_TENANT_SCOPE_MISMATCH"],
    429: ["RECSYS_RATE_LIMIT_EXCEEDED"],
    500: ["RECSYS_INTERNAL"],
}
# What any POST/PUT can answer while its body is read (the request middleware).
_BODY = {
    400: ["RECSYS_INVALID_REQUEST"],
    413: ["RECSYS_PAYLOAD_TOO_LARGE"],
    415: ["RECSYS_UNSUPPORTED_MEDIA_TYPE"],
}
_ADMIN = {403: ["RECSYS_FORBIDDEN"], 500: ["RECSYS_INVALID_CONFIG"]}
_SERVING = {
    400: ["RECSYS_INVALID_REQUEST"],
    403: ["RECSYS_FORBIDDEN"],
    422: ["RECSYS_UNPROCESSABLE_ENTITY", "RECSYS_EXPLAIN_TOO_LARGE", "RECSYS_ARTIFACT_INCOMPATIBLE"],
    500: ["RECSYS_INVALID_CONFIG"],
}


def _merge(*tables: dict[int, list[str]]) -> dict[int, list[str]]:
    merged: dict[int, list[str]] = {}
    for table in tables:
        for status, codes in table.items():
            merged.setdefault(status, [])
            merged[status] += [code for code in codes if code not in merged[status]]
    return dict(sorted(merged.items()))


def problems(*tables: dict[int, list[str]]) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses` for these statuses: a problem+json body whose `code` is one of the listed ones."""
    return {
        status: {
            "description": "Problem: " + ", ".join(codes),
            "content": {
                PROBLEM_JSON: {
                    "schema": {
                        "allOf": [
                            {"$ref": "#/components/schemas/ProblemBody"},
                            {"properties": {"code": {"enum": codes}, "status": {"const": status}}},
                        ]
                    }
                }
            },
        }
        for status, codes in _merge(*tables).items()
    }


SERVING = problems(_IDENTITY, _BODY, _SERVING)
ADMIN_READ = problems(_IDENTITY, _ADMIN)
CONFIG_READ = problems(_IDENTITY, _ADMIN, {404: ["RECSYS_CONFIG_NOT_FOUND"]})
RULES_READ = problems(_IDENTITY, _ADMIN, {404: ["RECSYS_RULES_NOT_FOUND"]})
_VERSIONED = {409: ["RECSYS_VERSION_MISMATCH"]}
CONFIG_WRITE = problems(
    _IDENTITY, _BODY, _ADMIN, _VERSIONED, {400: ["RECSYS_INVALID_CONFIG"], 422: ["RECSYS_INVALID_CONFIG"]}
)
RULES_WRITE = problems(
    _IDENTITY, _BODY, _ADMIN, _VERSIONED, {400: ["RECSYS_INVALID_RULES"], 422: ["RECSYS_INVALID_RULES"]}
)
INVALIDATE = problems(_IDENTITY, _BODY, _ADMIN, {400: ["RECSYS_INVALID_TARGETS"], 422: ["RECSYS_INVALID_TARGETS"]})
AUDIT = problems(_IDENTITY, _ADMIN, {400: ["RECSYS_INVALID_REQUEST"]})
# Outside /v1: only the per-client rate limit (when enabled) and an unexpected error.
OPEN = problems({429: ["RECSYS_RATE_LIMIT_EXCEEDED"], 500: ["RECSYS_INTERNAL"]})


def body(schema: dict[str, Any], example: Any) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its own JSON body."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema, "example": example}}}}


RECOMMEND_EXAMPLE = {
    "surface": "home",
    "segment": "default",
    "k": 5,
    "user": {"user_id": "u00017", "session_id": "s-1"},
    "context": {"locale": "en-GB", "device": "web", "country": "GB", "now": "2026-01-08T12:00:00Z"},
    "anchors": {"item_ids": ["i00042"], "max_anchors": 10},
    "candidates": {"exclude_ids": ["i00001"]},
    "constraints": {"forbidden_tags": ["category:beauty"], "max_per_tag": {"category:shoes": 2}},
    "weights": {"pop": 0.5, "session": 1.5},
    "options": {"include_reasons": True, "explain": "summary"},
}
SIMILAR_EXAMPLE = {"surface": "home", "item_id": "i00042", "k": 5, "options": {"include_reasons": True}}
CONFIG_EXAMPLE = {"weights": {"pop": 0.5, "cooc": 1.0, "session": 1.5}, "exclude_seen": True}
RULES_EXAMPLE = [
    {"rule_id": "pin-1", "action": "pin", "target_type": "item", "item_ids": ["i00099"], "surface": "home"},
    {"rule_id": "boost-1", "action": "boost", "target_type": "item", "item_ids": ["i00042"], "boost_value": 0.5},
]
CONFIG_SCHEMA = {"type": "object", "description": "the tenant config (docs/explanation/ranking.md#tenant-config)"}
RULES_SCHEMA = {
    "oneOf": [{"type": "array", "items": {"type": "object"}}, {"type": "object"}],
    "description": "the seed's AdminRulesPayload: an array of rule objects, or an object envelope",
}
INVALIDATE_SCHEMA = {
    "type": "object",
    "required": ["targets"],
    "properties": {
        "targets": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "enum": ["config", "rules", "manifest", "artifacts", "popularity"]},
        },
        "surface": {"type": ["string", "null"]},
    },
}
INVALIDATE_EXAMPLE = {"targets": ["config", "rules"], "surface": "home"}

SECURITY_SCHEMES = {
    "jwt": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "verified by API Gateway's JWT authorizer; the tenant and roles come from its claims",
    },
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "a tenant's API key (with API_KEY_ENABLED)",
    },
    "devTenant": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Dev-Org-Id",
        "description": "`recsys serve` only (DEV_AUTH_ENABLED): the tenant, with no role",
    },
}


class ConfigResponse(BaseModel):
    tenant_id: str
    config_version: str
    config: dict[str, Any]


class RulesResponse(BaseModel):
    tenant_id: str
    rules_version: str
    rules: list[dict[str, Any]] | dict[str, Any]


class InvalidateResponse(BaseModel):
    tenant_id: str
    targets: list[str]
    surface: str | None = Field(None, description="absent when the request names none")
    status: str
    invalidated: dict[str, int]


class LicenseResponse(BaseModel):
    """The seed's LicenseStatusResponse, for this product: no licence file or key gates it, so the status is
    `unknown` and it is not commercial; `product`, `version` and `license` (the declared licence, when the
    distribution's metadata has one) are ours."""

    model_config = {
        "json_schema_extra": {
            "examples": [{"status": "unknown", "commercial": False, "product": "recsys-serverless", "version": "0.1.0"}]
        }
    }

    status: str = Field(description="`unknown`: this product reads no signed licence (the seed's states: unknown, "
                        "valid, invalid, expired)")  # fmt: skip
    commercial: bool
    product: str
    version: str
    license: str | None = Field(None, description="the distribution's declared licence; absent when it has none")


def license_status(version: str) -> dict[str, Any]:
    """GET /v1/license's body, built once: the declared licence from the installed distribution's metadata."""
    from importlib import metadata

    try:
        meta = metadata.metadata("recsys-serverless")
        declared = meta.get("License-Expression") or meta.get("License")
    except metadata.PackageNotFoundError:  # the Lambda layer ships the code, not the distribution
        declared = None
    body = {"status": "unknown", "commercial": False, "product": "recsys-serverless", "version": version}
    return {**body, "license": declared} if declared else body


def finish(spec: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """Add the component schemas and security schemes, and each /v1 operation's security."""
    components = spec.setdefault("components", {})
    components.setdefault("schemas", {}).update(schemas)
    components["schemas"]["ProblemBody"] = ProblemBody.model_json_schema()
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in spec["paths"].items():
        if path.startswith("/v1/") and path != "/v1/license":  # the seed's: the licence needs no identity
            for operation in operations.values():
                operation["security"] = [{"jwt": []}, {"apiKey": []}, {"devTenant": []}]
    return spec
