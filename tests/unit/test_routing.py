"""The routing file (bot/routing.py): parsing, checking — every error names its line — and
matching; and the profile registry's descriptions (bot/profiles.py) show no secret."""

from __future__ import annotations

import textwrap

import pytest

from adapters.base import Backend
from bot.config import ConfigError, Settings
from bot.profiles import Profile, Profiles
from bot.routing import Place, load_routes, parse_routes

ENV = {"SALES_WREN_KEY": "osk-sales-secret-1234", "OPS_CZ_SECRET": "cz-secret-5678",
       "WH_PASSWORD": "warehouse-pw-91"}

GOOD = """\
default = "sales"        # chats no route matches

[profiles.sales]
backend = "wren"
description = "Sales warehouse"
WREN_BASE_URL = "https://wren.example.com"
WREN_API_KEY = "${SALES_WREN_KEY}"
WREN_PROJECT_ID = 3
MAX_CONCURRENT_RUNS = 2

[profiles.ops]
backend = "clickzetta"
CLICKZETTA_BASE_URL = "https://cz.example.com/clickzetta-campaign-data"
CLICKZETTA_APP_SECRET_KEY = "${OPS_CZ_SECRET}"
CLICKZETTA_TENANT_ID = "10"
CLICKZETTA_USER_ID = "1"
CLICKZETTA_DOMAIN_ID = 106
CLICKZETTA_WAREHOUSE_URL = "postgresql://reader:${WH_PASSWORD}@wh.example.com/db"
RUN_TIMEOUT = 120

[[routes]]
slack_channel = ["C0OPS0001", "C0OPS0002"]
profile = "ops"

[[routes]]
teams_team = "19:ops-team@thread.tacv2"
profile = "ops"

[[routes]]
dm = true
profile = "sales"

[[routes]]
slack_team = "T0SALES"
profile = "sales"
"""


def parse(text: str, environ: dict[str, str] | None = None):
    return parse_routes(textwrap.dedent(text), source="routes.toml",
                        environ=ENV if environ is None else environ)


def test_a_good_file_gives_profiles_routes_and_default() -> None:
    config = parse(GOOD)
    assert list(config.profiles) == ["sales", "ops"] and config.default == "sales"
    sales, ops = config.profiles["sales"], config.profiles["ops"]
    assert (sales.kind, sales.settings.WREN_API_KEY, sales.settings.WREN_PROJECT_ID) == \
        ("wren", "osk-sales-secret-1234", "3")
    assert sales.max_concurrent == 2 and sales.run_timeout is None
    assert sales.description == "Sales warehouse"
    assert (ops.kind, ops.settings.CLICKZETTA_DOMAIN_ID, ops.run_timeout) == ("clickzetta", "106", 120)
    assert ops.max_concurrent is None
    # secrets of every profile, for the log filter; the warehouse password too
    assert {"osk-sales-secret-1234", "cz-secret-5678", "warehouse-pw-91"} <= set(config.secrets())
    # first match wins; Slack keys never match Teams and the other way round
    assert config.route(Place("slack", "T0SALES", "C0OPS0002")) == "ops"
    assert config.route(Place("slack", "T0SALES", "C0OTHER")) == "sales"
    assert config.route(Place("slack", "T9", "D0DM", dm=True)) == "sales"
    assert config.route(Place("teams", "tenant", "19:x@thread.tacv2",
                              teams=("19:ops-team@thread.tacv2", "group-1"))) == "ops"
    assert config.route(Place("teams", "tenant", "C0OPS0001")) == "sales"  # the default


def test_without_a_default_an_unrouted_place_gets_no_profile() -> None:
    config = parse(GOOD.replace('default = "sales"', "#"))
    assert config.default is None
    assert config.route(Place("slack", "T9", "C0NOWHERE")) is None


def test_a_profile_does_not_read_the_backend_variables_of_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("WREN_TABLE_ROWS", "5")
    monkeypatch.setenv("WREN_PROJECT_ID", "99")
    sales = parse(GOOD).profiles["sales"]
    assert sales.settings.WREN_TABLE_ROWS == 1000 and sales.settings.WREN_PROJECT_ID == "3"


def test_without_routes_file_backend_makes_one_implicit_profile() -> None:
    settings = Settings(_env_file=None, BACKEND="wren", WREN_BASE_URL="http://w",
                        WREN_API_KEY="psk-x")
    config = load_routes(settings)
    assert config.implicit and list(config.profiles) == ["default"]
    assert config.route(Place("slack", "T", "C")) == "default"


def test_an_unreadable_file_is_named(tmp_path) -> None:
    settings = Settings(_env_file=None, ROUTES_FILE=str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match=r"^ROUTES_FILE .*nope\.toml: cannot read it"):
        load_routes(settings)


# Each bad file marks the line its error must name with "# <-".
BAD = {
    "syntax": ("""\
        [profiles.sales]
        backend = "wren"
        WREN_BASE_URL = "https://w  # <-
        """, "not valid TOML"),
    "missing required setting": ("""\
        [profiles.sales]
        backend = "wren"
        WREN_BASE_URL = "https://w"
        WREN_API_KEY = "${SALES_WREN_KEY}"
        WREN_PROJECT_ID = "1"

        [profiles.ops]  # <-
        backend = "clickzetta"
        CLICKZETTA_BASE_URL = "https://cz/clickzetta-campaign-data"
        CLICKZETTA_APP_SECRET_KEY = "${OPS_CZ_SECRET}"
        CLICKZETTA_USER_ID = "1"
        CLICKZETTA_DOMAIN_ID = "106"
        """, "profile 'ops': CLICKZETTA_TENANT_ID is required"),
    "wren without a project": ("""\
        [profiles.sales]  # <-
        backend = "wren"
        WREN_BASE_URL = "https://w"
        WREN_API_KEY = "${SALES_WREN_KEY}"
        """, "profile 'sales': WREN_PROJECT_ID is required"),
    "inline secret": ("""\
        [profiles.sales]
        backend = "wren"
        WREN_BASE_URL = "https://w"
        WREN_API_KEY = "osk-1234567890abcdef"  # <-
        WREN_PROJECT_ID = "1"
        """, "profile 'sales': WREN_API_KEY must not hold the secret itself"),
    "inline warehouse password": ("""\
        [profiles.ops]
        backend = "clickzetta"
        CLICKZETTA_WAREHOUSE_URL = "postgresql://u:hunter2@h/db"  # <-
        """, "profile 'ops': CLICKZETTA_WAREHOUSE_URL must not hold a password itself"),
    "unset reference": ("""\
        [profiles.sales]
        backend = "wren"
        WREN_BASE_URL = "https://w"
        WREN_PROJECT_ID = "1"
        WREN_API_KEY = "${NOT_SET_ANYWHERE}"  # <-
        """, "profile 'sales': WREN_API_KEY refers to ${NOT_SET_ANYWHERE}, which is not set"),
    "unknown key": ("""\
        [profiles.sales]
        backend = "wren"
        WREN_BASE_URL = "https://w"
        WREN_API_KEY = "${SALES_WREN_KEY}"
        WREN_PROJEKT_ID = "1"  # <-
        """, "profile 'sales': unknown key 'WREN_PROJEKT_ID'"),
    "another backend's key": ("""\
        [profiles.ops]
        backend = "clickzetta"
        WREN_BASE_URL = "https://w"  # <-
        """, "profile 'ops': WREN_BASE_URL does not apply to a clickzetta profile"),
    "bad backend": ("""\
        [profiles.sales]
        backend = "looker"  # <-
        """, "profile 'sales': backend must be wren, clickzetta or textql"),
    "no backend": ("""\
        [profiles.sales]  # <-
        WREN_BASE_URL = "https://w"
        """, "profile 'sales': backend is required"),
    "invalid value": ("""\
        [profiles.sales]
        backend = "wren"
        WREN_BASE_URL = "https://w"
        WREN_API_KEY = "${SALES_WREN_KEY}"
        WREN_PROJECT_ID = "1"
        WREN_TABLE_ROWS = -1  # <-
        """, "profile 'sales': WREN_TABLE_ROWS is invalid"),
    "invalid concurrency": ("""\
        [profiles.sales]
        backend = "textql"
        TEXTQL_API_KEY = "${SALES_WREN_KEY}"
        TEXTQL_MODE = "v2"
        MAX_CONCURRENT_RUNS = "many"  # <-
        """, "profile 'sales': MAX_CONCURRENT_RUNS is invalid"),
    "route to an unknown profile": ("""\
        [profiles.sales]
        backend = "textql"
        TEXTQL_API_KEY = "${SALES_WREN_KEY}"
        TEXTQL_MODE = "v2"

        [[routes]]
        dm = true
        profile = "sales"

        [[routes]]
        slack_channel = "C1"
        profile = "salse"  # <-
        """, "route 2: profile 'salse' is not defined (profiles: sales)"),
    "route matching nothing": ("""\
        [profiles.sales]
        backend = "textql"
        TEXTQL_API_KEY = "${SALES_WREN_KEY}"
        TEXTQL_MODE = "v2"

        [[routes]]  # <-
        profile = "sales"
        """, "route 1: matches nothing"),
    "route for both platforms": ("""\
        [profiles.sales]
        backend = "textql"
        TEXTQL_API_KEY = "${SALES_WREN_KEY}"
        TEXTQL_MODE = "v2"

        [[routes]]  # <-
        slack_channel = "C1"
        teams_channel = "19:x"
        profile = "sales"
        """, "route 1: a route matches Slack or Teams, not both"),
    "channel by name": ("""\
        [profiles.sales]
        backend = "textql"
        TEXTQL_API_KEY = "${SALES_WREN_KEY}"
        TEXTQL_MODE = "v2"

        [[routes]]
        slack_channel = "#general"  # <-
        profile = "sales"
        """, "route 1: slack_channel takes channel ids"),
    "dm not a boolean": ("""\
        [profiles.sales]
        backend = "textql"
        TEXTQL_API_KEY = "${SALES_WREN_KEY}"
        TEXTQL_MODE = "v2"

        [[routes]]
        dm = "yes"  # <-
        profile = "sales"
        """, "route 1: dm must be true or false"),
    "unknown default": ("""\
        default = "nobody"  # <-

        [profiles.sales]
        backend = "textql"
        TEXTQL_API_KEY = "${SALES_WREN_KEY}"
        TEXTQL_MODE = "v2"
        """, "default names no profile: 'nobody'"),
    "unknown top-level key": ("""\
        [profiles.sales]
        backend = "textql"
        TEXTQL_API_KEY = "${SALES_WREN_KEY}"
        TEXTQL_MODE = "v2"

        [route]  # <-
        dm = true
        """, "unknown key 'route'"),
    "no profiles": ("""\
        default = "x"  # <-
        """, "no profiles"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_each_error_is_one_line_naming_its_line(case: str) -> None:
    text, expected = BAD[case]
    text = textwrap.dedent(text)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "# <-" in ln)
    with pytest.raises(ConfigError) as err:
        parse_routes(text, source="routes.toml", environ=ENV)
    message = str(err.value)
    assert message.startswith(f"routes.toml:{line}: "), message
    assert expected in message and "\n" not in message
    for secret in ("hunter2", "osk-1234567890abcdef", *ENV.values()):
        assert secret not in message  # an error never shows a secret


class _Named:
    """Just enough of a backend for the registry."""

    capabilities = None

    def __init__(self, name: str) -> None:
        self.name = name

    async def aclose(self) -> None:
        pass


def test_descriptions_show_names_kinds_and_routes_but_no_settings() -> None:
    config = parse(GOOD)
    backends: dict[str, Backend] = {"sales": _Named("wren"), "ops": _Named("clickzetta")}  # type: ignore[dict-item]
    profiles = Profiles([Profile(n, backends[n], description=s.description)
                         for n, s in config.profiles.items()],
                        routes=config.routes, default=config.default, source=config.source)
    text = profiles.describe(Place("slack", "T0SALES", "C0OPS0001"))
    assert "`sales` — Wren AI: Sales warehouse" in text and "`ops` — ClickZetta" in text
    assert "1. Slack channel `C0OPS0001`, `C0OPS0002` → `ops`" in text
    assert "3. direct messages → `sales`" in text
    assert "Anything else → `sales` (the default)." in text
    assert "Here: `ops` (by route 1)." in text
    refusal = profiles.refusal()
    assert "Nothing was sent" in refusal and "`ops` — ClickZetta" in refusal
    for shown in (text, refusal):
        for value in (*ENV.values(), "wren.example.com", "cz.example.com", "wh.example.com"):
            assert value not in shown
