"""A slack_sdk ``AsyncWebClient`` whose every Web API call is admitted by the delivery scheduler.

All of the bot's Web API traffic — the reply sinks, the listeners' ephemeral answers, the three
calls inside ``files_upload_v2`` — goes through :meth:`ScheduledWebClient.api_call`, so one
scheduler per workspace sees every call and can keep each method under its own limit
(``bot/slack/limits.py``). The caller says what the call is with
:func:`bot.delivery.priority.call_options` (priority, how long it may wait, how often a 429 may be
retried); without it a call is an ``ACK``: a person is waiting for it.

429s are handled here, not by slack_sdk's retry handler: the method's limiter is held for the
``Retry-After`` (so every caller backs off, not just this one) and the call is retried as often as
its options allow. A final answer's edit is given no retries: it would rather be posted anew
than wait.

Which token: one static token for the single workspace (``SLACK_BOT_TOKEN``), as the service has
always had. For the distributed app (``bot/slack/installations.py``) the root client has no token
and is given a :class:`TokenSource`; a sibling made for a workspace without a token of its own
(the reply sinks, the first sign) then asks the source for that workspace's token before every
call — the installation's current one, refreshed when due — and, when Slack answers
``token_expired``, once more for a refreshed one. A sibling given a token (a listener's, which
Bolt authorised for the request) keeps it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.delivery.limiter import SlotTimeout
from bot.delivery.priority import Priority, current_options
from bot.delivery.scheduler import Scheduler, Scope
from bot.metrics import Metrics

log = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER = 1.0


class TokenSource(Protocol):
    """Where a workspace's bot token comes from (the distributed app's installations)."""

    async def bot_token(self, workspace: str, *, expired: str | None = None) -> str | None: ...


class ScheduledWebClient(AsyncWebClient):
    def __init__(self, *args: Any, scheduler: Scheduler, metrics: Metrics | None = None,
                 workspace: str = "", tokens: TokenSource | None = None,
                 per_workspace_token: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scheduler = scheduler
        self.metrics = metrics
        self.workspace = workspace
        self.tokens = tokens
        # this client's token is the workspace's current one, asked for before each call
        self._per_workspace_token = per_workspace_token and tokens is not None

    def for_workspace(self, workspace: str, token: str | None = None) -> "ScheduledWebClient":
        """A sibling for another workspace (or token) sharing the session and the scheduler.

        Without ``token``, and with a :class:`TokenSource`, the sibling calls Slack with the
        workspace's own token (looked up per call); else with ``token`` or this client's."""
        return ScheduledWebClient(token=token or self.token, base_url=self.base_url,
                                  timeout=self.timeout, session=self.session, logger=self.logger,
                                  retry_handlers=list(self.retry_handlers),
                                  scheduler=self.scheduler, metrics=self.metrics,
                                  workspace=workspace, tokens=self.tokens,
                                  per_workspace_token=token is None and bool(workspace))

    async def _use_workspace_token(self, api_method: str, expired: str | None = None) -> None:
        assert self.tokens is not None
        token = await self.tokens.bot_token(self.workspace, expired=expired)
        if not token:
            self._count(api_method, "not_installed")
            raise SlackApiError(f"the app is not installed in workspace {self.workspace}",
                                _no_token_response(self, api_method))
        self.token = token

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:  # type: ignore[override]
        options = current_options()
        limiter = self.scheduler.limiter(api_method, _scope(self.workspace, kwargs))
        attempt = 0
        refreshed = False
        while True:
            if self._per_workspace_token:
                await self._use_workspace_token(api_method)
            grant = options.grant if attempt == 0 else None
            if limiter is not None and grant is None:
                if options.priority is Priority.PROGRESS:
                    grant = limiter.try_progress()
                    if grant is None:
                        raise SlotTimeout(f"no progress slot for {api_method}")
                else:
                    grant = await limiter.acquire(options.priority, timeout=options.wait)
            try:
                response = await super().api_call(api_method, **kwargs)
            except SlackApiError as exc:
                self._count(api_method, exc.response.get("error", "error"))
                if exc.response.get("error") == "token_expired" and self._per_workspace_token \
                        and not refreshed:
                    # expired before the installation said it would: refresh it, once
                    refreshed = True
                    await self._use_workspace_token(api_method, expired=self.token)
                    attempt += 1
                    continue
                if exc.response.status_code != 429:
                    raise
                delay = _retry_after(exc)
                if limiter is not None:
                    limiter.hold(delay)
                if attempt >= options.retries or (options.wait is not None and delay > options.wait):
                    raise
                log.info("slack %s rate limited; retrying after %.1f s", api_method, delay)
                if limiter is None:
                    await asyncio.sleep(delay)
                attempt += 1
                continue
            finally:
                if limiter is not None and grant is not None:
                    limiter.completed(grant)  # count it from its answer (closed loop)
            self._count(api_method, "ok")
            return response

    def _count(self, method: str, result: str) -> None:
        if self.metrics is not None:
            self.metrics.platform_calls.labels("slack", method, result).inc()


def _scope(workspace: str, kwargs: dict[str, Any]) -> Scope:
    args: dict[str, Any] = {}
    for part in ("params", "data", "json"):
        value = kwargs.get(part)
        if isinstance(value, dict):
            args.update(value)
    channel = args.get("channel") or args.get("channel_id") or ""
    thread = args.get("thread_ts") or ""
    return Scope(workspace, str(channel), str(thread))


def _no_token_response(client: AsyncWebClient, api_method: str) -> AsyncSlackResponse:
    """What Slack answers a call without a token (``not_authed``), for callers that handle
    Slack's errors: the sinks treat it as a refusal."""
    return AsyncSlackResponse(client=client, http_verb="POST",
                              api_url=f"{client.base_url}{api_method}", req_args={},
                              data={"ok": False, "error": "not_authed"}, headers={},
                              status_code=200)


def _retry_after(exc: SlackApiError) -> float:
    headers = exc.response.headers or {}
    value = headers.get("Retry-After", headers.get("retry-after", DEFAULT_RETRY_AFTER))
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER

