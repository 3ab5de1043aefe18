"""The edge of the Teams surface: what ``POST /api/messages`` must carry before the SDK runs a turn.

The SDK parses the body itself and hands any activity Pydantic accepts to the turn handler; a
body it cannot validate is logged at ERROR with a traceback on the way to its 400, and strings
with lone UTF-16 surrogates (``\\udXXX`` escapes) pass validation and fail later, when they are
stored or sent. So the body is read and checked here first:

* larger than :data:`MAX_BODY` → 413, before it is read when ``Content-Length`` says so;
* not UTF-8, not JSON, not a JSON object, or not an activity → 400; another content type → 415;
* every string made storable and sendable (a lone surrogate becomes U+FFFD, NULs go).

The SDK then reads the cleaned activity through :class:`CheckedRequest`.
"""

from __future__ import annotations

import contextvars
import json
import logging
from typing import Any

from aiohttp import web

from bot.textclean import clean
from microsoft_agents.activity import Activity

MAX_BODY = 1024 * 1024  # Teams activities are at most a few hundred KB (cards, entities)

_checking: contextvars.ContextVar[bool] = contextvars.ContextVar("teams_guard_checking",
                                                                 default=False)


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.response = web.json_response({"error": reason}, status=status)


def too_large(request: web.Request) -> web.Response | None:
    if request.content_length is not None and request.content_length > MAX_BODY:
        return web.json_response({"error": "request body too large"}, status=413)
    return None


async def read_activity(request: web.Request) -> dict[str, Any]:
    """The request's activity as a cleaned JSON object, or :class:`Refused`."""
    if request.content_type != "application/json":
        raise Refused(415, "the body must be application/json")
    raw = await request.read()  # aiohttp stops a body without Content-Length at client_max_size
    if len(raw) > MAX_BODY:
        raise Refused(413, "request body too large")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "the body is not UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise Refused(400, "the body is not a JSON object")
    data = clean(data)
    token = _checking.set(True)
    try:
        Activity.model_validate(data)
    except Exception:  # pydantic's ValidationError, or the SDK's own checks in its validator
        raise Refused(400, "Not a valid activity") from None
    finally:
        _checking.reset(token)
    return data




class CheckedRequest:
    """What the SDK's ``process_request`` reads (``HttpRequestProtocol``), with the checked body."""

    def __init__(self, request: web.Request, activity: dict[str, Any]) -> None:
        self._request = request
        self._activity = activity

    @property
    def method(self) -> str:
        return self._request.method

    @property
    def headers(self) -> Any:
        return self._request.headers

    async def json(self) -> dict[str, Any]:
        return self._activity

    def get_claims_identity(self) -> Any:
        return self._request.get("claims_identity")

    def get_path_param(self, name: str) -> str:
        return self._request.match_info[name]


class _QuietWhileChecking(logging.Filter):
    """The SDK logs every activity it cannot validate at ERROR; while the guard validates, the
    guard's own 400 says it (a hostile body is not an error of this service)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _checking.get()


logging.getLogger("microsoft_agents.activity.activity").addFilter(_QuietWhileChecking())
