"""Login tokens for the ClickZetta Open API: mint, cache, renew.

Every call needs a ``loginToken`` minted from the user's app secret key. Tokens expire and the
vendor publishes no lifetime, so the expiry is read from ``data.expireMillisecond`` when present
(an absolute epoch-ms value; a small number is taken as a duration) and otherwise from the JWT's
``exp`` claim, decoded without verification — we only need to know when to renew, not to trust
it. Renewal happens a margin before expiry, and on demand after a refused call.

Neither the secret nor the token is ever logged.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from typing import Any, Callable

import httpx

from adapters.clickzetta.client import (
    TOKEN_PATH, ApiFailure, AuthError, ClickZettaError, install_log_redaction, parse_envelope,
    transport_failure,
)

log = logging.getLogger(__name__)

# Without any expiry information, re-mint this often rather than trust a token forever.
DEFAULT_LIFETIME = 15 * 60.0
# expireMillisecond values below this are durations, not epoch timestamps (1e12 ms ≈ 2001).
_EPOCH_MS_FLOOR = 1e12


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim (epoch seconds) of a JWT, or ``None``; the signature is not checked."""
    parts = token.split(".")
    if len(parts) < 2:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, UnicodeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, (int, float)) and not isinstance(exp, bool) and exp > 0:
        return float(exp)
    return None


def token_expiry(data: dict[str, Any], token: str, now: float) -> float:
    """When (epoch seconds) the freshly minted ``token`` stops working."""
    raw = data.get("expireMillisecond")
    try:
        millis = float(raw) if raw not in (None, "") else None
    except (TypeError, ValueError):
        millis = None
    if millis is not None and millis > 0:
        return millis / 1000.0 if millis >= _EPOCH_MS_FLOOR else now + millis / 1000.0
    exp = jwt_expiry(token)
    if exp is not None:
        return exp
    return now + DEFAULT_LIFETIME


class TokenProvider:
    """Caches one token; ``get`` renews ahead of expiry, ``renew`` forces a new one.

    A lock makes concurrent callers share one mint; ``renew(stale=...)`` is a no-op when another
    caller already replaced the stale token, so a burst of refused calls mints only once.
    """

    def __init__(self, http: httpx.AsyncClient, base_url: str, app_secret_key: str, *,
                 refresh_margin: float = 120.0, request_timeout: float = 30.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._http = http
        self._url = base_url.rstrip("/") + TOKEN_PATH
        self._secret = app_secret_key
        self._margin = refresh_margin
        self._timeout = request_timeout
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self.mint_count = 0  # observability for tests and metrics
        install_log_redaction()

    def __repr__(self) -> str:  # never show the secret or the token
        return f"TokenProvider(url={self._url!r}, cached={self._token is not None})"

    async def get(self) -> str:
        token = self._token
        if token is not None and self._clock() < self._renew_at:
            return token
        async with self._lock:
            if self._token is not None and self._clock() < self._renew_at:
                return self._token
            return await self._mint()

    async def renew(self, stale: str | None = None) -> str:
        async with self._lock:
            if stale is not None and self._token is not None and self._token != stale:
                return self._token  # someone renewed while we waited
            return await self._mint()

    def invalidate(self) -> None:
        self._token = None

    async def _mint(self) -> str:
        # httpx URL-encodes the parameter: real keys contain "&&" and must not split the query.
        try:
            response = await self._http.get(self._url, params={"appSecretKey": self._secret},
                                            timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise transport_failure(exc, self._timeout, " the token request") from None
        try:
            data = parse_envelope(response)
        except ApiFailure as exc:
            raise AuthError("ClickZetta refused the app secret key (invalid or expired); "
                            "check CLICKZETTA_APP_SECRET_KEY", code=exc.code or "auth") from None
        except ClickZettaError as exc:
            raise type(exc)(f"{exc.message} while minting a login token", code=exc.code,
                            status=exc.status) from None
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthError("ClickZetta returned no login token for the app secret key", code="auth")
        now = self._clock()
        expires = token_expiry(data, token, now)
        lifetime = max(0.0, expires - now)
        self._renew_at = expires - min(self._margin, lifetime / 2)
        self._token = token
        self.mint_count += 1
        log.debug("minted a ClickZetta login token (valid for about %d s)", int(lifetime))
        return token
