"""The normalized answer model every backend speaks and every platform renders.

A backend run yields :data:`Update` values. The relay folds them into one :class:`Answer`:

* :class:`SessionAssigned` records the backend's conversation id (and its run id, if any);
* :class:`PartUpsert` inserts a :class:`Part` or replaces the part with the same ``id`` (a later
  part with the same id wins, in its original position: TextQL's block semantics generalised,
  and ClickZetta's cumulative poll items fit the same rule);
* :class:`Finished` ends the run as ``done``, ``stopped`` or ``failed``.

Parts are frozen dataclasses so that an ``Answer`` snapshot handed to a platform renderer can
never change underneath it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any, Union


class PartKind(str, enum.Enum):
    STATUS = "status"
    STEP = "step"
    TEXT = "text"
    SQL = "sql"
    KNOWLEDGE = "knowledge"
    METRIC = "metric"
    TABLE = "table"
    CHART = "chart"
    CODE = "code"
    ERROR = "error"
    SUGGESTIONS = "suggestions"


class StepState(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "in_progress"
    DONE = "complete"
    ERROR = "error"


@dataclass(frozen=True)
class StatusPart:
    """A transient progress line ("Writing SQL…"). Only the latest status is shown."""

    id: str
    text: str
    kind: PartKind = field(default=PartKind.STATUS, init=False)


@dataclass(frozen=True)
class StepPart:
    """One agent step with a state, for a task timeline."""

    id: str
    title: str
    state: StepState = StepState.RUNNING
    detail: str = ""
    #: the kind of part this step makes (Wren's "Writing SQL" makes the SQL): a timeline shows
    #: that part as this step's output instead of as a step of its own
    produces: PartKind | None = None
    kind: PartKind = field(default=PartKind.STEP, init=False)


@dataclass(frozen=True)
class TextPart:
    """Markdown answer text (summary, explanation, narrative)."""

    id: str
    markdown: str
    kind: PartKind = field(default=PartKind.TEXT, init=False)


@dataclass(frozen=True)
class SqlPart:
    id: str
    sql: str
    title: str = ""
    kind: PartKind = field(default=PartKind.SQL, init=False)


@dataclass(frozen=True)
class KnowledgeEntry:
    title: str
    detail: str = ""


@dataclass(frozen=True)
class KnowledgePart:
    """Knowledge the agent consulted (documents, glossary entries, tables searched)."""

    id: str
    entries: tuple[KnowledgeEntry, ...]
    kind: PartKind = field(default=PartKind.KNOWLEDGE, init=False)


@dataclass(frozen=True)
class MetricPart:
    """A semantic-layer metric the agent used. ``dsl`` is kept, not dumped raw by renderers."""

    id: str
    name: str
    description: str = ""
    dsl: str = ""
    kind: PartKind = field(default=PartKind.METRIC, init=False)


@dataclass(frozen=True)
class Column:
    name: str
    type: str = ""


@dataclass(frozen=True)
class TablePart:
    """A query result. ``rows`` are all the rows the backend handed over (platforms show the
    first hundred or so and attach the rest as CSV); ``total`` is the result's full row count
    when the backend says it (it may be more than ``rows``)."""

    id: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[Any, ...], ...]
    total: int | None = None
    title: str = ""
    kind: PartKind = field(default=PartKind.TABLE, init=False)


@dataclass(frozen=True)
class ChartPart:
    """A chart in whichever form the backend gave it.

    Exactly one of ``vega_spec`` (untrusted Vega-Lite), ``png`` (rendered bytes) or
    ``image_url`` is the picture; ``sql`` + ``chart_type`` + ``columns`` describe a chart the
    backend could not draw itself (ClickZetta's ``echarts_plus``). ``note`` explains a chart
    that could not be made; it is a quiet remark, not a failure.
    """

    id: str
    title: str = ""
    vega_spec: dict[str, Any] | None = None
    png: bytes | None = None
    image_url: str | None = None
    chart_type: str = ""
    columns: tuple[Column, ...] = ()
    sql: str = ""
    note: str = ""
    kind: PartKind = field(default=PartKind.CHART, init=False)

    @property
    def has_picture(self) -> bool:
        return self.png is not None


@dataclass(frozen=True)
class CodePart:
    id: str
    source: str
    language: str = "python"
    output: str = ""
    kind: PartKind = field(default=PartKind.CODE, init=False)


@dataclass(frozen=True)
class ErrorPart:
    """An error the user should see. ``reference`` is filled in by the relay."""

    id: str
    message: str
    code: str = ""
    reference: str = ""
    kind: PartKind = field(default=PartKind.ERROR, init=False)


@dataclass(frozen=True)
class SuggestionsPart:
    """Follow-up questions the backend proposes; platforms offer them as one-click asks."""

    id: str
    questions: tuple[str, ...]
    kind: PartKind = field(default=PartKind.SUGGESTIONS, init=False)


Part = Union[
    StatusPart, StepPart, TextPart, SqlPart, KnowledgePart, MetricPart, TablePart, ChartPart,
    CodePart, ErrorPart, SuggestionsPart,
]


class Outcome(str, enum.Enum):
    RUNNING = "running"
    DONE = "done"
    STOPPED = "stopped"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self is not Outcome.RUNNING


@dataclass(frozen=True)
class SessionAssigned:
    session_id: str
    run_id: str | None = None


@dataclass(frozen=True)
class PartUpsert:
    part: Part


@dataclass(frozen=True)
class Finished:
    outcome: Outcome
    error: ErrorPart | None = None


Update = Union[SessionAssigned, PartUpsert, Finished]


@dataclass(frozen=True)
class Answer:
    """An immutable snapshot of everything a run has produced so far."""

    parts: tuple[Part, ...] = ()
    outcome: Outcome = Outcome.RUNNING
    session_id: str | None = None
    run_id: str | None = None
    notice: str = ""  # relay-level remark shown with the answer ("context was reset", "interrupted")
    stopped_by: str = ""  # platform user id of whoever stopped the run
    elapsed: float | None = None  # seconds from start to finish, set by the relay at the end

    # -- folding -------------------------------------------------------------------------
    def apply(self, update: Update) -> "Answer":
        """Return the answer after ``update``; updates after the end are ignored."""
        if self.outcome.finished:
            return self
        if isinstance(update, SessionAssigned):
            return replace(self, session_id=update.session_id, run_id=update.run_id or self.run_id)
        if isinstance(update, PartUpsert):
            return self.upsert(update.part)
        if isinstance(update, Finished):
            answer = self
            if update.error is not None:
                answer = answer.upsert(update.error)
            return replace(answer, outcome=update.outcome)
        raise TypeError(f"not an Update: {update!r}")

    def upsert(self, part: Part) -> "Answer":
        parts = list(self.parts)
        for i, existing in enumerate(parts):
            if existing.id == part.id:
                parts[i] = part
                break
        else:
            parts.append(part)
        return replace(self, parts=tuple(parts))

    def finish(self, outcome: Outcome, *, notice: str = "", error: ErrorPart | None = None,
               stopped_by: str = "") -> "Answer":
        """Force an end state (used by the relay for stop, timeouts and crashes)."""
        answer = self.upsert(error) if error is not None else self
        return replace(answer, outcome=outcome, notice=notice or self.notice,
                       stopped_by=stopped_by or self.stopped_by)

    def with_elapsed(self, seconds: float) -> "Answer":
        return replace(self, elapsed=seconds)

    # -- reading -------------------------------------------------------------------------
    def of_kind(self, kind: PartKind) -> list[Part]:
        return [p for p in self.parts if p.kind is kind]

    @property
    def status(self) -> StatusPart | None:
        statuses = self.of_kind(PartKind.STATUS)
        return statuses[-1] if statuses else None  # type: ignore[return-value]

    @property
    def text(self) -> str:
        return "\n\n".join(p.markdown for p in self.of_kind(PartKind.TEXT) if p.markdown.strip())  # type: ignore[union-attr]

    @property
    def charts(self) -> list[ChartPart]:
        return self.of_kind(PartKind.CHART)  # type: ignore[return-value]

    @property
    def errors(self) -> list[ErrorPart]:
        return self.of_kind(PartKind.ERROR)  # type: ignore[return-value]

    @property
    def is_empty(self) -> bool:
        return not any(p.kind is not PartKind.STATUS for p in self.parts)
