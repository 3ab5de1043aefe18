"""Who is in a Slack user group, from the Web API (``usergroups.users.list``), kept briefly.

``SLACK_ALLOWED_USERGROUPS`` names user groups (``S…`` ids) whose members may ask. Slack says who
is in a group; the bot keeps no copy of its own, so removing someone from the group in Slack
takes them out here too, within :data:`REMEMBER` seconds.

The method needs the ``usergroups:read`` bot scope. A workspace without it, a group id that does
not exist (``no_such_subteam``) or a plan without user groups makes the lookup fail; the caller
then refuses (an access check that cannot be made is not passed).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery.priority import Priority, call_options
from bot.slack.recent import LookupFailed, Recent

log = logging.getLogger(__name__)

REMEMBER = 60.0  # seconds a group's members are kept


class UsergroupMembers:
    def __init__(self, *, remember: float = REMEMBER) -> None:
        self._members: Recent[tuple[str, str], frozenset[str]] = Recent(remember)

    async def includes(self, client: AsyncWebClient, team: str, user: str,
                       usergroups: Iterable[str]) -> bool:
        """Is ``user`` in any of ``usergroups``? :class:`LookupFailed` when Slack cannot say for
        a group the user was not found in before it."""
        failure: LookupFailed | None = None
        for group in usergroups:
            try:
                if user in await self.members(client, team, group):
                    return True
            except LookupFailed as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        return False

    async def members(self, client: AsyncWebClient, team: str, usergroup: str) -> frozenset[str]:
        return await self._members.get((team, usergroup), lambda: _lookup(client, usergroup))


async def _lookup(client: AsyncWebClient, usergroup: str) -> frozenset[str]:
    try:
        with call_options(Priority.ACK, retries=1):  # someone is waiting for their answer
            response = await client.usergroups_users_list(usergroup=usergroup)
    except SlackApiError as exc:
        error = exc.response.get("error") if exc.response is not None else None
        log.warning("slack: could not list the members of user group %s: %s%s", usergroup, error,
                    " (the app needs the usergroups:read scope)" if error == "missing_scope" else "")
        raise LookupFailed(f"{usergroup}: {error}") from None
    except Exception as exc:  # network trouble
        log.warning("slack: could not list the members of user group %s: %s", usergroup, exc)
        raise LookupFailed(f"{usergroup}: {exc}") from None
    users = response.get("users")
    return frozenset(u for u in users if isinstance(u, str)) if isinstance(users, list) else frozenset()
