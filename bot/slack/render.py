"""Answer → Block Kit, under Slack's real per-message limits.

The finished answer is laid out as a list of blocks in the order a reader wants it — what the
agent consulted, the answer text (with its Markdown tables as real tables), the result table,
code, the SQL collapsed behind "View SQL", notes about charts, errors — and then *packed* into as
many thread messages as Slack's limits require (:func:`pack`, counting every block's text and
the blocks Slack expands markdown into). Nothing the backend said is cut.

What comes after the answer — how the run ended, suggested follow-ups and the feedback buttons
— is the *trailer*. When the answer has files (its chart PNG, the CSV of a long result), they go
into the thread right after the answer and the trailer follows them, so a chart sits beside the
answer, not below the feedback buttons.

Tables come in three styles (``bot/slack/tables.py``); the sink sends the answer again in a
plainer style when a workspace refuses one, and as plain text (:func:`plain_fallback`) last.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from adapters.answer import (
    Answer, ChartPart, CodePart, ErrorPart, KnowledgePart, MetricPart, Outcome, PartKind,
    SqlPart, StepPart, SuggestionsPart, TablePart, TextPart,
)
from bot.delivery.mdtables import MarkdownTable, split_tables
from bot.delivery.sqlformat import readable_sql
from bot.delivery.tables import monospace_table
from bot.delivery.tabular import to_csv
from bot.delivery.textsplit import shorten, split_text
from bot.delivery.timeline import timeline
from bot.slack.blocks import (
    Block, actions, button, code, context, counted_blocks, is_table, markdown, mrkdwn_escape,
    sections, table_cells_size, text_size,
)
from bot.slack.tables import TableStyle, markdown_table, result_table
from bot.slack.timeline import plan_block, plan_title, timeline_line

TEXT_LIMIT = 3_000  # the message's top-level ``text`` (Slack refuses ~4,000)
MESSAGE_BLOCKS = 48  # of 50, counted as Slack expands them
MESSAGE_TEXT = 11_000  # characters of block text per message (Slack: ~12,000)
MESSAGE_TABLE_CELLS = 9_500  # of Slack's 10,000 across a message's table cells
SQL_WHOLE_LINES = 12  # a query this short is shown whole; longer ones collapse
SQL_PREVIEW_LINES = 8
STOP_ACTION = "stop_run"
FEEDBACK_ACTION = "feedback"
SUGGESTION_ACTION = "ask_suggestion"
VIEW_SQL_ACTION = "view_sql"
MAX_SUGGESTIONS = 3
SQL_REF_LIMIT = 200  # a longer SQL part id is named by its digest on the "View SQL" button


@dataclass
class SlackMessage:
    text: str
    blocks: list[Block] = field(default_factory=list)
    #: this message is the end of the reply's stream: its text was streamed already, and the
    #: blocks go with ``chat.stopStream`` (Slack shows them below the streamed text)
    finishes_stream: bool = False


@dataclass
class Attachment:
    """A file to upload into the thread (chart PNG, the result as CSV)."""

    filename: str
    content: bytes
    title: str
    alt_text: str = ""


@dataclass
class FinalReply:
    """``messages`` go out first; then ``attachments`` are uploaded; then ``trailer`` (None when
    it fitted into the last message because there was nothing to upload)."""

    messages: list[SlackMessage]
    attachments: list[Attachment]
    trailer: SlackMessage | None = None


# -- parts → blocks ----------------------------------------------------------------------------
def _knowledge_line(part: KnowledgePart) -> str:
    names = ", ".join(mrkdwn_escape(e.title) for e in part.entries[:8])
    more = f" (+{len(part.entries) - 8} more)" if len(part.entries) > 8 else ""
    return f":books: Consulted: {names}{more}"


def _text_blocks(answer: Answer, style: TableStyle, *, limit: int | None = None) -> list[Block]:
    """The answer's Markdown; its tables become table blocks (monospace while running)."""
    blocks: list[Block] = []
    for part in answer.of_kind(PartKind.TEXT):
        assert isinstance(part, TextPart)
        body = part.markdown.strip()
        if not body:
            continue
        if limit is not None and len(body) > limit:
            body = body[:limit].rstrip() + " …"
        for piece in split_tables(body):
            if isinstance(piece, MarkdownTable):
                blocks += markdown_table(piece, style)
            else:
                blocks += markdown(piece)
    return blocks


def _sql_blocks(part: SqlPart, run_id: str, *, running: bool) -> list[Block]:
    """The SQL, collapsed: its first lines, and "View SQL" for all of it in a modal."""
    sql = readable_sql(part.sql)
    if not sql:
        return []
    lines = sql.splitlines()
    title = f"*SQL{(' — ' + mrkdwn_escape(part.title)) if part.title else ''}*"
    if len(lines) <= SQL_WHOLE_LINES and len(sql) <= 1500:
        return sections(title) + code(sql)
    keep = SQL_WHOLE_LINES if running else SQL_PREVIEW_LINES
    shown = "\n".join(lines[:keep])[:1500] + "\n…"
    blocks = sections(title) + code(shown)
    if running:
        return blocks
    more = len(lines) - keep
    ref = sql_ref(part.id)
    blocks.append(actions(button("View SQL", VIEW_SQL_ACTION, f"{run_id}:{ref}"),
                          block_id=f"sql:{ref}"))
    blocks.append(context(f"{max(more, 1)} more line{'s' if more != 1 else ''} — "
                          f"“View SQL” shows the whole query."))
    return blocks


def sql_ref(part_id: str) -> str:
    """How a "View SQL" button names its SQL part: the part's id, or a digest of a long one.

    The id is the backend's; it goes into the button's ``value`` (Slack: at most 2,000
    characters) and its ``block_id`` (255, and unique in the message), so an id longer than
    ``SQL_REF_LIMIT`` is named by a digest instead — cutting it could give two parts one
    ``block_id`` and Slack would refuse the whole message. :func:`sql_of` accepts both.
    """
    if len(part_id) <= SQL_REF_LIMIT:
        return part_id
    return "#" + hashlib.sha256(part_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _code_blocks(part: CodePart, *, running: bool) -> list[Block]:
    lines = part.source.strip().splitlines()
    keep = 8 if running else 15
    blocks = sections(f"*Code* ({part.language}, {len(lines)} lines)")
    shown = "\n".join(lines[:keep]) + (f"\n… ({len(lines) - keep} more lines)" if len(lines) > keep else "")
    blocks += code(shown)
    if part.output.strip():
        out = part.output.strip()
        blocks += sections("*Output*")
        blocks += code(out if not running else out[:800])
    return blocks


def _chart_blocks(part: ChartPart) -> list[Block]:
    if part.png is not None:
        return []  # uploaded as a file into the thread, right after the answer
    title = mrkdwn_escape(part.title) or "Chart"
    if part.note:
        blocks = [context(f":bar_chart: {title}: {mrkdwn_escape(part.note)}")]
    elif part.image_url:
        blocks = [context(f":bar_chart: <{part.image_url}|{title}>")]
    else:
        kind = f" ({part.chart_type})" if part.chart_type else ""
        blocks = [context(f":bar_chart: {title}{kind}")]
    if part.sql:
        blocks += code(readable_sql(part.sql))
    return blocks


def _error_blocks(part: ErrorPart) -> list[Block]:
    ref = f"Reference: `{part.reference}`" if part.reference else ""
    code_ = f" · code `{part.code}`" if part.code else ""
    return sections(f":warning: {mrkdwn_escape(part.message)}") + [context((ref + code_).strip(" ·") or "Error")]


def _progress_table(part: TablePart) -> list[Block]:
    rows = part.rows[:10]
    text = monospace_table([c.name for c in part.columns], rows, max_rows=10)
    total = part.total if part.total is not None else len(part.rows)
    return code(text) + [context(f"First {len(rows)} of {total} rows so far")]


def _body_blocks(answer: Answer, run_id: str, style: TableStyle, attachments: list[Attachment],
                 *, running: bool, streamed: bool = False, plans: bool = True) -> list[Block]:
    """``streamed``: the timeline and the text are in the message already (a stream);
    ``plans``: the workspace takes ``plan`` blocks (else the timeline is one context line)."""
    blocks: list[Block] = []
    tasks = timeline(answer)
    # While running, the timeline is the progress; at the end it stays only for a backend that
    # narrates its steps (what ClickZetta and TextQL did is the answer's own content below).
    if tasks and not streamed and (running or any(isinstance(p, StepPart) for p in answer.parts)):
        title = plan_title(tasks, stopped=answer.outcome is Outcome.STOPPED)
        blocks.append(plan_block(tasks, title) if plans else context(timeline_line(tasks, title)))
    for part in answer.parts if not streamed else ():  # streamed: the timeline names them
        if isinstance(part, KnowledgePart) and part.entries:
            blocks.append(context(_knowledge_line(part)))
        elif isinstance(part, MetricPart):
            desc = f" — {mrkdwn_escape(part.description)}" if part.description else ""
            blocks.append(context(f":straight_ruler: Metric: *{mrkdwn_escape(part.name)}*{desc}"))
    if not streamed:
        blocks += _text_blocks(answer, TableStyle.MONOSPACE if running else style,
                               limit=2500 if running else None)
    for part in answer.parts:
        if isinstance(part, TablePart):
            if running:
                blocks += _progress_table(part)
                continue
            fitted = result_table(part, style)
            blocks += fitted.blocks
            if fitted.cut:
                name = f"result-{sum(a.filename.endswith('.csv') for a in attachments) + 1}.csv"
                attachments.append(Attachment(name, to_csv(part), part.title or "Result (CSV)"))
        elif isinstance(part, CodePart):
            blocks += _code_blocks(part, running=running)
    for part in answer.parts:
        if isinstance(part, SqlPart):
            blocks += _sql_blocks(part, run_id, running=running)
    for part in answer.parts:
        if isinstance(part, ChartPart):
            blocks += _chart_blocks(part)
    for part in answer.errors:
        blocks += _error_blocks(part)
    return blocks


def _fallback_text(answer: Answer) -> str:
    if answer.errors:
        return shorten(f"Analysis failed: {answer.errors[0].message}", 300)
    if answer.text:
        return shorten(answer.text, 300)
    status = answer.status.text if answer.status else ""
    return status or "Analysis"


# -- packing ---------------------------------------------------------------------------------
def pack(blocks: list[Block], *, reserve_blocks: int = 0) -> list[list[Block]]:
    """Spread ``blocks`` over as few messages as Slack's limits allow, in order."""
    messages: list[list[Block]] = []
    current: list[Block] = []
    count = size = cells = tables = 0
    for block in blocks:
        b_count, b_size, b_cells = counted_blocks(block), text_size(block), table_cells_size(block)
        b_tables = 1 if is_table(block) else 0
        if current and (count + b_count > MESSAGE_BLOCKS or size + b_size > MESSAGE_TEXT
                        or cells + b_cells > MESSAGE_TABLE_CELLS or tables + b_tables > 1):
            messages.append(current)
            current, count, size, cells, tables = [], 0, 0, 0, 0
        current.append(block)
        count, size, cells, tables = count + b_count, size + b_size, cells + b_cells, tables + b_tables
    if current or not messages:
        messages.append(current)
    return messages


def _fits(blocks: list[Block], extra: list[Block]) -> bool:
    return len(pack(blocks + extra)) == 1


# -- the two renderings ------------------------------------------------------------------------
def render_progress(answer: Answer, run_id: str, *, plans: bool = True) -> SlackMessage:
    """The placeholder while a run is going: status, what is known so far, and a Stop button."""
    status = answer.status.text if answer.status and answer.status.text else "Working on it…"
    head = [context(f":hourglass_flowing_sand: {mrkdwn_escape(status)}")]
    stop = actions(button("Stop", STOP_ACTION, run_id, style="danger"), block_id="run_controls")
    body = _body_blocks(answer, run_id, TableStyle.MONOSPACE, [], running=True, plans=plans)
    # one message only: keep what fits beside the status and the Stop button, in order
    kept: list[Block] = []
    for block in body:
        if not _fits(head + kept + [block], [stop]) or text_size(block) + sum(map(text_size, kept)) > 6000:
            break
        kept.append(block)
    return SlackMessage(text=shorten(status, 300), blocks=head + kept + [stop])


def _trailer(answer: Answer, run_id: str) -> list[Block]:
    blocks: list[Block] = []
    if answer.outcome is Outcome.STOPPED:
        who = f"<@{answer.stopped_by}>" if answer.stopped_by else "request"
        after = f" after {answer.elapsed:.0f} s" if answer.elapsed is not None else ""
        blocks += sections(f":black_square_for_stop: Stopped by {who}{after}.")
    if answer.notice.strip():  # a context element with no text is refused by Slack
        blocks.append(context(mrkdwn_escape(answer.notice)))
    if answer.outcome is Outcome.DONE:
        elapsed = f"Answered in {answer.elapsed:.0f} s" if answer.elapsed is not None else "Answered"
        blocks.append(context(elapsed))
        blocks += _suggestion_blocks(answer)
        blocks.append({"type": "context_actions", "elements": [{
            "type": "feedback_buttons", "action_id": FEEDBACK_ACTION,
            "positive_button": {"text": {"type": "plain_text", "text": "Good"},
                                "accessibility_label": "Mark this answer as helpful",
                                "value": f"good:{run_id}"},
            "negative_button": {"text": {"type": "plain_text", "text": "Bad"},
                                "accessibility_label": "Mark this answer as not helpful",
                                "value": f"bad:{run_id}"}}]})
    return blocks


def _suggestion_blocks(answer: Answer) -> list[Block]:
    questions = [q for p in answer.parts if isinstance(p, SuggestionsPart) for q in p.questions
                 if q.strip()][:MAX_SUGGESTIONS]
    if not questions:
        return []
    # a button label is at most 75 characters; the value carries the whole question
    buttons = [button(q, f"{SUGGESTION_ACTION}:{i}", q[:2000]) for i, q in enumerate(questions)]
    return [context("Ask next:"), actions(*buttons, block_id="suggestions")]


def render_stream_final(answer: Answer, run_id: str, style: TableStyle) -> FinalReply | None:
    """The end of a streamed reply: what goes below the streamed text (tables, SQL, charts'
    notes, errors, then follow-ups and feedback unless files come first) — or None when that
    cannot be one message beside the text, or the text holds Markdown tables (which only the
    rendered answer shows as tables): the stream is then stopped and the message replaced."""
    if any(isinstance(piece, MarkdownTable) for piece in split_tables(answer.text)):
        return None
    reply = render_final(answer, run_id, style, streamed=True)
    if len(reply.messages) != 1:
        return None
    first = reply.messages[0]
    if len(answer.text) + sum(text_size(b) for b in first.blocks) > MESSAGE_TEXT:
        return None
    first.finishes_stream = True
    return reply


def render_final(answer: Answer, run_id: str, style: TableStyle = TableStyle.DATA_TABLE, *,
                 streamed: bool = False, plans: bool = True) -> FinalReply:
    """The finished reply, packed into as many messages as Slack's limits require."""
    attachments: list[Attachment] = []
    body = _body_blocks(answer, run_id, style, attachments, running=False, streamed=streamed,
                        plans=plans)
    if not body and answer.outcome is Outcome.DONE and not (streamed and answer.text):
        body = sections("The analysis finished without an answer text.")
    attachments += chart_attachments(answer.charts)
    trailer = _trailer(answer, run_id)
    packed = pack(body)
    tail: SlackMessage | None = None
    if trailer and (attachments or charts_drawing(answer) or not _fits(packed[-1], trailer)):
        tail = SlackMessage(text="", blocks=trailer)  # after the files, or on its own
    elif trailer:
        packed[-1] = packed[-1] + trailer
    fallback = _fallback_text(answer)
    messages = [SlackMessage(text=fallback if i == 0 else f"(continued {i + 1}/{len(packed)})",
                             blocks=blocks) for i, blocks in enumerate(packed)]
    if tail is not None:
        tail.text = "Was this answer helpful?" if answer.outcome is Outcome.DONE else fallback
    return FinalReply(messages=messages, attachments=attachments, trailer=tail)


def charts_drawing(answer: Answer) -> bool:
    """Charts of the answer still being drawn: their files follow it, so its trailer must wait."""
    return any(c.png is None and c.vega_spec is not None and not c.note for c in answer.charts)


def chart_attachments(charts: list[ChartPart], *, first: int = 1) -> list[Attachment]:
    """The drawn charts as image files to upload into the thread."""
    out: list[Attachment] = []
    for chart in charts:
        if chart.png is not None:
            name = f"chart-{first + len(out)}.{image_extension(chart.png)}"
            out.append(Attachment(name, chart.png, chart.title or "Chart", chart.title or "Chart"))
    return out


def image_extension(data: bytes) -> str:
    """Backend images are usually PNG, but TextQL may hand over JPEG, GIF or WebP."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return "png"


def retired_pointer() -> SlackMessage:
    """What an old placeholder becomes when its answer had to be posted as a new message:
    one line, and no Stop button left behind."""
    text = "This analysis has finished: the answer is in the reply below."
    return SlackMessage(text=text, blocks=[context(f":arrow_down: {text}")])


def plain_fallback(answer: Answer, run_id: str) -> list[SlackMessage]:
    """Last resort when Slack rejects the blocks: the same content as plain text messages."""
    parts: list[str] = [answer.text]
    for part in answer.parts:
        if isinstance(part, TablePart):
            shown = part.rows[:30]
            parts.append("```\n" + monospace_table([c.name for c in part.columns], shown,
                                                   max_rows=30) + "\n```")
        if isinstance(part, SqlPart) and part.sql:
            parts.append("SQL:\n```\n" + part.sql.strip() + "\n```")
    for err in answer.errors:
        parts.append(f":warning: {err.message} (reference {err.reference or run_id})")
    if answer.outcome is Outcome.STOPPED:
        parts.append(f"Stopped by <@{answer.stopped_by}>." if answer.stopped_by else "Stopped.")
    text = "\n\n".join(p for p in parts if p and p.strip()) or "The analysis finished."
    return [SlackMessage(text=chunk) for chunk in split_text(text, TEXT_LIMIT)]


def sql_of(answer: dict[str, Any], part_id: str) -> tuple[str, str] | None:
    """(title, SQL) of one SQL part of a stored answer snapshot (``bot/relay/snapshot.py``)."""
    for part in answer.get("parts") or []:
        if part.get("sql") and part_id in (part.get("id"), sql_ref(str(part.get("id") or ""))):
            return str(part.get("title") or ""), str(part["sql"])
    return None
