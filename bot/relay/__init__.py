"""The platform-neutral relay: one place that runs a question.

Chat platforms hand it a :class:`~bot.relay.thread.Question` and a :class:`~bot.relay.sink.ReplySink`;
it maps the chat thread to a backend conversation, runs the backend, folds its updates into an
:class:`~adapters.answer.Answer`, persists the run, and pushes snapshots to the sink. It never
imports Slack or Teams code.
"""

from bot.relay.profile_choice import NoProfile, Routing
from bot.relay.relay import Relay, StopResult
from bot.relay.sink import ReplySink, SinkFactory
from bot.relay.thread import Question, ThreadRef

__all__ = ["NoProfile", "Relay", "Routing", "StopResult", "ReplySink", "SinkFactory", "Question", "ThreadRef"]
