"""Slack's distributed app: installed into many workspaces, each with its own bot token.

With ``SLACK_CLIENT_ID``/``SLACK_CLIENT_SECRET`` (and no ``SLACK_BOT_TOKEN``) Bolt runs Slack's
OAuth flow (``GET /slack/install`` → Slack → ``GET /slack/oauth_redirect``) and authorises every
request with the token of the installation it comes from. What this module adds around Bolt:

* the stores: slack_sdk's ``AsyncSQLAlchemyInstallationStore`` and
  ``AsyncSQLAlchemyOAuthStateStore`` on the service's own database (the async engine of
  ``DATABASE_URL``, SQLite or PostgreSQL; their tables come with the migrations,
  ``storage/migrations/versions/0006_slack_installations.py``). Nothing here keeps a token anywhere else;
* the bot's own calls outside a request. A reply is posted, edited and given its files long
  after the event that asked was acknowledged (and after a restart, with no event at all), so
  the reply sinks do not take Bolt's per-request token: their Web API client asks
  :meth:`SlackInstallations.bot_token` for the workspace it writes to, on every call, through a
  short cache. A rotating token (Slack's token rotation) is refreshed there too when it is about
  to expire, exactly as Bolt refreshes it on a request (``AsyncTokenRotator``,
  ``SLACK_TOKEN_ROTATION_MINUTES`` before expiry), and at once when Slack answers
  ``token_expired``;
* one refresh at a time: Slack revokes a refresh token when it is used, so two refreshes of the
  same installation at once would leave one of them failing. Bolt's authorize
  (:class:`SerializedAuthorize`) and the replies' look-ups take the same lock per installation;
* where a workspace's installation is. An Enterprise Grid organisation can install the app for
  all its workspaces at once (``is_enterprise_install``): then one installation, keyed by the
  organisation (``enterprise_id``, no team), serves events whose team is any of its workspaces;
  and a workspace of a Grid installed on its own is keyed by both ids. Each request from Slack
  says which; the answer is remembered per workspace (memory, and the ``slack_workspaces``
  table for replies sent after a restart);
* uninstalling: ``app_uninstalled`` and ``tokens_revoked`` delete the installation through
  Bolt's own listeners (``app.enable_token_revocation_listeners()``); this store's deletes and
  saves also drop the cached token, so nothing is sent with it any more and the workspace's
  next event finds no installation (Bolt then does not call the listeners: no backend call).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.internals import (
    extract_enterprise_id, extract_is_enterprise_install, extract_team_id,
)
from slack_sdk.errors import SlackApiError, SlackTokenRotationError
from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.delivery.tasks import BackgroundTasks
from storage.repository import Repository

log = logging.getLogger(__name__)

# The bot scopes the install asks for: manifest.yml's oauth_config.scopes.bot, in its order
# (tests/unit/test_manifest.py keeps the two equal; the manifest is not shipped with the package).
BOT_SCOPES: tuple[str, ...] = (
    "app_mentions:read", "assistant:write", "channels:history", "groups:history", "im:history",
    "mpim:history", "chat:write", "commands", "files:write", "files:read", "users:read",
    "usergroups:read", "channels:read", "groups:read", "im:read", "mpim:read",
)
STATE_SECONDS = 600  # an install must come back from Slack within ten minutes (Bolt's default)
CACHE_SECONDS = 60.0  # how long a looked-up token is used without asking the database again
MISSING_SECONDS = 5.0  # ... and how long "no installation" is believed
_FORCE = 10 ** 6  # minutes: "refresh now, whatever the expiry says"


@dataclass(frozen=True)
class InstallKey:
    """An installation in the store: a workspace's own (``team_id`` set, ``enterprise_id`` too
    when the workspace is part of a Grid), or an organisation's (``team_id`` None)."""

    enterprise_id: str | None
    team_id: str | None

    @property
    def org_install(self) -> bool:
        return self.team_id is None


def install_key(enterprise_id: str | None, team_id: str | None,
                is_enterprise_install: bool | None) -> InstallKey:
    if is_enterprise_install or not team_id:
        return InstallKey(enterprise_id or None, None)
    return InstallKey(enterprise_id or None, team_id)


def workspace_of(body: Mapping[str, Any], team_id: str | None = None) -> str:
    """The workspace a request from Slack is about (``ThreadRef.workspace``).

    ``team_id``: what Bolt made of it (``context.team_id``): the installation's workspace,
    which is the one for every request of a workspace installation. For an organisation's
    installation it is None, and the workspace is the request's own team."""
    team = team_id or extract_team_id(dict(body))
    if team:
        return str(team)
    event = body.get("event") if isinstance(body.get("event"), dict) else {}
    user = body.get("user") if isinstance(body.get("user"), dict) else {}
    for candidate in (body.get("team_id"), event.get("team"), user.get("team_id")):
        if isinstance(candidate, str) and candidate:
            return candidate
    return ""


@dataclass
class _Cached:
    token: str | None
    until: float  # time.monotonic()


class SlackInstallations:
    """The installations of the distributed app, and each workspace's current bot token."""

    def __init__(self, *, client_id: str, client_secret: str, engine: AsyncEngine,
                 repo: Repository, client: AsyncWebClient, rotation_minutes: int = 120,
                 cache_seconds: float = CACHE_SECONDS) -> None:
        self.client_id = client_id
        self.store = _Store(self, client_id=client_id, engine=engine, logger=log)
        self.state_store = AsyncSQLAlchemyOAuthStateStore(expiration_seconds=STATE_SECONDS,
                                                          engine=engine, logger=log)
        self.rotation_minutes = rotation_minutes
        self.cache_seconds = cache_seconds
        # oauth.v2.access (grant_type=refresh_token) authenticates with the client id and secret
        self._rotator = AsyncTokenRotator(client_id=client_id, client_secret=client_secret,
                                          client=client)
        self._repo = repo
        self._homes: dict[str, InstallKey] = {}  # workspace → its installation
        self._cache: dict[InstallKey, _Cached] = {}
        self._locks: dict[InstallKey, asyncio.Lock] = {}
        self._tasks = BackgroundTasks()

    async def start(self) -> None:
        """Load what is known of each workspace's installation (replies resumed after a restart
        need it before any request from Slack has come in)."""
        for team, (enterprise, org) in (await self._repo.slack_workspaces()).items():
            self._homes[team] = install_key(enterprise, team, org)

    async def aclose(self) -> None:
        await self._tasks.wait()

    # -- where each workspace's installation is --------------------------------------------
    def learn(self, body: Mapping[str, Any], team_id: str | None = None) -> None:
        """Note the installation a (signature-checked) request from Slack belongs to."""
        workspace = workspace_of(body, team_id)
        if not workspace or workspace.startswith("E"):
            return  # an organisation-level request names no workspace
        plain = dict(body)
        self.remember(workspace, extract_enterprise_id(plain),
                      bool(extract_is_enterprise_install(plain)))

    def remember(self, workspace: str, enterprise_id: str | None, org_install: bool) -> None:
        key = install_key(enterprise_id, workspace, org_install)
        if self._homes.get(workspace) == key:
            return
        self._homes[workspace] = key
        self._tasks.spawn(self._repo.remember_slack_workspace(workspace, key.enterprise_id,
                                                              key.org_install),
                          name=f"slack-workspace-{workspace}")

    def key_for(self, workspace: str) -> InstallKey:
        return self._homes.get(workspace) or InstallKey(None, workspace)

    def recipient_team(self, workspace: str) -> str:
        """The team a stream's recipient is named in: the organisation for an org-wide
        installation (as Bolt's ``say_stream`` does), else the workspace."""
        key = self.key_for(workspace)
        return key.enterprise_id if key.org_install and key.enterprise_id else workspace

    # -- tokens ----------------------------------------------------------------------------
    def lock(self, key: InstallKey) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def bot_token(self, workspace: str, *, expired: str | None = None) -> str | None:
        """The bot token to call Slack with for ``workspace`` (None: not installed there).

        ``expired``: Slack just answered ``token_expired`` to this token — refresh it now
        (unless someone already has)."""
        key = self.key_for(workspace)
        cached = self._cache.get(key)
        if cached is not None and cached.until > time.monotonic() \
                and (expired is None or cached.token != expired):
            return cached.token
        async with self.lock(key):
            cached = self._cache.get(key)  # looked up (or refreshed) while we waited?
            if cached is not None and cached.until > time.monotonic() \
                    and (expired is None or cached.token != expired):
                return cached.token
            token, ttl = await self._look_up(key, expired)
            self._cache[key] = _Cached(token, time.monotonic() + ttl)
            return token

    async def _look_up(self, key: InstallKey, expired: str | None) -> tuple[str | None, float]:
        bot = await self.store.async_find_bot(enterprise_id=key.enterprise_id,
                                              team_id=key.team_id,
                                              is_enterprise_install=key.org_install)
        if bot is None or not bot.bot_token:
            return None, MISSING_SECONDS
        if bot.bot_refresh_token:
            force = expired is not None and bot.bot_token == expired
            try:
                refreshed = await self._rotator.perform_bot_token_rotation(
                    bot=bot, minutes_before_expiration=_FORCE if force else self.rotation_minutes)
            except SlackTokenRotationError as exc:
                log.warning("slack: the bot token of %s could not be refreshed: %s",
                            _name(key), _error_of(exc))
                return bot.bot_token, MISSING_SECONDS
            if refreshed is not None:
                await self.store.async_save_bot(refreshed)
                log.info("slack: refreshed the bot token of %s", _name(key))
                bot = refreshed
        ttl = self.cache_seconds
        if bot.bot_token_expires_at is not None:  # look again when it is due for a refresh
            due = bot.bot_token_expires_at - self.rotation_minutes * 60 - time.time()
            ttl = max(0.0, min(ttl, due))
        return bot.bot_token, ttl

    def forget(self, key: InstallKey) -> None:
        """The stored installation changed (saved, refreshed, deleted): look it up again."""
        self._cache.pop(key, None)


class _Store(AsyncSQLAlchemyInstallationStore):
    """slack_sdk's store, telling :class:`SlackInstallations` when an installation changes, so
    its cached token goes too (a refresh by Bolt, an uninstall, a new install)."""

    def __init__(self, owner: SlackInstallations, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._owner = owner

    async def async_save(self, installation: Installation) -> None:
        await super().async_save(installation)
        if installation.team_id and not installation.is_enterprise_install:
            self._owner.remember(installation.team_id, installation.enterprise_id, False)
        self._changed(installation.enterprise_id, installation.team_id,
                      installation.is_enterprise_install)

    async def async_save_bot(self, bot: Bot) -> None:
        await super().async_save_bot(bot)
        self._changed(bot.enterprise_id, bot.team_id, bot.is_enterprise_install)

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await super().async_delete_bot(enterprise_id=enterprise_id, team_id=team_id)
        self._changed(enterprise_id, team_id, team_id is None)

    async def async_delete_installation(self, *, enterprise_id: str | None, team_id: str | None,
                                        user_id: str | None = None) -> None:
        await super().async_delete_installation(enterprise_id=enterprise_id, team_id=team_id,
                                                user_id=user_id)
        self._changed(enterprise_id, team_id, team_id is None)

    def _changed(self, enterprise_id: str | None, team_id: str | None,
                 org: bool | None) -> None:
        self._owner.forget(install_key(enterprise_id, team_id, org))


class SerializedAuthorize(AsyncInstallationStoreAuthorize):
    """Bolt's authorize for installations (bot tokens only, each refreshed when due), taking the
    installation's lock first: a reply refreshing the same token waits, then finds it done."""

    def __init__(self, installations: SlackInstallations, **kwargs: Any) -> None:
        super().__init__(installation_store=installations.store, bot_only=True, **kwargs)
        self._installations = installations

    async def __call__(  # type: ignore[override]
            self, *, context: AsyncBoltContext, enterprise_id: str | None, team_id: str | None,
            user_id: str | None, **kwargs: Any) -> Any:
        key = install_key(enterprise_id, team_id, context.is_enterprise_install)
        async with self._installations.lock(key):
            return await super().__call__(context=context, enterprise_id=enterprise_id,
                                          team_id=team_id, user_id=user_id, **kwargs)


def _name(key: InstallKey) -> str:
    if key.org_install:
        return f"organisation {key.enterprise_id}"
    return f"workspace {key.team_id}" + (f" ({key.enterprise_id})" if key.enterprise_id else "")


def _error_of(exc: SlackTokenRotationError) -> str:
    cause = exc.api_error if isinstance(getattr(exc, "api_error", None), SlackApiError) else None
    return str(cause.response.get("error")) if cause is not None else str(exc)
