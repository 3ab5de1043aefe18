"""Settings of the ClickZetta Analytics Agent backend.

A plain frozen dataclass so the adapter can be built from tests without any environment; the
bot's configuration layer may call :meth:`ClickZettaSettings.from_env` or build it itself.
Validation happens here, at construction, so a wrong value fails at start-up with a message
naming the setting instead of on the first question.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from adapters.http import DEFAULT_MAX_RESPONSE_BYTES

BASE_PATH = "/clickzetta-campaign-data"


def _positive_int(value: object, name: str) -> int:
    """ClickZetta answers HTTP 500 (an NPE) to ids that are not positive integers: refuse early."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive integer, got {value!r}") from None
    if number <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return number


def _positive(value: float, name: str) -> float:
    if value <= 0:
        raise ValueError(f"{name} must be greater than 0, got {value!r}")
    return value


@dataclass(frozen=True)
class ClickZettaSettings:
    """Everything the adapter needs; intervals and limits are here so tests can shorten them.

    ``app_secret_key`` is excluded from ``repr`` so a logged settings object never leaks it.
    ``domain_id`` is required: Text2InsightQuery refuses a question without it (seed 001), so a
    missing one would fail every question — after a token renewal and a session replacement.
    ``request_timeout`` bounds each HTTP call; the vendor's guidance is 60 s per request.
    ``max_response_bytes`` bounds what one answer may make the bot read (and hold) — the cumulative
    poll answer included; the adapter's own HTTP client enforces it (not one passed in).
    ``model_name`` is ``modelSettings.model_name`` (optional; unset, no ``modelSettings`` is sent
    and the tenant's default model answers).
    """

    base_url: str
    app_secret_key: str = field(repr=False)
    tenant_id: int
    user_id: int
    domain_id: int
    poll_interval: float = 2.0
    overall_timeout: float = 360.0
    request_timeout: float = 60.0
    warehouse_url: str | None = field(default=None, repr=False)  # may embed a password
    warehouse_row_cap: int = 1000
    warehouse_timeout: float = 20.0
    session_failure_limit: int = 1  # refused submissions in a row before a fresh session is tried
    # After stop(): how long ask() waits for the backend's finish_stop before ending anyway.
    stop_grace_polls: int = 5
    stop_grace_seconds: float = 30.0
    # Consecutive transient poll failures (network, 5xx, non-JSON) tolerated before failing.
    poll_error_limit: int = 3
    # Renew the token this many seconds before it expires (capped at half its lifetime).
    token_refresh_margin: float = 120.0
    model_name: str | None = None
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES  # a larger answer fails the call, unread

    def __post_init__(self) -> None:
        base = (self.base_url or "").strip().rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise ValueError(f"CLICKZETTA_BASE_URL must be an http(s) URL, got {self.base_url!r}")
        if not base.endswith(BASE_PATH):
            raise ValueError(f"CLICKZETTA_BASE_URL must end in {BASE_PATH}, got {self.base_url!r}")
        object.__setattr__(self, "base_url", base)
        if not self.app_secret_key:
            raise ValueError("CLICKZETTA_APP_SECRET_KEY is required")
        object.__setattr__(self, "tenant_id", _positive_int(self.tenant_id, "CLICKZETTA_TENANT_ID"))
        object.__setattr__(self, "user_id", _positive_int(self.user_id, "CLICKZETTA_USER_ID"))
        if self.domain_id is None or not str(self.domain_id).strip():
            raise ValueError("CLICKZETTA_DOMAIN_ID is required: Text2InsightQuery needs the analytics "
                             "domain (the number at the end of the domain's settings URL)")
        object.__setattr__(self, "domain_id", _positive_int(self.domain_id, "CLICKZETTA_DOMAIN_ID"))
        model = (self.model_name or "").strip()
        object.__setattr__(self, "model_name", model or None)
        if not self.warehouse_url:
            object.__setattr__(self, "warehouse_url", None)
        _positive(self.poll_interval, "CLICKZETTA_POLL_INTERVAL")
        _positive(self.overall_timeout, "CLICKZETTA_TIMEOUT")
        _positive(self.request_timeout, "CLICKZETTA_REQUEST_TIMEOUT")
        _positive(self.warehouse_timeout, "CLICKZETTA_WAREHOUSE_TIMEOUT")
        _positive(self.warehouse_row_cap, "CLICKZETTA_WAREHOUSE_ROW_CAP")
        _positive(self.session_failure_limit, "CLICKZETTA_SESSION_FAILURE_LIMIT")
        _positive(self.stop_grace_polls, "stop_grace_polls")
        _positive(self.stop_grace_seconds, "stop_grace_seconds")
        _positive(self.poll_error_limit, "poll_error_limit")
        _positive(self.max_response_bytes, "max_response_bytes")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "ClickZettaSettings":
        """Build from ``CLICKZETTA_*`` variables; raises ``ValueError`` naming the bad one."""

        def get(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if value and value.strip() else None

        def number(name: str, default: float, kind: type = float) -> float:
            raw = get(name)
            if raw is None:
                return default
            try:
                return kind(raw)
            except ValueError:
                raise ValueError(f"{name} must be a number, got {raw!r}") from None

        for required in ("CLICKZETTA_BASE_URL", "CLICKZETTA_APP_SECRET_KEY",
                         "CLICKZETTA_TENANT_ID", "CLICKZETTA_USER_ID", "CLICKZETTA_DOMAIN_ID"):
            if get(required) is None:
                raise ValueError(f"{required} is required for the clickzetta backend")
        return cls(
            base_url=get("CLICKZETTA_BASE_URL") or "",
            app_secret_key=get("CLICKZETTA_APP_SECRET_KEY") or "",
            tenant_id=get("CLICKZETTA_TENANT_ID"),  # type: ignore[arg-type]  # validated above
            user_id=get("CLICKZETTA_USER_ID"),  # type: ignore[arg-type]
            domain_id=get("CLICKZETTA_DOMAIN_ID"),  # type: ignore[arg-type]
            poll_interval=number("CLICKZETTA_POLL_INTERVAL", 2.0),
            overall_timeout=number("CLICKZETTA_TIMEOUT", 360.0),
            request_timeout=number("CLICKZETTA_REQUEST_TIMEOUT", 60.0),
            warehouse_url=get("CLICKZETTA_WAREHOUSE_URL"),
            warehouse_row_cap=int(number("CLICKZETTA_WAREHOUSE_ROW_CAP", 1000, int)),
            warehouse_timeout=number("CLICKZETTA_WAREHOUSE_TIMEOUT", 20.0),
            session_failure_limit=int(number("CLICKZETTA_SESSION_FAILURE_LIMIT", 1, int)),
            model_name=get("CLICKZETTA_MODEL_NAME"),
        )
