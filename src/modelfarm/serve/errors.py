"""The one place where errors become HTTP answers: OpenAI-style bodies, the right status."""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.responses import Response

from modelfarm.errors import FarmError, OverloadedError

log = logging.getLogger("modelfarm.serve")


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def farm_error_body(exc: FarmError) -> dict[str, Any]:
    return error_body(exc.message, exc.type, exc.code, exc.param)


def error_response(exc: BaseException, headers: dict[str, str] | None = None) -> Response:
    """An OpenAI-style error response; unexpected errors are logged, never shown."""
    headers = dict(headers or {})
    if isinstance(exc, FarmError):
        status, body = exc.status, farm_error_body(exc)
        if isinstance(exc, OverloadedError):
            headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    else:
        log.exception("unexpected error", exc_info=exc)
        status = 500
        body = error_body("internal error; the server log has the details", "server_error", "internal_error")
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=headers)


def status_of(exc: BaseException) -> int:
    return exc.status if isinstance(exc, FarmError) else 500


def type_of(exc: BaseException) -> str:
    if isinstance(exc, FarmError):
        return exc.code or exc.type
    return "internal_error"
