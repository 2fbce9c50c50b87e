"""RFC 7807 problems with the seed's stable `code`s (application/problem+json)."""

from __future__ import annotations

from http import HTTPStatus

PROBLEM_TYPE_BASE = "https://errors.recsys.example/problem/"


class Problem(Exception):
    """An error response: status, stable code, one-line detail."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail

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
