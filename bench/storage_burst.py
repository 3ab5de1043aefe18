"""Storage under a burst: 200 questions at once, the repository calls each one makes.

The simulation is the one the burst tests run (``tests/unit/storage_burst.py``): per question
the intake (``claim_event``, ``get_conversation``, ``ensure_conversation``, ``create_run`` — or
one ``record_question``), then ``update_run`` (placeholder), ``start_run``, ``get_conversation``,
``set_session``, ``update_run`` (backend ids) and ``finish_run`` with a ~5 KB answer, with the
relay's JSON work in between and ``stop_requests`` polled every 20 ms. Measured: wall time of
the whole burst, each call's latency as its caller sees it (queueing included), and *intake* —
question in → run recorded, after which the relay posts the placeholder.

Scenarios: SQLite with the bot alone, SQLite with a second process on the same file (a second
repository), and PostgreSQL with two replicas (skipped, with the reason, when no server
answers at ``TEST_DATABASE_URL``, default the local ``test`` database). Each runs ``ROUNDS``
times; latencies are pooled, wall and errors are given per round.

Run: ``.venv/bin/python -m bench.storage_burst``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from storage import Repository, normalize_url
from tests.unit.storage_burst import Burst, burst, percentile

ROUNDS = 3
PG_ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
OPS = ("claim_event", "get_conversation", "ensure_conversation", "create_run", "record_question",
       "update_run", "start_run", "set_session", "finish_run", "stop_requests")


# the storage of an older checkout has no batched intake: measure what it has
INTAKES = ["calls", "record_question"] if hasattr(Repository, "record_question") else ["calls"]


def _summary(rounds: list[Burst]) -> dict[str, Any]:
    pooled: dict[str, list[float]] = {}
    for result in rounds:
        for op, values in result.latencies.items():
            pooled.setdefault(op, []).extend(values)
    intake = [v for result in rounds for v in result.intake]
    summary: dict[str, Any] = {
        "wall_s": [round(r.wall, 2) for r in rounds],
        "errors": [len(r.errors) for r in rounds],
        "intake_p50_ms": percentile(intake, 0.5) * 1000 if intake else None,
        "intake_p95_ms": percentile(intake, 0.95) * 1000 if intake else None,
        "intake_within_1s": (f"{sum(v <= 1.0 for v in intake) / len(intake):.0%}" if intake else None),
    }
    for op in OPS:
        if pooled.get(op):
            summary[op] = (percentile(pooled[op], 0.5) * 1000, percentile(pooled[op], 0.95) * 1000)
    first_error = next((e for r in rounds for _, e in r.errors), None)
    if first_error is not None:
        summary["first_error"] = repr(first_error)[:120]
    return summary


async def _rounds(url: str, processes: int, intake: str, tag: str) -> list[Burst]:
    results = []
    for n in range(ROUNDS):
        repos = [await Repository.open(url) for _ in range(processes)]
        try:
            results.append(await burst(repos, intake=intake, tag=f"{tag}{n}"))
        finally:
            for repo in repos:
                await repo.close()
    return results


async def sqlite_scenarios() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for processes in (1, 2):
        for intake in INTAKES:
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite+aiosqlite:///{tmp}/burst.db"
                rounds = await _rounds(url, processes, intake, tag=intake[0])
            who = "bot alone" if processes == 1 else "bot + a second process"
            out[f"SQLite, {who}, intake {_intake_name(intake)}"] = _summary(rounds)
    return out


async def _admin(statement: str) -> None:
    engine = create_async_engine(normalize_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT",
                                 connect_args={"timeout": 2.0})
    try:
        async with asyncio.timeout(3):
            async with engine.connect() as conn:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def postgres_scenarios() -> dict[str, Any]:
    name = f"insightbot_bench_{uuid.uuid4().hex[:12]}"
    try:
        await _admin(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # no server, bad credentials, no CREATEDB right
        return {"PostgreSQL": {"skipped": f"not usable at TEST_DATABASE_URL: {type(exc).__name__}: {exc}"}}
    url = normalize_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    out: dict[str, Any] = {}
    try:
        for intake in INTAKES:
            rounds = await _rounds(url, 2, intake, tag=intake[0])
            out[f"PostgreSQL, 2 replicas, intake {_intake_name(intake)}"] = _summary(rounds)
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return out


def _intake_name(intake: str) -> str:
    return "record_question" if intake == "record_question" else "as 4 calls"


async def main() -> dict[str, Any]:
    return {**await sqlite_scenarios(), **await postgres_scenarios()}


def report(results: dict[str, Any]) -> str:
    lines = []
    for name, summary in results.items():
        if "skipped" in summary:
            lines.append(f"{name}: skipped ({summary['skipped']})")
            continue
        walls = summary["wall_s"]
        lines.append(
            f"{name}: wall {statistics.median(walls):.2f} s (rounds {walls}), errors {summary['errors']}, "
            f"intake p50 {summary['intake_p50_ms']:.0f} ms p95 {summary['intake_p95_ms']:.0f} ms "
            f"({summary['intake_within_1s']} within 1 s)")
        ops = [f"{op} {p50:.1f}/{p95:.1f}" for op, value in summary.items() if op in OPS
               for p50, p95 in [value]]
        lines.append("    p50/p95 ms: " + ", ".join(ops))
        if "first_error" in summary:
            lines.append(f"    first error: {summary['first_error']}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(asyncio.run(main())))
