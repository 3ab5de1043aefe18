"""Who goes first when a platform's budget is short, and how a call says what it is.

The order is the issue's: a person waiting for an answer to their click or command first, then
the placeholder that tells a new asker they were heard, then finished answers, then
housekeeping (retiring a placeholder, clearing a status, agent-session bookkeeping), and
progress last — progress is optional and is dropped rather than queued.

Platform clients read the :class:`CallOptions` of the call in progress from a context variable,
so code several layers down (slack_sdk's ``files_upload_v2`` making three calls) inherits the
caller's priority without every signature carrying it.
"""

from __future__ import annotations

import contextlib
import enum
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Iterator


class Priority(enum.IntEnum):
    ACK = 0
    PLACEHOLDER = 1
    FINAL = 2
    HOUSEKEEPING = 3
    PROGRESS = 4


@dataclass(frozen=True)
class CallOptions:
    """How one platform call should be scheduled.

    ``wait``: the longest a call may wait for its slot (None: as long as it takes);
    ``retries``: how often a 429 is retried (after the platform's ``Retry-After``);
    ``grant``: the stamp of a slot the caller already took itself (late-bound content), so the
    first attempt skips admission.
    """

    priority: Priority = Priority.ACK
    wait: float | None = None
    retries: int = 3
    grant: float | None = None


_current: ContextVar[CallOptions] = ContextVar("insightbot_call_options", default=CallOptions())


def current_options() -> CallOptions:
    return _current.get()


@contextlib.contextmanager
def call_options(priority: Priority, **changes: object) -> Iterator[CallOptions]:
    """Run the platform calls inside the block with these options."""
    options = replace(CallOptions(), priority=priority, **changes)  # type: ignore[arg-type]
    token = _current.set(options)
    try:
        yield options
    finally:
        _current.reset(token)
