"""Slack listeners grouped by kind; each module has a ``register(app, deps)``."""

from slack_bolt.async_app import AsyncApp

from bot.slack.deps import SlackDeps
from bot.slack.listeners import actions, commands, events


def register(app: AsyncApp, deps: SlackDeps) -> None:
    events.register(app, deps)
    commands.register(app, deps)
    actions.register(app, deps)
