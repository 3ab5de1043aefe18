"""``insightbot ask`` against the Wren fake: progress, answer, SQL, and a chart PNG on disk."""

import io

from bot.charts import ChartRenderer
from bot.backends import build_backend
from bot.config import Settings
from bot.terminal import ask_in_terminal
from tests.fakes.wren import FakeWren


async def test_ask_prints_progress_answer_and_saves_chart(tmp_path, fake_wren: FakeWren) -> None:
    settings = Settings(_env_file=None, BACKEND="wren", WREN_BASE_URL=fake_wren.base_url,
                        WREN_API_KEY=fake_wren.api_key)
    backend = build_backend(settings)
    out = io.StringIO()
    try:
        code = await ask_in_terminal(backend, "Which states pay the most?", out_dir=tmp_path,
                                     charts=ChartRenderer(scale=1.0), out=out)
    finally:
        await backend.aclose()
    text = out.getvalue()
    assert code == 0
    assert "… Asking" in text or "…" in text.splitlines()[0]
    assert "São Paulo" in text and "--- SQL ---" in text
    png = tmp_path / "chart-1.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert f"chart saved: {png}" in text


async def test_ask_reports_errors_with_exit_code(tmp_path, fake_wren: FakeWren) -> None:
    fake_wren.script_ask_error(status=400, code="NO_RELEVANT_DATA")
    settings = Settings(_env_file=None, BACKEND="wren", WREN_BASE_URL=fake_wren.base_url,
                        WREN_API_KEY=fake_wren.api_key)
    backend = build_backend(settings)
    out = io.StringIO()
    try:
        code = await ask_in_terminal(backend, "weather?", out_dir=tmp_path,
                                     charts=ChartRenderer(scale=1.0), out=out)
    finally:
        await backend.aclose()
    assert code == 1 and "error:" in out.getvalue()


def test_db_upgrade_command_creates_the_schema(tmp_path, monkeypatch, restore_logging) -> None:
    import sqlite3

    from bot.cli import main

    db = tmp_path / "nested" / "bot.db"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{db}")
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "upgrade"]) == 0  # idempotent
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"conversations", "runs", "events", "alembic_version"} <= tables
