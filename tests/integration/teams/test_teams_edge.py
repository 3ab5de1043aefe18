"""The edge of ``POST /api/messages`` (issue 12): oversized and non-activity bodies."""

from __future__ import annotations


async def test_oversized_teams_body_is_refused_413(start_teams) -> None:
    bot = await start_teams(BACKEND="wren", WREN_BASE_URL="http://unused", WREN_API_KEY="psk-x")
    body = b'{"type":"message","text":"' + b"x" * (2 << 20) + b'"}'
    resp = await bot.client.post("/api/messages", data=body,
                                 headers={"Content-Type": "application/json"})
    assert resp.status == 413


async def test_not_an_activity_is_refused_400_without_an_error_log(start_teams, caplog) -> None:
    bot = await start_teams(BACKEND="wren", WREN_BASE_URL="http://unused", WREN_API_KEY="psk-x")
    for body in (b"[1]", b'{"type": []}', b"\xff{}", b'{"type":"message","text":"\\ud800"}'):
        resp = await bot.client.post("/api/messages", data=body,
                                     headers={"Content-Type": "application/json"})
        assert resp.status == 400, body
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
