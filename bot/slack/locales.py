"""The asker's language, from Slack's ``users.info`` locale, so answers come in it.

``users.info`` (with ``include_locale``) says e.g. ``pt-BR``. The lookup runs beside posting the
placeholder (the relay awaits it only before asking the backend), so nobody waits for it to see
the bot react. A cached locale is used at once; otherwise the lookup gets ``LOOKUP_WAIT`` (Tier
4 shares its budget with the rest of the workspace) and the question goes ahead without a
language if Slack is slower — the locale is still cached for the asker's next question.
"""

from __future__ import annotations

import asyncio
import logging
import time

from collections.abc import Awaitable, Callable

from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery.priority import Priority, call_options

log = logging.getLogger(__name__)

LOOKUP_WAIT = 0.5
REMEMBER = 24 * 3600.0


class UserLocales:
    def __init__(self, *, wait: float = LOOKUP_WAIT) -> None:
        self._wait = wait
        self._known: dict[tuple[str, str], tuple[str | None, float]] = {}
        self._pending: dict[tuple[str, str], asyncio.Task[str | None]] = {}

    def lookup(self, client: AsyncWebClient, team: str,
               user: str) -> Callable[[], Awaitable[str | None]]:
        """The lookup of ``user``'s language, for :attr:`bot.relay.Question.language_lookup`."""
        return lambda: self.language(client, team, user)

    async def language(self, client: AsyncWebClient, team: str, user: str) -> str | None:
        key = (team, user)
        known = self._known.get(key)
        if known is not None and time.monotonic() - known[1] < REMEMBER:
            return known[0]
        task = self._pending.get(key)
        if task is None:
            task = asyncio.create_task(self._lookup(client, key), name=f"locale-{user}")
            self._pending[key] = task
        try:
            return await asyncio.wait_for(asyncio.shield(task), self._wait)
        except TimeoutError:
            return None

    async def _lookup(self, client: AsyncWebClient, key: tuple[str, str]) -> str | None:
        locale: str | None = None
        try:
            with call_options(Priority.ACK, retries=1):
                info = await client.users_info(user=key[1], include_locale=True)
            locale = (info.get("user") or {}).get("locale") or None
        except Exception as exc:  # noqa: BLE001 - a language is a nicety, never a failure
            log.debug("no locale for %s: %s", key[1], exc)
        finally:
            self._pending.pop(key, None)
        self._known[key] = (locale, time.monotonic())
        return locale
