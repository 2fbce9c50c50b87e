"""RFC 7807 problems with the seed's stable `code`s (application/problem+json)."""

from __future__ import annotations

from http import HTTPStatus

PROBLEM_TYPE_BASE = "https://errors.recsys.example/problem/"


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
