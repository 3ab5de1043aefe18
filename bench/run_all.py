"""Run every benchmark and print one line per measurement (``make bench``)."""

import asyncio
import logging
import time

from bench import (
    chart_lag, profiles_startup, slack_clickzetta, slack_load, slack_textql, slack_wren, storage_burst,
)
from bench.harness import report

SUITES = [
    ("Slack ↔ Wren (request/response backend)", slack_wren.main, slack_wren.report),
    ("Slack ↔ ClickZetta (polled backend)", slack_clickzetta.main, report),
    ("Slack ↔ TextQL (streamed backend)", slack_textql.main, report),
    ("Storage under a burst (200 questions at once)", storage_burst.main, storage_burst.report),
    ("Charts: event-loop lag, vl-convert in a thread vs worker processes", chart_lag.main,
     chart_lag.report),
    ("Backend profiles at start-up: 1 backend, 3 and 20 profiles", profiles_startup.main,
     profiles_startup.report),
    # prints each scenario as it ends (about thirteen minutes in all, the stream* ones included)
    ("Delivery under load: the bot in its own process, Slack's limits enforced", slack_load.main,
     lambda _: "(all scenarios above)"),
]


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    for title, run, show in SUITES:
        started = time.monotonic()
        print(f"== {title} ==", flush=True)
        print(show(asyncio.run(run())))
        print(f"({time.monotonic() - started:.0f} s)\n", flush=True)


if __name__ == "__main__":
    main()
