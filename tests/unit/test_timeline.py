"""The agent's work as tasks (bot/delivery/timeline.py) and as Slack chunks and blocks
(bot/slack/timeline.py)."""

from __future__ import annotations

from adapters.answer import (
    Answer, Column, KnowledgeEntry, KnowledgePart, Outcome, PartKind, SqlPart, StepPart,
    StepState, TablePart, TextPart,
)
from bot.delivery.timeline import timeline
from bot.slack.timeline import ChunkDiff, plan_block


def _answer(*parts, outcome: Outcome = Outcome.RUNNING) -> Answer:
    return Answer(parts=tuple(parts), outcome=outcome)


def test_steps_that_make_a_part_show_it_as_their_output_not_as_a_task_of_its_own() -> None:
    answer = _answer(StepPart("step:generate", "Writing SQL", StepState.DONE, produces=PartKind.SQL),
                     SqlPart("sql", "SELECT 1\nFROM t"),
                     StepPart("step:run", "Running the query", StepState.RUNNING, produces=PartKind.TABLE),
                     TablePart("t", (Column("a"),), ((1,), (2,)), total=1200))
    tasks = timeline(answer)
    assert [(t.id, t.status, t.output) for t in tasks] == [
        ("step:generate", "complete", "SELECT 1"), ("step:run", "in_progress", "1,200 rows")]


def test_results_complete_once_later_work_began_and_the_newest_runs_until_the_end() -> None:
    parts = (KnowledgePart("k", (KnowledgeEntry("Sales glossary"),)), SqlPart("q", "SELECT 2"),
             TextPart("a:text", "First"), TextPart("b:text", "Second"))
    running = timeline(_answer(*parts))
    assert [(t.id, t.status) for t in running] == [
        ("k", "complete"), ("q", "complete"), ("answer", "in_progress")]
    assert running[0].output == "Sales glossary"
    done = timeline(_answer(*parts, outcome=Outcome.DONE))
    assert all(t.status == "complete" for t in done)
    failed = timeline(_answer(*parts, outcome=Outcome.FAILED))
    assert [t.status for t in failed] == ["complete", "complete", "error"]


def test_task_fields_are_cut_to_slacks_limit_and_the_newest_fifty_kept() -> None:
    steps = [StepPart(f"s{i}", "x" * 300, StepState.DONE, detail="d" * 400) for i in range(60)]
    tasks = timeline(_answer(*steps))
    assert len(tasks) == 50 and tasks[0].id == "s10"
    assert all(len(t.title) <= 256 and len(t.details) <= 256 for t in tasks)


def test_chunks_send_details_and_output_once_and_a_task_again_only_when_it_changed() -> None:
    diff = ChunkDiff()
    running = timeline(_answer(StepPart("s", "Searching", StepState.RUNNING, detail="Tables: a")))
    first = diff.chunks(running, "Analysis…")
    assert first == [{"type": "plan_update", "title": "Analysis…"},
                     {"type": "task_update", "id": "s", "title": "Searching",
                      "status": "in_progress", "details": "Tables: a"}]
    assert diff.chunks(running, "Analysis…") == []  # nothing changed: nothing sent
    done = timeline(_answer(StepPart("s", "Searching", StepState.DONE, detail="Tables: a")))
    assert diff.chunks(done, "Analysis…") == [
        {"type": "task_update", "id": "s", "title": "Searching", "status": "complete"}]


def test_plan_block_has_task_cards_with_rich_text_details() -> None:
    tasks = timeline(_answer(StepPart("s", "Searching", StepState.DONE, detail="Tables: a")))
    block = plan_block(tasks, "Analysis complete")
    assert block["type"] == "plan" and block["title"] == "Analysis complete"
    [card] = block["tasks"]
    assert card["type"] == "task_card" and card["task_id"] == "s" and card["status"] == "complete"
    assert card["details"]["type"] == "rich_text"
    assert "Tables: a" in str(card["details"])
