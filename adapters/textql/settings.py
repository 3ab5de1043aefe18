"""Settings of the TextQL Ana backend.

A plain frozen dataclass so that the adapter can be built from the environment, a routing file or
a test, and so that every timeout is a constructor value tests can shorten.

Two wire surfaces share these settings (shared/reference/backends.md §2):

* ``legacy``: ``GET /api/ana`` with Basic auth ``member_id:api_key``. No documented way to
  continue a chat or to stop one.
* ``v2``: ``POST /v2/chats/stream`` with ``Authorization: Bearer <api_key>``; follow-ups send
  ``chat_id`` and ``POST /v2/chats/{id}/cancel`` stops a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generator, Literal
from urllib.parse import urlsplit

import httpx

from adapters.http import DEFAULT_MAX_RESPONSE_BYTES

Mode = Literal["legacy", "v2"]

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <key>`` as an :class:`httpx.Auth`, so it is attached per request.

    Attaching credentials through ``auth=`` rather than default headers keeps them off any request
    that is not made through the API client (image downloads use a separate client).
    """

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:  # never show the token
        return "BearerAuth(<hidden>)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


@dataclass(frozen=True)
class TextQLSettings:
    """How to reach TextQL Ana and how patient to be with it.

    ``stream_idle_timeout`` is the longest silence (no bytes at all; keep-alive comments count as
    life) tolerated on an open answer stream. Ana can be silent for as long as one step runs, and
    TextQL's own default limits let one SQL query run 180 s and one cell 360 s (backends.md §2.5),
    so the default (420 s) outlasts both: a stream is only given up once no step of Ana's could
    still be running.
    """

    member_id: str = ""  # legacy Basic-auth user; unused by v2
    api_key: str = field(default="", repr=False)  # never printed: repr hides it
    base_url: str = "https://app.textql.com"
    dataset: str | None = None  # legacy ``dataset``; Ana infers one when absent
    use_ontology: bool = False  # legacy ``useOntology`` / v2 ``tools.ontology_enabled``
    ontology_connector_id: int | None = None  # required with use_ontology
    clifford: bool | str | None = None  # legacy ``clifford``; None: not sent (server default false)
    mode: Mode = "legacy"
    stream_idle_timeout: float = 420.0  # > TextQL's 360 s cell and 180 s SQL limits
    connect_timeout: float = 10.0
    request_timeout: float = 30.0  # non-streaming calls: history, cancel
    image_max_bytes: int = 5 * 1024 * 1024
    image_timeout: float = 20.0
    allow_private_images: bool = False  # images from private/loopback/link-local hosts
    max_images: int = 4  # images downloaded per answer; more become a note
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES  # one API answer, a whole stream included
    # v2 only: Ana's tools are off unless a request turns them on.
    connector_ids: tuple[int, ...] = ()
    sql_enabled: bool = True
    python_enabled: bool = True

    def __post_init__(self) -> None:
        if self.mode not in ("legacy", "v2"):
            raise ValueError(f"TextQL mode must be 'legacy' or 'v2', not {self.mode!r}")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"TextQL base_url must be an http(s) URL, not {self.base_url!r}")
        if not self.api_key:
            raise ValueError("TextQL api_key is required")
        if self.mode == "legacy" and not self.member_id:
            raise ValueError("TextQL member_id is required for the legacy /api/ana API")
        if self.use_ontology and self.ontology_connector_id is None:
            raise ValueError("TextQL ontology_connector_id is required when use_ontology is on")
        for name in ("stream_idle_timeout", "connect_timeout", "request_timeout", "image_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TextQL {name} must be positive")
        if self.image_max_bytes <= 0 or self.max_images < 0:
            raise ValueError("TextQL image_max_bytes must be positive, max_images not negative")
        if self.max_response_bytes <= 0:
            raise ValueError("TextQL max_response_bytes must be positive")
        self.clifford_param  # validates a string value early

    # -- derived values --------------------------------------------------------------------
    @property
    def api_root(self) -> str:
        return self.base_url.rstrip("/")

    @property
    def clifford_param(self) -> str | None:
        """``clifford`` as the query string wants it (``true``/``false``), or None to omit it."""
        value = self.clifford
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        text = str(value).strip().lower()
        if text == "":
            return None
        if text in _TRUE:
            return "true"
        if text in _FALSE:
            return "false"
        raise ValueError(f"TextQL clifford must be a boolean, not {value!r}")

    def http_auth(self) -> httpx.Auth:
        """Basic ``member_id:api_key`` for ``/api/ana``; Bearer ``api_key`` for v2."""
        if self.mode == "v2":
            return BearerAuth(self.api_key)
        return httpx.BasicAuth(self.member_id, self.api_key)

    def stream_timeout(self) -> httpx.Timeout:
        """The read timeout of a stream is the idle timeout: httpx applies it to every read."""
        return httpx.Timeout(self.connect_timeout, read=self.stream_idle_timeout)

    def call_timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.connect_timeout, read=self.request_timeout)

    def v2_tools(self) -> dict[str, object]:
        connectors = list(self.connector_ids)
        if self.ontology_connector_id is not None and self.ontology_connector_id not in connectors:
            connectors.append(self.ontology_connector_id)
        tools: dict[str, object] = {
            "sql_enabled": self.sql_enabled,
            "python_enabled": self.python_enabled,
            "ontology_enabled": self.use_ontology,
        }
        if connectors:
            tools["connector_ids"] = connectors
        return tools
