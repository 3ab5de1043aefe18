"""The chart worker: a child process that renders one untrusted spec at a time.

Why a process: vl-convert holds the GIL for the whole render (650 ms for 1,000 rows), so a thread
in the bot freezes its event loop just the same, and a thread cannot be stopped. In a process
the render runs on another core while the bot's loop stays free, and a render that runs too
long is ended with SIGKILL.

Started by :mod:`bot.charts.process` as ``python -P -m bot.charts.worker --parent-pid N
[--font-dir DIR]... [--no-warm-up] [--test-hooks]``. Frames (:mod:`bot.charts.frames`) come in
on fd 0 and go out on fd 1; both are moved to private descriptors before anything else runs,
fd 0 becomes ``/dev/null`` and fd 1 a copy of stderr, so nothing vl-convert, Deno or Python
prints can land in the frame channel. Stderr is a pipe the bot reads and logs.

Protocol (one request at a time; the bot matches replies by ``id``):

* worker → bot, once, after fonts and a warm-up render: ``{"type": "ready", "pid",
  "startup_ms", "warm_ms", "font_errors", "warm_error"}``. The warm-up pays vl-convert's
  start-up (~0.7 s of Deno/V8 initialisation and font loading) before any real chart, so the
  render timeout never has to cover it (``--no-warm-up`` skips it: ready sooner, first render
  slower).
* bot → worker: ``{"type": "render", "id", "width", "height", "scale", "max_rows",
  "max_spec_bytes"}`` with the untrusted spec's JSON as body.
* worker → bot: ``{"type": "started", "id"}`` as soon as the request has been read. A worker
  that dies before this line never saw the spec (the bot retries once on a fresh worker); one
  that dies after it died rendering (the bot reports the chart as not drawn).
* worker → bot: ``{"type": "result", "id", "ok": true, "render_ms"}`` with the PNG as body, or
  ``{"type": "result", "id", "ok": false, "error": <user-safe sentence>, "detail": <for the
  log>}``.

End of input (the bot closed the pipe or died) ends the worker; on Linux it is also killed if
the bot dies mid-render (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bot.charts.frames import FrameError, read_frame, write_frame
from bot.charts.render import register_fonts, render_checked
from bot.charts.request import handle_request
from bot.charts.spec import prepare_spec

NICENESS = 10
# Tiny, but with a title and axis labels, so fonts and the PNG path are loaded too.
WARM_UP_SPEC: dict[str, Any] = {
    "title": "warm-up",
    "data": {"values": [{"a": "A", "b": 1}, {"a": "B", "b": 2}]},
    "mark": "bar",
    "encoding": {"x": {"field": "a", "type": "nominal"},
                 "y": {"field": "b", "type": "quantitative"}},
}


def main(argv: list[str] | None = None) -> int:
    began = time.perf_counter()
    args = _parse(argv)
    frames_in, frames_out = _claim_stdio()
    _die_with_parent(args.parent_pid)
    # The bot decides when a worker stops (its own session already keeps Ctrl-C away).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _lower_priority()

    font_errors: list[str] = []
    for directory in args.font_dir:
        try:
            register_fonts([directory])
        except Exception as exc:  # a bad directory should not cost every chart
            font_errors.append(f"{directory}: {exc}"[:500])
    warm_began = time.perf_counter()
    warm_error = None
    if args.warm_up:
        try:
            render_checked(prepare_spec(WARM_UP_SPEC, width=200, height=100), 1.0)
        except Exception as exc:
            warm_error = f"{type(exc).__name__}: {exc}"[:2000]
    done = time.perf_counter()
    ready = {"type": "ready", "pid": os.getpid(), "startup_ms": round((done - began) * 1000, 1),
             "warm_ms": round((done - warm_began) * 1000, 1), "font_errors": font_errors,
             "warm_error": warm_error}
    try:
        write_frame(frames_out, ready)
        while True:
            frame = read_frame(frames_in)
            if frame is None:
                return 0
            header, body = frame
            write_frame(frames_out, {"type": "started", "id": header.get("id")})
            reply, png = handle_request(header, body, test_hooks=args.test_hooks)
            write_frame(frames_out, reply, png)
    except BrokenPipeError:
        return 0  # the bot went away
    except FrameError as exc:
        print(f"chart worker: bad request stream: {exc}", file=sys.stderr)
        return 2


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bot.charts.worker")
    p.add_argument("--parent-pid", type=int)
    p.add_argument("--font-dir", action="append", default=[])
    p.add_argument("--no-warm-up", dest="warm_up", action="store_false",
                   help="report ready before vl-convert has started (the first render pays it)")
    p.add_argument("--test-hooks", action="store_true",
                   help="honour a request's test_action (tests only)")
    return p.parse_args(argv)


def _claim_stdio() -> tuple[int, int]:
    """Keep fd 0/1 for frames and point the standard descriptors elsewhere.

    Must run before vl-convert is first called: Rust, Deno and C code write to fd 1 directly,
    not through ``sys.stdout``.
    """
    frames_in, frames_out = os.dup(0), os.dup(1)  # dup'd descriptors are not inherited
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    return frames_in, frames_out


def _lower_priority() -> None:
    """Charts are background work: when the bot's event loop wakes up it gets a core first.

    The worker runs in a session of its own (the bot starts it with ``start_new_session``), so
    where Linux groups scheduling by session ("autogroup") its CPU use is not charged to the
    bot's group; it lowers both its own priority and its group's.
    """
    os.nice(NICENESS)
    try:
        Path("/proc/self/autogroup").write_text(str(NICENESS))
    except OSError:
        pass  # not Linux, or autogroup disabled: nice alone applies


def _die_with_parent(parent_pid: int | None) -> None:
    """Ask Linux to SIGKILL this process when the bot dies, even in the middle of a render.

    Without it a stuck render would outlive a crashed bot (end of input is only noticed between
    renders). Elsewhere this is a no-op.
    """
    if parent_pid is None or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the bot died before we asked
        os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
