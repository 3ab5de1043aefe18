"""The Backend protocol: what the relay needs from an analytics agent.

Backends come in two kinds, and the relay treats them alike through :meth:`Backend.ask`:

* request/response or streamed (Wren, TextQL): ``ask`` yields updates while the request is open;
  stopping means cancelling the task that iterates it (and, where the vendor offers one, a
  cancel call).
* polled (ClickZetta): ``ask`` submits and then polls; ``stop`` asks the backend to stop and the
  iterator keeps running until the backend confirms, so partial results stay visible.
  ``resume`` re-attaches to a run that was in flight when the service restarted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator, Protocol, runtime_checkable

from adapters.answer import Update


class BackendError(Exception):
    """A failure the user should read about. ``message`` is safe to show; ``code`` is the vendor's."""

    def __init__(self, message: str, *, code: str = "", status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class AskRequest:
    """One question, with what the backend needs to keep context.

    ``session_id`` is the backend conversation of the chat thread (``None`` on the first
    question). ``asker`` is an opaque user label some backends log; never a credential.
    """

    question: str
    session_id: str | None = None
    asker: str = ""
    language: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Capabilities:
    """What the relay may rely on for this backend."""

    cooperative_stop: bool = False  # stop() makes ask() finish by itself with Finished(STOPPED)
    resumable: bool = False  # resume() can re-attach to a run after a restart
    keeps_context: bool = True  # follow-ups in the same session see earlier questions


@runtime_checkable
class Backend(Protocol):
    name: str
    capabilities: Capabilities

    def ask(self, request: AskRequest) -> AsyncIterator[Update]:
        """Run one question. Yields updates and ends with exactly one ``Finished``.

        Errors the user should see are yielded as ``Finished(FAILED, ErrorPart)``, or raised as
        :class:`BackendError`; the relay turns anything else into a generic failure.
        """
        ...

    async def stop(self, session_id: str | None, run_id: str | None) -> None:
        """Ask the backend to stop a run. Best effort; must not raise for a finished run."""
        ...

    def resume(self, session_id: str, run_id: str) -> AsyncIterator[Update]:
        """Re-attach to a run started before a restart (only if ``capabilities.resumable``)."""
        ...

    async def aclose(self) -> None:
        ...
