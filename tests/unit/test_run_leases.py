"""Run ownership in storage: a run belongs to the replica executing it while its lease holds;
a starting or surviving replica takes only the runs nobody holds."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from storage import Repository
from tests.unit.test_storage import StepClock, clock, db_url, repo, repo2  # noqa: F401  (fixtures)

LEASE = timedelta(seconds=30)


async def _ask(repo: Repository, text: str, owner: str | None, key: str) -> str:  # noqa: F811
    recorded = await repo.record_question(key, "slack", "T1", "C1", key, "wren", text, "U1",
                                          owner=owner, lease=LEASE if owner else None)
    assert recorded is not None
    return recorded[1].id


async def test_a_held_run_is_not_taken_and_an_expired_or_released_one_is(
        repo: Repository, repo2: Repository, clock: StepClock) -> None:  # noqa: F811
    held = await _ask(repo, "running on A", "replica-a", "e1")
    legacy = await _ask(repo, "from before ownership", None, "e2")
    # B starts while A runs: it takes only what nobody holds
    taken = await repo2.claim_orphans("replica-b", LEASE)
    assert [r.id for r in taken] == [legacy] and taken[0].owner == "replica-b"
    assert await repo2.claim_orphans("replica-c", LEASE) == []  # B holds the legacy run now
    # A keeps its lease while it runs…
    clock.now += timedelta(seconds=20)
    assert await repo.renew_leases("replica-a", [held, legacy], LEASE) == {held}  # not B's run
    assert await repo2.renew_leases("replica-b", [legacy], LEASE) == {legacy}
    clock.now += timedelta(seconds=20)
    assert await repo2.claim_orphans("replica-c", LEASE) == []
    # …and when A dies, the lease runs out and a survivor takes the run
    assert await repo2.renew_leases("replica-b", [legacy], LEASE) == {legacy}
    clock.now += timedelta(seconds=31)
    assert await repo2.renew_leases("replica-b", [legacy], LEASE) == {legacy}
    [orphan] = await repo2.claim_orphans("replica-b", LEASE)
    assert orphan.id == held and orphan.owner == "replica-b"
    assert await repo.renew_leases("replica-a", [held], LEASE) == set()  # A lost it
    # a clean shutdown releases at once
    assert await repo2.release_leases("replica-b", [held, legacy]) == 2
    assert {r.id for r in await repo.claim_orphans("replica-a", LEASE)} == {held, legacy}


async def test_delivered_runs_are_nobodys_to_take(repo: Repository) -> None:  # noqa: F811
    run_id = await _ask(repo, "done soon", None, "e3")
    await repo.finish_run(run_id, "done")
    await repo.mark_delivered(run_id)
    assert await repo.claim_orphans("replica-a", LEASE) == []


async def test_a_stored_but_undelivered_answer_is_taken_once_its_lease_runs_out(
        repo: Repository, repo2: Repository, clock: StepClock) -> None:  # noqa: F811
    """A replica stored the answer and died before the chat had it: a survivor delivers it."""
    run_id = await _ask(repo, "answered, then the replica died", "replica-a", "e4")
    await repo.finish_run(run_id, "done", answer={"outcome": "done", "parts": []})
    assert await repo2.claim_orphans("replica-b", LEASE) == []  # A's lease still holds
    clock.now += timedelta(seconds=31)
    [orphan] = await repo2.claim_orphans("replica-b", LEASE)
    assert orphan.id == run_id and orphan.status == "done" and orphan.answer is not None
    await repo2.mark_delivered(run_id)
    clock.now += timedelta(seconds=31)
    assert await repo2.claim_orphans("replica-c", LEASE) == []


async def test_concurrent_claims_give_each_run_to_one_replica(
        repo: Repository, repo2: Repository) -> None:  # noqa: F811
    ids = {await _ask(repo, f"q{i}", None, f"c{i}") for i in range(20)}
    a, b = await asyncio.gather(repo.claim_orphans("a", LEASE), repo2.claim_orphans("b", LEASE))
    assert {r.id for r in a} | {r.id for r in b} == ids
    assert not {r.id for r in a} & {r.id for r in b}
