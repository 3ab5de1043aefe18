"""Typed httpx layer for the ClickZetta Analytics Agent Open API.

Why a layer of its own: the API signals most failures inside an HTTP 200 envelope
(``success:false`` at the top level *or* nested in ``data``), has a "no data" answer that is
not an error (code ``204``, or code 200 with null data and an "ok" message), and wants
``tenantId``, ``userId`` and ``loginToken`` in both the query string and the JSON body of every
call. Everything above this module sees plain Python values or a :class:`ClickZettaError`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from adapters.base import BackendError
from adapters.clickzetta.settings import ClickZettaSettings
from adapters.http import ResponseTooLarge, is_tls_failure, too_large_message

log = logging.getLogger(__name__)

SESSION_PATH = "/open/session/safe_new"
QUERY_PATH = "/open/text2insight/query"
POLL_PATH = "/open/safe_question_poll"
STOP_PATH = "/open/text2insight/stop"
TOKEN_PATH = "/open/api/v1/appSecretKey/generateAuthToken"

_OK_MESSAGES = {"操作成功", "success", "ok"}


# -- errors -----------------------------------------------------------------------------------
class ClickZettaError(BackendError):
    """Any failure talking to ClickZetta; ``message`` is safe to show to a chat user."""


class ApiFailure(ClickZettaError):
    """HTTP 200 with ``success:false``. The reason is not machine-readable (could be an expired
    token), so the client renews the token and retries such a call once."""


class HttpFailure(ClickZettaError):
    """A non-2xx answer (408 on slow validation, 500 on bad ids, gateway errors)."""


class BadResponse(ClickZettaError):
    """A body that is not the JSON envelope (an HTML error page from a proxy, for example)."""


class OversizedResponse(BadResponse):
    """A body past the size cap (``max_response_bytes``). Final, not retried: a cumulative poll
    answer only grows, and a proxy's oversized page will not shrink either."""


class NetworkFailure(ClickZettaError):
    """Connection refused, reset or timed out, or a failed TLS handshake."""


def transport_failure(exc: httpx.HTTPError, timeout: float, what: str = "") -> ClickZettaError:
    """The error for an httpx failure of one call; ``what`` names the call in the message.

    Messages name the kind of failure, never the URL (it is internal, and carries the token).
    """
    if isinstance(exc, ResponseTooLarge):
        return OversizedResponse(too_large_message("ClickZetta", exc.limit), code="too_large")
    if isinstance(exc, httpx.TimeoutException):
        return NetworkFailure(f"ClickZetta did not answer{what} within {timeout:g} s", code="timeout")
    if isinstance(exc, httpx.ConnectError) and is_tls_failure(exc):
        return NetworkFailure("Could not open a secure (TLS) connection to ClickZetta: its "
                              "certificate is not trusted, or it does not speak HTTPS there. "
                              "Check CLICKZETTA_BASE_URL", code="tls")
    return NetworkFailure(f"Could not reach ClickZetta ({type(exc).__name__})", code="network")


class AuthError(ClickZettaError):
    """The app secret key was refused; renewing cannot help."""


# -- never log credentials --------------------------------------------------------------------
_SECRET_QUERY = re.compile(r"(loginToken|appSecretKey)=[^&\s\"']*", re.IGNORECASE)


class RedactCredentials(logging.Filter):
    """httpx logs every request URL at INFO, and ours carry ``loginToken`` / ``appSecretKey``
    in the query string (the API demands it). This filter masks them before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        if _SECRET_QUERY.search(text):
            record.msg = _SECRET_QUERY.sub(lambda m: m.group(1) + "=***", text)
            record.args = ()
        return True


def install_log_redaction() -> None:
    """Idempotently attach :class:`RedactCredentials` to the loggers that print request URLs."""
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactCredentials) for f in logger.filters):
            logger.addFilter(RedactCredentials())


# -- envelope ---------------------------------------------------------------------------------
def _is_no_data(envelope: dict[str, Any]) -> bool:
    code = str(envelope.get("code", "")).strip()
    if code == "204":
        return True
    message = str(envelope.get("message") or envelope.get("msg") or "").strip().lower()
    return code == "200" and envelope.get("data") is None and message in _OK_MESSAGES


def _failure(envelope: dict[str, Any]) -> ApiFailure:
    code = str(envelope.get("code") or "").strip()
    detail = str(envelope.get("message") or envelope.get("msg") or "").strip()
    text = f"ClickZetta refused the request: {detail}" if detail else "ClickZetta refused the request"
    return ApiFailure(text, code=code)


def parse_envelope(response: httpx.Response) -> Any:
    """Return the envelope's ``data`` (``None`` for "no data"), or raise a :class:`ClickZettaError`."""
    if not response.is_success:
        raise HttpFailure(f"ClickZetta answered HTTP {response.status_code}",
                          code=str(response.status_code), status=response.status_code)
    try:
        envelope = response.json()
    except ValueError:
        raise BadResponse("ClickZetta sent a reply that is not JSON", code="bad_response",
                          status=response.status_code) from None
    if not isinstance(envelope, dict):
        raise BadResponse("ClickZetta sent a reply without its usual envelope", code="bad_response",
                          status=response.status_code)
    if _is_no_data(envelope):
        return None
    if envelope.get("success") is False:
        raise _failure(envelope)
    data = envelope.get("data")
    if isinstance(data, dict) and data.get("success") is False:
        if _is_no_data(data):
            return None
        raise _failure(data)
    return data


# -- typed calls ------------------------------------------------------------------------------
class TokenSource(Protocol):
    async def get(self) -> str: ...

    async def renew(self, stale: str | None = None) -> str: ...


@dataclass(frozen=True)
class Submitted:
    question_id: str
    session_id: str


def as_id(value: Any, what: str) -> int:
    """Ids go out as positive integers (the server NPEs otherwise) and come back as int or str."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise ClickZettaError(f"Not a usable ClickZetta {what}: {value!r}", code="bad_id") from None
    if number <= 0:
        raise ClickZettaError(f"Not a usable ClickZetta {what}: {value!r}", code="bad_id")
    return number


def _has_items(responses: list[Any]) -> bool:
    """Empty (nothing yet), or holding at least one item object (stray entries are skipped)."""
    return not responses or any(isinstance(item, dict) for item in responses)


class ClickZettaClient:
    """One method per endpoint the adapter uses. Stateless apart from the shared token source."""

    def __init__(self, settings: ClickZettaSettings, http: httpx.AsyncClient, tokens: TokenSource) -> None:
        self._settings = settings
        self._http = http
        self._tokens = tokens
        install_log_redaction()

    def _identity(self) -> dict[str, Any]:
        return {"tenantId": self._settings.tenant_id, "userId": self._settings.user_id}

    def _with_domain(self, body: dict[str, Any]) -> dict[str, Any]:
        body["domainId"] = self._settings.domain_id  # required by the query; sent on session and poll too
        return body

    async def call(self, path: str, body: dict[str, Any]) -> Any:
        """POST with the credentials in query and body; renew the token and retry once on
        ``success:false`` (the API does not say whether a refusal means "token expired")."""
        for attempt in (1, 2):
            token = await self._tokens.get()
            params = {**self._identity(), "loginToken": token}
            payload = {**self._identity(), **body, "loginToken": token}
            try:
                response = await self._http.post(self._settings.base_url + path, params=params,
                                                 json=payload, timeout=self._settings.request_timeout)
            except httpx.HTTPError as exc:
                raise transport_failure(exc, self._settings.request_timeout) from None
            try:
                return parse_envelope(response)
            except ApiFailure as exc:
                if attempt == 2:
                    raise
                log.info("ClickZetta refused %s (code %r); renewing the token and retrying once",
                         path, exc.code)
                await self._tokens.renew(stale=token)
        raise AssertionError("unreachable")

    async def new_session(self, title: str | None = None) -> str:
        body: dict[str, Any] = self._with_domain({})
        if title:
            body["title"] = title
        data = await self.call(SESSION_PATH, body)
        if data is None:
            raise ClickZettaError("ClickZetta returned no session id", code="204")
        if isinstance(data, dict):  # tolerate {"sessionId": …} should the shape ever change
            data = data.get("sessionId", data.get("id"))
        return str(as_id(data, "session id"))

    async def submit(self, session_id: str, question: str, model_name: str | None = None) -> Submitted:
        body = self._with_domain({"sessionId": as_id(session_id, "session id"), "msg": question})
        model_name = model_name or self._settings.model_name
        if model_name:
            body["modelSettings"] = {"model_name": model_name}
        data = await self.call(QUERY_PATH, body)
        if not isinstance(data, dict) or data.get("questionId") in (None, ""):
            raise ClickZettaError("ClickZetta accepted the question but returned no question id",
                                  code="204" if data is None else "bad_response")
        question_id = str(as_id(data["questionId"], "question id"))
        returned_session = data.get("sessionId")
        session = str(as_id(returned_session, "session id")) if returned_session not in (None, "") else session_id
        return Submitted(question_id=question_id, session_id=session)

    async def poll(self, question_id: str) -> list[Any]:
        """All items produced so far (cumulative). "No data" means nothing yet: an empty list."""
        data = await self.call(POLL_PATH, self._with_domain({"questionId": as_id(question_id, "question id")}))
        if data is None:
            return []
        if isinstance(data, dict):
            responses = data.get("responses")
            if responses is None:
                return []  # nothing yet
            if isinstance(responses, list) and _has_items(responses):
                return list(responses)
        elif isinstance(data, list) and _has_items(data):
            return data
        # Read as "nothing yet", a malformed answer would poll on, unseen, until the overall
        # timeout; failing it lets the poll loop retry a few times and then say so.
        raise BadResponse("ClickZetta sent poll results in an unexpected shape", code="bad_response")

    async def stop(self, session_id: str | None, question_id: str) -> None:
        body: dict[str, Any] = {"questionId": as_id(question_id, "question id")}
        if session_id:
            body["sessionId"] = as_id(session_id, "session id")
        await self.call(STOP_PATH, body)
