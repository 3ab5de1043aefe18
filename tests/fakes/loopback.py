"""Serving a fake's aiohttp application on 127.0.0.1 with a free port (shared by every fake)."""

from __future__ import annotations

from aiohttp import web


async def serve(app: web.Application, *, shutdown_timeout: float = 1.0,
                handler_cancellation: bool = True) -> tuple[web.AppRunner, int]:
    """Start ``app`` on loopback; return its runner (for ``cleanup()``) and the port it got.

    ``handler_cancellation`` lets a fake notice a client that hung up mid-request (what a
    stopped analysis looks like to a backend).
    """
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout,
                           handler_cancellation=handler_cancellation)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1]
