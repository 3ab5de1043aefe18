"""The routing file (``ROUTES_FILE``): named backend profiles, and routes from chats to them.

The format is the operator contract's (shared/design/CONTRACT.md)::

    default = "sales"            # optional: the profile for chats no route matches

    [profiles.sales]             # any name
    backend = "wren"
    WREN_BASE_URL = "https://wren.example.com"
    WREN_API_KEY = "${SALES_WREN_KEY}"   # "${NAME}" is read from the environment
    WREN_PROJECT_ID = "3"

    [[routes]]                   # first match wins
    slack_channel = "C0123ABCD"  # or: slack_team, teams_team, teams_channel, dm = true
    profile = "sales"

A profile's keys are its backend's environment variable names (``WREN_…``, ``CLICKZETTA_…``,
``TEXTQL_…``), each validated as that variable is, plus ``RUN_TIMEOUT`` and
``MAX_CONCURRENT_RUNS`` (the profile's own ceiling on one run and on runs at once), an optional
``description`` shown to people, and ``backend``. Anything a profile does not set takes the
variable's default — not the environment: with a routing file, ``BACKEND`` and the backend
variables are not read. Keys that hold secrets (API keys, a warehouse URL's password) must be
``"${NAME}"`` references, so the file itself holds none and can be reviewed and committed; a
reference to a variable that is not set stops start-up.

A route matches when every key it gives matches (values are one id or a list of ids; channels
are matched by id, never by name: names change and are not unique across workspaces, and a
rename would silently move a channel to another backend). ``dm = true`` matches direct messages
with the bot: Slack DMs and Teams personal chats. Slack keys never match Teams chats and Teams
keys never match Slack.

Everything is checked at start-up; each problem is one line that names the file and the line:
``routes.toml:12: profile 'ops': CLICKZETTA_TENANT_ID is required``. Nothing here builds a
backend (``bot/profiles.py`` does) or knows a chat platform.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from pydantic import ValidationError

from bot.config import BACKENDS, BackendName, ConfigError, Settings, _url_password

PREFIXES: dict[str, str] = {"wren": "WREN_", "clickzetta": "CLICKZETTA_", "textql": "TEXTQL_"}
LABELS: dict[str, str] = {"wren": "Wren AI", "clickzetta": "ClickZetta", "textql": "TextQL"}
SECRET_KEYS = frozenset({"WREN_API_KEY", "CLICKZETTA_APP_SECRET_KEY", "TEXTQL_API_KEY"})
URL_KEYS = frozenset({"CLICKZETTA_WAREHOUSE_URL"})  # their password must be a reference too
RELAY_KEYS = ("RUN_TIMEOUT", "MAX_CONCURRENT_RUNS")
SLACK_MATCHERS = ("slack_team", "slack_channel")
TEAMS_MATCHERS = ("teams_team", "teams_channel")
MATCHERS = SLACK_MATCHERS + TEAMS_MATCHERS + ("dm",)
IMPLICIT = "default"  # the name of the one profile BACKEND and its variables make

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_REF = re.compile(r"\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Place:
    """Where a question comes from, as routes see it (platform-neutral)."""

    platform: str  # "slack" or "teams"
    workspace: str  # Slack team id; Teams tenant id
    channel: str  # Slack channel id; Teams conversation id without ";messageid="
    dm: bool = False  # a direct message with the bot (Slack DM, Teams personal chat)
    teams: tuple[str, ...] = ()  # Teams: the team's ids (channelData.team.id, aadGroupId)


@dataclass(frozen=True)
class Route:
    profile: str
    line: int
    slack_team: frozenset[str] | None = None
    slack_channel: frozenset[str] | None = None
    teams_team: frozenset[str] | None = None
    teams_channel: frozenset[str] | None = None
    dm: bool | None = None

    def matches(self, place: Place) -> bool:
        if (self.slack_team is not None or self.slack_channel is not None) and place.platform != "slack":
            return False
        if (self.teams_team is not None or self.teams_channel is not None) and place.platform != "teams":
            return False
        if self.slack_team is not None and place.workspace not in self.slack_team:
            return False
        if self.slack_channel is not None and place.channel not in self.slack_channel:
            return False
        if self.teams_team is not None and not self.teams_team.intersection(place.teams):
            return False
        if self.teams_channel is not None and place.channel not in self.teams_channel:
            return False
        return self.dm is None or self.dm == place.dm

    def describe(self) -> str:
        """What it matches, for people (ids only: nothing secret lives in a route)."""
        def ids(values: frozenset[str]) -> str:
            return ", ".join(f"`{v}`" for v in sorted(values))

        parts = []
        if self.slack_team is not None:
            parts.append(f"Slack workspace {ids(self.slack_team)}")
        if self.slack_channel is not None:
            parts.append(f"Slack channel {ids(self.slack_channel)}")
        if self.teams_team is not None:
            parts.append(f"Teams team {ids(self.teams_team)}")
        if self.teams_channel is not None:
            parts.append(f"Teams channel or chat {ids(self.teams_channel)}")
        if self.dm is not None:
            parts.append("direct messages" if self.dm else "anything but direct messages")
        return " and ".join(parts)


@dataclass(frozen=True)
class ProfileSpec:
    """One profile as the file (or BACKEND) defines it; ``bot/profiles.py`` builds its backend."""

    name: str
    kind: BackendName
    settings: Settings  # the profile's own keys over the defaults
    description: str = ""
    run_timeout: float | None = None  # None: the service's RUN_TIMEOUT
    max_concurrent: int | None = None  # None: the service's MAX_CONCURRENT_RUNS
    line: int = 0  # where it is defined (0: no file)
    key_lines: Mapping[str, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return LABELS.get(self.kind, self.kind)


@dataclass(frozen=True)
class RoutingConfig:
    profiles: dict[str, ProfileSpec]
    routes: tuple[Route, ...] = ()
    default: str | None = None
    source: str | None = None  # the routing file; None: one implicit profile from BACKEND

    @property
    def implicit(self) -> bool:
        return self.source is None

    def route(self, place: Place) -> str | None:
        """The profile for a new conversation at ``place``: the first route that matches, else
        the default, else None (refused)."""
        for route in self.routes:
            if route.matches(place):
                return route.profile
        return self.default

    def secrets(self) -> list[str]:
        """Every profile's secret values, for the log filter (bot/logs.py)."""
        values: list[str] = []
        for spec in self.profiles.values():
            values += spec.settings.secrets()
        return sorted(set(values))

    def where(self, *path: str) -> str:
        """``file:line`` of a profile or its key, for messages after parsing (building a
        backend); the profile's table when the key is not in the file."""
        if self.source is None or not path:
            return ""
        spec = self.profiles.get(path[0])
        if spec is None:
            return f"{self.source}: "
        line = spec.key_lines.get(path[1], spec.line) if len(path) > 1 else spec.line
        return f"{self.source}:{line}: "


class _ProfileSettings(Settings):
    """A profile's settings: its keys and the defaults — never the environment or ``.env``."""

    @classmethod
    def settings_customise_sources(cls, settings_cls: Any, init_settings: Any, env_settings: Any,
                                   dotenv_settings: Any, file_secret_settings: Any) -> tuple[Any, ...]:
        return (init_settings,)


def implicit_config(settings: Settings) -> RoutingConfig:
    """No routing file: ``BACKEND`` and today's variables make one profile for every chat."""
    kind = settings.require_backend()
    spec = ProfileSpec(name=IMPLICIT, kind=kind, settings=settings)
    return RoutingConfig(profiles={IMPLICIT: spec}, default=IMPLICIT)


def load_routes(settings: Settings, environ: Mapping[str, str] | None = None) -> RoutingConfig:
    """The routing of ``settings``: its ``ROUTES_FILE``, checked, or the implicit profile.
    Raises ConfigError (one line naming the file and line) on any problem."""
    if not settings.ROUTES_FILE:
        return implicit_config(settings)
    path = settings.ROUTES_FILE
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"ROUTES_FILE {path}: cannot read it: {reason}") from None
    return parse_routes(text, source=path, environ=_environment() if environ is None else environ)


def _environment() -> dict[str, str]:
    """What ``${NAME}`` reads: the environment, over ``.env`` in the working directory."""
    values: dict[str, str] = {}
    if Path(".env").is_file():
        from dotenv import dotenv_values

        values.update({k: v for k, v in dotenv_values(".env").items() if v is not None})
    values.update(os.environ)
    return values


def parse_routes(text: str, *, source: str, environ: Mapping[str, str]) -> RoutingConfig:
    """Parse and check a routing file's text; every ConfigError starts ``source:line:``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = re.search(r"\(at line (\d+), column (\d+)\)", message)
        if found:
            where = found.group(1)
            message = f"{message[:found.start()].strip()} (column {found.group(2)})"
        else:
            where = str(max(1, text.count("\n") + (0 if text.endswith("\n") else 1)))
            message = re.sub(r"\s*\(at end of document\)", "", message) + " (at the end of the file)"
        raise ConfigError(f"{source}:{where}: not valid TOML: {message}") from None
    return _Checker(text, source, environ).check(data)


class _Lines:
    """Where each table and key of a TOML text is: the line of ``path`` (a tuple of keys, an
    array-of-tables entry counted as its index), or of its nearest enclosing table or key."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")
    _PART = r"(?:\"[^\"]*\"|'[^']*'|[A-Za-z0-9_-]+)"
    _KEY = re.compile(rf"^\s*({_PART}(?:\s*\.\s*{_PART})*)\s*=")

    def __init__(self, text: str) -> None:
        self.at: dict[tuple[Any, ...], int] = {}
        current: tuple[Any, ...] = ()
        counts: dict[tuple[Any, ...], int] = {}
        for number, raw in enumerate(text.splitlines(), 1):
            header = self._HEADER.match(raw)
            if header:
                current = self._split(header.group(2))
                if header.group(1) == "[[":
                    counts[current] = counts.get(current, -1) + 1
                    current = current + (counts[current],)
                self.at.setdefault(current, number)
                continue
            key = self._KEY.match(raw)
            if key:
                self.at.setdefault(current + self._split(key.group(1)), number)

    def _split(self, dotted: str) -> tuple[str, ...]:
        return tuple(p.strip().strip("\"'") for p in re.findall(self._PART, dotted))

    def of(self, *path: Any) -> int:
        for end in range(len(path), 0, -1):
            if path[:end] in self.at:
                return self.at[path[:end]]
        return 1


class _Checker:
    def __init__(self, text: str, source: str, environ: Mapping[str, str]) -> None:
        self.lines = _Lines(text)
        self.source = source
        self.environ = environ

    def fail(self, path: tuple[Any, ...], message: str) -> ConfigError:
        return ConfigError(f"{self.source}:{self.lines.of(*path)}: {message}")

    def check(self, data: dict[str, Any]) -> RoutingConfig:
        for key in data:
            if key not in ("default", "profiles", "routes"):
                raise self.fail((key,), f"unknown key {key!r} (the file holds default, "
                                        "[profiles.NAME] tables and [[routes]])")
        profiles_data = data.get("profiles")
        if not isinstance(profiles_data, dict) or not profiles_data:
            raise self.fail(("profiles",), "no profiles: define at least one [profiles.NAME] "
                                           "table with its backend")
        profiles = {name: self.profile(name, value) for name, value in profiles_data.items()}
        routes_data = data.get("routes", [])
        if not isinstance(routes_data, list):
            raise self.fail(("routes",), "routes must be [[routes]] tables")
        routes = tuple(self.route(i, value, profiles) for i, value in enumerate(routes_data))
        default = data.get("default")
        if default is not None:
            if not isinstance(default, str) or default not in profiles:
                raise self.fail(("default",), f"default names no profile: {default!r} "
                                              f"(profiles: {', '.join(profiles)})")
        return RoutingConfig(profiles=profiles, routes=routes, default=default, source=self.source)

    # -- profiles --------------------------------------------------------------------------
    def profile(self, name: str, table: Any) -> ProfileSpec:
        here = ("profiles", name)
        if not _NAME.match(name):
            raise self.fail(here, f"profile {name!r}: a name is letters, digits, '-', '_' and "
                                  "'.' (people see it in chat)")
        who = f"profile {name!r}"
        if not isinstance(table, dict):
            raise self.fail(here, f"{who}: must be a table of settings ([profiles.{name}])")
        kind = table.get("backend")
        if kind is None:
            raise self.fail(here, f"{who}: backend is required (wren, clickzetta or textql)")
        if not isinstance(kind, str) or kind.strip().lower() not in BACKENDS:
            raise self.fail(here + ("backend",),
                            f"{who}: backend must be wren, clickzetta or textql, not {kind!r}")
        kind = kind.strip().lower()
        description = table.get("description", "")
        if not isinstance(description, str):
            raise self.fail(here + ("description",), f"{who}: description must be a string")
        values: dict[str, str] = {}
        for key, raw in table.items():
            if key in ("backend", "description"):
                continue
            at = here + (key,)
            self.check_key(who, kind, key, at)
            if isinstance(raw, bool):
                values[key] = "true" if raw else "false"
            elif isinstance(raw, (int, float)):
                values[key] = str(raw)
            elif isinstance(raw, str):
                values[key] = self.resolve(who, key, raw, at)
            else:
                raise self.fail(at, f"{who}: {key} must be a string, a number or true/false")
        try:
            settings = _ProfileSettings(BACKEND=kind, **values)  # type: ignore[arg-type]
        except ValidationError as exc:
            error = exc.errors()[0]
            key = str((error.get("loc") or ("?",))[0])
            raise self.fail(here + (key,), f"{who}: {key} is invalid: "
                                           f"{error.get('msg', 'bad value')}") from None
        gap = settings.backend_gap(kind)  # type: ignore[arg-type]
        if gap is not None:
            var, why = gap
            why = why.replace(" and TEXTQL_USE_ONTOLOGY=true", " when TEXTQL_USE_ONTOLOGY = true")
            why = why.replace("WREN_ALLOW_DEFAULT_PROJECT=true", "WREN_ALLOW_DEFAULT_PROJECT = true")
            raise self.fail(here, f"{who}: {var} is required{why}")
        key_lines = {key: self.lines.of(*here, key) for key in table}
        return ProfileSpec(
            name=name, kind=kind, settings=settings, description=" ".join(description.split()),
            run_timeout=settings.RUN_TIMEOUT if "RUN_TIMEOUT" in values else None,
            max_concurrent=settings.MAX_CONCURRENT_RUNS if "MAX_CONCURRENT_RUNS" in values else None,
            line=self.lines.of(*here), key_lines=key_lines)

    def check_key(self, who: str, kind: str, key: str, at: tuple[Any, ...]) -> None:
        if key in RELAY_KEYS:
            return
        owner = next((k for k, prefix in PREFIXES.items() if key.startswith(prefix)), None)
        if owner is not None and owner != kind:
            raise self.fail(at, f"{who}: {key} does not apply to a {kind} profile")
        if owner is None or key not in Settings.model_fields:
            allowed = f"{PREFIXES[kind]}… settings, {', '.join(RELAY_KEYS)}, description"
            raise self.fail(at, f"{who}: unknown key {key!r} (a {kind} profile takes {allowed})")

    def resolve(self, who: str, key: str, raw: str, at: tuple[Any, ...]) -> str:
        """Replace ``${NAME}`` references; secrets must come from one."""
        refs = _REF.findall(raw)
        if key in SECRET_KEYS and not refs:
            raise self.fail(at, f"{who}: {key} must not hold the secret itself: write "
                                f"{key} = \"${{NAME}}\" and set the environment variable NAME")
        if key in URL_KEYS:
            password = _url_password(_REF.sub("ref", raw))
            if password and password != "ref":
                raise self.fail(at, f"{who}: {key} must not hold a password itself: put "
                                    "\"${NAME}\" in its place and set NAME in the environment")
        for name in refs:
            if not _ENV_NAME.match(name):
                raise self.fail(at, f"{who}: {key}: ${{{name}}} is not a variable name")
            if not self.environ.get(name):
                raise self.fail(at, f"{who}: {key} refers to ${{{name}}}, which is not set "
                                    "in the environment")
        return _REF.sub(lambda m: self.environ[m.group(1)], raw)

    # -- routes ----------------------------------------------------------------------------
    def route(self, index: int, table: Any, profiles: dict[str, ProfileSpec]) -> Route:
        here = ("routes", index)
        who = f"route {index + 1}"
        if not isinstance(table, dict):
            raise self.fail(here, f"{who}: must be a [[routes]] table")
        for key in table:
            if key not in MATCHERS and key != "profile":
                raise self.fail(here + (key,), f"{who}: unknown key {key!r} (a route takes "
                                               f"profile and {', '.join(MATCHERS)})")
        profile = table.get("profile")
        if profile is None:
            raise self.fail(here, f"{who}: profile is required (the profile its chats go to)")
        if not isinstance(profile, str) or profile not in profiles:
            raise self.fail(here + ("profile",), f"{who}: profile {profile!r} is not defined "
                                                 f"(profiles: {', '.join(profiles)})")
        given = [k for k in MATCHERS if k in table]
        if not given:
            raise self.fail(here, f"{who}: matches nothing: give {', '.join(MATCHERS[:-1])} "
                                  "or dm")
        if any(k in table for k in SLACK_MATCHERS) and any(k in table for k in TEAMS_MATCHERS):
            raise self.fail(here, f"{who}: a route matches Slack or Teams, not both: "
                                  "make it two routes")
        ids: dict[str, frozenset[str]] = {}
        for key in given:
            if key == "dm":
                continue
            value = table[key]
            items = value if isinstance(value, list) else [value]
            if not items or not all(isinstance(v, str) and v.strip() for v in items):
                raise self.fail(here + (key,), f"{who}: {key} must be an id or a list of ids")
            items = [v.strip() for v in items]
            if key == "slack_channel" and any(v.startswith("#") for v in items):
                raise self.fail(here + (key,), f"{who}: slack_channel takes channel ids "
                                               "(C0123ABCD: in Slack, the channel's details), not names")
            ids[key] = frozenset(items)
        dm = table.get("dm")
        if dm is not None and not isinstance(dm, bool):
            raise self.fail(here + ("dm",), f"{who}: dm must be true or false")
        return Route(profile=profile, line=self.lines.of(*here), dm=dm, **ids)
