"""RFC 7807 problems with the seed's stable `code`s (application/problem+json)."""

from __future__ import annotations

from http import HTTPStatus

from pydantic import BaseModel, ConfigDict, Field

PROBLEM_TYPE_BASE = "https://errors.recsys.example/problem/"


class ProblemBody(BaseModel):
    """The body of every error response (RFC 7807), as `Problem.body` writes it: the OpenAPI document's schema."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": PROBLEM_TYPE_BASE + "recsys-invalid-request",
                    "title": "Bad Request",
                    "status": 400,
                    "detail": "surface is required",
                    "instance": "/v1/recommend",
                    "code": "RECSYS_INVALID_REQUEST",
                    "request_id": "req-1",
                }
            ]
        }
    )

    type: str = Field(description="a URI naming the kind of problem: the base followed by `code` in kebab case")
    title: str = Field(description="the HTTP status phrase")
    status: int
    detail: str = Field(description="one line; stable for each documented condition")
    instance: str = Field(description="the request's path")
    code: str = Field(description="stable machine-readable code, e.g. RECSYS_INVALID_REQUEST")
    request_id: str = Field(description="as in X-Request-Id")


class Problem(Exception):
    """An error response: status, stable code, one-line detail."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}

    def body(self, instance: str, request_id: str) -> dict:
        return {
            "type": PROBLEM_TYPE_BASE + self.code.lower().replace("_", "-"),
            "title": HTTPStatus(self.status).phrase,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
            "code": self.code,
            "request_id": request_id,
        }


def invalid(detail: str) -> Problem:
    return Problem(400, "RECSYS_INVALID_REQUEST", detail)


def unprocessable(detail: str) -> Problem:
    return Problem(422, "RECSYS_UNPROCESSABLE_ENTITY", detail)


def rate_limited(detail: str, retry_after_seconds: int) -> Problem:
    """429 with Retry-After (whole seconds, at least 1). The seed's limiter answers without a `code`; ours has one."""
    return Problem(429, "RECSYS_RATE_LIMIT_EXCEEDED", detail, headers={"Retry-After": str(max(1, retry_after_seconds))})
