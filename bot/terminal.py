"""``insightbot ask``: run one question against the backend and print it as it arrives.

Useful to check a backend's settings before wiring up a chat platform. Progress lines are
printed once per change; the final answer prints text, tables, SQL and errors; charts are
rendered to PNG files whose paths are printed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from adapters.answer import (
    Answer, ChartPart, CodePart, ErrorPart, KnowledgePart, MetricPart, Outcome, Part, PartUpsert,
    SqlPart, StatusPart, StepPart, TablePart, TextPart,
)
from adapters.base import AskRequest, Backend, BackendError
from bot.charts import ChartRenderer
from bot.delivery.tables import monospace_table


def _progress_line(part: Part) -> str | None:
    if isinstance(part, StatusPart):
        return f"… {part.text}" if part.text else None
    if isinstance(part, StepPart):
        return f"… {part.title} [{part.state.value}]"
    if isinstance(part, KnowledgePart):
        return "… consulted: " + ", ".join(e.title for e in part.entries)
    if isinstance(part, MetricPart):
        return f"… metric: {part.name}"
    if isinstance(part, SqlPart):
        return "… SQL written"
    if isinstance(part, TextPart):
        return "… writing the answer"
    if isinstance(part, ChartPart):
        return "… chart ready" if (part.vega_spec or part.png) else None
    return None


async def ask_in_terminal(backend: Backend, question: str, *, charts: ChartRenderer,
                          out_dir: Path, out: TextIO = sys.stdout) -> int:
    answer = Answer()
    seen: set[str] = set()
    try:
        async for update in backend.ask(AskRequest(question=question)):
            answer = answer.apply(update)
            if isinstance(update, PartUpsert):
                line = _progress_line(update.part)
                if line and line not in seen:
                    seen.add(line)
                    print(line, file=out, flush=True)
            if answer.outcome.finished:
                break
    except BackendError as exc:
        answer = answer.finish(Outcome.FAILED, error=ErrorPart("error", exc.message, code=exc.code))
    if not answer.outcome.finished:
        answer = answer.finish(Outcome.FAILED, error=ErrorPart("error", "the backend ended without an answer"))
    print("", file=out)
    for part in answer.parts:
        if isinstance(part, TextPart) and part.markdown.strip():
            print(part.markdown.strip() + "\n", file=out)
        elif isinstance(part, TablePart):
            print(monospace_table([c.name for c in part.columns], part.rows), file=out)
            print(f"(showing {min(15, len(part.rows))} of {part.total or len(part.rows)} rows)\n", file=out)
        elif isinstance(part, CodePart):
            print(f"--- code ({part.language}) ---\n{part.source.strip()}\n", file=out)
    for part in answer.parts:
        if isinstance(part, SqlPart) and part.sql.strip():
            print(f"--- SQL ---\n{part.sql.strip()}\n", file=out)
    for i, chart in enumerate(answer.charts, start=1):
        png = chart.png
        if png is None and chart.vega_spec is not None:
            try:
                png = await charts.render(chart.vega_spec)
            except Exception as exc:
                print(f"chart: not drawn ({exc})", file=out)
        if png is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            path = out_dir / f"chart-{i}.png"
            path.write_bytes(png)
            print(f"chart saved: {path}", file=out)
        elif chart.note:
            print(f"chart: {chart.note}", file=out)
    await charts.aclose()  # a one-shot command: its chart worker is no longer needed
    for err in answer.errors:
        print(f"error: {err.message}" + (f" [{err.code}]" if err.code else ""), file=out)
    if answer.session_id:
        print(f"(session {answer.session_id})", file=out)
    return 0 if answer.outcome is Outcome.DONE else 1
