"""Credentials for Teams, both ways, from the ``TEAMS_*`` settings.

Inbound: the Bot Connector signs every activity with a JWT; the SDK's
:class:`JwtTokenValidator` checks it (signature, audience = our app id, tenant binding). The
SDK's own aiohttp middleware reads its configuration from ``request.app``, which is the shared
service application here (also serving Slack), so the same check is done in
:func:`authorize` with the configuration held by the Teams integration. With
``TEAMS_ALLOW_ANONYMOUS`` a request *without* an ``Authorization`` header is accepted as
anonymous (local emulators, tests); a header, when present, is always validated.

Outbound: an anonymous identity makes the SDK send no token; otherwise MSAL gets one for the
app registration (client credentials): from ``TEAMS_TENANT_ID``'s authority for a single-tenant
bot, else from the Bot Framework's own tenant (``login.microsoftonline.com/botframework.com``),
where a multi-tenant bot gets its token — the SDK itself has no default and would fail the first
reply.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web
from jwt import PyJWTError
from microsoft_agents.authentication.msal import MsalConnectionManager
from microsoft_agents.hosting.core import (
    AgentAuthConfiguration, AuthenticationConstants, AuthTypes, ClaimsIdentity, JwtTokenValidator,
)

from bot.config import Settings

log = logging.getLogger(__name__)

SERVICE_CONNECTION = "SERVICE_CONNECTION"
# the tenant a multi-tenant bot's app registration gets its Bot Framework token in
BOT_FRAMEWORK_TENANT = "botframework.com"
_INVALID = {"error": "Invalid token or authentication failed."}


def auth_configuration(settings: Settings) -> AgentAuthConfiguration:
    return AgentAuthConfiguration(
        auth_type=AuthTypes.client_secret,
        client_id=settings.TEAMS_APP_ID or None,
        tenant_id=settings.TEAMS_TENANT_ID or (BOT_FRAMEWORK_TENANT if settings.TEAMS_APP_ID
                                               else None),
        client_secret=settings.TEAMS_APP_PASSWORD or None,
        anonymous_allowed=settings.TEAMS_ALLOW_ANONYMOUS,
    )


def connection_manager(config: AgentAuthConfiguration) -> MsalConnectionManager:
    """No network happens here: MSAL is only asked for a token on the first outbound call."""
    return MsalConnectionManager(connections_configurations={SERVICE_CONNECTION: config})


def outbound_identity(settings: Settings) -> ClaimsIdentity:
    """The identity for replies without an inbound request (after a restart)."""
    if settings.TEAMS_APP_ID:
        return ClaimsIdentity({AuthenticationConstants.AUDIENCE_CLAIM: settings.TEAMS_APP_ID,
                               AuthenticationConstants.APP_ID_CLAIM: settings.TEAMS_APP_ID})
    return ClaimsIdentity()  # anonymous: no token on outbound calls


async def authorize(request: web.Request, config: AgentAuthConfiguration) -> ClaimsIdentity | web.Response:
    """The caller's claims, or the 401 to answer with. Never logs the token."""
    header = request.headers.get("Authorization")
    validator = JwtTokenValidator(config)
    if header is None:
        if config.ANONYMOUS_ALLOWED:
            return validator.get_anonymous_claims()
        return web.json_response({"error": "Authorization header not found"}, status=401)
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return web.json_response(_INVALID, status=401)
    try:
        return await validator.validate_token(parts[1])
    except (PyJWTError, ValueError, OSError) as exc:
        log.warning("teams: rejected an activity with an invalid token (%s)", type(exc).__name__)
        return web.json_response(_INVALID, status=401)
    except (KeyError, TypeError, AttributeError) as exc:
        # the SDK reads the header's ``kid`` and the claims without checking their shape: an
        # unsigned token (``alg: none``, no ``kid``) raised KeyError here and became a 500
        log.warning("teams: rejected an activity with a malformed token (%s)", type(exc).__name__)
        return web.json_response(_INVALID, status=401)


def entra_refusal(exc: BaseException) -> str | None:
    """The Entra error (``invalid_client``…) when ``exc`` is the SDK failing to get the bot's
    own token — a wrong or expired ``TEAMS_APP_PASSWORD``, a wrong app or tenant id — else None.

    The SDK raises it as a plain ``ValueError`` from inside the turn (it needs a token before our
    handler runs), told apart only by its documented error code.
    """
    from microsoft_agents.authentication.msal.errors.error_resources import (
        AuthenticationErrorResources,
    )

    code = AuthenticationErrorResources.FailedToAcquireToken.error_code
    text = str(exc)
    if not isinstance(exc, ValueError) or f"Error Code: {code}" not in text:
        return None
    found = re.search(r"'error': '([A-Za-z_]+)'", text)
    return found.group(1) if found else "unknown"
