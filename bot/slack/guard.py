"""The edge of the Slack surface: what a request must be before Bolt or a listener sees it.

Bolt reads fields of a request with ``payload.get(...)``, ``payload["actions"][0]`` and the like,
and a listener trusts the shapes Slack documents. A signed request whose body is not what Slack
sends (bytes that are not UTF-8, a JSON list, an ``event`` that is a string, empty ``actions``,
lone UTF-16 surrogates in ``\\udXXX`` escapes) would otherwise end in an HTTP 500 or a listener's
traceback. So every request, over HTTP or Socket Mode, passes here first:

* :func:`read_http` — size, signature, UTF-8 and content type of an HTTP body, then its parsed
  form; answers 413, 401, 400 or 415 for what is not a Slack request;
* :func:`clean` — strings made storable and sendable: a lone surrogate becomes U+FFFD and NULs
  are dropped (PostgreSQL refuses them, and no encoder takes a lone surrogate);
* :data:`CHECKS` — one small class per concern, in the style of Bolt's middleware, each raising
  :class:`Malformed` for a body whose shape would break Bolt or a listener.

A malformed event is acknowledged (HTTP 200, or the socket ack) and dropped: Slack retries any
other answer, and retrying will not make it usable. A malformed slash command or interaction is
answered 400: it is not what the endpoint takes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any, Iterable
from urllib.parse import parse_qsl, quote, urlencode

from aiohttp import web

from bot.textclean import clean

MAX_BODY = 1024 * 1024  # Slack's largest payloads (a message with its blocks) are far below this
MAX_AGE = 5 * 60  # a signature older than this is a replay
MAX_ID = 100  # Slack ids and timestamps are short; a longer one would not fit the event ledger
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


class Malformed(ValueError):
    """The body is not a Slack request this app can use; the message says which part."""


@dataclass(frozen=True)
class Body:
    """A verified request body, parsed, cleaned, and written back out for Bolt."""

    data: dict[str, Any]  # the parsed (and cleaned) body: an envelope, a payload or a form
    text: str  # the same body as Bolt parses it
    content_type: str


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.response = web.json_response({"error": reason}, status=status)


# -- HTTP: size, signature, encoding, format -------------------------------------------------------
async def read_http(request: web.Request, signing_secret: str | None) -> Body:
    """The verified, parsed body of ``POST /slack/events``, or :class:`Refused`."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise Refused(413, "request body too large")  # before reading a byte of it
    raw = await request.read()  # aiohttp stops a body without Content-Length at client_max_size
    if len(raw) > MAX_BODY:
        raise Refused(413, "request body too large")
    if not signing_secret or not is_signed(raw, request.headers, signing_secret):
        raise Refused(401, "invalid request")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, "the body is not UTF-8") from None
    try:
        return parse(text, request.content_type)
    except Malformed as exc:
        raise Refused(415 if "content type" in str(exc) else 400, str(exc)) from None


def is_signed(raw: bytes, headers: Any, secret: str, now: float | None = None) -> bool:
    """Slack's v0 signature over the raw bytes, with a timestamp no older than five minutes."""
    timestamp = headers.get("X-Slack-Request-Timestamp") or ""
    signature = headers.get("X-Slack-Signature") or ""
    if not (timestamp.isascii() and timestamp.isdigit() and signature.isascii()):
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > MAX_AGE:
        return False
    base = b"v0:" + timestamp.encode() + b":" + raw
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def parse(text: str, content_type: str) -> Body:
    """A JSON object (Events API) or a form (slash command, or ``payload=`` interactivity)."""
    if content_type == JSON:
        data = clean(_json_object(text, "body"))
        return Body(data, json.dumps(data), JSON)
    if content_type == FORM:
        fields = dict(parse_qsl(text, keep_blank_values=True))  # bad %-escapes become U+FFFD
        if "payload" in fields:
            data = clean(_json_object(fields["payload"], "payload"))
            return Body(data, "payload=" + quote(json.dumps(data)), FORM)
        data = clean(fields)
        return Body(data, urlencode(data), FORM)
    raise Malformed(f"content type {content_type or 'none'} is not supported")


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        raise Malformed(f"the {what} is not JSON") from None
    if not isinstance(value, dict):
        raise Malformed(f"the {what} is not a JSON object")
    return value


# -- shapes: one small check per concern -------------------------------------------------------------
def _strings(obj: dict[str, Any], names: Iterable[str], where: str, *,
             required: bool = False, limit: int | None = None) -> None:
    for name in names:
        value = obj.get(name)
        if value is None:
            if required:
                raise Malformed(f"{where}.{name} is missing")
            continue
        if not isinstance(value, str):
            raise Malformed(f"{where}.{name} is not a string")
        if required and not value:
            raise Malformed(f"{where}.{name} is empty")
        if limit is not None and len(value) > limit:
            raise Malformed(f"{where}.{name} is too long")


def _object(obj: dict[str, Any], name: str, where: str, *, or_string: bool = False,
            required: bool = False) -> dict[str, Any] | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise Malformed(f"{where}.{name} is missing")
        return None
    if or_string and isinstance(value, str):
        return None
    if not isinstance(value, dict):
        raise Malformed(f"{where}.{name} is not an object")
    return value


class Kind:
    """Bolt routes on ``type`` (events, interactivity) or on ``command`` (slash commands)."""

    def check(self, body: dict[str, Any]) -> None:
        if "command" in body and "type" not in body:
            return
        _strings(body, ("type",), "body", required=True)


class CommonFields:
    """What Bolt reads of every request to build its context (team, enterprise, user, channel):
    ids must be strings and their containers objects."""

    IDS = ("type", "team_id", "enterprise_id", "user_id", "channel_id", "api_app_id", "token",
           "context_team_id", "context_enterprise_id", "trigger_id", "event_id", "command",
           "response_url", "bot_access_token", "function_execution_id")
    NESTED_IDS = ("id", "team_id", "enterprise_id", "app_installed_team_id", "user_team", "name",
                  "channel_id", "message_ts", "thread_ts", "ts", "type", "callback_id")

    def check(self, body: dict[str, Any]) -> None:
        _strings(body, self.IDS, "body")
        for name in ("enterprise", "team", "user", "channel"):
            nested = _object(body, name, "body", or_string=name == "enterprise")
            if nested is not None:
                _strings(nested, self.NESTED_IDS, name)
        for name in ("container", "message", "view", "state", "function_data", "bot_profile"):
            nested = _object(body, name, "body")
            if nested is not None:
                _strings(nested, self.NESTED_IDS, name)
        for name in ("is_enterprise_install", "is_ext_shared_channel"):
            if not isinstance(body.get(name), (bool, str, type(None))):
                raise Malformed(f"body.{name} is not a flag")
        authorizations = body.get("authorizations")
        if authorizations is not None:
            if not isinstance(authorizations, list) or not all(isinstance(a, dict) for a in authorizations):
                raise Malformed("body.authorizations is not a list of objects")
            for item in authorizations:
                _strings(item, ("team_id", "enterprise_id", "user_id"), "authorizations")
                if not isinstance(item.get("is_enterprise_install"), (bool, str, type(None))):
                    raise Malformed("authorizations.is_enterprise_install is not a flag")
        if "response_url" in body and not str(body["response_url"]).startswith(("https://", "http://")):
            raise Malformed("body.response_url is not a URL")


class EventFields:
    """An Events API envelope: ``event`` an object whose fields our listeners read are strings,
    and the ones a listener needs present."""

    FIELDS = ("type", "user", "channel", "ts", "event_ts", "thread_ts", "team", "user_team", "text",
              "subtype", "channel_type", "tab", "bot_id", "enterprise")
    NEEDED = {"app_mention": ("channel", "ts"), "message": ("channel", "ts"),
              "app_home_opened": ("user",), "agent_session_stopped": ("channel", "thread_ts")}
    IDS = ("user", "channel", "ts", "event_ts", "thread_ts", "team")

    def check(self, body: dict[str, Any]) -> None:
        if body.get("type") != "event_callback":
            return
        event = _object(body, "event", "body", required=True)
        assert event is not None
        _strings(event, self.FIELDS, "event")
        _strings(event, ("type",), "event", required=True)
        _strings(event, self.NEEDED.get(event["type"], ()), "event", required=True)
        _strings(event, self.IDS, "event", limit=MAX_ID)


class UrlVerification:
    def check(self, body: dict[str, Any]) -> None:
        if body.get("type") == "url_verification":
            _strings(body, ("challenge",), "body", required=True)


class ActionFields:
    """Interactivity: who clicked, and for ``block_actions`` at least one action, each with its
    ``action_id`` (``actions[0]`` is read by Bolt to route it)."""

    INTERACTIVE = ("block_actions", "view_submission", "view_closed", "shortcut", "message_action",
                   "block_suggestion", "interactive_message", "dialog_submission")

    def check(self, body: dict[str, Any]) -> None:
        kind = body.get("type")
        if kind not in self.INTERACTIVE:
            return
        user = _object(body, "user", "body", or_string=False, required=True)
        assert user is not None
        _strings(user, ("id",), "user", required=True, limit=MAX_ID)
        if kind in ("block_actions", "interactive_message"):
            actions = body.get("actions")
            if not isinstance(actions, list) or not actions:
                raise Malformed("body.actions is not a non-empty list")
            for action in actions:
                if not isinstance(action, dict):
                    raise Malformed("an action is not an object")
                _strings(action, ("action_id", "block_id", "type", "action_ts", "value"), "action")
                _strings(action, ("action_id",) if kind == "block_actions" else (), "action",
                         required=True)
        if kind in ("view_submission", "view_closed"):
            view = _object(body, "view", "body", required=True)
            assert view is not None
            _strings(view, ("id",), "view", required=True)
            for name in ("state",):
                if view.get(name) is not None and not isinstance(view[name], dict):
                    raise Malformed(f"view.{name} is not an object")


class CommandFields:
    """A slash command: who, where, and where to answer."""

    def check(self, body: dict[str, Any]) -> None:
        if "command" not in body or "type" in body:
            return
        _strings(body, ("command", "user_id", "channel_id", "response_url"), "command",
                 required=True, limit=None)
        _strings(body, ("user_id", "channel_id", "team_id"), "command", limit=MAX_ID)


CHECKS = (Kind(), CommonFields(), EventFields(), UrlVerification(), ActionFields(), CommandFields())


def check(body: dict[str, Any]) -> None:
    """Raise :class:`Malformed` for a body any check refuses."""
    for guard in CHECKS:
        guard.check(body)


# What each kind of Socket Mode envelope carries: ``events_api`` an Events API envelope,
# ``interactive`` an interaction payload, ``slash_commands`` a command's fields.
ENVELOPE_KINDS = {"events_api": lambda b: b.get("type") in ("event_callback", "app_rate_limited"),
                  "interactive": lambda b: b.get("type") in ActionFields.INTERACTIVE,
                  "slash_commands": lambda b: isinstance(b.get("command"), str) and "type" not in b}


def check_envelope(kind: str, payload: Any) -> None:
    """Raise :class:`Malformed` for a Socket Mode envelope Bolt could not handle."""
    if not isinstance(payload, dict):
        raise Malformed("the payload is not an object")
    expected = ENVELOPE_KINDS.get(kind)
    if expected is None or not expected(payload):
        raise Malformed(f"not a {kind} payload")
    check(payload)
