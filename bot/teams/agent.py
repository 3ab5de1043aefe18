"""The Teams turn handler: messages become questions, commands or card actions.

Who may ask, and where (``TEAMS_ALLOWED_TENANTS``, ``TEAMS_ALLOWED_TEAMS``), is decided before
anything else by :mod:`bot.teams.access`; a refused sender gets one short reply and nothing is
stored or asked.

Every message is claimed in the event ledger first (Teams redelivers a turn it thinks was slow,
and a restart can replay one), so the same activity is answered once. The handler only touches
the database and the relay, and hands any reply to :class:`~bot.teams.replies.Replies`: the
HTTP request returns at once and the analysis runs in the background.

Routes:

* a card ``Action.Submit`` with ``{"action": "stop", "run_id": …}`` → ``relay.stop``;
* a suggested follow-up, ``{"action": "ask", "question": …}`` → that question, asked in the same
  thread by whoever clicked; its reply opens with "<name> asked: …" (a click leaves nothing in
  the chat, so without it nobody would know where the question came from);
* ``stop`` (also ``cancel``/``abort``) → stops the sender's runs in this thread, or in this
  conversation when the thread has none (a channel post starts a new thread);
* ``history`` → the sender's recent analyses in this conversation;
* ``routes`` → the backend profiles and the routes (``ROUTES_FILE``), and which profile answers
  here — names, backend kinds and chat ids only;
* ``help`` or a bare mention → usage;
* anything else → a question for the backend profile of this thread (else the one the routes
  give this conversation; none: a short refusal listing the profiles, and nothing is stored or
  asked), in the sender's language (``activity.locale``).

Invokes (answered in the HTTP response, within Teams' few seconds):

* ``message/submitAction`` — a 👍/👎 from Teams' native feedback controls on an answer message:
  the run is found from that message (any message of a multi-message answer) and the vote is
  stored like Slack's: one vote per person per run (``Repository.vote``; the other reaction
  replaces that person's own vote). Only votes from where the bot may be used count
  (:mod:`bot.teams.access`); Teams delivers the invoke only to members of the conversation
  that holds the message, and the run must belong to that conversation, so a vote always comes
  from someone in the conversation. Teams wants HTTP 200 with an *empty* body (anything else
  shows the user an error) and thanks the user itself, so nothing is sent;
* ``fileConsent/invoke`` — the answer to a CSV file offer (:mod:`bot.teams.files`): 200 at
  once, the upload runs in the background.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from microsoft_agents.activity import ChannelAccount, InvokeResponse
from microsoft_agents.hosting.core import ActivityHandler, TurnContext

from bot.delivery.textsplit import shorten
from bot.metrics import Metrics
from bot.relay import Question, Relay, StopResult
from bot.routing import Place
from bot.teams.access import TeamsAccess
from bot.teams.cards import ASK_ACTION, STOP_ACTION, adaptive_card, card_activity, text_activity
from bot.teams.files import CsvOffers, file_info_activity, upload
from bot.teams.history import PAGE_SIZE, history_body
from bot.teams.inbound import (
    PLATFORM, Inbound, event_key, parse_message, place_of, tenant_of, user_of,
)
from bot.teams.memory import AnswerPages, NameBook, TargetBook
from bot.teams.replies import Replies
from bot.teams.target import ReplyTarget, base_conversation_id
from bot.teams.texts import (
    ASKED, FILE_EXPIRED, FILE_FAILED, HELP_TEXT, NOTHING_RUNNING, STOP_MESSAGES, WELCOME_TEXT,
)
from storage.repository import Repository

log = logging.getLogger(__name__)

FEEDBACK_INVOKE = "message/submitAction"
FILE_CONSENT_INVOKE = "fileConsent/invoke"
VERDICTS = {"like": "good", "dislike": "bad"}
MAX_QUESTION = 2_000  # a suggestion's question, as a typed one could be


class TeamsAgent(ActivityHandler):
    def __init__(self, *, relay: Relay, repo: Repository, metrics: Metrics, replies: Replies,
                 targets: TargetBook, names: NameBook, tenant: str | None = None,
                 pages: AnswerPages | None = None, files: CsvOffers | None = None,
                 https_uploads_only: bool = True, access: TeamsAccess | None = None) -> None:
        self.relay = relay
        self.repo = repo
        self.metrics = metrics
        self.replies = replies
        self.targets = targets
        self.names = names
        self.tenant = tenant
        self.pages = pages or AnswerPages()
        self.files = files
        self.https_uploads_only = https_uploads_only
        self.access = access or TeamsAccess()
        self._uploading: set[str] = set()  # CSV offers being uploaded (a redelivered Allow waits)

    # -- activity routes -----------------------------------------------------------------
    async def on_message_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        if not self._tenant_allowed(tenant_of(activity)):
            return
        refusal = self.access.refusal(activity)
        if refusal is not None:
            await self._refuse(turn_context, refusal)
            return
        msg = parse_message(activity)
        suggested = msg.action is not None and msg.action.get("action") == ASK_ACTION
        is_question = suggested or (msg.action is None
                                    and msg.command not in ("stop", "history", "help", "routes")
                                    and bool(msg.text))
        # a question's claim is stored in one transaction with its run (relay.ask)
        if not is_question and msg.event_key and not await self.repo.claim_event(msg.event_key):
            self._duplicate(activity.id)
            return
        self.names.remember(msg.user_id, msg.user_name)
        target = ReplyTarget.from_activity(activity, turn_context.identity)
        if suggested:
            self.metrics.events.labels(PLATFORM, "suggestion").inc()
            await self._ask_suggested(msg, target)
        elif msg.action is not None:
            await self._on_card_action(msg, target)
        elif msg.command == "stop":
            self.metrics.events.labels(PLATFORM, "stop").inc()
            await self._stop_typed(msg, target)
        elif msg.command == "history":
            self.metrics.events.labels(PLATFORM, "history").inc()
            await self._history(msg, target)
        elif msg.command == "routes":
            self.metrics.events.labels(PLATFORM, "routes").inc()
            here = await self.relay.profile_here(msg.ref)
            self.replies.send(target, text_activity(
                self.relay.profiles.describe(place_of(activity), here=here)))
        elif msg.command == "help" or not msg.text:
            self.metrics.events.labels(PLATFORM, "help").inc()
            self.replies.send(target, text_activity(HELP_TEXT))
        else:
            routing = await self.relay.route(msg.ref, msg.place or place_of(activity))
            if routing.profile is None:
                await self._unrouted(msg, target, routing.refusal or "")
                return
            self.metrics.events.labels(PLATFORM, msg.conversation_type).inc()
            with self.targets.answering(msg.ref, target):
                run_id = await self.relay.ask(Question(ref=msg.ref, text=msg.text,
                                                       asker=msg.user_id, event_key=msg.event_key,
                                                       language=msg.locale,
                                                       profile=routing.profile.name))
            if run_id is None:
                self._duplicate(activity.id)

    async def _unrouted(self, msg: Inbound, target: ReplyTarget, refusal: str) -> None:
        """No profile answers here: say so once (however often Teams redelivers the message);
        nothing is stored but the event's claim, nothing reaches a backend."""
        if msg.event_key and not await self.repo.claim_event(msg.event_key):
            self._duplicate(msg.event_key)
            return
        self.metrics.events.labels(PLATFORM, "unrouted").inc()
        self.replies.send(target, text_activity(refusal))

    async def _ask_suggested(self, msg: Inbound, target: ReplyTarget) -> None:
        """A suggested follow-up, asked in this thread by whoever clicked it."""
        question = " ".join(str((msg.action or {}).get("question") or "").split())[:MAX_QUESTION]
        if not question:
            return
        who = self.names(msg.user_id) or msg.user_name or "Someone"
        intro = ASKED.format(name=who, question=shorten(question, 300))
        routing = await self.relay.route(msg.ref, msg.place or Place(
            PLATFORM, msg.ref.workspace, msg.ref.channel))
        if routing.profile is None:
            await self._unrouted(msg, target, routing.refusal or "")
            return
        with self.targets.answering(msg.ref, target, intro=intro):
            run_id = await self.relay.ask(Question(ref=msg.ref, text=question, asker=msg.user_id,
                                                   event_key=msg.event_key, language=msg.locale,
                                                   profile=routing.profile.name))
        if run_id is None:
            self._duplicate(msg.event_key)

    async def _refuse(self, turn_context: TurnContext, refusal: str) -> None:
        """One short reply (once per activity, however often Teams redelivers it)."""
        activity = turn_context.activity
        key = event_key(activity)
        if key and not await self.repo.claim_event(key):
            self._duplicate(activity.id)
            return
        self.metrics.events.labels(PLATFORM, "refused").inc()
        log.info("teams: refused a message from a tenant, team or chat not allowed")
        self.replies.send(ReplyTarget.from_activity(activity, turn_context.identity),
                          text_activity(refusal))

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
        if self.access.refusal(activity) is not None:
            return  # no welcome where nobody may ask
        key = event_key(activity)
        if key and not await self.repo.claim_event(key):
            return
        self.metrics.events.labels(PLATFORM, "installed").inc()
        target = ReplyTarget.from_activity(activity, turn_context.identity)
        self.replies.send(target, text_activity(WELCOME_TEXT))

    # -- invokes -------------------------------------------------------------------------
    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse | None:
        name = turn_context.activity.name
        if name == FEEDBACK_INVOKE:
            return await self._on_feedback(turn_context)
        if name == FILE_CONSENT_INVOKE:
            return await self._on_file_consent(turn_context)
        return await super().on_invoke_activity(turn_context)

    async def _on_feedback(self, turn_context: TurnContext) -> InvokeResponse:
        """A 👍/👎 on an answer message. 200 with no body whatever happens to the vote, except
        when it could not be stored: Teams then tells the user to try again."""
        activity = turn_context.activity
        value = activity.value if isinstance(activity.value, dict) else {}
        action = value.get("actionValue") if isinstance(value.get("actionValue"), dict) else {}
        verdict = VERDICTS.get(str(action.get("reaction") or ""))
        if (value.get("actionName") != "feedback" or verdict is None
                or not self._tenant_allowed(tenant_of(activity))):
            log.info("teams: ignoring a submitAction that is not a feedback vote")
            return InvokeResponse(status=int(HTTPStatus.OK))
        if self.access.refusal(activity) is not None:
            self.metrics.events.labels(PLATFORM, "feedback_refused").inc()
            log.info("teams: a feedback vote from a tenant, team or chat not allowed is not counted")
            return InvokeResponse(status=int(HTTPStatus.OK))
        user, name = user_of(activity)
        self.names.remember(user, name)
        run_id = await self._run_of_message(activity.conversation.id, activity.service_url or "",
                                            activity.reply_to_id or "")
        if run_id is None:
            self.metrics.events.labels(PLATFORM, "feedback_unmatched").inc()
            log.warning("teams: a feedback vote on message %s matches no run", activity.reply_to_id)
            return InvokeResponse(status=int(HTTPStatus.OK))
        try:
            await self.repo.set_feedback(run_id, verdict, user)
        except Exception:
            log.exception("teams: the feedback vote on run %s could not be stored", run_id)
            return InvokeResponse(status=int(HTTPStatus.INTERNAL_SERVER_ERROR))
        self.metrics.events.labels(PLATFORM, "feedback").inc()
        return InvokeResponse(status=int(HTTPStatus.OK))

    async def _run_of_message(self, conversation_id: str, service_url: str, message_id: str) -> str | None:
        """The run whose answer includes ``message_id``: any message of an answer this process
        posted, else the first message of an answer as stored with the run (after a restart, or
        from another replica). Message ids are unique within a conversation only, so the run
        must belong to this one."""
        if not message_id:
            return None
        run_id = self.pages.run_of(conversation_id, message_id)
        if run_id is not None:
            return run_id
        run = await self.repo.find_run_by_reply(PLATFORM, service_url, message_id)
        if run is None or run.channel != base_conversation_id(conversation_id):
            return None
        return run.id

    async def _on_file_consent(self, turn_context: TurnContext) -> InvokeResponse:
        """The answer to a CSV offer: acknowledged at once, the upload runs in the background."""
        activity = turn_context.activity
        value = activity.value if isinstance(activity.value, dict) else {}
        context = value.get("context") if isinstance(value.get("context"), dict) else {}
        token = str(context.get("csv") or "")
        if not self._tenant_allowed(tenant_of(activity)) or self.files is None or not token:
            return InvokeResponse(status=int(HTTPStatus.OK))
        target = ReplyTarget.from_activity(activity, turn_context.identity)
        consent_id = activity.reply_to_id or ""
        file = self.files.get(token)
        if file is not None and file.conversation_id != activity.conversation.id:
            log.warning("teams: a file consent for another conversation was refused")
            return InvokeResponse(status=int(HTTPStatus.OK))
        if value.get("action") == "accept":
            if token in self._uploading or self.files.was_sent(token):  # a repeated Allow
                return InvokeResponse(status=int(HTTPStatus.OK))
            info = value.get("uploadInfo") if isinstance(value.get("uploadInfo"), dict) else {}
            self.metrics.events.labels(PLATFORM, "file_accepted").inc()
            self._uploading.add(token)
            self.replies.run(self._upload(target, token, info, consent_id), name="teams-csv-upload")
        else:
            self.metrics.events.labels(PLATFORM, "file_declined").inc()
            self.files.drop(token)
            if consent_id:
                self.replies.delete(target, consent_id)
        return InvokeResponse(status=int(HTTPStatus.OK))

    async def _upload(self, target: ReplyTarget, token: str, info: dict[str, Any],
                      consent_id: str) -> None:
        """Put the file into the user's OneDrive, show it, and take the offer away; a failure
        keeps the offer (the user may press Allow again) and says so with the run's reference."""
        assert self.files is not None
        try:
            file = self.files.get(token)
            if file is None:
                await self.replies.deliver(target, text_activity(FILE_EXPIRED))
                return
            url = str(info.get("uploadUrl") or "")
            allowed = url.startswith("https://") or (url.startswith("http://")
                                                     and not self.https_uploads_only)
            try:
                if not allowed:  # only Teams' own (https) upload session; tests use loopback http
                    raise ValueError("the upload URL is not https")
                await upload(url, file.data)
            except Exception as exc:
                log.warning("teams: the CSV of run %s could not be uploaded: %s", file.run_id, exc)
                await self.replies.deliver(target, text_activity(FILE_FAILED.format(reference=file.run_id)))
                return
            self.files.drop(token, sent=True)
            await self.replies.deliver(target, file_info_activity({"name": file.name, **info}))
            if consent_id:
                await self.replies.deliver_delete(target, consent_id)
        finally:
            self._uploading.discard(token)

    # -- handlers ------------------------------------------------------------------------
    async def _on_card_action(self, msg: Inbound, target: ReplyTarget) -> None:
        action: dict[str, Any] = msg.action or {}
        if action.get("action") != STOP_ACTION:
            log.info("teams: ignoring unknown card action %r", action.get("action"))
            return
        run_id = str(action.get("run_id") or "")
        result = await self.stop_run(run_id, msg.user_id, via="stop_button")
        self._tell(target, STOP_MESSAGES.get(result))

    async def stop_run(self, run_id: str, user: str, *, via: str = "stream_stop") -> StopResult:
        """A Stop pressed on a run's reply: the card's button, or Teams' own Stop on a streamed
        reply (which names nobody: the sink passes the asker, the only one in a personal chat)."""
        self.metrics.events.labels(PLATFORM, via).inc()
        return await self.relay.stop(run_id, user)

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
