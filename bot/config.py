"""Settings from the environment and ``.env``, named exactly as in the operator contract.

Everything beyond the contract's table (pacing, limits, timeouts) is also a setting so that
tests can shorten it; operators rarely need to touch those. ``load_settings`` turns any problem
into one :class:`ConfigError` line that names the variable, which ``insightbot serve`` prints
before exiting.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

BackendName = Literal["wren", "clickzetta", "textql"]
BACKENDS: tuple[BackendName, ...] = ("wren", "clickzetta", "textql")


class ConfigError(Exception):
    """A missing or invalid setting; the message is one line naming it."""


def _url_password(url: str | None) -> str | None:
    """The password of a SQLAlchemy URL (None when there is none, or it does not parse)."""
    if not url:
        return None
    from sqlalchemy.engine import make_url  # (a settings module need not load SQLAlchemy early)
    from sqlalchemy.exc import ArgumentError

    try:
        password = make_url(url).password
    except (ArgumentError, ValueError):
        return None
    return str(password) if password else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      case_sensitive=False)

    # -- contract ------------------------------------------------------------------------
    BACKEND: BackendName | None = None
    DATABASE_URL: str = "sqlite+aiosqlite:///./data/insightbot.db"
    HOST: str = "0.0.0.0"
    PORT: int = 3000
    LOG_LEVEL: str = "INFO"

    SLACK_BOT_TOKEN: str | None = None
    SLACK_SIGNING_SECRET: str | None = None
    SLACK_APP_TOKEN: str | None = None
    SLACK_API_URL: str = "https://slack.com/api/"
    # distributed app: Bolt's OAuth install into many workspaces (bot/slack/installations.py),
    # with SLACK_SIGNING_SECRET and without SLACK_BOT_TOKEN
    SLACK_CLIENT_ID: str | None = None
    SLACK_CLIENT_SECRET: str | None = None

    TEAMS_APP_ID: str | None = None
    TEAMS_APP_PASSWORD: str | None = None
    TEAMS_TENANT_ID: str | None = None
    TEAMS_ALLOW_ANONYMOUS: bool = False
    SLACK_EXTERNAL_TEAMS: str = ""  # workspace/enterprise ids whose users may ask from Slack Connect
    # who may ask, and where (comma-separated; empty = no restriction): bot/slack/access.py,
    # bot/teams/access.py
    SLACK_ALLOWED_CHANNELS: str = ""  # conversation ids; "dm" admits direct messages too
    SLACK_ALLOWED_USERGROUPS: str = ""  # user group (S…) ids: members of any may ask
    TEAMS_ALLOWED_TENANTS: str = ""  # Entra tenant ids
    TEAMS_ALLOWED_TEAMS: str = ""  # team ids; "personal" / "groupchat" admit those chats too
    SLACK_STREAMING: bool = True  # chat.startStream/appendStream/stopStream where Slack allows it
    TEAMS_STREAMING: bool = True  # the Agents SDK's StreamingResponse in personal chats

    WREN_BASE_URL: str | None = None
    WREN_API_KEY: str | None = None
    WREN_PROJECT_ID: str | None = None
    WREN_ALLOW_DEFAULT_PROJECT: bool = False

    CLICKZETTA_BASE_URL: str | None = None
    CLICKZETTA_APP_SECRET_KEY: str | None = None
    CLICKZETTA_TENANT_ID: str | None = None
    CLICKZETTA_USER_ID: str | None = None
    CLICKZETTA_DOMAIN_ID: str | None = None
    CLICKZETTA_POLL_INTERVAL: float = 2.0

    TEXTQL_BASE_URL: str = "https://app.textql.com"
    TEXTQL_MEMBER_ID: str | None = None
    TEXTQL_API_KEY: str | None = None
    TEXTQL_DATASET: str | None = None
    ROUTES_FILE: str | None = None  # backend profiles and routes (bot/routing.py); replaces BACKEND

    # -- beyond the contract's table (documented in the README) ----------------------------
    WREN_TIMEOUT: float = 400.0
    WREN_STREAM: bool = True  # /stream/ask: the agent's steps as they happen (/ask if the server has none)
    WREN_TABLE_ROWS: int = Field(default=1000, ge=0)  # result table rows via /run_sql; 0: no table
    CLICKZETTA_TIMEOUT: float = 360.0
    CLICKZETTA_REQUEST_TIMEOUT: float = Field(default=60.0, gt=0)  # one HTTP call (vendor: 60 s)
    CLICKZETTA_MODEL_NAME: str | None = None  # modelSettings.model_name; unset: not sent
    CLICKZETTA_WAREHOUSE_URL: str | None = None
    # the most a backend may send in one answer (a whole stream included); more fails the run
    BACKEND_MAX_RESPONSE_BYTES: int = Field(default=8 * 1024 * 1024, gt=0)
    TEXTQL_MODE: Literal["legacy", "v2"] = "legacy"
    TEXTQL_STREAM_IDLE_TIMEOUT: float = 420.0  # > TextQL's own 360 s cell / 180 s SQL limits
    TEXTQL_ALLOW_PRIVATE_IMAGES: bool = False  # fetch Ana's images from private/loopback hosts
    TEXTQL_USE_ONTOLOGY: bool = False
    TEXTQL_ONTOLOGY_CONNECTOR_ID: int | None = None
    TEXTQL_CLIFFORD: bool | None = None
    RUN_TIMEOUT: float = Field(default=900.0, gt=0)  # ceiling on one run (a profile may set its own)
    MAX_CONCURRENT_RUNS: int = Field(default=0, ge=0)  # runs asking the backend at once; 0: no limit
    STOP_GRACE: float = 30.0  # how long a cooperative stop may take before the run is cancelled
    RUN_LEASE: float = Field(default=30.0, gt=0)  # a replica's hold on its runs (renewed every third)
    STOP_POLL_INTERVAL: float = 2.0  # how often a replica checks for stops pressed on another
    SLACK_UPDATE_INTERVAL: float = 1.5  # seconds between edits of one message
    SLACK_UPDATE_BUDGET: int = 45  # chat.update calls per minute per workspace (Tier 3 is 50)
    SLACK_BUDGET_WINDOW: float = 60.0
    SLACK_MAX_RETRIES: int = 3  # 429 retries of one Web API call (after Retry-After)
    SLACK_POST_INTERVAL: float = 1.1  # seconds between posts in one channel (Slack: ~1/s)
    SLACK_STATUS_INTERVAL: float = 1.0  # seconds between status-line changes in one thread
    SLACK_STATUS_AFTER: float = 3.0  # show progress as a status line once edits are this sparse
    # questions offered when someone opens the Messages tab (a JSON list), before their own
    SLACK_SUGGESTED_PROMPTS: list[str] = Field(default_factory=list)
    SLACK_STREAM_MAX_AGE: float = 240.0  # stop a stream this old ourselves (Slack ends them ~300 s)
    SLACK_STREAM_RESERVE: int = 4  # Tier 2 calls a minute kept for other streams' stopStream
    SLACK_INTAKE_WORKERS: int = 4  # events handed to Bolt at once after their ack
    # OAuth install: the public URL of /slack/oauth_redirect sent to Slack as redirect_uri
    # (needed when the app lists several redirect URLs; unset: Slack uses the app's first one)
    SLACK_REDIRECT_URI: str | None = None
    # token rotation: a workspace's bot token is refreshed this many minutes before it expires
    # (Bolt's token_rotation_expiration_minutes; Slack's rotating tokens last 12 hours)
    SLACK_TOKEN_ROTATION_MINUTES: int = Field(default=120, ge=1)
    # Socket Mode: seconds between pings; a connection that dies without a close frame is noticed
    # (and reopened) within about this long, and a failed reconnect is retried after it
    SLACK_SOCKET_PING_INTERVAL: float = Field(default=10.0, gt=0)
    FINAL_EDIT_WAIT: float = 1.0  # longest a final answer waits to replace its placeholder
    PROGRESS_SHARE: float = 0.67  # share of each budget progress edits may use (rest: finals)
    TEAMS_UPDATE_INTERVAL: float = 1.0  # seconds between edits of one Teams card
    TEAMS_UPDATE_BUDGET: int = 50  # Bot Connector calls per window per conversation (limit 60/30 s)
    TEAMS_BUDGET_WINDOW: float = 30.0
    TEAMS_MAX_RETRIES: int = 4  # retries of 429/412/502/503/504 answers (Retry-After honoured)
    TEAMS_RETRY_BACKOFF: float = 1.0  # first backoff when Teams gives no Retry-After; doubles
    TEAMS_STREAM_MAX_AGE: float = 105.0  # end a personal-chat stream ourselves (Teams cuts at 120 s)
    TEAMS_STREAM_INTERVAL: float = 1.0  # least seconds between two stream chunks (Teams: ~1/s)
    TEAMS_STREAM_HEARTBEAT: float = 2.0  # re-send an idle stream's last chunk, so Stop is seen
    CHART_WIDTH: int = 720
    CHART_HEIGHT: int = 420
    CHART_SCALE: float = 2.0
    CHART_WAIT: float = 0.3  # how long a finished answer waits for its chart; later ones follow it
    CHART_WORKERS: int = Field(default=1, ge=0)  # chart processes; 0 = in-process (tests only)

    @field_validator("BACKEND", mode="before")
    @classmethod
    def _lower(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) and v.strip() else (None if v == "" else v)

    @field_validator("SLACK_API_URL")
    @classmethod
    def _slash(cls, v: str) -> str:
        return v if v.endswith("/") else v + "/"

    # -- derived -------------------------------------------------------------------------
    @property
    def slack_enabled(self) -> bool:
        return bool(self.SLACK_BOT_TOKEN or self.SLACK_SIGNING_SECRET or self.SLACK_CLIENT_ID
                    or self.SLACK_CLIENT_SECRET)

    @property
    def slack_oauth(self) -> bool:
        """The distributed app: installed into many workspaces through Slack's OAuth flow, each
        with its own bot token in the database. Only without ``SLACK_BOT_TOKEN``: a static
        token is the single-workspace app, whatever else is set."""
        return bool(self.SLACK_CLIENT_ID and self.SLACK_CLIENT_SECRET and self.SLACK_SIGNING_SECRET
                    and not self.SLACK_BOT_TOKEN)

    @property
    def teams_enabled(self) -> bool:
        return bool(self.TEAMS_APP_ID) or self.TEAMS_ALLOW_ANONYMOUS

    def secrets(self) -> list[str]:
        """Values that must never appear in a log line."""
        values = [self.SLACK_BOT_TOKEN, self.SLACK_SIGNING_SECRET, self.SLACK_APP_TOKEN,
                  self.SLACK_CLIENT_SECRET, self.TEAMS_APP_PASSWORD, self.WREN_API_KEY,
                  self.CLICKZETTA_APP_SECRET_KEY, self.TEXTQL_API_KEY]
        # database passwords, in the URLs and as they may appear quoted in a driver's message
        for url in (self.DATABASE_URL, self.CLICKZETTA_WAREHOUSE_URL):
            password = _url_password(url)
            values += [password, quote(password, safe="")] if password else []
        return [v for v in values if v and len(v) >= 4]

    def require_backend(self, name: str | None = None) -> BackendName:
        """Check the settings the chosen backend needs; raise ConfigError naming the first gap."""
        backend = (name or self.BACKEND or "").lower()
        if not backend:
            raise ConfigError("BACKEND is required (wren, clickzetta or textql)"
                              + ("" if name else ", or a ROUTES_FILE of backend profiles"))
        if backend not in BACKENDS:
            raise ConfigError(f"BACKEND must be wren, clickzetta or textql, not {backend!r}")
        gap = self.backend_gap(backend)  # type: ignore[arg-type]
        if gap is not None:
            var, why = gap
            raise ConfigError(f"{var} is required when BACKEND={backend}{why}")
        return backend  # type: ignore[return-value]

    def backend_gap(self, backend: BackendName) -> tuple[str, str] | None:
        """The first setting ``backend`` needs and lacks: (its name, the rest of the sentence
        after "is required when …"), or None. Shared by BACKEND and the routing file's
        profiles (bot/routing.py), which words the sentence its own way."""
        needed = {
            "wren": ["WREN_BASE_URL", "WREN_API_KEY"],
            # domainId is required by Text2InsightQuery (and sent on session and poll)
            "clickzetta": ["CLICKZETTA_BASE_URL", "CLICKZETTA_APP_SECRET_KEY",
                           "CLICKZETTA_TENANT_ID", "CLICKZETTA_USER_ID", "CLICKZETTA_DOMAIN_ID"],
            # v2 authenticates with the API key alone; the legacy API uses member:key
            "textql": ["TEXTQL_API_KEY"] + (["TEXTQL_MEMBER_ID"] if self.TEXTQL_MODE == "legacy" else []),
        }[backend]
        if backend == "textql" and self.TEXTQL_USE_ONTOLOGY:
            needed.append("TEXTQL_ONTOLOGY_CONNECTOR_ID")
        for var in needed:
            if not getattr(self, var):
                return var, (" and TEXTQL_USE_ONTOLOGY=true" if var.endswith("CONNECTOR_ID") else "")
        if backend == "wren" and self._wren_needs_project():
            return "WREN_PROJECT_ID", (
                ": without it Wren answers an organisation (osk-) key from its first project, "
                "silently; set WREN_ALLOW_DEFAULT_PROJECT=true only for a single-project server")
        return None

    def _wren_needs_project(self) -> bool:
        """A ``psk-`` project key is pinned to its project by the server; any other credential
        is scoped by ``X-Project-Id``, and without one the server picks its lowest-id project."""
        if (self.WREN_PROJECT_ID or "").strip() or self.WREN_ALLOW_DEFAULT_PROJECT:
            return False
        return not (self.WREN_API_KEY or "").strip().startswith("psk-")

    def check_platforms(self) -> None:
        if self.slack_enabled:
            if not self.SLACK_BOT_TOKEN and (self.SLACK_CLIENT_ID or self.SLACK_CLIENT_SECRET):
                # the distributed app (OAuth install): both halves of the client, and the secret
                # every request from Slack is signed with
                for var in ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET", "SLACK_SIGNING_SECRET"):
                    if not getattr(self, var):
                        raise ConfigError(f"{var} is required for the Slack OAuth install "
                                          "(SLACK_CLIENT_ID without SLACK_BOT_TOKEN)")
            else:
                for var in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"):
                    if not getattr(self, var):
                        raise ConfigError(f"{var} is required when Slack is configured")
        if self.SLACK_APP_TOKEN and not self.SLACK_APP_TOKEN.startswith("xapp-"):
            raise ConfigError("SLACK_APP_TOKEN must be an app-level token starting with xapp-")
        if self.TEAMS_APP_ID and not self.TEAMS_APP_PASSWORD:
            raise ConfigError("TEAMS_APP_PASSWORD is required when TEAMS_APP_ID is set")


def load_settings(**overrides: object) -> Settings:
    """Read settings; any validation problem becomes one ConfigError line naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        var = ".".join(str(p) for p in err.get("loc", ())) or "setting"
        raise ConfigError(f"{var} is invalid: {err.get('msg', 'bad value')}") from None
