"""Run every benchmark and print one line per measurement (``make bench``)."""

import asyncio
import logging

from bench import slack_wren


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    print("== Slack ↔ Wren (request/response backend) ==")
    print(slack_wren.report(asyncio.run(slack_wren.main())))


if __name__ == "__main__":
    main()
