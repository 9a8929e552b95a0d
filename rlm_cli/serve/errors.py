"""Errors in OpenAI's shape: ``{"error": {"message", "type", "code"}}`` with the matching status."""

from __future__ import annotations

from aiohttp import web

TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
         404: "not_found_error", 405: "invalid_request_error", 408: "invalid_request_error",
         413: "invalid_request_error", 415: "invalid_request_error", 429: "rate_limit_error",
         500: "server_error", 503: "server_error"}


class ApiError(Exception):
    """A request answered with an error: HTTP ``status``, a ``message`` for the client and a short
    machine ``code`` (e.g. ``"model_not_found"``); ``param``: the request parameter at fault
    (``"messages[0].content"``, ``"rlm.max_cost"``) or None."""

    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param


def error_body(status: int, message: str, code: str | None = None, param: str | None = None) -> dict:
    """The OpenAI error object for ``status``: ``{"error": {"message", "type", "code", "param"}}``."""
    return {"error": {"message": message, "type": TYPES.get(status, "server_error" if status >= 500
                                                              else "invalid_request_error"),
                      "code": code, "param": param}}


def error_response(status: int, message: str, code: str | None = None, param: str | None = None,
                   ) -> web.Response:
    """A JSON error response (``status``, OpenAI's error shape)."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return web.json_response(error_body(status, message, code, param), status=status, headers=headers)
