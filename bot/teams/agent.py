"""The Teams turn handler: messages become questions, commands or card actions.

Every message is claimed in the event ledger first (Teams redelivers a turn it thinks was slow,
and a restart can replay one), so the same activity is answered once. The handler only touches
the database and the relay, and hands any reply to :class:`~bot.teams.replies.Replies`: the
HTTP request returns at once and the analysis runs in the background.

Routes:

* a card ``Action.Submit`` with ``{"action": "stop", "run_id": …}`` → ``relay.stop``;
* ``stop`` (also ``cancel``/``abort``) → stops the sender's runs in this thread, or in this
  conversation when the thread has none (a channel post starts a new thread);
* ``history`` → the sender's recent analyses in this conversation;
* ``help`` or a bare mention → usage;
* anything else → a question for the backend.
"""

from __future__ import annotations

import logging
from typing import Any

from microsoft_agents.activity import ChannelAccount
from microsoft_agents.hosting.core import ActivityHandler, TurnContext

from bot.metrics import Metrics
from bot.relay import Question, Relay
from bot.teams.cards import adaptive_card, card_activity, text_activity
from bot.teams.history import PAGE_SIZE, history_body
from bot.teams.inbound import PLATFORM, Inbound, event_key, parse_message, tenant_of
from bot.teams.memory import NameBook, TargetBook
from bot.teams.replies import Replies
from bot.teams.target import ReplyTarget
from bot.teams.texts import HELP_TEXT, NOTHING_RUNNING, STOP_MESSAGES, WELCOME_TEXT
from storage.repository import Repository

log = logging.getLogger(__name__)


class TeamsAgent(ActivityHandler):
    def __init__(self, *, relay: Relay, repo: Repository, metrics: Metrics, replies: Replies,
                 targets: TargetBook, names: NameBook, tenant: str | None = None) -> None:
        self.relay = relay
        self.repo = repo
        self.metrics = metrics
        self.replies = replies
        self.targets = targets
        self.names = names
        self.tenant = tenant

    # -- activity routes -----------------------------------------------------------------
    async def on_message_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        if not self._tenant_allowed(tenant_of(activity)):
            return
        msg = parse_message(activity)
        is_question = (msg.action is None and msg.command not in ("stop", "history", "help")
                       and bool(msg.text))
        # a question's claim is stored in one transaction with its run (relay.ask)
        if not is_question and msg.event_key and not await self.repo.claim_event(msg.event_key):
            self._duplicate(activity.id)
            return
        self.names.remember(msg.user_id, msg.user_name)
        target = ReplyTarget.from_activity(activity, turn_context.identity)
        if msg.action is not None:
            await self._on_card_action(msg, target)
        elif msg.command == "stop":
            self.metrics.events.labels(PLATFORM, "stop").inc()
            await self._stop_typed(msg, target)
        elif msg.command == "history":
            self.metrics.events.labels(PLATFORM, "history").inc()
            await self._history(msg, target)
        elif msg.command == "help" or not msg.text:
            self.metrics.events.labels(PLATFORM, "help").inc()
            self.replies.send(target, text_activity(HELP_TEXT))
        else:
            self.metrics.events.labels(PLATFORM, msg.conversation_type).inc()
            with self.targets.answering(msg.ref, target):
                run_id = await self.relay.ask(Question(ref=msg.ref, text=msg.text,
                                                       asker=msg.user_id, event_key=msg.event_key))
            if run_id is None:
                self._duplicate(activity.id)

    def _duplicate(self, activity_id: str | None) -> None:
        self.metrics.duplicates.labels(PLATFORM).inc()
        log.info("teams: activity %s was already handled", activity_id)

    async def on_members_added_activity(self, members_added: list[ChannelAccount],
                                        turn_context: TurnContext) -> None:
        """Say hello once when the bot itself is added — not for every new team member."""
        activity = turn_context.activity
        bot_id = activity.recipient.id if activity.recipient else None
        if not any(m.id == bot_id for m in members_added) or not self._tenant_allowed(tenant_of(activity)):
            return
        key = event_key(activity)
        if key and not await self.repo.claim_event(key):
            return
        self.metrics.events.labels(PLATFORM, "installed").inc()
        target = ReplyTarget.from_activity(activity, turn_context.identity)
        self.replies.send(target, text_activity(WELCOME_TEXT))

    # -- handlers ------------------------------------------------------------------------
    async def _on_card_action(self, msg: Inbound, target: ReplyTarget) -> None:
        action: dict[str, Any] = msg.action or {}
        if action.get("action") != "stop":
            log.info("teams: ignoring unknown card action %r", action.get("action"))
            return
        self.metrics.events.labels(PLATFORM, "stop_button").inc()
        run_id = str(action.get("run_id") or "")
        result = await self.relay.stop(run_id, msg.user_id)
        self._tell(target, STOP_MESSAGES.get(result))

    async def _stop_typed(self, msg: Inbound, target: ReplyTarget) -> None:
        """Runs are looked up in storage, not in this process: with several replicas the run
        may live on another one, and ``relay.stop`` records the request for it."""
        ref = msg.ref
        active = await self.repo.running_runs(PLATFORM, workspace=ref.workspace, channel=ref.channel)
        runs = [r for r in active if r.thread == ref.thread]
        if not runs:
            runs = [r for r in active if r.asker == msg.user_id]
        if not runs:
            self._tell(target, NOTHING_RUNNING)
            return
        for run in runs:
            self._tell(target, STOP_MESSAGES.get(await self.relay.stop(run.id, msg.user_id)))

    async def _history(self, msg: Inbound, target: ReplyTarget) -> None:
        ref = msg.ref
        runs = await self.repo.list_runs(PLATFORM, ref.workspace, channel=ref.channel,
                                         asker=msg.user_id, limit=PAGE_SIZE)
        total = await self.repo.count_runs(PLATFORM, ref.workspace, channel=ref.channel,
                                           asker=msg.user_id)
        card = adaptive_card(history_body(runs, total=total))
        self.replies.send(target, card_activity(card, "Your recent analyses"))

    def _tell(self, target: ReplyTarget, text: str | None) -> None:
        if text:
            self.replies.send(target, text_activity(text))

    def _tenant_allowed(self, tenant: str) -> bool:
        if self.tenant and tenant != self.tenant:
            log.warning("teams: ignoring an activity from another tenant")
            return False
        return True
