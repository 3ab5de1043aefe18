"""At DEBUG level, a whole run (including failures) writes no secret to the log stream."""

from __future__ import annotations

import logging

from bot.logs import setup_logging
from tests.fakes.wren import FakeWren
from tests.integration.conftest import SIGNING_SECRET


async def test_debug_logs_of_a_failing_and_a_good_run_carry_no_secret(
        start_bot, fake_wren: FakeWren, capfd, restore_logging) -> None:
    bot = await start_bot(BACKEND="wren", WREN_BASE_URL=fake_wren.base_url,
                          WREN_API_KEY=fake_wren.api_key, LOG_LEVEL="DEBUG")
    setup_logging("DEBUG", bot.service.settings.secrets())
    event = await bot.mention("good question")
    await bot.wait_finished(event["ts"])
    fake_wren.script_auth_error(401)
    event = await bot.mention("rejected key")
    await bot.wait_finished(event["ts"])
    logging.getLogger("test").debug("headers: Authorization: Bearer %s", fake_wren.api_key)
    err = capfd.readouterr().err
    assert "DEBUG" in err  # the logs were really written
    for secret in (fake_wren.api_key, "xoxb-test-token", SIGNING_SECRET):
        assert secret not in err
