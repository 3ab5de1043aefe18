"""The ``insightbot`` console script: ``serve``, ``ask`` and ``db upgrade``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
from pathlib import Path

from typing import TYPE_CHECKING

from bot.config import ConfigError, Settings, load_settings
from bot.logs import setup_logging

if TYPE_CHECKING:
    from bot.routing import RoutingConfig

log = logging.getLogger("insightbot")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="insightbot", description="Analytics agents in Slack and Teams")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the service (HTTP on HOST:PORT; Socket Mode with SLACK_APP_TOKEN)")
    ask = sub.add_parser("ask", help="ask the configured backend from the terminal")
    ask.add_argument("question")
    ask.add_argument("--backend", choices=["wren", "clickzetta", "textql"])
    ask.add_argument("--profile", help="with ROUTES_FILE: the profile to ask (default: the "
                                       "file's default profile, or its only one)")
    ask.add_argument("--out", default=".", help="folder for chart PNG files (default: current)")
    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply migrations")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        routing = None  # checked before anything starts: its secrets are masked from the first line
        if args.command == "serve" or (args.command == "ask" and settings.ROUTES_FILE):
            from bot.routing import load_routes

            routing = load_routes(settings)
        setup_logging(settings.LOG_LEVEL,
                      settings.secrets() + (routing.secrets() if routing is not None else []))
        if args.command == "serve":
            assert routing is not None
            return _serve(settings, routing)
        if args.command == "ask":
            return asyncio.run(_ask(settings, args.question, args.backend, Path(args.out),
                                    routing=routing, profile=args.profile))
        if args.command == "db":
            from storage.migrate import upgrade_sync

            upgrade_sync(settings.DATABASE_URL)
            print("database is up to date")
            return 0
    except ConfigError as exc:
        print(f"insightbot: configuration error: {exc}", file=sys.stderr)
        return 2
    except DatabaseUnavailable as exc:
        print(f"insightbot: database error: {exc}", file=sys.stderr)
        return 2
    return 1


def _ensure_stdin() -> None:
    """Give the process a stdin (``/dev/null``) when it was started without one.

    Some process managers start services with file descriptor 0 closed. vl-convert's JavaScript
    engine, which draws the charts (here and in the chart workers, which inherit it), panics at
    start without a stdin, and every chart is lost with nothing but a Rust backtrace in the log.
    """
    try:
        os.fstat(0)
    except OSError:
        fd = os.open(os.devnull, os.O_RDONLY)
        if fd != 0:
            os.dup2(fd, 0)
            os.close(fd)
        log.info("stdin was closed: reading /dev/null instead (chart rendering needs one)")


class DatabaseUnavailable(Exception):
    """DATABASE_URL cannot be opened; the message is one line naming it (password hidden)."""


def _check_database(url: str) -> None:
    """Open ``url`` once before serving: a missing database, wrong credentials or an unreachable
    server is one line naming the URL and the cause, not a traceback from the first request."""
    from sqlalchemy import text

    from storage.engine import create_engine, normalize_url

    async def probe() -> None:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    try:
        asyncio.run(probe())
    except Exception as exc:  # noqa: BLE001 - any driver's failure becomes one line
        shown = normalize_url(url).render_as_string(hide_password=True)
        cause = " ".join(str(exc).split()) or type(exc).__name__
        cause = cause.split(" [SQL:")[0].split(" (Background on this error")[0]
        cause = re.sub(r"^\([\w.]+\) ", "", cause)  # the driver's exception class
        raise DatabaseUnavailable(f"cannot open DATABASE_URL {shown}: {cause[:300]}") from None


def _serve(settings: Settings, routing: "RoutingConfig") -> int:
    settings.check_platforms()
    _check_database(settings.DATABASE_URL)
    _ensure_stdin()
    from aiohttp import web

    from bot.service import Service

    service = Service(settings, routing=routing)  # builds every profile's backend (may refuse one)
    if not settings.slack_enabled and not settings.teams_enabled:
        log.warning("neither Slack nor Teams is configured: only /healthz and /metrics will answer")
    web.run_app(service.web_app(), host=settings.HOST, port=settings.PORT, print=None,
                access_log=None)
    return 0


async def _ask(settings: Settings, question: str, backend_name: str | None, out_dir: Path, *,
               routing: "RoutingConfig | None" = None, profile: str | None = None) -> int:
    from bot.backends import build_backend
    from bot.charts import ChartRenderer
    from bot.terminal import ask_in_terminal

    if routing is not None and not routing.implicit:
        if backend_name:
            raise ConfigError("--backend does not apply with ROUTES_FILE: name a profile with "
                              f"--profile ({', '.join(routing.profiles)})")
        name = profile or routing.default or (next(iter(routing.profiles))
                                              if len(routing.profiles) == 1 else None)
        spec = routing.profiles.get(name or "")
        if spec is None:
            raise ConfigError(f"--profile must name a profile of {routing.source} "
                              f"({', '.join(routing.profiles)})"
                              + (f", not {profile!r}" if profile else ""))
        try:
            backend = build_backend(spec.settings, spec.kind)
        except ConfigError as exc:
            raise ConfigError(f"{routing.where(spec.name)}profile {spec.name!r}: {exc}") from None
    elif profile:
        raise ConfigError("--profile needs a ROUTES_FILE of backend profiles")
    else:
        backend = build_backend(settings, backend_name)
    charts = ChartRenderer(width=settings.CHART_WIDTH, height=settings.CHART_HEIGHT,
                           scale=settings.CHART_SCALE, workers=settings.CHART_WORKERS)
    try:
        return await ask_in_terminal(backend, question, out_dir=out_dir, charts=charts)
    finally:
        await charts.aclose()
        await backend.aclose()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
