"""Run ownership across replicas: each run belongs to the replica executing it.

A replica holds its runs with a lease in the database (owner id + ``lease_until``), renewed
every third of the lease while they live. That lets several replicas share one database
safely:

* a replica starting during a rolling deploy takes only the runs nobody holds — not the ones
  another live replica is executing (which it used to mark "interrupted" and answer twice);
* when a replica dies (``kill -9``, a lost node), its leases run out and a live replica takes its
  runs within one lease period, without waiting for its own next start;
* a replica shutting down cleanly releases its leases, so the next one continues its runs at
  once.

A run whose lease this replica failed to renew in time and that another replica took is given
up here (its task is cancelled without a final message): the new owner answers or closes it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from datetime import timedelta
from typing import Awaitable, Callable

from storage.repository import Repository, RunRecord

log = logging.getLogger(__name__)


def new_replica_id() -> str:
    """Unique per process, readable in the database: host, pid and a random suffix."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class LeaseKeeper:
    def __init__(self, repo: Repository, replica: str, lease: float, *,
                 live_ids: Callable[[], list[str]], platforms: Callable[[], list[str]],
                 on_claimed: Callable[[list[RunRecord]], Awaitable[None]],
                 on_lost: Callable[[set[str]], Awaitable[None]]) -> None:
        self.repo = repo
        self.replica = replica
        self.lease = timedelta(seconds=lease)
        self.interval = lease / 3
        self._live_ids = live_ids
        self._platforms = platforms
        self._on_claimed = on_claimed
        self._on_lost = on_lost
        self._task: asyncio.Task[None] | None = None

    async def claim(self) -> list[RunRecord]:
        """Take the runs nobody holds (at start, and then every interval)."""
        return await self.repo.claim_orphans(self.replica, self.lease, platforms=self._platforms())

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="run-leases")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("run leases: renewing or claiming failed", exc_info=True)

    async def tick(self) -> None:
        """Renew what this replica runs; give up what it lost; take what nobody holds."""
        ids = self._live_ids()
        held = await self.repo.renew_leases(self.replica, ids, self.lease)
        lost = {i for i in ids if i not in held} & set(self._live_ids())  # (still running here)
        if lost:
            await self._on_lost(lost)
        claimed = await self.claim()
        if claimed:
            log.info("run leases: took over %d analyses whose replica is gone", len(claimed))
            await self._on_claimed(claimed)

    async def close(self, *, release: list[str]) -> None:
        """Stop renewing; release ``release`` (a clean shutdown) so others continue them now."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if release:
            try:
                await self.repo.release_leases(self.replica, release)
            except Exception:
                log.warning("run leases: could not release %d runs; they are taken over when "
                            "their lease runs out", len(release), exc_info=True)
