"""Settings of the Wren AI (``osk-`` API) backend.

Kept separate from the process configuration so that the adapter can be built from anything
(environment, a routing file, a test) and so that every interval is a plain constructor value
tests can shorten.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from adapters.http import DEFAULT_MAX_RESPONSE_BYTES


@dataclass(frozen=True)
class WrenSettings:
    """How to reach one Wren AI / Legible project.

    ``request_timeout`` covers a whole ``/ask``: the server waits up to 180 s per stage (SQL
    generation, then the summary) plus the SQL run, so anything much shorter than ~400 s cuts
    off answers the server would still have produced.
    """

    base_url: str  # without /api/v1, e.g. https://wren.example.com
    api_key: str = field(repr=False)  # never printed: repr hides it
    project_id: str | None = None  # sent as X-Project-Id; without it the server silently picks a project
    request_timeout: float = 400.0
    chart_timeout: float | None = None  # None: same as request_timeout (the chart has its own 180 s limit)
    connect_timeout: float = 10.0
    ask_sample_size: int | None = None  # rows the summary sees; None: the server's default (500)
    chart_sample_size: int = 2000  # rows embedded in the Vega-Lite spec; keep chat images small
    table_rows: int = 1000  # rows of the result table (/run_sql limit); 0: no table
    max_rate_limit_wait: float = 60.0  # longest Retry-After we are willing to sleep through
    max_rate_limit_retries: int = 2
    language: str | None = None  # default answer language when the request names none (BCP 47 or a Wren name)
    streaming: bool = False  # use /api/v1/stream/ask and show steps as they happen (/ask if the server has none)
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES  # a body (or a whole stream) larger fails the call

    @property
    def api_root(self) -> str:
        """The ``/api/v1`` root, tolerant of a trailing slash or an operator pasting ``/api/v1``."""
        root = self.base_url.rstrip("/")
        if root.endswith("/api/v1"):
            root = root[: -len("/api/v1")]
        return root + "/api/v1"

    @property
    def effective_chart_timeout(self) -> float:
        return self.chart_timeout if self.chart_timeout is not None else self.request_timeout
