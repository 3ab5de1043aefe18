"""One render request → its reply: what a chart worker does with each request it reads.

Shared by the worker process (:mod:`bot.charts.worker`) and the in-process mode
(:mod:`bot.charts.inprocess`), so both answer alike. Runs :func:`~bot.charts.spec.prepare_spec`
on the untrusted spec here, next to the render, so the bot never deep-copies or walks a
2,000-row spec on its event loop. Never raises: errors become an ``ok: false`` reply whose
``error`` is a user-safe sentence and whose ``detail`` (vl-convert's message) is for the log.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from bot.charts.errors import COULD_NOT_DRAW, ChartError
from bot.charts.frames import Frame
from bot.charts.render import render_checked
from bot.charts.spec import prepare_spec


def handle_request(header: dict[str, Any], body: bytes, *, test_hooks: bool = False) -> Frame:
    """One render request → its reply frame; never raises (errors become ``ok: false``)."""
    rid = header.get("id")
    began = time.perf_counter()
    try:
        if header.get("type") != "render":
            raise ValueError(f"unknown request type {header.get('type')!r}")
        if test_hooks:
            _test_action(header.get("test_action"))
        spec = json.loads(body)
        safe = prepare_spec(spec, width=int(header["width"]), height=int(header["height"]),
                            max_rows=int(header["max_rows"]),
                            max_spec_bytes=int(header["max_spec_bytes"]))
        png = render_checked(safe, float(header["scale"]))
    except ChartError as exc:
        return {"type": "result", "id": rid, "ok": False, "error": str(exc)}, b""
    except Exception as exc:  # vl-convert raises ValueError with JS stack traces
        return {"type": "result", "id": rid, "ok": False, "error": COULD_NOT_DRAW,
                "detail": f"{type(exc).__name__}: {exc}"[:2000]}, b""
    return {"type": "result", "id": rid, "ok": True,
            "render_ms": round((time.perf_counter() - began) * 1000, 1)}, png


def _test_action(action: Any) -> None:
    """Misbehaviours the tests need, honoured only with ``--test-hooks``.

    ``hang``: never finish, like a stuck render (it says so on stderr, which the bot logs, so a
    test can wait for it). ``noise``: print to stdout/stderr every way a library might, then
    render normally.
    """
    if action == "hang":
        print("test hook: hanging", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
    elif action == "noise":
        print("noise via sys.stdout", flush=True)
        os.write(1, b"\x00\x00\x00\x05noise via fd 1\n")
        os.write(2, b"noise via fd 2\n")
