"""HTTP connection limits for backends whose requests last as long as an analysis.

A Wren ``/ask`` can take minutes and a TextQL answer streams for as long as the agent works, so
each analysis in flight holds one connection for its whole length. httpx's default pool (100
connections) would make the 101st analysis of a busy workspace wait, unseen, for another one to
finish. The pool is therefore not capped here — the backend's own rate limit (429, honoured by the
adapters) is what bounds concurrency — while the idle connections kept for reuse stay few.
"""

from __future__ import annotations

import httpx

LONG_REQUESTS = httpx.Limits(max_connections=None, max_keepalive_connections=4)
