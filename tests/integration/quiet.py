"""Waiting until a service has finished everything it started, so that "nothing was sent
afterwards" is checked after the work it guards, not one HTTP round trip later."""

from __future__ import annotations

import asyncio

from bot.service import Service


async def quiet(service: Service, timeout: float = 10.0) -> None:
    """No run live, no run's after-work (late charts, on_finish), no sink background task
    (retiring placeholders, status lines, agent sessions) left."""
    relay = service.relay
    assert relay is not None

    async def idle() -> None:
        while relay.live.all() or any(not task.done() for task in relay._after):
            await asyncio.sleep(0.01)  # (LiveRuns has no "emptied" event to wait on)

    await asyncio.wait_for(idle(), timeout)
    for factory in relay._platforms.values():
        tasks = getattr(factory, "tasks", None)
        if tasks is not None:
            await asyncio.wait_for(tasks.wait(), timeout)
