"""The architecture's one rule, checked on the source: backends and platforms never meet."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imports_of(folder: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / folder).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{file}: {name}" for file, names in imports_of(folder).items() for name in names
            if name.split(".")[0] in forbidden or name.startswith(forbidden)]


def test_adapters_import_neither_bot_nor_storage() -> None:
    assert offenders("adapters", ("bot", "storage", "slack_sdk", "slack_bolt", "microsoft_agents")) == []


def test_storage_imports_nothing_of_ours_but_itself() -> None:
    assert offenders("storage", ("bot", "adapters")) == []


def test_backends_do_not_import_each_other() -> None:
    for name in ("wren", "clickzetta", "textql"):
        others = tuple(f"adapters.{o}" for o in ("wren", "clickzetta", "textql") if o != name)
        assert offenders(f"adapters/{name}", others) == []


def test_relay_knows_no_platform_and_platforms_not_each_other() -> None:
    assert offenders("bot/relay", ("bot.slack", "bot.teams", "slack_sdk", "slack_bolt",
                                   "microsoft_agents", "adapters.wren", "adapters.clickzetta",
                                   "adapters.textql")) == []
    assert offenders("bot/slack", ("bot.teams", "adapters.wren", "adapters.clickzetta",
                                   "adapters.textql")) == []
    if (ROOT / "bot" / "teams").exists():
        assert offenders("bot/teams", ("bot.slack", "slack_sdk", "slack_bolt", "adapters.wren",
                                       "adapters.clickzetta", "adapters.textql")) == []
