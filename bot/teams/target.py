"""Where a Teams reply goes, and with whose credentials.

Teams has no global API host: every conversation lives behind the regional ``serviceUrl`` the
Bot Connector put on the inbound activity (``https://smba.trafficmanager.net/amer/`` …), and
a reply needs the conversation, the bot and user accounts, and — for a reply inside a thread —
the id of the message answered. :class:`ReplyTarget` keeps exactly that, plus the claims
identity the SDK uses to pick outbound credentials (an anonymous identity sends no token).

A run outlives the HTTP request that started it, so replies are sent later through the
adapter's proactive path; :meth:`ReplyTarget.continuation` is the activity that path needs.
After a restart only the thread and the service URL survive (stored with the run), which is
what :meth:`ReplyTarget.for_thread` rebuilds a target from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from microsoft_agents.activity import Activity, ChannelAccount, ConversationAccount
from microsoft_agents.hosting.core import ClaimsIdentity

from bot.relay.thread import ThreadRef

CHANNEL_ID = "msteams"


@dataclass(frozen=True)
class ReplyTarget:
    service_url: str
    conversation: ConversationAccount
    identity: ClaimsIdentity = field(compare=False)
    bot: ChannelAccount | None = None
    user: ChannelAccount | None = None
    reply_to_id: str | None = None  # the message answered; None posts to the conversation
    channel_id: str = CHANNEL_ID

    @property
    def conversation_id(self) -> str:
        return self.conversation.id

    @property
    def budget_key(self) -> str:
        """Teams rate-limits per conversation; a channel's threads share one budget."""
        return base_conversation_id(self.conversation.id)

    @classmethod
    def from_activity(cls, activity: Activity, identity: ClaimsIdentity) -> "ReplyTarget":
        return cls(service_url=activity.service_url or "",
                   conversation=activity.conversation.model_copy(deep=True),
                   identity=identity,
                   bot=activity.recipient.model_copy() if activity.recipient else None,
                   user=activity.from_property.model_copy() if activity.from_property else None,
                   reply_to_id=activity.id or None,
                   channel_id=str(activity.channel_id or CHANNEL_ID))

    @classmethod
    def for_thread(cls, ref: ThreadRef, service_url: str, identity: ClaimsIdentity, *,
                   app_id: str | None = None) -> "ReplyTarget":
        """A target rebuilt from storage: the thread id is the full conversation id, and the
        bot's account is ``28:<app id>`` (the SDK needs one to address a reply)."""
        bot = ChannelAccount(id=f"28:{app_id}" if app_id else "28:insightbot")
        return cls(service_url=service_url,
                   conversation=ConversationAccount(id=ref.thread, tenant_id=ref.workspace or None),
                   identity=identity, bot=bot)

    def continuation(self) -> Activity:
        """The activity the proactive turn runs on; replies inherit its addressing."""
        fields = {"id": self.reply_to_id, "recipient": self.bot, "from_property": self.user}
        return Activity(type="event", name="ContinueConversation", channel_id=self.channel_id,
                        service_url=self.service_url,
                        conversation=self.conversation.model_copy(deep=True),
                        **{k: v for k, v in fields.items() if v is not None})


def base_conversation_id(conversation_id: str) -> str:
    """``19:x@thread.tacv2;messageid=123`` → ``19:x@thread.tacv2`` (the channel itself)."""
    return conversation_id.split(";messageid=", 1)[0]
