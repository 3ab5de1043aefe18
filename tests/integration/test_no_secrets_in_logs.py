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


async def test_whole_runs_on_every_backend_log_no_secret_start_up_included(
        start_bot, backend, capfd, restore_logging, tmp_path) -> None:
    from tests.integration.conftest import fast_settings
    from tests.integration.quiet import quiet

    settings = fast_settings(tmp_path, "http://127.0.0.1:9/api/", **backend.settings())
    secrets = settings.secrets()
    backend_secrets = [s for s in secrets if s not in ("xoxb-test-token", SIGNING_SECRET)]
    assert backend_secrets  # each backend has a key of its own to leak
    setup_logging("DEBUG", secrets)  # before start-up: its log lines are checked too
    bot = await start_bot(LOG_LEVEL="DEBUG", **backend.settings())
    event = await bot.mention("good question")
    await bot.wait_finished(event["ts"])
    backend.fail_next()
    event = await bot.mention("a failing one")
    await bot.wait_finished(event["ts"])
    await quiet(bot.service)
    for secret in secrets:  # and a careless log line of ours would be masked too
        logging.getLogger("bot.test").debug("calling with key=%s", secret)
    err = capfd.readouterr().err
    assert "DEBUG" in err and "calling with key=" in err
    for secret in secrets:
        assert secret not in err
