"""The agent's work as a list of tasks, for a platform's task timeline.

Backends report their work in two ways, and both become the same timeline:

* **steps** (:class:`StepPart`): Wren's stream names each stage ("Understanding your question",
  "Writing SQL"…) with its state. A step that ``produces`` a kind of part (the SQL, the rows,
  the summary) shows that part as its output, so the same work is not listed twice;
* **results**: ClickZetta's knowledge, metric, SQL and summary items and TextQL's blocks arrive
  as parts. Each becomes a task; since these backends send no "finished" signal per item, a
  result task is complete once a later part arrives (TextQL: a new block id means the previous
  one is complete), and the newest one is still running until the run ends.

At the end of a run every task still running is complete — or, when the run failed or was
stopped, the last one is marked error. Titles, details and outputs are cut to Slack's 256
characters per task field; a timeline holds at most 50 tasks (Slack's plan limit), the newest.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.answer import (
    Answer, ChartPart, CodePart, KnowledgePart, MetricPart, Outcome, Part, PartKind, SqlPart,
    StepPart, StepState, TablePart, TextPart,
)

FIELD_LIMIT = 256
MAX_TASKS = 50
ANSWER_TASK = "answer"  # every text part is one task: the answer being written

PENDING, RUNNING, COMPLETE, ERROR = "pending", "in_progress", "complete", "error"
_STATUS = {StepState.PENDING: PENDING, StepState.RUNNING: RUNNING, StepState.DONE: COMPLETE,
           StepState.ERROR: ERROR}


@dataclass(frozen=True)
class Task:
    """One task card: ``status`` is Slack's vocabulary (pending/in_progress/complete/error)."""

    id: str
    title: str
    status: str
    details: str = ""
    output: str = ""


def timeline(answer: Answer) -> list[Task]:
    """The tasks of ``answer`` in the order their work began."""
    produced = {p.produces: p for p in answer.parts if isinstance(p, StepPart) and p.produces}
    tasks: list[Task] = []
    for part in answer.parts:
        if isinstance(part, StepPart):
            output = _output(_made_by(answer, part.produces)) if part.produces else ""
            tasks.append(Task(part.id, part.title, _STATUS[part.state], part.detail, output))
            continue
        if part.kind in produced:
            continue  # shown as the output of the step that made it
        task = _result_task(part)
        if task is not None and not any(t.id == task.id for t in tasks):
            tasks.append(task)
    tasks = _settle(tasks, answer)
    return [_cut(t) for t in tasks[-MAX_TASKS:]]


def _made_by(answer: Answer, kind: PartKind | None) -> Part | None:
    made = [p for p in answer.parts if p.kind is kind]
    return made[-1] if made else None


def _result_task(part: Part) -> Task | None:
    if isinstance(part, KnowledgePart):
        return Task(part.id, "Consulted knowledge", RUNNING, output=_output(part))
    if isinstance(part, MetricPart):
        return Task(part.id, f"Used the metric {part.name}", RUNNING, details=part.description)
    if isinstance(part, SqlPart):
        return Task(part.id, part.title or "Wrote SQL", RUNNING, output=_output(part))
    if isinstance(part, CodePart):
        return Task(part.id, f"Ran {part.language or 'code'}", RUNNING, output=_output(part))
    if isinstance(part, TablePart):
        return Task(part.id, part.title or "Ran the query", RUNNING, output=_output(part))
    if isinstance(part, ChartPart):
        return Task(part.id, f"Chart: {part.title}" if part.title else "Drew a chart", RUNNING)
    if isinstance(part, TextPart):
        return Task(ANSWER_TASK, "Writing the answer", RUNNING)
    return None  # status lines, errors and suggestions are not work


def _output(part: Part | None) -> str:
    """What a task found, in one line: the rows, the SQL's first line, the sources."""
    if isinstance(part, TablePart):
        total = part.total if part.total is not None else len(part.rows)
        return f"{total:,} row{'s' if total != 1 else ''}"
    if isinstance(part, SqlPart):
        return _first_line(part.sql)
    if isinstance(part, CodePart):
        return _first_line(part.output) if part.output else ""
    if isinstance(part, KnowledgePart):
        return ", ".join(e.title for e in part.entries)
    if isinstance(part, TextPart):
        return _first_line(part.markdown)
    return ""


def _settle(tasks: list[Task], answer: Answer) -> list[Task]:
    """Result tasks are complete once a later task began; at the end nothing is running."""
    settled: list[Task] = []
    for i, task in enumerate(tasks):
        later = i < len(tasks) - 1
        from_step = any(isinstance(p, StepPart) and p.id == task.id for p in answer.parts)
        if task.status == RUNNING and not from_step and later:
            task = _with(task, COMPLETE)
        settled.append(task)
    if answer.outcome is Outcome.RUNNING:
        return settled
    failed = answer.outcome in (Outcome.FAILED, Outcome.STOPPED)
    running = [i for i, t in enumerate(settled) if t.status in (RUNNING, PENDING)]
    for i in running:
        settled[i] = _with(settled[i], ERROR if failed and i == running[-1] else COMPLETE)
    return settled


def _with(task: Task, status: str) -> Task:
    return Task(task.id, task.title, status, task.details, task.output)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _cut(task: Task) -> Task:
    return Task(task.id, _short(task.title) or "Working", task.status, _short(task.details),
                _short(task.output))


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= FIELD_LIMIT else text[: FIELD_LIMIT - 1] + "…"
