"""What went wrong with a platform call, in the terms the reply lifecycle acts on.

Each platform translates its own errors (Slack's ``SlackApiError`` codes, the Bot Connector's
HTTP statuses) into one of these, so :mod:`bot.delivery.reply` can decide without knowing the
platform: try a plainer rendering, post anew, retry later, or give up.
"""

from __future__ import annotations


class DeliveryError(Exception):
    """A platform call failed. ``code`` is the platform's own error code, for logs."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class Rejected(DeliveryError):
    """The platform refused the content (too long, invalid blocks): send a plainer rendering."""


class Gone(DeliveryError):
    """The message to edit no longer exists (someone deleted the placeholder)."""


class Unavailable(DeliveryError):
    """Transient: rate limited past our retries, a server error or the network. Retry later."""


class Refused(DeliveryError):
    """Permanent for this conversation (no access, archived channel): retrying cannot help."""
