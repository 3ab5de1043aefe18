"""A backend of our own protocol, for tests about what the platforms show rather than about a
backend's wire format: subclasses write ``ask`` and get the rest of the protocol for free."""

from __future__ import annotations

from typing import Any, AsyncIterator

from adapters.base import AskRequest, Capabilities


class OwnBackend:
    name = "own"
    capabilities = Capabilities()

    def __init__(self) -> None:
        self.asked: list[AskRequest] = []  # every request, in order

    def ask(self, request: AskRequest) -> AsyncIterator[Any]:
        raise NotImplementedError

    async def stop(self, session_id: str | None, run_id: str | None) -> None:
        return None

    def resume(self, session_id: str, run_id: str) -> AsyncIterator[Any]:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None
