"""Who is in a Slack conversation, from the Web API (``conversations.members``), kept briefly.

Used to decide whose feedback on an answer counts (:mod:`bot.slack.voters`). Slack pages the
list (``response_metadata.next_cursor``); channels are read up to :data:`MAX_PAGES` pages of
:data:`PAGE` members, and a channel larger than that is not decided here (the lookup fails,
so the vote is refused rather than counted on a guess).

The method needs the ``channels:read`` scope for public channels, ``groups:read`` for private
ones, ``im:read``/``mpim:read`` for direct messages; without it the lookup fails the same way.
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery.priority import Priority, call_options
from bot.slack.recent import LookupFailed, Recent

log = logging.getLogger(__name__)

REMEMBER = 60.0  # seconds a channel's members are kept
PAGE = 999  # Slack's largest page of conversations.members ("an integer under 1000")
MAX_PAGES = 20


class ChannelMembers:
    def __init__(self, *, remember: float = REMEMBER) -> None:
        self._members: Recent[tuple[str, str], frozenset[str]] = Recent(remember)

    async def includes(self, client: AsyncWebClient, team: str, channel: str, user: str) -> bool:
        """Is ``user`` a member of ``channel``? :class:`LookupFailed` when Slack cannot say."""
        members = await self._members.get((team, channel), lambda: _lookup(client, channel))
        return user in members


async def _lookup(client: AsyncWebClient, channel: str) -> frozenset[str]:
    members: set[str] = set()
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        try:
            with call_options(Priority.ACK, retries=1):  # someone is waiting for their answer
                response = await client.conversations_members(channel=channel, limit=PAGE,
                                                               **({"cursor": cursor} if cursor else {}))
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            log.warning("slack: could not list the members of %s: %s%s", channel, error,
                        " (the app needs the channels:read, groups:read, im:read and mpim:read "
                        "scopes)" if error == "missing_scope" else "")
            raise LookupFailed(f"{channel}: {error}") from None
        except Exception as exc:  # network trouble
            log.warning("slack: could not list the members of %s: %s", channel, exc)
            raise LookupFailed(f"{channel}: {exc}") from None
        page = response.get("members")
        if isinstance(page, list):
            members.update(m for m in page if isinstance(m, str))
        cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
        if not cursor:
            return frozenset(members)
    log.warning("slack: %s has more than %d members; not deciding who is in it", channel,
                PAGE * MAX_PAGES)
    raise LookupFailed(f"{channel}: too many members")
