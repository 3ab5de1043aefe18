"""A conversation's backend profile (migration 0005): stored with a thread's first question,
kept by later ones whatever profile they name, and adopted once by a thread from before
profiles (its session kept only on a backend of the same kind)."""

from __future__ import annotations

from pathlib import Path

from storage import Repository

THREAD = ("slack", "T1", "C1", "1.000100")


async def test_a_thread_keeps_the_profile_it_started_with(tmp_path: Path) -> None:
    repo = await Repository.open(f"sqlite+aiosqlite:///{tmp_path}/p.db")
    try:
        recorded = await repo.record_question("k1", *THREAD, "wren", "first?", "U1", profile="sales")
        assert recorded is not None
        conv, run = recorded
        assert (conv.profile, conv.backend, run.backend) == ("sales", "wren", "wren")
        await repo.set_session(conv.id, "wren-thread-1")
        recorded = await repo.record_question("k2", *THREAD, "clickzetta", "again?", "U1",
                                              profile="ops")  # the routes changed meanwhile
        assert recorded is not None
        conv, run = recorded
        assert (conv.profile, conv.backend, conv.session_id) == ("sales", "wren", "wren-thread-1")
        assert (run.backend, run.session_id) == ("wren", "wren-thread-1")
        again = await repo.ensure_conversation(*THREAD, "clickzetta", profile="ops")
        assert again.profile == "sales"
    finally:
        await repo.close()


async def test_a_thread_from_before_profiles_adopts_one(tmp_path: Path) -> None:
    repo = await Repository.open(f"sqlite+aiosqlite:///{tmp_path}/p.db")
    try:
        legacy = await repo.ensure_conversation(*THREAD, "wren")  # no routing file then
        assert legacy.profile is None
        await repo.set_session(legacy.id, "wren-thread-1")
        same_kind = await repo.ensure_conversation(*THREAD, "wren", profile="sales")
        assert (same_kind.profile, same_kind.session_id) == ("sales", "wren-thread-1")

        other = ("slack", "T1", "C1", "2.000100")
        legacy = await repo.ensure_conversation(*other, "wren")
        await repo.set_session(legacy.id, "wren-thread-2")
        recorded = await repo.record_question("k3", *other, "clickzetta", "q?", "U1", profile="ops")
        assert recorded is not None
        conv, run = recorded
        assert (conv.profile, conv.backend, conv.session_id) == ("ops", "clickzetta", None)
        assert (run.backend, run.session_id) == ("clickzetta", None)
    finally:
        await repo.close()
