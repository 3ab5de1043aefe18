"""Turning TextQL failures into error parts a chat user can read.

Both surfaces are covered here because they fail alike: an HTTP status with (for v2, and by our
best guess for ``/api/ana``) the body ``{"error": {"code": …, "message": …}}``, or a transport
problem on a long-lived stream. Messages never include credentials or whole response bodies.
"""

from __future__ import annotations

import json

import httpx

from adapters.answer import ErrorPart
from adapters.http import ResponseTooLarge, is_tls_failure, too_large_message

ERROR_ID = "error"
_MAX_DETAIL = 200

_STATUS_TEXT = {
    400: ("invalid_request", "TextQL rejected the request"),
    401: ("unauthenticated", "TextQL rejected the credentials (HTTP 401); check the TextQL API key"),
    403: ("permission_denied", "TextQL refused access (HTTP 403)"),
    404: ("not_found", "TextQL could not find the chat or the API endpoint (HTTP 404)"),
    409: ("conflict", "TextQL reported a conflict (HTTP 409)"),
    429: ("rate_limit_exceeded", "TextQL is rate limiting requests (HTTP 429); try again shortly"),
}


def error_part(message: str, code: str) -> ErrorPart:
    return ErrorPart(ERROR_ID, message, code=code)


def vendor_error(body: bytes) -> tuple[str, str]:
    """``(code, message)`` from a TextQL error body; empty strings when it has none."""
    try:
        data = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return "", ""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("code") or ""), str(error.get("message") or "")
    if isinstance(data, dict):  # Connect-style {"code","message"} or a flat {"message"}
        return str(data.get("code") or ""), str(data.get("message") or "")
    return "", ""


def http_error(status: int, body: bytes) -> ErrorPart:
    """An error part for a non-2xx response. The vendor's code wins over ours when present."""
    code, detail = vendor_error(body)
    default_code, text = _STATUS_TEXT.get(status, (
        "internal" if status >= 500 else f"http_{status}",
        f"TextQL is unavailable right now (HTTP {status})" if status >= 500
        else f"TextQL answered HTTP {status}",
    ))
    if detail and status != 401:  # 401's own text says what to do; the vendor's adds nothing
        text = f"{text}: {detail[:_MAX_DETAIL]}"
    return error_part(text + ".", code or default_code)


def transport_error(exc: Exception, *, idle_timeout: float) -> ErrorPart:
    """An error part for a network failure while talking to TextQL (or an answer past the size
    cap, which the bot drops like a broken connection)."""
    if isinstance(exc, ResponseTooLarge):
        return error_part(too_large_message("TextQL", exc.limit), "too_large")
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return error_part("TextQL did not accept the connection in time.", "unreachable")
    if isinstance(exc, httpx.ReadTimeout):
        return error_part(f"TextQL went silent for more than {idle_timeout:g} s, so we stopped "
                          "waiting.", "timeout")
    if isinstance(exc, httpx.ConnectError):
        if is_tls_failure(exc):
            return error_part("Could not open a secure (TLS) connection to TextQL: its certificate "
                              "is not trusted, or it does not speak HTTPS there. Check "
                              "TEXTQL_BASE_URL.", "tls")
        return error_part("Could not reach TextQL.", "unreachable")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return error_part("The connection to TextQL broke before Ana finished.", "incomplete_stream")
    return error_part("The connection to TextQL failed.", "network")


def not_a_stream(media_type: str) -> ErrorPart:
    """A 200 that holds no event and is not ``text/event-stream`` (a proxy's page, a JSON body)."""
    return error_part(f"TextQL did not answer with an event stream ({media_type}).", "bad_response")


def incomplete() -> ErrorPart:
    return error_part("TextQL ended the answer stream before Ana finished.", "incomplete_stream")
